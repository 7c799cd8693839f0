"""Slider builders (viz.widgets): defaults on the step grid, so the readout is the value drawn."""

import math

import pytest
import torch

from patchscaler_lite.viz import widgets


def on_its_grid(s) -> bool:
    k = (s.value - s.min) / s.step
    return abs(k - round(k)) < 1e-6 and s.min <= s.value <= s.max


@pytest.mark.parametrize("span, expected", [(0.8, 0.005), (0.37, 0.002), (1000, 5.0), (2e-3, 1e-5),
                                            (0.2, 0.001)])
def test_nice_step_is_one_two_or_five_times_a_power_of_ten(span, expected):
    step = widgets.nice_step(span)
    assert step == pytest.approx(expected)
    assert span / step <= 200 + 1e-9


def test_on_grid_rounds_to_the_grid_and_stays_inside():
    assert widgets.on_grid(0.6119, 0.1, 0.005) == pytest.approx(0.61)
    assert widgets.on_grid(42, 0, 8) == 40
    assert widgets.on_grid(0.99, 0.1, 0.2, hi=0.9) == pytest.approx(0.9)
    assert widgets.on_grid(-1.0, 0.0, 0.1) == 0.0


@pytest.mark.parametrize("seed", range(5))
def test_threshold_sliders_defaults_sit_on_the_step_grid_near_the_quantiles(seed):
    q = torch.rand(300, generator=torch.Generator().manual_seed(seed)) * 0.41 + 0.5
    g1, g2 = widgets.threshold_sliders(q, (0.6, 0.25))
    assert on_its_grid(g1) and on_its_grid(g2)
    assert g1.min <= float(q.min()) and g1.max >= float(q.max())
    assert (q > g1.value).float().mean().item() == pytest.approx(0.6, abs=0.03)
    assert (q <= g2.value).float().mean().item() == pytest.approx(0.15, abs=0.03)
    decimals = int(g1.readout_format[1:-1])
    assert round(g1.value, decimals) == pytest.approx(g1.value)            # the readout is the value
    assert g1.layout.width == widgets.WIDE and not g1.continuous_update


def test_stepped_slider_default_is_on_its_grid():
    s = widgets.stepped_slider(25, 1000, (25 + 1000) // 3, description="budget")
    assert on_its_grid(s) and s.step == (1000 - 25) // 50 and not s.continuous_update


def test_log_slider_holds_the_value_on_its_exponent_grid():
    s = widgets.log_slider(0.0041, 10, 1.0)
    assert s.value == 1.0 and 10 ** s.min <= 0.0041 and 10 ** s.max >= 10
    k = (math.log10(s.value) - s.min) / s.step
    assert abs(k - round(k)) < 1e-6

"""ipywidgets controls with sensible ranges for the notebooks (never imported by the core).

Slider builders return widgets whose defaults are computed from the data, so a headless run (which
draws once with the defaults) shows a meaningful figure; `live` wires controls to a drawing function.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
from IPython.display import Pretty, display
from ipywidgets import FloatLogSlider, FloatSlider, IntSlider, Layout, VBox
from torch import Tensor

WIDE = "640px"      # sliders with many steps (the default 300 px leaves ~120 px of track)


def nice_step(span: float, n: int = 200) -> float:
    """The smallest of 1, 2, 5 x 10^k that cuts `span` into at most n steps (a readable readout)."""
    raw = max(span / n, 1e-6)
    k = math.floor(math.log10(raw))
    return next(m * 10.0 ** k for m in (1, 2, 5, 10) if m * 10.0 ** k >= raw * (1 - 1e-9))


def on_grid(value: float, lo: float, step: float, hi: float | None = None) -> float:
    """value moved to the nearest lo + k * step (inside [lo, hi]), rounded to the step's decimals,
    so the slider's readout is the value the figure is drawn with."""
    k = round((value - lo) / step)
    if hi is not None:
        k = min(k, math.floor((hi - lo) / step + 1e-9))
    return round(lo + max(k, 0) * step, max(0, -math.floor(math.log10(step))) + 1)


def threshold_sliders(q: Tensor, fractions=(0.6, 0.25)) -> tuple[FloatSlider, FloatSlider]:
    """(gamma1, gamma2) sliders spanning the Qmap values q (any shape), wide enough to move one step
    at a time (WIDE).

    Defaults sit at the Qmap quantiles that put `fractions` (Simple, Medium) of the patches in the
    first two groups (since the absolute confidence scale depends on the GRM weights), moved onto
    the slider's step grid (a round step of at most 1/200 of the range).
    """
    v = q.detach().flatten().float().cpu()
    step = nice_step(float(v.max() - v.min()))
    lo = math.floor(float(v.min()) / step) * step
    hi = math.ceil(float(v.max()) / step) * step
    lo, hi = on_grid(lo, 0.0, step), on_grid(hi, 0.0, step)
    g1 = on_grid(float(v.quantile(1 - fractions[0])), lo, step, hi)
    g2 = on_grid(float(v.quantile(1 - fractions[0] - fractions[1])), lo, step, hi)
    decimals = max(0, -math.floor(math.log10(step)))
    kw = dict(min=lo, max=hi, step=step, readout_format=f".{decimals}f", continuous_update=False,
              layout=Layout(width=WIDE))
    return (FloatSlider(value=g1, description="gamma1", **kw),
            FloatSlider(value=g2, description="gamma2", **kw))


def stepped_slider(lo: int, hi: int, value: int, n: int = 50, **kw) -> IntSlider:
    """An IntSlider over [lo, hi] in about n steps, its default moved onto the step grid."""
    step = max(1, (hi - lo) // n)
    return IntSlider(value=int(on_grid(value, lo, step, hi)), min=lo, max=hi, step=step,
                     continuous_update=False, layout=Layout(width=WIDE), **kw)


def log_slider(lo: float, hi: float, value: float, step: float = 0.05, **kw) -> FloatLogSlider:
    """A base-10 FloatLogSlider from about lo to hi whose grid of exponents holds `value` exactly."""
    e_lo = math.log10(value) - math.ceil((math.log10(value) - math.log10(lo)) / step - 1e-9) * step
    e_hi = math.log10(value) + math.ceil((math.log10(hi) - math.log10(value)) / step - 1e-9) * step
    return FloatLogSlider(value=value, base=10, min=round(e_lo, 6), max=round(e_hi, 6), step=step,
                          continuous_update=False, readout_format=".3g", layout=Layout(width=WIDE), **kw)


def fraction_sliders(fractions=(0.6, 0.25)) -> tuple[FloatSlider, FloatSlider]:
    """(f_simple, f_medium) quantile sliders in [0, 1]; clip f_medium to 1 - f_simple before use."""
    kw = dict(min=0.0, max=1.0, step=0.05, continuous_update=False)
    return (FloatSlider(value=fractions[0], description="f_simple", **kw),
            FloatSlider(value=fractions[1], description="f_medium", **kw))


def xy_sliders(height: int, width: int, patch_size: int, step: int = 8) -> tuple[IntSlider, IntSlider]:
    """(x, y) sliders for the top-left corner of a P x P patch inside an H x W image, centred."""
    mx, my = max(width - patch_size, 0), max(height - patch_size, 0)
    kw = dict(step=step, continuous_update=False)
    return (IntSlider(value=mx // 2 // step * step, min=0, max=mx, description="x", **kw),
            IntSlider(value=my // 2 // step * step, min=0, max=my, description="y", **kw))


def live(draw, **controls) -> None:
    """Show `controls` (name -> widget) above draw(**their values), and redraw on every change.

    draw returns a matplotlib Figure (or any displayable object, e.g. a message string). The result
    is shown with IPython's display(..., display_id=True) and replaced in place with
    DisplayHandle.update: no ipywidgets Output widget is involved, so the first drawing is an
    ordinary cell output and headless runs (nbclient, nbmake) keep it. Cells whose output goes
    through an Output widget, as with `interact`, can stall nbclient until its cell timeout
    (jupyter/nbclient#312).
    """
    def render():
        obj = draw(**{k: w.value for k, w in controls.items()})
        if isinstance(obj, plt.Figure):
            plt.close(obj)                    # displayed once, by us, not again by the backend
        return Pretty(obj) if isinstance(obj, str) else obj    # text as text, not its repr

    display(VBox(list(controls.values())))
    handle = display(render(), display_id=True)

    def redraw(_change) -> None:
        obj = render()
        if handle is not None:
            handle.update(obj)
        else:                                 # plain Python (no IPython shell): just show it
            display(obj)

    for w in controls.values():
        w.observe(redraw, names="value")

import pytest
import torch

from patchscaler_lite.config import T_MAX
from patchscaler_lite.diffusion.schedule import (
    alpha_bar,
    ddim_step,
    from_signal,
    q_sample,
    shortcut_start,
    timesteps_for,
    to_signal,
)
from patchscaler_lite.errors import PatchScalerError


def test_alpha_bar_is_a_decreasing_vp_schedule():
    ab = alpha_bar()
    assert ab.shape == (T_MAX + 1,)
    assert ab[0] == 1 and (ab[1:] < ab[:-1]).all() and ab[-1] > 0
    # linear betas 1e-4 .. 0.02: abar_T is known to be about 4e-5
    assert 1e-5 < ab[-1] < 1e-4


def test_q_sample_endpoints():
    ab = alpha_bar()
    x0, eps = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8)
    assert torch.equal(q_sample(x0, 0, eps, ab), x0)
    xt = q_sample(x0, torch.tensor([10, 500]), eps, ab)
    a = ab[500].float()
    assert torch.allclose(xt[1], a.sqrt() * x0[1] + (1 - a).sqrt() * eps[1], atol=1e-6)


def test_ddim_with_the_true_x0_follows_the_forward_process():
    # Oracle: with x0_hat = x0, eta = 0 DDIM keeps eps fixed, so x_{t'} = q_sample(x0, t', eps).
    ab = alpha_bar()
    x0, eps = torch.randn(4, 3, 8, 8, dtype=torch.float64), torch.randn(4, 3, 8, 8, dtype=torch.float64)
    x = q_sample(x0, 400, eps, ab)
    for t, t_next in zip([400, 250, 100], [250, 100, 7]):
        x = ddim_step(x, x0, t, t_next, ab)
        assert torch.allclose(x, q_sample(x0, t_next, eps, ab), atol=1e-10)


def test_shortcut_start_is_eq6():
    ab = alpha_bar()
    y0, eps = torch.rand(1, 3, 4, 4), torch.randn(1, 3, 4, 4)
    a = ab[200].float()
    assert torch.allclose(shortcut_start(y0, 200, eps, ab), a.sqrt() * y0 + (1 - a).sqrt() * eps)


@pytest.mark.parametrize("t,n", [(1, 1), (100, 1), (100, 3), (350, 4), (1000, 1000), (7, 6)])
def test_timesteps_for(t, n):
    ts = timesteps_for(t, n)
    assert len(ts) == n + 1 and ts[0] == t and ts[-1] == 0
    assert all(b < a for a, b in zip(ts, ts[1:]))


@pytest.mark.parametrize("t,n", [(0, 1), (1001, 1), (10, 0), (10, 11)])
def test_timesteps_for_rejects_bad_values(t, n):
    with pytest.raises(PatchScalerError):
        timesteps_for(t, n)


def test_signal_round_trip():
    x = torch.rand(2, 3, 5, 5)
    assert torch.allclose(from_signal(to_signal(x)), x)

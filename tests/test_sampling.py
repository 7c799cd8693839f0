import pytest
import torch

from patchscaler_lite.config import PGSConfig, check_schedule, fidelity_pgs
from patchscaler_lite.diffusion.sampling import sample_patches
from patchscaler_lite.errors import PatchScalerError


def oracle(x0_true):
    """A denoiser that knows the answer: returns the true x0 of the patches it is asked about.
    calls: (batch size, t) of every denoiser call; conditions: batch sizes of every condition."""
    calls, conditions = [], []

    def condition(y0, idx):
        conditions.append(len(idx))

        def denoise(x_t, t):
            calls.append((len(idx), int(t[0])))
            return x0_true[idx]
        return denoise
    oracle.conditions = conditions
    return condition, calls


def test_pgs_with_an_oracle_denoiser_recovers_x0_and_counts_nfe_exactly():
    torch.manual_seed(0)
    n = 37
    x0 = torch.rand(n, 3, 8, 8) * 2 - 1
    y0 = x0 + 0.1 * torch.randn_like(x0)
    groups = torch.randint(0, 3, (n,))
    cfg = PGSConfig(starts=(50, 150, 300), steps=(1, 3, 5), batch_size=8)
    denoise, calls = oracle(x0)
    out, stats = sample_patches(denoise, y0, groups, cfg, torch.randn_like(x0))
    assert torch.allclose(out, x0, atol=1e-5)
    counts = [int((groups == g).sum()) for g in range(3)]
    assert stats.patches == counts
    assert stats.patch_nfe == [c * s for c, s in zip(counts, (1, 3, 5))]
    assert sum(c for c, _ in calls) == stats.total_nfe          # every call was counted once
    assert max(c for c, _ in calls) <= 8                           # batches are bounded
    assert sum(oracle.conditions) == n                             # each patch conditioned once
    # each group starts at its own T_g
    assert {t for _, t in calls} >= {50, 150, 300}


def test_uniform_mode_gives_every_patch_the_same_plan():
    x0 = torch.zeros(10, 3, 4, 4)
    denoise, calls = oracle(x0)
    cfg = PGSConfig(uniform=(300, 4))
    _, stats = sample_patches(denoise, x0, torch.tensor([0, 1, 2] * 3 + [0]), cfg, torch.randn_like(x0))
    assert stats.total_nfe == 40 and {t for _, t in calls} == {300, 225, 150, 75}


def test_callback_sees_every_step():
    x0 = torch.zeros(6, 3, 4, 4)
    denoise, _ = oracle(x0)
    seen = []
    cfg = PGSConfig(starts=(10, 20, 30), steps=(1, 2, 3))
    sample_patches(denoise, x0, torch.tensor([0, 1, 2, 2, 1, 0]), cfg, torch.randn_like(x0),
                   callback=lambda s: seen.append((s.group, s.step, s.t)))
    assert seen == [(0, 0, 10), (1, 0, 20), (1, 1, 10), (2, 0, 30), (2, 1, 20), (2, 2, 10)]


@pytest.mark.parametrize("starts,steps", [((200, 100, 300), (1, 2, 3)), ((100, 200, 300), (2, 2, 3)),
                                          ((0, 100, 200), (1, 2, 3)), ((100, 200, 1200), (1, 2, 3)),
                                          ((100, 200, 300), (1, 2, 400)), ((100, 200), (1, 2, 3))])
def test_bad_schedules_are_refused(starts, steps):
    with pytest.raises(PatchScalerError):
        check_schedule(starts, steps)


def test_bad_uniform_is_refused():
    with pytest.raises(PatchScalerError):
        PGSConfig(uniform=(100, 0))


def test_the_fidelity_dial_moves_only_the_start_steps():
    base = PGSConfig()
    assert fidelity_pgs(1 / 6).starts == base.starts                   # the default sits at 1/6
    plans = [fidelity_pgs(f / 10) for f in range(11)]                 # every setting is valid
    t3 = [p.starts[2] for p in plans]
    assert t3[0] == 400 and t3[-1] == 100 and all(a > b for a, b in zip(t3, t3[1:]))
    assert {p.steps for p in plans} == {base.steps} and {p.grouping for p in plans} == {base.grouping}
    for bad in (-0.01, 1.5, float("nan")):
        with pytest.raises(PatchScalerError, match="fidelity"):
            fidelity_pgs(bad)

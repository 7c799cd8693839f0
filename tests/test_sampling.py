import pytest
import torch

from patchscaler_lite.config import PGSConfig, check_schedule, fidelity_pgs
from patchscaler_lite.diffusion.sampling import sample_patches
from patchscaler_lite.errors import PatchScalerError


class Oracle:
    """A Conditioner whose denoiser knows the answer: it returns the true x0 of the patches it is
    asked about (its condition is the patch indices). calls: (patches, sorted set of timesteps) of
    every denoiser call; prepared: how many patches each prepare call got."""

    def __init__(self, x0_true):
        self.x0, self.calls, self.prepared = x0_true, [], []

    def prepare(self, y0, idx):
        self.prepared.append(len(idx))
        return idx

    def rows(self, idx, sel):
        return idx[sel].clone()

    def put(self, buf, slots, src, rows):
        buf[slots] = src[rows]

    def denoise(self, x_t, t, idx):
        assert len(idx) == len(x_t) == len(t)
        self.calls.append((len(idx), sorted(set(t.tolist()))))
        return self.x0[idx]


def test_pgs_with_an_oracle_denoiser_recovers_x0_and_counts_nfe_exactly():
    torch.manual_seed(0)
    n = 37
    x0 = torch.rand(n, 3, 8, 8) * 2 - 1
    y0 = x0 + 0.1 * torch.randn_like(x0)
    groups = torch.randint(0, 3, (n,))
    cfg = PGSConfig(starts=(50, 150, 300), steps=(1, 3, 5), batch_size=8)
    oracle = Oracle(x0)
    out, stats = sample_patches(oracle, y0, groups, cfg, torch.randn_like(x0))
    assert torch.allclose(out, x0, atol=1e-5)
    counts = [int((groups == g).sum()) for g in range(3)]
    assert stats.patches == counts
    assert stats.patch_nfe == [c * s for c, s in zip(counts, (1, 3, 5))]
    assert sum(c for c, _ in oracle.calls) == stats.total_nfe     # every call was counted once
    assert len(oracle.calls) == stats.calls
    assert max(c for c, _ in oracle.calls) <= 8                    # batches are bounded
    assert sum(oracle.prepared) == n                               # each patch conditioned once
    # each group starts at its own T_g
    assert {t for _, ts in oracle.calls for t in ts} >= {50, 150, 300}


def test_calls_are_packed_across_groups():
    """10 Hard (5 steps), 6 Medium (3), 12 Simple (1) = 80 patch-NFE in pools of 8: ten full calls
    (one batch per group at a time would take 2 x 5 + 3 + 2 = 15, most of them part-empty)."""
    groups = torch.tensor([2] * 10 + [1] * 6 + [0] * 12)
    x0 = torch.rand(len(groups), 3, 4, 4)
    oracle = Oracle(x0)
    cfg = PGSConfig(starts=(50, 150, 300), steps=(1, 3, 5), batch_size=8)
    out, stats = sample_patches(oracle, x0, groups, cfg, torch.randn_like(x0))
    assert stats.total_nfe == 80 and stats.calls == 10
    assert [c for c, _ in oracle.calls] == [8] * 10
    assert any(len(ts) > 1 for _, ts in oracle.calls)             # patches at different t, one call
    assert torch.allclose(out, x0, atol=1e-5)


def test_uniform_mode_gives_every_patch_the_same_plan():
    x0 = torch.zeros(10, 3, 4, 4)
    oracle = Oracle(x0)
    cfg = PGSConfig(uniform=(300, 4))
    _, stats = sample_patches(oracle, x0, torch.tensor([0, 1, 2] * 3 + [0]), cfg, torch.randn_like(x0))
    assert stats.total_nfe == 40 and {t for _, ts in oracle.calls for t in ts} == {300, 225, 150, 75}


def test_callback_sees_every_step_of_every_patch_in_order():
    """One call serves all three groups; the callback gets one StepInfo per group and step."""
    x0 = torch.zeros(6, 3, 4, 4)
    seen = []
    cfg = PGSConfig(starts=(10, 20, 30), steps=(1, 2, 3))
    sample_patches(Oracle(x0), x0, torch.tensor([0, 1, 2, 2, 1, 0]), cfg, torch.randn_like(x0),
                   callback=lambda s: seen.append((s.group, s.step, s.t, s.idx.tolist())))
    assert seen == [(2, 0, 30, [2, 3]), (1, 0, 20, [1, 4]), (0, 0, 10, [0, 5]),
                    (2, 1, 20, [2, 3]), (1, 1, 10, [1, 4]),
                    (2, 2, 10, [2, 3])]


def test_progress_counts_every_patch_once():
    groups = torch.tensor([2] * 5 + [1] * 7 + [0] * 9)
    x0 = torch.zeros(len(groups), 3, 4, 4)
    done = []
    sample_patches(Oracle(x0), x0, groups, PGSConfig(batch_size=4), torch.randn_like(x0),
                   progress=done.append)
    assert sum(done) == len(groups)


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

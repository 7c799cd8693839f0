"""eval/grid.py, eval/claims.py, eval/trajectory.py: sweeps, composed plans, the budget allocator
and the Pareto front, against oracles."""

import itertools
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from patchscaler_lite.config import GroupingConfig, PGSConfig
from patchscaler_lite.data import degrade, load_photos
from patchscaler_lite.diffusion.schedule import alpha_bar, ddim_step
from patchscaler_lite.eval import bench, claims, grid
from patchscaler_lite.eval.trajectory import trajectory, trajectory_stats
from patchscaler_lite.pipeline import PatchScalerPipeline
from patchscaler_lite.texture.memory import build_memory


def _table(seed: int, n: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"patch_nfe": rng.integers(1, 20, n).astype(float),
                         "niqe": rng.normal(5, 1, n).round(1), "psnr": rng.normal(27, 1, n).round(1)})


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("lower", [True, False])
def test_pareto_front_matches_brute_force(seed, lower):
    df = _table(seed)
    q = df["niqe"] if lower else -df["niqe"]
    c = df["patch_nfe"]
    dominated = {i for i in df.index for j in df.index
                 if c[j] <= c[i] and q[j] <= q[i] and (c[j] < c[i] or q[j] < q[i])}
    # among equal (cost, quality) duplicates the front keeps one representative
    front = claims.pareto_front(df, "patch_nfe", "niqe", lower)
    expect = df.drop(index=list(dominated))
    assert set(zip(front.patch_nfe, front.niqe)) == set(zip(expect.patch_nfe, expect.niqe))
    assert len(front) == len(set(zip(front.patch_nfe, front.niqe)))
    assert list(front.patch_nfe) == sorted(front.patch_nfe)


def test_pareto_front_hand_made():
    df = pd.DataFrame({"patch_nfe": [1, 2, 2, 3, 4], "niqe": [5.0, 4.0, 4.5, 4.2, 3.0]})
    assert claims.pareto_front(df).index.tolist() == [0, 1, 4]


@pytest.mark.parametrize("seed", range(5))
def test_allocate_matches_brute_force(seed):
    df = _table(seed)
    for budget in [0, 3, 7.5, 12, 100]:
        for metric, lower in [("niqe", True), ("psnr", False)]:
            ok = [i for i in df.index if df.patch_nfe[i] <= budget]
            got = claims.allocate(df, budget, metric, lower)
            if not ok:
                assert got is None
                continue
            best = min(df.loc[ok, metric]) if lower else max(df.loc[ok, metric])
            assert got[metric] == best and got["patch_nfe"] <= budget
            assert got["patch_nfe"] == min(df.patch_nfe[i] for i in ok if df.loc[i, metric] == best)


def test_plans_are_the_filtered_product():
    starts, steps = [100, 200], [1, 2, 4]
    every = list(itertools.product(itertools.product(starts, steps), repeat=3))
    assert len(claims.plans(starts, steps, monotone=False)) == len(every) == 216
    mono = [p for p in every if all(p[g][k] <= p[g + 1][k] for g in (0, 1) for k in (0, 1))]
    assert claims.plans(starts, steps) == mono
    assert len(mono) == 4 * 10            # non-decreasing triples: C(2+2, 3) * C(3+2, 3)


def test_fit_line_recovers_a_line():
    x = np.array([1.0, 2.0, 5.0, 9.0])
    assert grid.fit_line(x, 3 * x + 0.5) == pytest.approx((3.0, 0.5))


def test_best_by_groups_and_versus_uniform_hand_made():
    df = pd.DataFrame({"T1": [100] * 4, "N1": [1, 2, 1, 1], "T2": [100] * 4, "N2": [1, 2, 1, 2],
                       "T3": [100] * 4, "N3": [1, 2, 2, 2], "n_settings": [1, 1, 2, 2],
                       "kind": ["uniform", "uniform", "pgs", "pgs"], "patch_nfe": [10, 20, 13, 16],
                       "niqe": [6.0, 5.0, 5.5, 4.9]})
    g = claims.best_by_groups(df, [10, 15, 20], "niqe")
    assert g["1_group"].tolist() == [6.0, 6.0, 5.0] and g["2_group"].tolist() == [6.0, 5.5, 4.9]
    v = claims.versus_uniform(df, "niqe")
    assert v["pgs_nfe_to_match"].tolist() == [13, 16] and v["saving"].tolist() == [10 / 13, 20 / 16]


@pytest.fixture(scope="module")
def tiny(tiny_models):
    """A tiny random pipeline (P = 32, overlap 4) and a 64 px HR crop."""
    grm, den = tiny_models()
    photos = {k: v[:, :96, :96] for k, v in list(load_photos("train").items())[:2]}
    mem = build_memory(photos, 16, n_patches=128, iters=3, generator=torch.Generator().manual_seed(0))
    grouping = GroupingConfig(patch_size=den.cfg.dit.patch_size, overlap=4, quantiles=(0.5, 0.25))
    pipe = PatchScalerPipeline(grm, den, mem, pgs=PGSConfig(batch_size=8, grouping=grouping))
    hr = load_photos("val")["astronaut"][None, :, 200:264, 200:264]
    return pipe, {"a": hr}


def test_grid_nfe_counts(tiny):
    pipe, hrs = tiny
    cache = grid.run_grid(pipe, hrs, [50, 150], [1, 2, 3])
    n = cache.images["a"].layout.patches_per_image
    assert len(cache.runs) == 6 and (cache.runs.patch_nfe == n * cache.runs.N).all()
    q = replace(pipe.pgs.grouping, quantiles=(0.5, 0.25))
    counts = [int((grid.group_ids(cache.images["a"], q) == k).sum()) for k in range(3)]
    plan = ((50, 1), (150, 2), (150, 3))          # any plan from the grid, T2 = T3 allowed
    df = claims.sweep(cache, [plan, ((50, 2),) * 3], niqe=False, grouping=q)
    assert df.kind.tolist() == ["pgs", "uniform"] and df.n_settings.tolist() == [3, 1]
    assert df.patch_nfe.tolist() == [sum(c * N for c, (_, N) in zip(counts, plan)), 2 * n]
    assert claims.plan_of(df.iloc[0]) == plan


def test_compose_reproduces_a_real_pgs_run(tiny):
    pipe, hrs = tiny
    cache = grid.run_grid(pipe, hrs, [40, 80, 160], [1, 2, 4])
    cfg = PGSConfig(starts=(40, 80, 160), steps=(1, 2, 4), batch_size=8,
                    grouping=replace(pipe.pgs.grouping, quantiles=(0.5, 0.25)))
    real = pipe(degrade(hrs["a"], 4), generator=torch.Generator().manual_seed(0), pgs=cfg)
    run = cache.images["a"]
    img = grid.compose(run, cfg.plan(), grid.group_ids(run, cfg.grouping))
    assert torch.allclose(img, real.image, atol=1e-6)
    assert grid.evaluate(cache, cfg.plan(), niqe=False, grouping=cfg.grouping)["patch_nfe"] \
        == real.total_nfe


def test_trajectory_start_is_the_pipelines_shortcut(tiny):
    pipe, hrs = tiny
    tr = trajectory(pipe, hrs["a"], T=120, N=3)
    abar = alpha_bar()
    # one DDIM step from the reconstructed x_T with the first estimate gives the first state
    assert torch.allclose(ddim_step(tr.start, tr.x0_hat[0], tr.ts[0], tr.ts[1], abar), tr.x[0],
                          atol=1e-5)
    assert torch.equal(tr.x[-1], tr.x0_hat[-1])
    P, o, H = pipe.patch_size, pipe.overlap, hrs["a"].shape[-1]
    nw = int(len(tr.groups) ** 0.5)
    inside = [(i // nw) * (P - o) + P <= H and (i % nw) * (P - o) + P <= H for i in range(nw * nw)]
    assert tr.interior.tolist() == inside and any(inside)
    assert sorted(tr.ranked(0) + tr.ranked(1) + tr.ranked(2)) == [i for i in range(nw * nw) if inside[i]]
    q = tr.qmap[tr.ranked(0)]
    assert (q[:-1] >= q[1:]).all()
    s = trajectory_stats(tr, 0)
    assert len(s) == 4 and s["psnr_final"].iloc[-1] == pytest.approx(120.0)


def test_texture_ablation_and_scaling(tiny):
    pipe, hrs = tiny
    rows = [{"image": i, "method": m, "psnr": p, "psnr_hard": h, "niqe": q, "seconds": s}
            for i, m, p, h, q, s in [("x", "pgs", 27.0, 22.0, 4.0, 2.0),
                                     ("x", "pgs-notexture", 26.5, 21.0, 4.5, 1.5)]]
    abl = claims.texture_ablation({"rows": rows, "methods": {}})
    assert abl.loc["x", ["gain_psnr", "gain_psnr_hard", "gain_niqe", "extra_seconds"]].tolist() \
        == [0.5, 1.0, 0.5, 0.5]
    sc = bench.size_scaling(pipe, hrs["a"], [8, 16], methods=("grm",))
    assert sc.hr_pixels.tolist() == [32 * 32, 64 * 64] and (sc.seconds > 0).all()

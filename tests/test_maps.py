"""Difficulty maps for notebook 05 (eval/maps.py): rank conversion, budgets, the training-free
maps against independent numpy oracles, and the composed PGS images against real pipeline runs."""

from dataclasses import replace

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import rankdata

from patchscaler_lite.config import GroupingConfig
from patchscaler_lite.data import bicubic_up, degrade
from patchscaler_lite.eval import maps
from patchscaler_lite.eval.difficulty import patch_stats
from patchscaler_lite.grm.model import restore
from patchscaler_lite.grouping import assign_groups
from patchscaler_lite.patches import dihedral, make_layout
from patchscaler_lite.viz import maps as vm
from patchscaler_lite.viz.readable import readability_problems


@pytest.fixture(scope="module")
def pipe(tiny_pipeline):
    return tiny_pipeline


@pytest.fixture(scope="module")
def pm(pipe, val_photos):
    hr = val_photos["astronaut"][None, :, 100:196, 180:308]            # (1, 3, 96, 128): not square
    return maps.photo_maps(pipe, "astronaut", hr, seeds=2)


def test_to_qmap_is_one_minus_the_scipy_rank():
    d = torch.randn(3, 5, 7, generator=torch.Generator().manual_seed(0))
    q = maps.to_qmap(d)
    for b in range(3):                                         # oracle: scipy ranks, 1 = easiest
        r = rankdata(d[b].flatten().numpy()) - 1
        np.testing.assert_allclose(q[b].flatten().numpy(), 1 - (r + 0.5) / 35, atol=1e-6)
    assert 0 < q.min() and q.max() < 1


def test_to_qmap_sends_the_hardest_patches_to_the_hard_group():
    d = torch.rand(2, 6, 6, generator=torch.Generator().manual_seed(1))
    grouping = maps.budget_grouping(0.25, GroupingConfig())
    g = assign_groups(maps.to_qmap(d), grouping)
    for b in range(2):
        hardest = set(np.argsort(-d[b].flatten().numpy())[:9])          # round(0.25 * 36) = 9
        assert set(torch.nonzero(g[b].flatten() == 2).flatten().tolist()) == hardest


@pytest.mark.parametrize("hard", [0.0, 0.05, 0.1, 0.3, 0.6, 0.9, 1.0])
def test_budget_grouping_fixes_the_hard_fraction(hard):
    q = torch.rand(1, 10, 10, generator=torch.Generator().manual_seed(2))
    grouping = maps.budget_grouping(hard, GroupingConfig())
    counts = torch.bincount(assign_groups(q, grouping).flatten(), minlength=3).tolist()
    assert counts[2] == round(100 * hard)
    assert counts[1] == round(100 * min(0.4, 1 - hard))


def test_undihedral_inverts_all_eight_on_a_non_square_image():
    x = torch.rand(1, 3, 5, 8, generator=torch.Generator().manual_seed(3))
    seen = set()
    for k in range(8):
        y = dihedral(x, k)
        assert torch.equal(maps.undihedral(y, k), x)
        seen.add(tuple(y.flatten()[:6].tolist()) + tuple(y.shape))
    assert len(seen) == 8                                      # eight different transforms


def _numpy_disagreement(upscale, lr, P, s):
    """Oracle: the 8 transforms written with np.rot90 / np.flip, variance and patch mean by loops."""
    x = lr[0].numpy()
    outs = []
    for k in range(8):
        t = np.rot90(x, k % 4, axes=(1, 2))
        t = t[:, :, ::-1] if k >= 4 else t
        y = upscale(torch.from_numpy(t.copy())[None])[0].numpy()
        y = y[:, :, ::-1] if k >= 4 else y
        outs.append(np.rot90(y, -(k % 4), axes=(1, 2)))
    v = np.var(np.stack(outs), axis=0).mean(0)                  # (H, W)
    return np.array([[v[r:r + P, c:c + P].mean() for c in range(0, v.shape[1], s)]
                     for r in range(0, v.shape[0], s)])


def test_dihedral_disagreement_matches_a_numpy_oracle(tiny_models):
    grm, _ = tiny_models()
    lr = torch.rand(1, 3, 16, 24, generator=torch.Generator().manual_seed(4))
    layout = make_layout((1, 3, 64, 96), 32, 0)
    up = lambda x: restore(grm, x)[0]                                      # noqa: E731
    got = maps.dihedral_disagreement(up, lr, layout)[0].numpy()
    want = _numpy_disagreement(up, lr, 32, 32)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-9)
    assert got.min() > 0                                       # a trained-from-noise GRM is not equivariant


def test_dihedral_disagreement_of_an_equivariant_model_is_zero():
    lr = torch.rand(1, 3, 16, 24, generator=torch.Generator().manual_seed(5))
    layout = make_layout((1, 3, 64, 96), 32, 8)
    nearest = lambda x: F.interpolate(x, scale_factor=4, mode="nearest")   # noqa: E731
    assert maps.dihedral_disagreement(nearest, lr, layout).abs().max() < 1e-12
    shifted = lambda x: nearest(x).roll(1, -1)                             # noqa: E731
    assert maps.dihedral_disagreement(shifted, lr, layout).min() > 0


def test_seed_spread_matches_numpy_std():
    g = torch.Generator().manual_seed(6)
    runs = [torch.randn(6, 3, 4, 4, generator=g) for _ in range(3)]
    layout = make_layout((1, 3, 8, 12), 4, 0)                   # 2 x 3 patches
    want = np.stack([r.numpy() for r in runs]).std(0).mean((1, 2, 3)).reshape(1, 2, 3)
    np.testing.assert_allclose(maps.seed_spread(runs, layout).numpy(), want, rtol=1e-5)
    assert maps.seed_spread([runs[0]] * 3, layout).abs().max() == 0


def test_static_maps_without_overlap_match_patch_stats(tiny_models, val_photos):
    grm, _ = tiny_models()
    hr = val_photos["coffee"][None, :, :96, :128]
    lr = degrade(hr, 4)
    coarse, conf = restore(grm, lr)
    layout = make_layout(hr.shape, 32, 0)
    got = maps.static_maps(grm, lr, hr, coarse, conf, layout)
    ref = patch_stats(hr, coarse, conf, bicubic_up(lr, 4), 32)
    torch.testing.assert_close(got["qmap"].flatten(), ref["difficulty"])
    torch.testing.assert_close(got["gradient"].flatten(), ref["heuristic"])
    torch.testing.assert_close(got["oracle"].flatten(), ref["mse"])


def test_spearman_table_oracle_is_one_random_near_zero_and_order_only_matters():
    g = torch.Generator().manual_seed(7)
    pms = []
    for i in range(2):                                          # 2 photos x 3200 patches
        err = torch.rand(1, 40, 80, generator=g) ** 3
        m = {"oracle": err, "random": torch.rand(1, 40, 80, generator=g), "cubed": err ** 3 * 5,
             "reversed": -err}
        pms.append(maps.PhotoMaps(f"p{i}", None, m, None, None))
    t = maps.spearman_table(pms)
    assert list(t.index) == ["p0", "p1", "mean over photos", "pooled"]
    assert t["oracle"].tolist() == pytest.approx([1.0] * 4)
    assert t["cubed"].tolist() == pytest.approx([1.0] * 4)      # a monotone rescaling: same ranks
    assert t["reversed"].tolist() == pytest.approx([-1.0] * 4)
    assert t["random"].abs().max() < 3 / np.sqrt(3200)          # ~3 sigma of a null Spearman


def test_photo_maps_shapes_and_the_table(pm):
    L = pm.run.layout
    assert (L.nh, L.nw) == (4, 5)
    assert list(pm.maps) == list(maps.MAPS)
    assert all(v.shape == (1, L.nh, L.nw) for v in pm.maps.values())
    assert pm.maps["seeds"].min() > 0 and pm.maps["dihedral"].min() > 0
    table = maps.spearman_table([pm])
    assert table.loc["astronaut", "oracle"] == 1.0 and list(table.columns) == list(maps.MAPS)


@pytest.mark.parametrize("name,hard", [("gradient", 0.2), ("random", 0.5), ("oracle", 0.05)])
def test_composed_image_equals_the_pipeline_given_that_qmap(pipe, pm, name, hard):
    """The cache trick holds with a supplied qmap: same image and same patch-NFE as a real run."""
    pgs = replace(pipe.pgs, grouping=maps.budget_grouping(hard, pipe.pgs.grouping))
    real = pipe(pm.lr, generator=torch.Generator().manual_seed(0), pgs=pgs,
                qmap=maps.to_qmap(pm.maps[name]))
    torch.testing.assert_close(pm.image(name, hard), real.image, atol=1e-5, rtol=0)
    assert torch.equal(pm.groups(name, hard), real.groups)
    row = maps.evaluate_maps(pm, [hard], niqe=False).set_index("map").loc[name]
    assert row["patch_nfe"] == real.total_nfe


def test_the_qmap_map_reproduces_the_default_pipeline(pipe, pm):
    real = pipe(pm.lr, generator=torch.Generator().manual_seed(0),
                pgs=replace(pipe.pgs, grouping=maps.budget_grouping(0.3, pipe.pgs.grouping)))
    torch.testing.assert_close(pm.image("qmap", 0.3), real.image, atol=1e-5, rtol=0)


def test_every_map_gets_the_same_budget(pm):
    rows = maps.evaluate_maps(pm, [0.0, 0.25, 1.0], niqe=False)
    assert rows.groupby("hard").patch_nfe.nunique().eq(1).all()
    n = pm.run.layout.patches_per_image
    assert rows[rows.hard == 1.0].patch_nfe.iloc[0] == 3 * n    # all Hard: N3 = 3 calls each
    assert rows[rows.hard == 1.0].psnr.nunique() == 1           # then the map no longer matters


def test_paired_table_reads_a_known_difference():
    rows = pd.DataFrame([{"image": f"p{i}", "map": m, "hard": 0.1, "nfe_per_patch": 2.0,
                          "psnr": 20.0 + i + (0.5 if m == "qmap" else 0.0)}
                         for i in range(5) for m in ("qmap", "random")])
    t = maps.paired_table(rows, "qmap", measures=("psnr",), n=200)
    assert len(t) == 1 and t.iloc[0]["mean"] == pytest.approx(0.5)
    assert t.iloc[0]["low"] == pytest.approx(0.5) and t.iloc[0]["photos"] == 5


def test_figures_fit_a_notebook_cell(pm):
    rows = maps.evaluate_maps(pm, [0.0, 0.3], niqe=False)
    curve = maps.curves(rows)
    for fig in (vm.maps_grid(pm), vm.budget_curves(curve, 1.5), vm.explorer(pm, "qmap", 0.3, curve),
                vm.explorer(pm, "random", 0.0, curve)):
        assert readability_problems(fig) == []
        plt.close(fig)

"""Library helpers behind notebooks 01 (Qmap) and 02 (texture memory), against simple oracles."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from patchscaler_lite.config import descriptor_for  # noqa: E402
from patchscaler_lite.eval import difficulty, retrieval  # noqa: E402
from patchscaler_lite.grm.model import confidence_bracket, confidence_optimum  # noqa: E402
from patchscaler_lite.grouping import patch_nfe, qmap  # noqa: E402
from patchscaler_lite.texture.gabor import gabor_bank  # noqa: E402
from patchscaler_lite.texture.memory import search  # noqa: E402
from patchscaler_lite.viz import memory as viz_memory  # noqa: E402
from patchscaler_lite.viz import qmap as viz_qmap  # noqa: E402
from patchscaler_lite.viz import widgets  # noqa: E402


# ---------------------------------------------------------------------------- notebook 01
def test_minimise_bracket_matches_closed_form():
    eta = 1e-4
    err2 = eta * torch.tensor([0.01, 0.5, 1.0, 2.0, 10.0, 100.0, 1e4])
    c = difficulty.minimise_bracket(err2, eta)
    torch.testing.assert_close(c, confidence_optimum(err2, eta), rtol=1e-3, atol=1e-6)


def test_minimise_bracket_is_a_minimum_on_a_grid():
    # oracle: brute force over a fine grid of C in (0, 1]
    eta, err2 = 1e-3, torch.tensor([3e-3, 5e-2])
    grid = torch.logspace(-5, 0, 20001, dtype=torch.float64)
    best = grid[confidence_bracket(grid[:, None], err2.double(), eta).argmin(0)]
    torch.testing.assert_close(difficulty.minimise_bracket(err2, eta).double(), best, rtol=2e-3, atol=0)


def test_patch_stats_against_loops():
    g = torch.Generator().manual_seed(0)
    hr, coarse, bic = (torch.rand(1, 3, 16, 24, generator=g) for _ in range(3))
    conf = torch.rand(1, 1, 16, 24, generator=g)
    st = difficulty.patch_stats(hr, coarse, conf, bic, 8)
    assert st["qmap"].shape == (2, 3) and st["mse"].shape == (6,)
    for k, (r, c) in enumerate((r, c) for r in range(2) for c in range(3)):
        win = (..., slice(8 * r, 8 * r + 8), slice(8 * c, 8 * c + 8))
        assert st["difficulty"][k] == pytest.approx(1 - conf[win].mean().item(), abs=1e-6)
        assert st["mse"][k] == pytest.approx((coarse - hr)[win].square().mean().item(), abs=1e-6)
    torch.testing.assert_close(st["qmap"], qmap(conf, 8)[0][0])


def test_binned_mean_against_numpy_oracle():
    rng = np.random.default_rng(0)
    score, err = rng.normal(size=103), rng.random(103)
    ranks, means = difficulty.binned_mean(score, err, bins=5)
    parts = np.array_split(np.argsort(score, kind="stable"), 5)
    np.testing.assert_allclose(means, [err[p].mean() for p in parts])
    assert np.all(np.diff(ranks) > 0) and 0 < ranks[0] < ranks[-1] < 1
    # a score equal to the error gives an increasing curve
    assert np.all(np.diff(difficulty.binned_mean(err, err, 5)[1]) > 0)


def test_patch_nfe():
    assert patch_nfe({"simple": 10, "medium": 4, "hard": 2}, (1, 2, 6)) == 10 + 8 + 12
    assert patch_nfe(torch.tensor([3, 0, 1]), (1, 2, 6)) == 9


def test_qmap_figures_draw():
    g = torch.Generator().manual_seed(1)
    img, hr = torch.rand(1, 3, 64, 64, generator=g), torch.rand(1, 3, 64, 64, generator=g)
    conf = torch.rand(1, 1, 64, 64, generator=g)
    st = difficulty.patch_stats(hr, img, conf, img, 16)
    groups = torch.randint(0, 3, (4, 4), generator=g)
    figs = [viz_qmap.plot_bracket(torch.tensor([1e-5, 1e-3]), 1e-4, torch.tensor([1.0, 0.1])),
            viz_qmap.plot_grm_maps(img[..., ::4, ::4], img, conf, hr),
            viz_qmap.plot_qmap(img, st["qmap"], st["layout"]),
            viz_qmap.plot_grouping(img, st["qmap"], groups, st["layout"], (1, 2, 6), (0.6, 0.3)),
            viz_qmap.plot_calibration(st["difficulty"], st["heuristic"], st["mse"], bins=4)]
    for f in figs:
        assert len(f.axes) >= 1
        plt.close(f)


def test_threshold_sliders_sit_at_quantiles():
    q = torch.linspace(0.1, 0.9, 101)
    g1, g2 = widgets.threshold_sliders(q, (0.6, 0.25))
    assert g1.min == pytest.approx(0.1) and g1.max == pytest.approx(0.9)
    assert (q > g1.value).float().mean().item() == pytest.approx(0.6, abs=0.02)
    assert (q <= g2.value).float().mean().item() == pytest.approx(0.15, abs=0.02)


def test_live_draws_once_then_on_change():
    calls = []
    slider = widgets.xy_sliders(100, 60, 32)[0]                       # x in [0, 28]
    widgets.live(lambda x: calls.append(x) or f"x={x}", x=slider)
    assert calls == [slider.value]
    slider.value = 16
    assert calls == [8, 16]


# ---------------------------------------------------------------------------- notebook 02
def test_gabor_kernels_give_back_the_bank():
    cfg = descriptor_for(16)
    k = viz_memory.gabor_kernels(cfg)                                  # (S*O, P, P), centred
    spec = torch.fft.fft2(torch.fft.ifftshift(k, dim=(-2, -1))).abs().square()
    torch.testing.assert_close(spec.reshape(len(k), -1).T, gabor_bank(cfg), atol=1e-5, rtol=1e-4)


def test_pca_2d_matches_covariance_eigenvectors_up_to_sign():
    x = torch.randn(50, 6, generator=torch.Generator().manual_seed(0)) * torch.arange(1, 7)
    ours = retrieval.pca_2d(x).numpy()
    xc = x.numpy().astype(np.float64) - x.numpy().mean(0)
    w, v = np.linalg.eigh(np.cov(xc, rowvar=False))           # ascending eigenvalues
    ref = xc @ v[:, ::-1][:, :2]                              # scores on the top two axes
    for j in range(2):
        assert min(np.abs(ours[:, j] - ref[:, j]).max(), np.abs(ours[:, j] + ref[:, j]).max()) < 1e-3


def test_spread_subset_is_farthest_point():
    pts = torch.tensor([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0], [0.0, 5.0]])
    idx = retrieval.spread_subset(pts, 3).tolist()
    assert idx[0] == 1 and idx[1] == 2 and idx[2] == 3 and len(set(idx)) == 3


def test_retrieval_sweep_with_m_equal_n_is_nearest_neighbour():
    # with one entry per sample, k-means keeps every point: top-1 = brute-force nearest neighbour
    g = torch.Generator().manual_seed(0)
    x = torch.nn.functional.normalize(torch.randn(40, 5, generator=g), dim=1)
    xs = torch.randint(0, 3, (40,), generator=g)
    q = torch.nn.functional.normalize(torch.randn(30, 5, generator=g), dim=1)
    qs = torch.randint(0, 3, (30,), generator=g)
    rows = retrieval.retrieval_sweep(x, xs, q, qs, sizes=[40], ks=(1, 3))
    nn = (q @ x.T).argmax(1)
    assert rows[0]["top1"] == pytest.approx((xs[nn] == qs).float().mean().item())
    top3 = (q @ x.T).topk(3, dim=1).indices
    assert rows[1]["topk"] == pytest.approx((xs[top3] == qs[:, None]).any(1).float().mean().item())


def test_retrieval_sweep_separable_clusters_are_found():
    g = torch.Generator().manual_seed(1)
    centres = torch.eye(4)
    xs = torch.arange(4).repeat_interleave(25)
    x = torch.nn.functional.normalize(centres[xs] + 0.05 * torch.randn(100, 4, generator=g), dim=1)
    qs = torch.arange(4).repeat(5)
    q = torch.nn.functional.normalize(centres[qs] + 0.05 * torch.randn(20, 4, generator=g), dim=1)
    rows = retrieval.retrieval_sweep(x, xs, q, qs, sizes=[4, 8], ks=(1,))
    assert [r["top1"] for r in rows] == [1.0, 1.0]


def test_confident_failures_order():
    qs = torch.tensor([0, 1, 2, 0, 1])
    top = torch.tensor([0, 2, 1, 1, 1])                                 # wrong: 1, 2, 3
    sims = torch.tensor([0.9, 0.5, 0.7, 0.8, 0.95])
    assert retrieval.confident_failures(qs, top, sims, 2).tolist() == [3, 2]


def test_memory_figures_draw():
    g = torch.Generator().manual_seed(2)
    keys = torch.nn.functional.normalize(torch.randn(12, 6, generator=g), dim=1)
    values = torch.rand(12, 3, 16, 16, generator=g)
    src = torch.arange(12) % 3
    img = torch.rand(3, 48, 48, generator=g)
    rows = [{"M": m, "K": k, "top1": 0.5, "topk": 0.6} for m in (4, 8) for k in (1, 2)]
    figs = [viz_memory.plot_gabor_bank(descriptor_for(16)), viz_memory.plot_inertia([3.0, 2.0, 1.5]),
            viz_memory.plot_key_map(keys, values, src, ["a", "b", "c"], n_thumbs=5),
            viz_memory.plot_query(img, 8, 8, img[:, 8:24, 8:24], values[:3], torch.rand(3),
                                  ["a", "b", "c"]),
            viz_memory.plot_sweep(rows)]
    for f in figs:
        assert len(f.axes) >= 1
        plt.close(f)


def test_search_agrees_with_sweep_keys_shape():
    # retrieval_sweep relies on texture.memory.search returning best-first indices
    x = torch.nn.functional.normalize(torch.randn(10, 3, generator=torch.Generator().manual_seed(3)), dim=1)
    idx, sims = search(x[:2], x, 2)
    assert idx[:, 0].tolist() == [0, 1] and torch.all(sims[:, 0] >= sims[:, 1])

"""Patches and seams for notebook 06 (eval/seams.py): the three reassembly windows against loop
oracles and the pipeline's own unpatchify, the seam metric against a loop version, overlap costs
against real pipeline runs."""

from dataclasses import replace

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np
import pandas as pd
import pytest
import torch

from patchscaler_lite.config import PGSConfig
from patchscaler_lite.data import degrade
from patchscaler_lite.eval import seams
from patchscaler_lite.patches import blend_window, make_layout, patchify, unpatchify
from patchscaler_lite.viz import seams as vs
from patchscaler_lite.viz.readable import readability_problems


@pytest.fixture(scope="module")
def pipe(tiny_pipeline):
    return tiny_pipeline


def _loop_reassemble(patches, layout, kind):
    """Oracle: visit every pixel of every patch; 'average' sums and counts, 'cut' keeps the patch
    whose cell (start + overlap // 2, one stride wide, clipped at the image ends) holds the pixel."""
    P, s, o = layout.patch_size, layout.stride, layout.overlap
    H, W = layout.padded
    C = patches.shape[1]
    acc, cnt = np.zeros((C, H, W)), np.zeros((H, W))
    cell = lambda i, n: min(max((i - o // 2) // s, 0), n - 1)             # noqa: E731
    for idx, p in enumerate(patches.numpy()):
        r, c = divmod(idx, layout.nw)
        for y in range(P):
            for x in range(P):
                Y, X = r * s + y, c * s + x
                if kind == "average":
                    acc[:, Y, X] += p[:, y, x]
                    cnt[Y, X] += 1
                elif cell(Y, layout.nh) == r and cell(X, layout.nw) == c:
                    acc[:, Y, X], cnt[Y, X] = p[:, y, x], 1
    return (acc / cnt)[None, :, : layout.height, : layout.width]


@pytest.mark.parametrize("overlap", [0, 3, 8])
@pytest.mark.parametrize("kind", ["cut", "average"])
def test_reassemble_matches_a_loop_oracle(overlap, kind):
    x = torch.rand(1, 2, 37, 45, generator=torch.Generator().manual_seed(0))
    p, layout = patchify(x, 16, overlap)
    p = seams.jitter_patches(p, 0.2, torch.Generator().manual_seed(1))    # patches now disagree
    want = _loop_reassemble(p, layout, kind)
    np.testing.assert_allclose(seams.reassemble(p, layout, kind).numpy(), want, atol=1e-5)


@pytest.mark.parametrize("overlap", [0, 4, 12])
def test_cosine_window_is_the_pipelines_unpatchify(overlap):
    x = torch.rand(2, 3, 70, 90, generator=torch.Generator().manual_seed(2))
    p, layout = patchify(x, 32, overlap)
    p = seams.jitter_patches(p, 0.1, torch.Generator().manual_seed(3))
    assert torch.equal(seams.window(32, overlap, "cosine"), blend_window(32, overlap))
    torch.testing.assert_close(seams.reassemble(p, layout, "cosine"), unpatchify(p, layout))


@pytest.mark.parametrize("overlap", [0, 5, 12])
def test_every_window_reassembles_agreeing_patches_exactly(overlap):
    x = torch.rand(1, 3, 50, 66, generator=torch.Generator().manual_seed(4))
    p, layout = patchify(x, 32, overlap)
    for kind in seams.WINDOWS:
        torch.testing.assert_close(seams.reassemble(p, layout, kind), x, atol=1e-6, rtol=0)


def test_roundtrip_table_is_float_rounding():
    x = torch.rand(1, 3, 50, 66, generator=torch.Generator().manual_seed(9))
    t = seams.roundtrip_table(x, 32, [0, 8])
    assert list(t.index) == [0, 8] and list(t.columns) == list(seams.WINDOWS)
    assert t.to_numpy().max() < 1e-6


def test_without_overlap_the_three_windows_are_one_paste():
    x = torch.rand(1, 3, 64, 96, generator=torch.Generator().manual_seed(5))
    p, layout = patchify(x, 32, 0)
    p = seams.jitter_patches(p, 0.1, torch.Generator().manual_seed(6))
    imgs = [seams.reassemble(p, layout, k) for k in seams.WINDOWS]
    for im in imgs[1:]:
        torch.testing.assert_close(im, imgs[0], atol=1e-6, rtol=0)


def _loop_seam_ratio(img, layout, kind):
    """Oracle: the seam test of tests/test_pipeline.py with the seam positions written out per
    window (cosine: the overlap zone; average: its two edges; cut: the cell boundary)."""
    s, o = layout.stride, layout.overlap

    def one(x, n):
        g = (x[:, 1:] - x[:, :-1]).abs()
        zone = set()
        for k in range(1, n):
            b = k * s
            zone |= ({b - 1} if o == 0 else set(range(b - 1, b + o)) if kind == "cosine"
                     else {b - 1, b + o - 1} if kind == "average" else {b + o // 2 - 1})
        cols = [j for j in range(g.shape[1]) if j in zone]
        rest = [j for j in range(g.shape[1]) if j not in zone]
        return g[:, cols].mean() / g[:, rest].mean()
    y = img[0].mean(0)
    return float((one(y, layout.nw) + one(y.T, layout.nh)) / 2)


@pytest.mark.parametrize("overlap", [0, 4, 7, 12])
@pytest.mark.parametrize("kind", seams.WINDOWS)
def test_seam_ratio_matches_the_loop_version(val_photos, overlap, kind):
    hr = val_photos["coffee"][None, :, :150, :170]
    p, layout = patchify(hr, 32, overlap)
    img = seams.reassemble(seams.jitter_patches(p, 0.05, torch.Generator().manual_seed(7)), layout, kind)
    for im in (hr, img):
        assert seams.seam_ratio(im, layout, kind) == pytest.approx(_loop_seam_ratio(im, layout, kind),
                                                                   rel=1e-5)


def test_seam_ratio_sees_a_jittered_paste_and_blending_hides_it(val_photos):
    hr = val_photos["coffee"][None, :, :192, :192]
    imgs = seams.jitter_images(hr, 32, [0, 12], strength=0.05)
    lay = {o: make_layout(hr.shape, 32, o) for o in (0, 12)}
    assert abs(seams.seam_ratio(hr, lay[0]) - 1) < 0.1                 # the photo has no seams
    assert seams.seam_ratio(imgs[(0, "cut")], lay[0], "cut") > 1.2
    assert seams.seam_ratio(imgs[(12, "cut")], lay[12], "cut") > 1.2           # overlap, no blending
    assert seams.seam_ratio(imgs[(12, "cosine")], lay[12], "cosine") < 1.1     # + raised cosine


def test_gradient_profile_puts_a_step_at_offset_zero():
    layout = make_layout((1, 3, 64, 96), 16, 0)
    x = torch.zeros(1, 3, 64, 96)
    x[..., :, 32:] = 1.0                                       # one vertical step at a patch start
    d, prof = seams.gradient_profile(x, layout)
    assert len(d) == layout.stride and d[0] == -8
    assert prof[d.index(0)] > 0 and prof.sum() == prof[d.index(0)]


def test_jitter_is_seeded_and_zero_strength_is_the_identity():
    p = torch.rand(4, 3, 8, 8)
    g = lambda: torch.Generator().manual_seed(8)                              # noqa: E731
    assert torch.equal(seams.jitter_patches(p, 0.1, g()), seams.jitter_patches(p, 0.1, g()))
    assert torch.equal(seams.jitter_patches(p, 0.0, g()), p)


def test_pipeline_images_cosine_is_the_pipeline_output_and_costs_match(pipe, val_photos):
    hr = val_photos["astronaut"][None, :, 100:196, 180:292]                   # (1, 3, 96, 112)
    lr = degrade(hr, 4)
    images, outs = seams.pipeline_images(pipe, lr, [0, 8])
    cost = seams.overlap_cost(96, 112, [0, 8], pipe.pgs).set_index("overlap")
    for o in (0, 8):
        torch.testing.assert_close(images[(o, "cosine")], outs[o].image, atol=1e-6, rtol=0)
        assert cost.loc[o, "patches"] == outs[o].groups.numel()
        assert cost.loc[o, "pgs_patch_nfe"] == outs[o].total_nfe
        uni = pipe(lr, pgs=replace(pipe.pgs, uniform=(200, 3),
                                   grouping=replace(pipe.pgs.grouping, overlap=o)))
        assert cost.loc[o, "all_hard_patch_nfe"] == uni.total_nfe
    assert cost.loc[8, "factor"] == outs[8].groups.numel() / outs[0].groups.numel()


def test_seam_table_rows(val_photos):
    hr = val_photos["coffee"][None, :, :128, :128]
    t = seams.seam_table(seams.jitter_images(hr, 32, [0, 8], 0.03), hr, 32, "jitter")
    assert len(t) == 6 and set(t.window) == set(seams.WINDOWS)
    assert t.psnr.notna().all() and (t.truth_seam_ratio - 1).abs().max() < 0.15


def test_figures_fit_a_notebook_cell(val_photos):
    hr = val_photos["coffee"][None, :, :128, :128]
    images = seams.jitter_images(hr, 32, [0, 8, 12], 0.04)
    table = pd.concat([seams.seam_table(images, hr, 32, name) for name in
                       ("jitter (sigma = 0.04)", "pipeline, default PGS", "pipeline, all Hard (350, 6)")])
    figs = [vs.seam_view({k: images[(o, k)] for k in seams.WINDOWS}, hr, make_layout(hr.shape, 32, o),
                         kind, "pipeline, all Hard (350, 6)") for o in (0, 12) for kind in ("cut", "cosine")]
    figs += [vs.seam_curves(table), vs.cost_figure(seams.overlap_cost(512, 512, [0, 4, 8, 12], PGSConfig()),
                                                   32, "512 x 512 image, P = 32, PGS steps (1, 2, 6)")]
    for fig in figs:
        assert readability_problems(fig) == []
        plt.close(fig)

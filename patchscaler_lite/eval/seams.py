"""Patches, overlap and seams (notebook 06): reassembly windows, the seam metric, what overlap costs.

Reassembly is a weighted mean of every patch covering a pixel, x = sum_k w_k p_k / sum_k w_k, with
one (P, P) window w for all patches (`WINDOWS`):
  cut      each pixel from the one patch whose stride cell holds it (the overlap is thrown away)
  average  the plain mean of all covering patches (box window)
  cosine   the pipeline's raised-cosine ramps of width `overlap` (patches.blend_window / unpatchify)
With overlap 0 all three are the same exact paste.

Seam metric (`seam_ratio`): mean |gradient| of the luma where patches meet over the mean everywhere
else, horizontal and vertical averaged; 1 = the borders look like the rest of the image, > 1 =
seams, < 1 = smoother there (blending blur). "Where patches meet" is where the window changes the
mix of patches from one pixel to the next (`seam_mask`): the whole overlap zone for the raised
cosine (the zone of tests/test_pipeline.py's seam test), its two edges for plain averaging, the one
cell boundary for the cut. A zone-wide mean would hide a cut's single step among o quiet columns.
Images (1, 3, H, W) or (3, H, W) float in [0, 1]; patches (N, C, P, P). No plotting (viz/seams.py).
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor

from ..config import PGSConfig
from ..diffusion.schedule import from_signal
from ..grouping import assign_groups, patch_nfe
from ..patches import PatchLayout, blend_window, make_layout, patchify
from . import metrics
from .grid import final_patches

WINDOWS = ("cut", "average", "cosine")
CUT_FLOOR = 1e-6     # weight outside a patch's own cell, so border pixels (one patch) stay defined


def window(patch_size: int, overlap: int, kind: str) -> Tensor:
    """(P, P) reassembly weight of one patch for a window kind of WINDOWS."""
    if kind == "cosine":
        return blend_window(patch_size, overlap)
    if kind == "average":
        return torch.ones(patch_size, patch_size)
    if kind != "cut":
        raise ValueError(f"unknown window {kind!r}; choose from {', '.join(WINDOWS)}")
    w = torch.full((patch_size,), CUT_FLOOR)
    w[overlap // 2: overlap // 2 + patch_size - overlap] = 1.0      # own cell: one stride wide
    return w[:, None] * w[None, :]


def reassemble(patches: Tensor, layout: PatchLayout, kind: str = "cosine") -> Tensor:
    """(B * nh * nw, C, P, P) -> (B, C, H, W): patches.unpatchify with the window `kind`."""
    P, s, N = layout.patch_size, layout.stride, layout.patches_per_image
    C = patches.shape[1]
    win = window(P, layout.overlap, kind).to(patches)
    cols = (patches * win).reshape(layout.batch, N, C * P * P).transpose(1, 2)   # (B, C*P*P, N)
    Hp, Wp = layout.padded
    out = F.fold(cols, (Hp, Wp), kernel_size=P, stride=s)                       # (B, C, Hp, Wp)
    norm = F.fold(win.reshape(1, P * P, 1).expand(1, P * P, N), (Hp, Wp), kernel_size=P, stride=s)
    return (out / norm)[..., : layout.height, : layout.width]


def roundtrip_table(img: Tensor, patch_size: int, overlaps) -> pd.DataFrame:
    """max |reassemble(patchify(img)) - img| for every overlap (rows) and window (columns)."""
    rows = {}
    for o in overlaps:
        p, layout = patchify(img, patch_size, o)
        rows[o] = {k: (reassemble(p, layout, k) - img).abs().max().item() for k in WINDOWS}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("overlap")


def jitter_patches(patches: Tensor, strength: float, generator=None) -> Tensor:
    """Each patch p -> (1 + a) p + b: gain a (one per patch) and offset b (one per patch and
    channel), both N(0, strength^2), drawn on the CPU. A model of two independent restorations
    of neighbouring patches disagreeing in brightness, contrast and colour."""
    n, C = patches.shape[:2]
    a = strength * torch.randn((n, 1, 1, 1), generator=generator)
    b = strength * torch.randn((n, C, 1, 1), generator=generator)
    return (1 + a.to(patches)) * patches + b.to(patches)


def seam_mask(size: int, stride: int, overlap: int, n: int, kind: str = "cosine") -> Tensor:
    """(size - 1,) bool over the gradients g[j] = x[j + 1] - x[j] of one axis of n patches: True
    where the normalised weights of the patches change between pixel j and j + 1, i.e. where
    reassembly with `kind` can make a seam. cosine: the overlap zones j in [k s - 1, k s + o - 1];
    average: their two edges; cut: the one cell boundary k s + o // 2 - 1; overlap 0: k s - 1."""
    P = stride + overlap
    w = window(P, overlap, kind)[P // 2]        # (P,) the 1-D profile, up to a constant factor
    W = torch.zeros(n, stride * (n - 1) + P)
    for k in range(n):
        W[k, k * stride: k * stride + P] = w
    W = W / W.sum(0)                                                     # (n, L) weight of patch k
    return ((W[:, 1:] - W[:, :-1]).abs().amax(0) > 1e-3)[: size - 1]


def _luma(img: Tensor) -> Tensor:
    """(1, C, H, W) or (C, H, W) -> (H, W) channel mean, float, CPU."""
    return img.detach().float().cpu().reshape(-1, *img.shape[-2:]).mean(0)


def seam_ratio(img: Tensor, layout: PatchLayout, kind: str = "cosine") -> float:
    """Mean |gradient| where the patches of `layout` meet (seam_mask for the window `kind`) over
    the mean elsewhere, horizontal and vertical averaged; 1 = no seams (see the module)."""
    y, s, o = _luma(img), layout.stride, layout.overlap
    gx, gy = (y[:, 1:] - y[:, :-1]).abs(), (y[1:] - y[:-1]).abs()            # (H, W-1), (H-1, W)
    mx = seam_mask(layout.width, s, o, layout.nw, kind)
    my = seam_mask(layout.height, s, o, layout.nh, kind)
    rx = gx[:, mx].mean() / gx[:, ~mx].mean()
    ry = gy[my].mean() / gy[~my].mean()
    return float((rx + ry) / 2)


def gradient_profile(img: Tensor, layout: PatchLayout) -> tuple[list[int], Tensor]:
    """Mean |gradient| against the offset d from the nearest patch start (d = 0: the gradient into
    a patch's first pixel; the overlap zone is 0 <= d <= overlap), both axes, interior borders
    only. Returns (offsets -s//2 .. s - s//2 - 1, profile (s,))."""
    y, s = _luma(img), layout.stride
    offsets = list(range(-(s // 2), s - s // 2))

    def one(g: Tensor, n: int) -> Tensor:                  # g (rows, L): gradients along dim 1
        j1 = torch.arange(1, g.shape[1] + 1)               # the pixel right of each gradient
        d = (j1 + s // 2) % s - s // 2
        k = (j1 - d) // s
        keep = (k >= 1) & (k <= n - 1)
        return torch.stack([g[:, keep & (d == u)].mean() for u in offsets])

    prof = (one((y[:, 1:] - y[:, :-1]).abs(), layout.nw) + one((y[1:] - y[:-1]).abs().T, layout.nh))
    return offsets, prof / 2


def jitter_images(hr: Tensor, patch_size: int, overlaps, strength: float, seed: int = 0) -> dict:
    """Cut hr (1, 3, H, W) into patches at each overlap, jitter them (the same seed each time),
    and reassemble with every window -> {(overlap, window): (1, 3, H, W) clamped to [0, 1]}."""
    out = {}
    for o in overlaps:
        p, layout = patchify(hr, patch_size, o)
        p = jitter_patches(p, strength, torch.Generator().manual_seed(seed))
        out.update({(o, k): reassemble(p, layout, k).clamp(0, 1) for k in WINDOWS})
    return out


@torch.no_grad()
def pipeline_images(pipe, lr: Tensor, overlaps, *, pgs: PGSConfig | None = None,
                    seed: int = 0) -> tuple[dict, dict]:
    """Run the pipeline on lr (1, 3, h, w) at each overlap (`pgs`, default the pipeline's, with
    that overlap), keep its restored patches and reassemble them with every window ->
    ({(overlap, window): (1, 3, H, W)}, {overlap: output}). 'cosine' is the pipeline's output."""
    images, outs, base = {}, {}, pipe.pgs if pgs is None else pgs
    for o in overlaps:
        pgs = replace(base, grouping=replace(base.grouping, overlap=o))
        outs[o], x0 = final_patches(pipe, lr, pgs, seed)                # x0 (n, 3, P, P) in [-1, 1]
        images.update({(o, k): from_signal(reassemble(x0, outs[o].layout, k)) for k in WINDOWS})
    return images, outs


def seam_table(images: dict, hr: Tensor, patch_size: int, source: str = "") -> pd.DataFrame:
    """One row per (overlap, window) of `images` {(overlap, window): (1, 3, H, W)}: source,
    seam_ratio, the truth's seam_ratio at the same places (hr (1, 3, H, W); about 1, but content
    can put more or fewer edges there), excess = their quotient, and psnr against hr."""
    rows = []
    for (o, k), img in images.items():
        layout = make_layout(img.shape, patch_size, o)
        rows.append({"source": source, "overlap": o, "window": k,
                     "seam_ratio": seam_ratio(img, layout, k),
                     "truth_seam_ratio": seam_ratio(hr, layout, k), "psnr": metrics.psnr(img, hr)})
    df = pd.DataFrame(rows)
    df.insert(5, "excess", df["seam_ratio"] / df["truth_seam_ratio"])
    return df


def overlap_cost(height: int, width: int, overlaps, pgs: PGSConfig) -> pd.DataFrame:
    """What overlap costs on an H x W image: per overlap the stride, the patches n = nh * nw, the
    patch-NFE of PGS (the grouping's quantiles fix the group sizes) and of sampling every patch
    Hard (n * N3), and the factor over no overlap (about (P / (P - overlap))^2)."""
    rows, P = [], pgs.grouping.patch_size
    for o in overlaps:
        L = make_layout((1, 3, height, width), P, o)
        g = assign_groups(torch.zeros(1, L.nh, L.nw), replace(pgs.grouping, overlap=o))
        counts = torch.bincount(g.flatten(), minlength=3).tolist()
        rows.append({"overlap": o, "stride": L.stride, "patches": L.patches_per_image,
                     "pgs_patch_nfe": patch_nfe(counts, [n for _, n in pgs.plan()]),
                     "all_hard_patch_nfe": L.patches_per_image * pgs.plan()[-1][1]})
    df = pd.DataFrame(rows)
    df["factor"] = df["patches"] / make_layout((1, 3, height, width), P, 0).patches_per_image
    return df

"""Figures for notebook 05 (which patches need diffusion?); the numbers come from eval/maps.py.

Every function returns a matplotlib Figure at most 9 in wide (900 px at the inline backend's
100 dpi, inside a 934 px notebook cell) with text of at least 8 pt (checked with viz.readable).
Maps are drawn by rank within the photo (0 = easiest, 1 = hardest), the only thing the quantile
grouping reads, so maps of different scales compare.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm
from torch import Tensor

from ..eval.difficulty import spearman
from ..eval.maps import LABELS, PhotoMaps, to_qmap
from ..image_io import to_uint8
from ..patches import PatchLayout
from . import group_overlay

STYLES = {"qmap": dict(color="tab:blue", marker="o"), "gradient": dict(color="tab:orange", marker="s"),
          "dihedral": dict(color="tab:green", marker="^"), "seeds": dict(color="tab:purple", marker="v"),
          "random": dict(color="0.55", marker="x", ls="--"), "oracle": dict(color="k", marker=".", ls=":")}
# patch agreement with the oracle's Hard set: neither, both, this map only, oracle only
AGREE_COLORS = np.array([[0, 0, 0], [46, 160, 67], [240, 170, 30], [215, 48, 39]], dtype=np.float32)


def _cells(layout: PatchLayout) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel row and column of the patch whose stride cell holds it (as viz.group_overlay)."""
    s, off = layout.stride, layout.overlap // 2
    rows = np.clip((np.arange(layout.height) - off) // s, 0, layout.nh - 1)
    cols = np.clip((np.arange(layout.width) - off) // s, 0, layout.nw - 1)
    return rows, cols


def rank_image(d: Tensor, layout: PatchLayout) -> np.ndarray:
    """Difficulty (1, nh, nw) -> (H, W) rank in (0, 1), 1 = hardest patch, one cell per patch."""
    r = (1 - to_qmap(d))[0].cpu().numpy()
    rows, cols = _cells(layout)
    return r[rows[:, None], cols[None, :]]


def maps_grid(pm: PhotoMaps):
    """The coarse image, the true per-pixel error, and the six maps by rank, Spearman in titles."""
    run, L = pm.run, pm.run.layout
    fig, axes = plt.subplots(2, 4, figsize=(8.8, 5.0))
    axes[0, 0].imshow(to_uint8(run.coarse))
    axes[0, 0].set_title("GRM coarse image", fontsize=9)
    err2 = (run.coarse - run.hr).square().mean(1)[0].numpy()
    axes[1, 0].imshow(np.maximum(err2, 1e-6), cmap="magma", norm=LogNorm(1e-6, 1e-1))
    axes[1, 0].set_title("true error $e^2$ per pixel", fontsize=9)
    for ax, (name, d) in zip(axes[:, 1:].flatten(), pm.maps.items()):
        im = ax.imshow(rank_image(d, L), cmap="magma", vmin=0, vmax=1)
        rho = spearman(d.flatten(), pm.error.flatten())
        ax.set_title(f"{LABELS[name]}\nSpearman {rho:+.2f}", fontsize=9)
    for ax in axes.flatten():
        ax.axis("off")
    fig.colorbar(im, ax=axes[:, 1:], fraction=0.02, pad=0.01, label="rank (1 = hardest)")
    fig.suptitle(f"{pm.name}: {L.nh} x {L.nw} patches of {L.patch_size} px", fontsize=10)
    return fig


def budget_curves(curve_df: pd.DataFrame, budget: float | None = None, axes=None):
    """PSNR and NIQE (means over photos) against patch-NFE per patch, one line per map, legend
    below; `budget` (calls per patch) drawn as a vertical line. axes: two Axes to draw into."""
    fig = plt.figure(figsize=(8.8, 3.9)) if axes is None else axes[0].figure
    axes = fig.subplots(1, 2) if axes is None else axes
    for name, d in curve_df.groupby("map", sort=False):
        for ax, m in zip(axes, ("psnr", "niqe")):
            if m in d:
                ax.plot(d["nfe_per_patch"], d[m], label=LABELS[name], ms=5, lw=1.3, **STYLES[name])
    for ax, m in zip(axes, ("PSNR, dB (higher is better)", "NIQE (lower is better)")):
        if budget is not None:
            ax.axvline(budget, color="crimson", lw=1, ls=":")
        ax.set_xlabel("denoiser calls per patch (patch-NFE / patches)", fontsize=9)
        ax.set_ylabel(m, fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=3, fontsize=8,
               frameon=False)
    fig.tight_layout(rect=(0, 0.1 if len(fig.axes) == 2 else 0.06, 1, 1))
    return fig


def agreement(pm: PhotoMaps, name: str, hard: float) -> np.ndarray:
    """uint8 (H, W, 3): the coarse image tinted by patch: Hard under both this map and the oracle
    (green), this map only (amber: calls spent where the error is small), oracle only (red: missed)."""
    a = (pm.groups(name, hard) == 2)[0].numpy()
    o = (pm.groups("oracle", hard) == 2)[0].numpy()
    cat = np.where(a & o, 1, np.where(a, 2, np.where(o, 3, 0)))
    rows, cols = _cells(pm.run.layout)
    c = cat[rows[:, None], cols[None, :]]
    img = to_uint8(pm.run.coarse).astype(np.float32)
    tint = np.where(c[..., None] > 0, 0.55 * img + 0.45 * AGREE_COLORS[c], img)
    return np.clip(tint + 0.5, 0, 255).astype(np.uint8)


def explorer(pm: PhotoMaps, name: str, hard: float, curve_df: pd.DataFrame):
    """Top: groups chosen by map `name` at budget `hard` on the PGS output; its Hard set against the
    oracle's. Bottom: quality against budget for every map, this budget marked."""
    fig = plt.figure(figsize=(8.8, 7.4))
    gs = fig.add_gridspec(2, 2, height_ratios=[1.25, 1])
    a0, a1 = fig.add_subplot(gs[0, 0]), fig.add_subplot(gs[0, 1])
    g = pm.groups(name, hard)
    a0.imshow(group_overlay(pm.image(name, hard)[0], g[0], pm.run.layout, alpha=0.35))
    a0.set_title(f"PGS output, groups by {LABELS[name]}\n(green Simple, amber Medium, red Hard)",
                 fontsize=9)
    a1.imshow(agreement(pm, name, hard))
    a1.set_title("Hard set vs the oracle's: green both,\namber this map only, red oracle only",
                 fontsize=9)
    for ax in (a0, a1):
        ax.axis("off")
    nfe = sum(int((g == k).sum()) * n for k, (_, n) in enumerate(pm.pgs.plan())) / g.numel()
    fig.suptitle(f"{pm.name}: {hard:.0%} Hard patches, {nfe:.2f} calls per patch "
                 f"(curves: means over all photos)", fontsize=10)
    return budget_curves(curve_df, nfe, [fig.add_subplot(gs[1, 0]), fig.add_subplot(gs[1, 1])])

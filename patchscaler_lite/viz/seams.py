"""Figures for notebook 06 (patches, overlap and seams); the numbers come from eval/seams.py.

Every function returns a matplotlib Figure at most 9 in wide (900 px at 100 dpi, inside a
934 px notebook cell) with text of at least 8 pt (checked with viz.readable).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import Rectangle
from torch import Tensor

from ..eval.seams import WINDOWS, gradient_profile, seam_ratio
from ..image_io import to_uint8
from ..patches import PatchLayout

WINDOW_STYLES = {"cut": dict(color="tab:red", marker="s"), "average": dict(color="tab:orange", marker="^"),
                 "cosine": dict(color="tab:blue", marker="o")}


def border_box(layout: PatchLayout, size: int = 48) -> tuple[int, int, int]:
    """(x, y, size): a square centred where four patches meet, near the middle of the image."""
    s, o = layout.stride, layout.overlap
    cy, cx = max(layout.nh // 2, 1) * s + o // 2, max(layout.nw // 2, 1) * s + o // 2
    size = min(size, layout.height, layout.width)
    y = int(np.clip(cy - size // 2, 0, layout.height - size))
    x = int(np.clip(cx - size // 2, 0, layout.width - size))
    return x, y, size


def _grid(ax, layout: PatchLayout) -> None:
    """Patch starts (solid) and ends (dotted) of `layout` over an image axis."""
    s, P = layout.stride, layout.patch_size
    for k in range(1, max(layout.nh, layout.nw)):
        for pos, ls in ((k * s, "-"), ((k - 1) * s + P, ":")):
            if k < layout.nw and pos < layout.width:
                ax.axvline(pos - 0.5, color="w", lw=0.6, ls=ls, alpha=0.8)
            if k < layout.nh and pos < layout.height:
                ax.axhline(pos - 0.5, color="w", lw=0.6, ls=ls, alpha=0.8)


def seam_view(images: dict, truth: Tensor, layout: PatchLayout, kind: str, title: str = ""):
    """images {window: (1, 3, H, W)} reassembled from the same patches. Top: the image of window
    `kind` with the patch grid (starts solid, ends dotted), a zoom where four patches meet, the
    same zoom of the truth. Bottom: mean |gradient| against the offset from a patch start, one
    line per window (`kind` bold), the truth dotted, the overlap zone shaded."""
    fig = plt.figure(figsize=(8.8, 6.6))
    gs = fig.add_gridspec(2, 3, height_ratios=[1.15, 1])
    x, y, n = border_box(layout)
    zoom = lambda im: to_uint8(im[..., y:y + n, x:x + n])                    # noqa: E731
    axes = [fig.add_subplot(gs[0, i]) for i in range(3)]
    axes[0].imshow(to_uint8(images[kind]))
    _grid(axes[0], layout)
    axes[0].add_patch(Rectangle((x - 0.5, y - 0.5), n, n, fill=False, ec="yellow", lw=1.5))
    axes[1].imshow(zoom(images[kind]), interpolation="nearest")
    axes[2].imshow(zoom(truth), interpolation="nearest")
    for ax, t in zip(axes, (f"{kind}, overlap {layout.overlap} px", "zoom: four patches meet",
                            "the same zoom of the truth")):
        ax.set_title(t, fontsize=9)
        ax.axis("off")
    _profiles(fig.add_subplot(gs[1, :]), images, truth, layout, kind)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def _profiles(ax, images: dict, truth: Tensor, layout: PatchLayout, kind: str) -> None:
    """Gradient profiles across the borders, with each window's seam ratio in the legend."""
    o = layout.overlap
    ax.axvspan(-0.5, o + 0.5, color="0.9", label=f"overlap zone (0 .. {o})" if o else "the cut (0)")
    for k, im in images.items():
        d, p = gradient_profile(im, layout)
        ax.plot(d, p.numpy(), lw=2.6 if k == kind else 1.0, ms=4 if k == kind else 2,
                label=f"{k}: seam ratio {seam_ratio(im, layout, k):.2f}", **WINDOW_STYLES[k])
    d, p = gradient_profile(truth, layout)
    ax.plot(d, p.numpy(), "k:", lw=1.2,
            label=f"truth at the {kind} places: {seam_ratio(truth, layout, kind):.2f}")
    ax.set_xlabel("offset from a patch start, px (0 = the first pixel of the next patch)", fontsize=9)
    ax.set_ylabel("mean |gradient| of the luma", fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)


def seam_curves(table: pd.DataFrame, column: str = "excess"):
    """`column` of eval.seams.seam_table rows against overlap, one line per window, one panel
    per source; 1 (the truth's own level) dashed."""
    sources = list(dict.fromkeys(table["source"]))
    fig, axes = plt.subplots(1, len(sources), figsize=(8.8, 3.4), squeeze=False, sharey=True)
    for ax, src in zip(axes[0], sources):
        for k in WINDOWS:
            d = table[(table.source == src) & (table.window == k)].sort_values("overlap")
            ax.plot(d["overlap"], d[column], label=k, lw=1.4, **WINDOW_STYLES[k])
        ax.axhline(1.0, color="k", ls="--", lw=0.8)
        ax.set_title(src, fontsize=9)
        ax.set_xlabel("overlap, px", fontsize=9)
        ax.set_xticks(sorted(table["overlap"].unique()))
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("seam ratio / the truth's", fontsize=9)
    axes[0, -1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def cost_figure(cost: pd.DataFrame, patch_size: int, title: str = ""):
    """Patches (and so patch-NFE) over the no-overlap count, measured per overlap (bars, labelled
    with the factor and PGS's patch-NFE), against the approximation (P / (P - overlap))^2."""
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    ax.bar(cost["overlap"], cost["factor"], width=1.6, color="tab:blue", alpha=0.7,
           label="patches / patches without overlap")
    for o, f, n in zip(cost["overlap"], cost["factor"], cost["pgs_patch_nfe"]):
        ax.text(o, f / 2, f"x{f:.2f}\n{n}\nNFE", ha="center", va="center", fontsize=8, color="w")
    o = np.linspace(0, cost["overlap"].max(), 50)
    ax.plot(o, (patch_size / (patch_size - o)) ** 2, "k--", lw=1, label="$(P / (P - o))^2$")
    ax.set_xlabel("overlap o, px", fontsize=9)
    ax.set_ylabel("cost factor", fontsize=9)
    ax.set_ylim(0, cost["factor"].max() * 1.3)
    ax.set_xticks(cost["overlap"])
    ax.tick_params(labelsize=8)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig

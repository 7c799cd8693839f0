"""Pictures for people: confidence heat maps, group overlays, side-by-side panels.

Plotting lives here, outside the math; the core modules never import this file (nor matplotlib).
Functions return uint8 arrays (H, W, 3) so the CLI can save them atomically with image_io.
"""

from __future__ import annotations

import io

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib import colormaps
from torch import Tensor

from ..image_io import to_uint8, write_atomic
from ..patches import PatchLayout
from .readable import CELL_INCHES

# Simple / Medium / Hard: green, amber, red (colour-blind-safe enough with the labels beside them)
GROUP_COLORS = np.array([[46, 160, 67], [240, 170, 30], [215, 48, 39]], dtype=np.float32)


def heatmap(conf: Tensor, cmap: str = "viridis") -> np.ndarray:
    """Confidence (1, H, W) or (1, 1, H, W) in [0, 1] -> uint8 (H, W, 3) through a colormap."""

    c = conf.detach().float().cpu().reshape(conf.shape[-2:]).clamp(0, 1).numpy()
    return (colormaps[cmap](c)[..., :3] * 255 + 0.5).astype(np.uint8)


def group_overlay(image, groups: Tensor, layout: PatchLayout, alpha: float = 0.45,
                  grid: bool = True, row0: int = 0) -> np.ndarray:
    """Tint each patch of an image (3, H, W) by its group id (nh, nw); draw the patch grid.

    Overlapping patches: each pixel takes the colour of the patch whose window centre is nearest.
    image may also be a uint8 (h, W, 3) array, and rows row0 .. row0 + h of the layout's image
    only (a band of a large image: `qmap` draws it band by band, the same pixels as whole).
    """
    img = (image if isinstance(image, np.ndarray) else to_uint8(image)).astype(np.float32)
    H, W = img.shape[:2]
    s = layout.stride
    off = layout.overlap // 2
    rows = np.clip((np.arange(row0, row0 + H) - off) // s, 0, layout.nh - 1)
    cols = np.clip((np.arange(W) - off) // s, 0, layout.nw - 1)
    g = groups.detach().cpu().reshape(layout.nh, layout.nw).numpy()[rows[:, None], cols[None, :]]
    out = (1 - alpha) * img + alpha * GROUP_COLORS[g]
    if grid:
        edge_r = (np.arange(row0, row0 + H) - off) % s == 0
        edge_c = (np.arange(W) - off) % s == 0
        out[edge_r, :] = out[edge_r, :] * 0.4
        out[:, edge_c] = out[:, edge_c] * 0.4
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def nearest_up(x: Tensor, size) -> Tensor:
    """Pixel-replicating resize (B, C, h, w) -> (B, C, *size), for showing LR images at HR size."""
    return torch.nn.functional.interpolate(x, size=size, mode="nearest")


def pareto_plot(bench: dict, path, metric: str = "psnr") -> None:
    """Quality against seconds, one point per method (the `bench` JSON), saved atomically as PNG."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    dial = sorted((float(n[len("pgs-f"):]), r) for n, r in bench["methods"].items()
                  if n.startswith("pgs-f"))                    # the fidelity dial: one curve
    for ax, m in zip(axes, (metric, "niqe")):
        for name, r in bench["methods"].items():              # a legend, not labels: close
            if not name.startswith("pgs-f"):                   # points (pgs variants) overlap
                ax.scatter(r["seconds"], r[m], s=40, label=name)
        if dial:
            ax.plot([r["seconds"] for _, r in dial], [r[m] for _, r in dial], "k.-", lw=1,
                    label=f"pgs --fidelity {dial[0][0]:g} .. {dial[-1][0]:g}")
            for f, r in (dial[0], dial[-1]):
                ax.annotate(f"F={f:g}", (r["seconds"], r[m]), fontsize=8, xytext=(4, 4),
                            textcoords="offset points")
        ax.legend(fontsize=8)
        ax.set_xscale("log")
        ax.set_xlabel(f"seconds per image ({bench['device']})")
        ax.set_ylabel(m.upper() + (" (higher is better)" if m != "niqe" else " (lower is better)"))
        ax.grid(alpha=0.3)
    fig.suptitle(f"speed / quality on {len({r['image'] for r in bench['rows']})} photos, "
                 f"x4 {bench['degradation']}, PatchScaler preset {bench.get('preset', 'lite')}")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    write_atomic(path, lambda f: f.write(buf.getvalue()))


def zoom_grid(images: dict, x: int, y: int, size: int = 64, scale: int = 4, cols: int = 3):
    """Crops of the same HR window at (x, y), `size` px, of {name: (1, 3, H, W)} images, at most
    `cols` a row and never wider than a notebook cell (2.8 in per panel, CELL_INCHES in all).

    LR images (smaller by `scale`) are shown pixel-replicated so every panel covers the same area.
    Returns the matplotlib Figure.
    """

    H = max(im.shape[-2] for im in images.values())
    cols = min(cols, len(images), int(CELL_INCHES // 2.8))
    rows = -(-len(images) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.8 * cols, 3.0 * rows), squeeze=False)
    for ax in axes.flat[len(images):]:
        ax.set_visible(False)
    for ax, (name, im) in zip(axes.flat, images.items()):
        if im.shape[-2] < H:
            im = nearest_up(im, (im.shape[-2] * scale, im.shape[-1] * scale))
        ax.imshow(to_uint8(im[..., y:y + size, x:x + size]), interpolation="nearest")
        ax.set_title(name, fontsize=11)
        ax.axis("off")
    fig.tight_layout()
    return fig


def stage_seconds(seconds: dict, title: str = "where the time went"):
    """Horizontal bar chart of {stage: seconds}; returns the Figure."""

    fig, ax = plt.subplots(figsize=(6, 0.4 * len(seconds) + 1))
    ax.barh(list(seconds), list(seconds.values()), color="#4c72b0")
    ax.invert_yaxis()
    ax.set_xlabel("seconds")
    ax.set_title(title)
    fig.tight_layout()
    return fig

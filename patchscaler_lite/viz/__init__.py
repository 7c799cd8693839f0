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

# Simple / Medium / Hard: green, amber, red (colour-blind-safe enough with the labels beside them)
GROUP_COLORS = np.array([[46, 160, 67], [240, 170, 30], [215, 48, 39]], dtype=np.float32)


def heatmap(conf: Tensor, cmap: str = "viridis") -> np.ndarray:
    """Confidence (1, H, W) or (1, 1, H, W) in [0, 1] -> uint8 (H, W, 3) through a colormap."""

    c = conf.detach().float().cpu().reshape(conf.shape[-2:]).clamp(0, 1).numpy()
    return (colormaps[cmap](c)[..., :3] * 255 + 0.5).astype(np.uint8)


def group_overlay(image: Tensor, groups: Tensor, layout: PatchLayout, alpha: float = 0.45,
                  grid: bool = True) -> np.ndarray:
    """Tint each patch of an image (3, H, W) by its group id (nh, nw); draw the patch grid.

    Overlapping patches: each pixel takes the colour of the patch whose window centre is nearest.
    """
    img = to_uint8(image).astype(np.float32)                                # (H, W, 3)
    H, W = img.shape[:2]
    s = layout.stride
    off = layout.overlap // 2
    rows = np.clip((np.arange(H) - off) // s, 0, layout.nh - 1)
    cols = np.clip((np.arange(W) - off) // s, 0, layout.nw - 1)
    g = groups.detach().cpu().reshape(layout.nh, layout.nw).numpy()[rows[:, None], cols[None, :]]
    out = (1 - alpha) * img + alpha * GROUP_COLORS[g]
    if grid:
        edge_r = (np.arange(H) - off) % s == 0
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
    for ax, m in zip(axes, (metric, "niqe")):
        for name, r in bench["methods"].items():              # a legend, not labels: close
            ax.scatter(r["seconds"], r[m], s=40, label=name)   # points (pgs variants) overlap
        ax.legend(fontsize=8)
        ax.set_xscale("log")
        ax.set_xlabel(f"seconds per image ({bench['device']})")
        ax.set_ylabel(m.upper() + (" (higher is better)" if m != "niqe" else " (lower is better)"))
        ax.grid(alpha=0.3)
    fig.suptitle(f"speed / quality on {len({r['image'] for r in bench['rows']})} photos, "
                 f"x4 {bench['degradation']}")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    write_atomic(path, lambda f: f.write(buf.getvalue()))


def zoom_grid(images: dict, x: int, y: int, size: int = 64, scale: int = 4):
    """Side-by-side crops (same HR window at (x, y), `size` px) of {name: (1, 3, H, W)} images.

    LR images (smaller by `scale`) are shown pixel-replicated so every panel covers the same area.
    Returns the matplotlib Figure.
    """

    H = max(im.shape[-2] for im in images.values())
    fig, axes = plt.subplots(1, len(images), figsize=(2.6 * len(images), 2.9))
    for ax, (name, im) in zip(axes, images.items()):
        if im.shape[-2] < H:
            im = nearest_up(im, (im.shape[-2] * scale, im.shape[-1] * scale))
        ax.imshow(to_uint8(im[..., y:y + size, x:x + size]))
        ax.set_title(name, fontsize=10)
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

"""Figures for the texture memory, and the small analyses behind them (notebook 02).

matplotlib is imported here, never by the core modules; every figure fits a notebook cell
(viz.readable). Shapes: keys (M, F) unit rows, values (M, 3, P, P) float in [0, 1], sources (M,)
int64, patches (n, 3, P, P).
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.offsetbox import AnnotationBbox, OffsetImage
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator
from torch import Tensor

from ..config import DescriptorConfig
from ..eval.retrieval import pca_2d, spread_subset
from ..texture.gabor import gabor_bank
from .readable import CELL_INCHES


def _show(ax, patch: Tensor, title: str) -> None:
    ax.imshow(patch.permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="nearest")
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


def _short(name: str, n: int = 16) -> str:
    """A photo name short enough for a panel title: the part after the package prefix, cut to n."""
    name = name.rsplit("_", 1)[-1] if "_" in name else name
    return name if len(name) <= n else name[:n - 1] + "…"


def plot_retrievals(queries: Tensor, values: Tensor, sims: Tensor, sources: list[list[str]],
                    labels: list[str] | None = None):
    """One row per query: the coarse query patch, then its K retrieved HR values.

    queries (n, 3, P, P), values (n, K, 3, P, P) in [0, 1]; sims (n, K); sources[n][K] photo names.
    Returns the matplotlib Figure.
    """

    n, K = sims.shape
    fig, axes = plt.subplots(n, K + 1, figsize=(1.6 * (K + 1), 1.8 * n), squeeze=False)
    for r in range(n):
        _show(axes[r, 0], queries[r], f"query {labels[r] if labels else r}")
        for c in range(K):
            _show(axes[r, c + 1], values[r, c], f"{_short(sources[r][c])}\nsim {sims[r, c]:.3f}")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------- descriptor
def gabor_kernels(cfg: DescriptorConfig) -> Tensor:
    """Spatial complex Gabor kernels of the bank, centred: (S * O, P, P) complex64.

    The inverse DFT of |G| (the square root of `gabor_bank`), shifted so the kernel's centre is
    the middle pixel; |DFT(kernel)|^2 gives back the bank's column.
    """
    P = cfg.patch_size
    G = gabor_bank(cfg).sqrt().T.reshape(-1, P, P).to(torch.complex64)    # (S*O, P, P)
    return torch.fft.fftshift(torch.fft.ifft2(G), dim=(-2, -1))


def plot_gabor_bank(cfg: DescriptorConfig):
    """The bank as images: per scale, a row of frequency responses |G|^2 (centred, DC marked +) and
    a row of spatial kernels (real part), one column per orientation. Returns the Figure.

    A long wavelength lambda puts its band P / lambda frequency bins from DC, a few pixels of the
    P x P plane, so each frequency row shows only the central bins around DC (its label says how
    many): zoomed, not resampled.
    """

    S, O, P = cfg.scales, cfg.orientations, cfg.patch_size
    freq = torch.fft.fftshift(gabor_bank(cfg).T.reshape(S, O, P, P), dim=(-2, -1)).numpy()
    space = gabor_kernels(cfg).real.reshape(S, O, P, P).numpy()
    w = min(1.5, (CELL_INCHES - 0.8) / O)                 # panel side (in): O of them fit a cell
    fig, axes = plt.subplots(2 * S, O, figsize=(w * O + 0.8, 1.1 * w * 2 * S), squeeze=False)
    for s in range(S):
        lam = cfg.min_wavelength * 2 ** s
        r = int(min(P // 2, max(4, math.ceil(1.6 * P / lam))))      # half-width of the zoom
        for o in range(O):
            a, b = axes[2 * s, o], axes[2 * s + 1, o]
            a.imshow(freq[s, o, P // 2 - r:P // 2 + r, P // 2 - r:P // 2 + r], cmap="magma",
                     interpolation="nearest")
            a.plot(r, r, "+", color="w", ms=5, mew=0.8)               # DC
            v = float(np.abs(space[s, o]).max())
            b.imshow(space[s, o], cmap="RdBu_r", vmin=-v, vmax=v, interpolation="nearest")
            a.set_title(f"{180 * o / O:.0f} deg", fontsize=8)
            for ax in (a, b):
                ax.set_xticks([])
                ax.set_yticks([])
        zoom = "" if 2 * r >= P else f", {2 * r}$^2$ bins"
        axes[2 * s, 0].set_ylabel(f"$\\lambda$={lam:g}px\n|G|$^2${zoom}", fontsize=8)
        axes[2 * s + 1, 0].set_ylabel(f"kernel\n(real, {P} px)", fontsize=8)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------- memory build
def plot_inertia(inertia: list[float]):
    """k-means inertia sum_i |x_i - c_a(i)|^2 per Lloyd iteration (0 = after k-means++ seeding)."""

    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    ax.plot(range(len(inertia)), inertia, "o-", ms=3)
    ax.set(xlabel="Lloyd iteration (0 = k-means++ seeds)", ylabel="inertia",
           title=f"k-means: {inertia[0]:.1f} -> {inertia[-1]:.1f} in {len(inertia) - 1} iterations")
    ax.title.set_fontsize(11)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))        # iterations are whole numbers
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_key_map(keys: Tensor, values: Tensor, sources: Tensor, source_names: list[str],
                 n_thumbs: int = 60, zoom: float = 0.7):
    """The keys (M, F) projected on their first two principal components, one dot per entry
    coloured by source photo, with thumbnails of the values (M, 3, P, P) at well-spread entries."""

    xy = pca_2d(keys)
    pts, src = xy.numpy(), sources.cpu().numpy()
    fig, ax = plt.subplots(figsize=(CELL_INCHES, 7.2))
    cmap = plt.get_cmap("tab10")
    for i, name in enumerate(source_names):
        m = src == i
        ax.scatter(pts[m, 0], pts[m, 1], s=10, color=cmap(i % 10), label=f"{name} ({int(m.sum())})")
    for i in spread_subset(xy, n_thumbs).tolist():
        im = OffsetImage(values[i].permute(1, 2, 0).clamp(0, 1).numpy(), zoom=zoom)
        box = AnnotationBbox(im, pts[i].tolist(), pad=0.1,
                             bboxprops={"edgecolor": cmap(int(src[i]) % 10), "lw": 1.5})
        ax.add_artist(box)
    ax.set(xlabel="PC 1", ylabel="PC 2",
           title=f"{len(keys)} memory keys, first two principal components; thumbnails = values")
    ax.title.set_fontsize(11)
    ax.legend(fontsize=8, markerscale=2, loc="best", framealpha=0.85)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------- retrieval
def plot_query(image: Tensor, x: int, y: int, truth: Tensor | None, values: Tensor, sims: Tensor,
               sources: list[str]):
    """Retrieval explorer frame: the coarse image (3, H, W) with the query window at (x, y), the
    query patch, its HR truth (3, P, P) if given, and the K values (K, 3, P, P) with sims (K,)."""

    P = values.shape[-1]
    query = image[:, y:y + P, x:x + P]
    panels = [(query, "query (coarse)")] + ([(truth, "HR truth")] if truth is not None else [])
    panels += [(v, f"#{k + 1} {_short(src, 11)}\nsim {s:.3f}") for k, (v, s, src) in
               enumerate(zip(values, sims.tolist(), sources))]
    cols = min(len(panels), 5)
    rows = math.ceil(len(panels) / cols)
    w = CELL_INCHES / 7                                  # the image spans 2 columns of this width
    fig = plt.figure(figsize=(w * (cols + 2), max(2.6, 1.35 * w * rows)))
    gs = fig.add_gridspec(rows, cols + 2)
    a = fig.add_subplot(gs[:, :2])
    a.imshow(image.permute(1, 2, 0).clamp(0, 1).cpu().numpy())
    a.add_patch(Rectangle((x - 0.5, y - 0.5), P, P, fill=False, ec="red", lw=2))
    a.axis("off")
    for j, (p, t) in enumerate(panels):
        _show(fig.add_subplot(gs[j // cols, 2 + j % cols]), p.cpu(), t)
    fig.tight_layout()
    return fig


def plot_sweep(rows: list[dict]):
    """Left: top-1 same-source accuracy against M. Right: top-K hit rate against K, one line per M."""

    sizes = sorted({r["M"] for r in rows})
    fig, (a, b) = plt.subplots(1, 2, figsize=(CELL_INCHES, 3.8))
    top1 = [next(r["top1"] for r in rows if r["M"] == m) for m in sizes]
    a.plot(sizes, top1, "o-")
    a.set(xscale="log", xlabel="memory size M", ylabel="top-1 from the same photo", ylim=(0, 1.02),
          title="top-1 accuracy against memory size")
    for m in sizes:
        rs = [r for r in rows if r["M"] == m]
        b.plot([r["K"] for r in rs], [r["topk"] for r in rs], "o-", label=f"M={m}")
    b.set(xscale="log", xlabel="K retrieved", ylabel="some top-K entry from the same photo",
          ylim=(0, 1.02), title="top-K hit rate against K")
    b.legend(fontsize=8)
    ks = sorted({r["K"] for r in rows})
    for ax, ticks in ((a, sizes), (b, ks)):                 # after set(xscale=...), which resets them
        ax.minorticks_off()
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig



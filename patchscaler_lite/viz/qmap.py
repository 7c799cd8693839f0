"""Qmap figures (notebook 01: GRM, confidence, grouping, C1); the numbers behind them come from
eval/difficulty.py. Each `plot_*` function returns a matplotlib Figure.
Images are float RGB in [0, 1], (1, 3, H, W); confidence (1, 1, H, W); Qmap (nh, nw).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import LogNorm
from matplotlib.ticker import LogFormatterSciNotation, LogLocator, NullFormatter
from torch import Tensor

from ..eval.difficulty import binned_mean, spearman
from ..grm.model import confidence_bracket, confidence_optimum
from ..grouping import GROUP_NAMES, patch_nfe
from ..patches import PatchLayout
from . import GROUP_COLORS, group_overlay
from .readable import CELL_INCHES


# ---------------------------------------------------------------------------- figures
def _img(t: Tensor) -> np.ndarray:
    """(1, 3, H, W) or (3, H, W) float -> (H, W, 3) numpy for imshow."""
    return t.detach().float().cpu().reshape(-1, *t.shape[-2:]).permute(1, 2, 0).clamp(0, 1).numpy()


def plot_bracket(err2: Tensor, eta: float, numeric: Tensor):
    """Left: the bracket against C for each e^2 (shifted so its minimum is 0), minima marked.
    Right: C* against e^2, closed form min(1, eta / e^2) as a line, numeric minimisers as dots."""


    c = torch.logspace(-4, 0, 400, dtype=torch.float64)
    fig, (a, b) = plt.subplots(1, 2, figsize=(CELL_INCHES, 3.8))
    for e2, cn in zip(err2.tolist(), numeric.tolist()):
        f = confidence_bracket(c, torch.tensor(e2, dtype=torch.float64), eta)
        line, = a.plot(c.numpy(), ((f - f.min()) / eta).numpy(), label=f"$e^2$ = {e2:.0e}")
        fn = confidence_bracket(torch.tensor(cn, dtype=torch.float64), torch.tensor(e2), eta)
        a.plot(cn, float((fn - f.min()) / eta), "o", color=line.get_color())
    a.set(xscale="log", ylim=(-0.3, 8), xlabel="confidence C",
          ylabel=r"$(C e^2 - \eta \log C)$ - min, in units of $\eta$",
          title="the bracket is minimised where C = $\\eta / e^2$")
    a.title.set_fontsize(10)
    a.legend(fontsize=8)
    e = torch.logspace(-7, 0, 200, dtype=torch.float64)
    b.plot(e.numpy(), confidence_optimum(e, eta).numpy(), "k-", label=r"closed form min(1, $\eta/e^2$)")
    b.plot(err2.numpy(), numeric.numpy(), "o", color="C3", label="numerical minimiser (L-BFGS)")
    b.axvline(eta, color="grey", ls=":", label=rf"$e^2 = \eta$ = {eta:g}")
    b.set(xscale="log", yscale="log", xlabel="squared error $e^2$", ylabel="optimal C*",
          title="C* = 1 until $e^2 = \\eta$, then falls as $1/e^2$")
    b.title.set_fontsize(10)
    b.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_grm_maps(lr: Tensor, coarse: Tensor, conf: Tensor, hr: Tensor):
    """LR (shown pixel-replicated), coarse HR, confidence C and the true squared error e^2 (log)."""

    err2 = (coarse - hr).square().mean(1)[0].cpu().numpy()                  # (H, W)
    fig, axes = plt.subplots(2, 2, figsize=(CELL_INCHES * 0.85, CELL_INCHES * 0.8))
    axes = axes.flatten()
    axes[0].imshow(_img(lr), interpolation="nearest")
    axes[1].imshow(_img(coarse))
    im_c = axes[2].imshow(conf[0, 0].cpu().numpy(), cmap="viridis", vmin=0, vmax=1)
    im_e = axes[3].imshow(np.maximum(err2, 1e-6), cmap="magma_r", norm=LogNorm(1e-6, 1e-1))
    titles = ("LR input (x4 nearest)", "GRM coarse $y_{HR}$", "confidence C (bright = sure)",
              "true error $e^2$ (dark = large)")
    for ax, t in zip(axes, titles):
        ax.set_title(t, fontsize=11)
        ax.axis("off")
    fig.colorbar(im_c, ax=axes[2], fraction=0.046, pad=0.02)
    fig.colorbar(im_e, ax=axes[3], fraction=0.046, pad=0.02)
    fig.tight_layout()
    return fig


def plot_qmap(image: Tensor, q: Tensor, layout: PatchLayout, annotate: bool | None = None):
    """The coarse image beside its Qmap (one cell per patch, values written when few patches)."""

    qn = q.detach().cpu().reshape(layout.nh, layout.nw).numpy()
    annotate = max(layout.nh, layout.nw) <= 10 if annotate is None else annotate   # >= 8 pt that fit
    fig, (a, b) = plt.subplots(1, 2, figsize=(CELL_INCHES, 4.3))
    a.imshow(_img(image))
    a.set_title(f"coarse image, {layout.nh} x {layout.nw} patches of {layout.patch_size} px", fontsize=11)
    ext = (0, layout.nw * layout.stride, layout.nh * layout.stride, 0)
    im = b.imshow(qn, cmap="viridis", extent=ext, interpolation="nearest")
    if annotate:
        s = layout.stride
        for (r, c), v in np.ndenumerate(qn):
            b.text((c + 0.5) * s, (r + 0.5) * s, f"{v:.2f}", ha="center", va="center",
                   fontsize=8, color="white" if v < qn.mean() else "black")
    b.set_title("Qmap: mean confidence per patch", fontsize=11)
    for ax in (a, b):
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=b, fraction=0.046, pad=0.02)
    fig.tight_layout()
    return fig


def plot_grouping(image: Tensor, q: Tensor, groups: Tensor, layout: PatchLayout, steps,
                  thresholds=None):
    """Group overlay, Qmap histogram (with gamma1/gamma2 if given) and the patch-NFE budget.

    image (1, 3, H, W); q, groups (nh, nw) or (1, nh, nw); steps (N1, N2, N3) of PGSConfig.
    """


    g = groups.reshape(-1).cpu()
    counts = [int((g == i).sum()) for i in range(3)]
    nfe, uniform = patch_nfe(counts, steps), len(g) * int(steps[-1])
    fig, (a, b) = plt.subplots(1, 2, figsize=(CELL_INCHES, 4.2), gridspec_kw={"width_ratios": [1, 1.1]})
    a.imshow(group_overlay(image[0], groups.reshape(layout.nh, layout.nw), layout))
    a.axis("off")
    a.set_title(f"patch-NFE {nfe} vs {uniform} for all-Hard ({nfe / uniform:.0%})", fontsize=10)
    qv = q.reshape(-1).cpu().numpy()
    bins = np.linspace(qv.min(), qv.max() + 1e-9, 31)
    for i, name in enumerate(GROUP_NAMES):
        b.hist(qv[g.numpy() == i], bins=bins, color=GROUP_COLORS[i] / 255,
               label=f"{name}: {counts[i]} patches x N={steps[i]}")
    for t, ls in zip(thresholds or (), ("--", ":")):
        b.axvline(t, color="k", ls=ls, lw=1)
    b.set(xlabel="Qmap value (mean confidence of the patch)", ylabel="patches")
    b.set_title("Qmap histogram" + (" with $\\gamma_1$ (--), $\\gamma_2$ (:)" if thresholds else ""),
                fontsize=10)
    b.yaxis.get_major_locator().set_params(integer=True)
    b.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_calibration(difficulty, heuristic, mse, bins: int = 10):
    """Claim C1: difficulty vs true MSE and heuristic vs true MSE (scatter, Spearman in the
    titles; top), and both calibration curves (mean true MSE per score-rank bin) beside the oracle
    curve (patches binned by their true MSE; bottom). Inputs: (n,) each."""

    d, h, m = (np.asarray(v, dtype=np.float64) for v in (difficulty, heuristic, mse))
    h_shown = np.maximum(h, h[h > 0].min() if (h > 0).any() else 1e-12)  # flat patches: log axis
    fig = plt.figure(figsize=(CELL_INCHES, 7.2))
    gs = fig.add_gridspec(2, 2)
    axes = [fig.add_subplot(gs[0, 0]), fig.add_subplot(gs[0, 1]), fig.add_subplot(gs[1, :])]
    for ax, s, shown, name, col in ((axes[0], d, d, "Qmap difficulty 1 - mean C", "C0"),
                                    (axes[1], h, h_shown, "gradient energy of bicubic", "C1")):
        ax.scatter(shown, m, s=6, alpha=0.5, color=col)
        ax.set(yscale="log", xlabel=name, ylabel="true patch MSE (coarse image)",
               title=f"Spearman {spearman(s, m):.3f} ({len(m)} patches)")
    axes[1].set_xscale("log")
    for s, name, style in ((d, "Qmap difficulty", "o-C0"), (h, "gradient energy", "s-C1"),
                           (m, "oracle (true MSE)", "k:")):
        axes[2].plot(*binned_mean(s, m, bins), style, label=name, ms=4)
    axes[2].set(yscale="log", xlabel="score rank (bin centre, 0 = easiest)",
                ylabel="mean true MSE in the bin", title=f"calibration, {bins} equal-count bins")
    axes[2].legend(fontsize=9)
    for ax in axes:
        ax.title.set_fontsize(10)
        _decade_labels(ax)
    fig.tight_layout()
    return fig


def _decade_labels(ax) -> None:
    """Log axes: label decades only (matplotlib labels the minor ticks of a short log axis, and
    with few patches, e.g. P = 64, those labels pile up); a short axis gets 2 and 5 as well."""
    for axis in (ax.xaxis, ax.yaxis):
        if axis.get_scale() != "log":
            continue
        lo, hi = sorted(axis.get_view_interval())
        if lo <= 0:
            continue
        span = np.log10(hi / lo)                                  # decades shown
        subs = (1.0,) if span >= 1.5 else (1.0, 2.0, 5.0) if span >= 0.5 else tuple(range(1, 10))
        axis.set_major_locator(LogLocator(base=10, subs=subs))
        axis.set_major_formatter(LogFormatterSciNotation(labelOnlyBase=False))
        axis.set_minor_formatter(NullFormatter())

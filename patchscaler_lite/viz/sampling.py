"""Figures for group sampling and benchmarks (matplotlib; never imported by the core modules).

Every function takes DataFrames / dataclasses from `analysis` and returns a matplotlib Figure.
"""

from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..eval.claims import pareto_front
from ..eval.trajectory import Trajectory, trajectory_stats
from ..grouping import GROUP_NAMES
from ..image_io import to_uint8
from . import GROUP_COLORS, group_overlay
from .readable import CELL_INCHES

COLORS = {n: tuple(c / 255) for n, c in zip(GROUP_NAMES, GROUP_COLORS)}
LOWER_BETTER = {"niqe": True, "piqe": True, "seconds": True}


def _label(metric: str) -> str:
    return metric.upper() + (" (lower is better)" if LOWER_BETTER.get(metric) else " (higher is better)")


def steps_curves(curves: pd.DataFrame, only: pd.DataFrame | None, T: int):
    """C2: per-group PSNR to the truth, to the last step, and NIQE against step count N at start T."""
    c = curves[curves["T"] == T].groupby("N").mean(numeric_only=True)
    fig, axes = plt.subplots(1, 3, figsize=(CELL_INCHES, 4.4))
    for name in GROUP_NAMES:
        d = c[f"psnr_{name}"] - c[f"psnr_{name}"].iloc[0]
        axes[0].plot(c.index, d, "o-", color=COLORS[name], label=name)
        axes[1].plot(c.index, c[f"conv_{name}"], "o-", color=COLORS[name], label=name)
        if only is not None:
            o = only[only.group == name]
            axes[2].plot(o["N"], o["niqe"], "o--", color=COLORS[name], label=f"only {name} gets N")
    axes[2].plot(c.index, c["niqe"], "ko-", label="all patches get N")
    titles = ["PSNR to the truth:\nchange from N = 1 (dB)",
              "PSNR to the most-steps\nresult (dB): how far\nit still had to go",
              "NIQE, whole image\n(lower = more natural)"]
    for ax, t in zip(axes, titles):
        ax.set_title(t, fontsize=9)
        ax.set_xlabel(f"calls N (start T = {T})", fontsize=9)
        ax.set_xticks(c.index)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    axes[2].legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=1)
    fig.tight_layout()
    return fig


def _nfe_axes(fig, ax, metric: str):
    """Finish a quality-vs-patch-NFE panel: labels, grid, legend, layout; returns the Figure."""
    ax.set_xlabel("patch-NFE per image")
    ax.set_ylabel(_label(metric))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _patch(ax, x, title, ylabel=""):
    ax.imshow(to_uint8(((x + 1) / 2).clamp(0, 1)), interpolation="nearest")
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_ylabel(ylabel, fontsize=9)
    for spine in ax.spines.values():
        spine.set_visible(False)


def trajectory_figure(tr: Trajectory, picks: dict[str, int]):
    """Rows: picked patches (label -> patch index): y0, x_T, x0_hat per call, HR. Bottom: PSNR curves."""
    N = tr.x0_hat.shape[0]
    w = min(1.5, (CELL_INCHES - 0.4) / (N + 3))            # panel side: N + 3 of them fit a cell
    fig = plt.figure(figsize=(w * (N + 3) + 0.4, 1.4 * w * len(picks) + 3.2), layout="constrained")
    gs = fig.add_gridspec(len(picks) + 1, N + 3, height_ratios=[1.4 * w] * len(picks) + [3.0])
    for r, (label, i) in enumerate(picks.items()):
        cells = [(tr.coarse[i], "coarse y0"), (tr.start[i], f"x_T\nT={tr.ts[0]}")]
        cells += [(tr.x0_hat[k, i], f"x0_hat {k + 1}\nt={tr.ts[k]}") for k in range(N)]
        for c, (x, title) in enumerate(cells + [(tr.truth[i], "HR truth")]):
            _patch(fig.add_subplot(gs[r, c]), x, title, label if c == 0 else "")
    ax1 = fig.add_subplot(gs[len(picks), : (N + 3) // 2])
    ax2 = fig.add_subplot(gs[len(picks), (N + 3) // 2:])
    for label, i in picks.items():
        s = trajectory_stats(tr, i)
        color = COLORS[GROUP_NAMES[int(tr.groups[i])]]
        ax1.plot(s["step"], s["psnr_truth"], "o-", color=color, label=label)
        ax2.plot(s["step"], s["move"], "o-", color=color, label=label)
    ax1.set_title("x0_hat vs HR truth: PSNR (dB)", fontsize=10)
    ax2.set_title("how far x0_hat moved at this call\n(RMS)", fontsize=10)
    for ax in (ax1, ax2):
        ax.set_xlabel("call (0 = coarse y0)", fontsize=9)
        ax.set_xticks(range(N + 1))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return fig


def plan_view(image, groups, layout, result: dict, sweep_df: pd.DataFrame, metric: str = "niqe"):
    """Left: the composed image tinted by group. Right: where this plan lands among the sweep.
    Above both: the plan's numbers from grid.evaluate (patch-NFE, modelled seconds, PSNR, NIQE)."""
    fig, (a0, a1) = plt.subplots(1, 2, figsize=(CELL_INCHES, 4.6), gridspec_kw={"width_ratios": [1, 1.35]})
    a0.imshow(group_overlay(image[0], groups, layout, alpha=0.4))
    counts = "/".join(str(int((groups == k).sum())) for k in range(len(GROUP_NAMES)))
    a0.set_title(f"first image, tinted by group\npatches Simple/Medium/Hard: {counts}", fontsize=9)
    a0.axis("off")
    for kind, style in (("pgs", dict(color="0.7", s=12)), ("uniform", dict(color="k", s=25))):
        d = sweep_df[sweep_df.kind == kind]
        a1.scatter(d["patch_nfe"], d[metric], label=f"{kind} (cached sweep)", **style)
    a1.scatter([result["patch_nfe"]], [result[metric]], marker="*", s=300, color="crimson",
               label="this plan", zorder=5)
    a1.set_title(plan_readout(result), fontsize=9)
    return _nfe_axes(fig, a1, metric)


def plan_readout(result: dict) -> str:
    """The numbers of one evaluated plan (grid.evaluate's dict), in two lines."""
    return (f"this plan: patch-NFE {result['patch_nfe']:.0f} per image, ~{result['seconds']:.2f} s "
            f"(modelled)\nPSNR {result['psnr']:.2f} dB, NIQE {result.get('niqe', float('nan')):.2f} "
            "(means over the crops)")


def pareto_figure(df: pd.DataFrame, metric: str = "niqe", chosen=None, budget: float | None = None,
                  title: str = ""):
    """C3: every plan (grey), the PGS Pareto front, uniform sampling, and the allocator's pick."""
    low = LOWER_BETTER.get(metric, False)
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    ax.scatter(df["patch_nfe"], df[metric], s=10, color="0.75", label="all cached plans")
    f = pareto_front(df, "patch_nfe", metric, low)
    ax.step(f["patch_nfe"], f[metric], "o-", where="post", color="tab:blue", label="best plan per budget")
    u = df[df.kind == "uniform"].sort_values("patch_nfe")
    uf = pareto_front(u, "patch_nfe", metric, low)
    ax.plot(uf["patch_nfe"], uf[metric], "s--", color="k", label="uniform (T, N): its front")
    if budget is not None:
        ax.axvline(budget, color="crimson", lw=1, ls=":", label="budget")
    if chosen is not None:
        ax.scatter([chosen["patch_nfe"]], [chosen[metric]], marker="*", s=300, color="crimson",
                   zorder=5, label="allocator's pick")
    if title:
        ax.set_title(title, fontsize=10)
    return _nfe_axes(fig, ax, metric)


def groups_fronts(df: pd.DataFrame, metric: str = "niqe"):
    """C5: the best quality reachable at each patch-NFE budget with 1, 2 or 3 distinct settings."""
    low = LOWER_BETTER.get(metric, False)
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for k, style, lw in ((1, "s--", 3.0), (2, "^-", 2.0), (3, "o-", 1.0)):
        d = df[df.n_settings <= k]          # k groups can always mimic fewer
        f = pareto_front(d, "patch_nfe", metric, low)
        ax.step(f["patch_nfe"], f[metric], style, where="post", lw=lw, ms=3 + lw,
                label=f"at most {k} group(s)")
    return _nfe_axes(fig, ax, metric)


MARKERS = "osD^vP*Xh<>p"


def _note(fig, note: str, width_in: float) -> None:
    """A note (the timing protocol: long lines) as a small figure title, each line wrapped."""
    if note:
        fig.suptitle("\n".join(textwrap.fill(line, int(width_in * 15)) for line in note.splitlines()),
                     fontsize=8)


def bench_scatter(means: pd.DataFrame, metrics=("psnr", "niqe"), note: str = ""):
    """Quality against seconds per image, one marker per method (a legend, not labels beside the
    points: close points such as pgs / pgs-notexture would overlap), with each metric's Pareto front."""
    width = min(CELL_INCHES, 4.4 * len(metrics) + 2.4)
    fig, axes = plt.subplots(1, len(metrics), figsize=(width, 4.4), squeeze=False)
    for ax, m in zip(axes[0], metrics):
        d = means.dropna(subset=[m]).sort_values("seconds")
        for k, (name, r) in enumerate(d.iterrows()):
            ax.scatter(r["seconds"], r[m], s=55, marker=MARKERS[k % len(MARKERS)], color=f"C{k % 10}",
                       label=name, zorder=3)
        f = pareto_front(d, "seconds", m, LOWER_BETTER.get(m, False))
        ax.plot(f["seconds"], f[m], "--", color="tab:red", lw=1, label="Pareto front")
        ax.set_xscale("log")
        ax.set_xlabel("seconds per image")
        ax.set_ylabel(_label(m))
        ax.grid(alpha=0.3)
    axes[0, -1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    _note(fig, note, width)
    fig.tight_layout()
    return fig


def texture_bars(abl: pd.DataFrame, title: str = ""):
    """C4: per image, what the texture prompt changes (positive = better with the prompt)."""
    cols = ["gain_psnr", "gain_psnr_hard", "gain_niqe"]
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    x = np.arange(len(abl))
    for k, c in enumerate(cols):
        ax.bar(x + (k - 1) * 0.27, abl[c], width=0.27, label=c.replace("gain_", "gain in "))
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(x, abl.index)
    ax.set_ylabel("with prompt minus without\n(dB for PSNR; NIQE drop)")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def tracks_bars(tracks: pd.DataFrame, metrics=("psnr", "niqe"), title: str = ""):
    """eval.claims.preset_tracks as grouped bars: one panel per metric, one group per (track,
    method), one bar per preset. Read: which preset wins on which kind of LR."""
    presets = list(dict.fromkeys(tracks["preset"]))
    groups = list(dict.fromkeys(zip(tracks["track"], tracks["method"])))
    fig, axes = plt.subplots(1, len(metrics), figsize=(min(CELL_INCHES, 4.4 * len(metrics)), 3.9),
                             squeeze=False)
    x = np.arange(len(groups))
    w = 0.8 / len(presets)
    for ax, m in zip(axes[0], metrics):
        for k, p in enumerate(presets):
            d = tracks[tracks.preset == p].set_index(["track", "method"])[m].astype(float)
            ax.bar(x + (k - (len(presets) - 1) / 2) * w, [d.get(g, np.nan) for g in groups], width=w,
                   label=f"preset {p}", color=f"C{k}")
        ax.set_xticks(x, [f"{meth}\n{track}" for track, meth in groups], fontsize=8)
        ax.set_ylabel(_label(m))
        ax.set_ylim(0.9 * np.nanmin(tracks[m].astype(float)), None)      # the differences, not 0
        ax.grid(alpha=0.3, axis="y")
    axes[0, 0].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def scaling_figure(df: pd.DataFrame, fits: dict, note: str = ""):
    """Seconds and peak memory against HR megapixels (the measured sizes), with the fitted lines
    {method: (slope, intercept)} drawn over the measured range only."""
    fig, axes = plt.subplots(1, 2, figsize=(CELL_INCHES, 4.2))
    for m, d in df.groupby("method", sort=False):
        a, b = fits[m]
        xs = np.linspace(0, d["hr_pixels"].max(), 50)
        (pts,) = axes[0].plot(d["hr_pixels"] / 1e6, d["seconds"], "o", label=m)
        axes[0].plot(xs / 1e6, a * xs + b, "--", lw=1, color=pts.get_color(),
                     label=f"{m}: {a * 1e6:.2f} s/MP {b:+.2f} s")
        axes[1].plot(d["hr_pixels"] / 1e6, d["peak_mem_mb"], "o-", label=m)
    axes[0].set_ylabel("seconds per image")
    axes[1].set_ylabel("peak memory growth (MB)")
    axes[0].set_title("time, and the fitted line", fontsize=10)
    axes[1].set_title("memory", fontsize=10)
    for ax in axes:
        ax.set_xlabel("HR megapixels (measured sizes)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    _note(fig, note, CELL_INCHES)
    fig.tight_layout()
    return fig


def scaling_readout(scaling: pd.DataFrame, fits: dict, megapixels: float, note: str = "") -> str:
    """What the fitted lines {method: (slope, intercept)} predict at `megapixels` of output, said to
    be EXTRAPOLATED outside the measured sizes of `scaling` (bench.size_scaling's table)."""
    mp = scaling["hr_pixels"] / 1e6
    lo, hi, n = float(mp.min()), float(mp.max()), scaling["lr_size"].nunique()
    if megapixels > hi * 1.001:
        where = (f"EXTRAPOLATED {megapixels / hi:.0f}x beyond the largest measured size ({hi:.3f} MP): a "
                 f"straight line through {n} small sizes; a larger photo's patch mix may differ")
    elif megapixels < lo * 0.999:
        where = f"EXTRAPOLATED below the smallest measured size ({lo:.3f} MP)"
    else:
        where = f"inside the measured range {lo:.3f}-{hi:.3f} MP ({n} sizes)"
    lines = [f"{m}: about {a * megapixels * 1e6 + b:.2f} s for a {megapixels:.3g} MP output"
             for m, (a, b) in fits.items()]
    return "\n".join([where, *lines] + ([f"({note})"] if note else []))

"""Group-sampling analysis, the cache: uniform runs once, any per-group plan composed from them.

Patches are sampled independently, and even in uniform mode the sampler batches patches group by
group, so the patches PGS gives group g under (T_g, N_g) are the patches of the uniform run
(T_g, N_g) restricted to group g. `run_grid` runs every uniform (T, N) of a small grid once per image
and keeps the restored patches; `compose` then assembles the image of *any* per-group plan, under any
grouping, without another denoiser call (equal to a real PGS run up to float rounding). Sweeps,
sliders and the budget allocator (eval/claims.py) all read that cache.

Costs: patch-NFE is exact, sum_g counts_g * N_g per image. Seconds of a composed plan are *modelled*:
the measured fixed stages (GRM, grouping, retrieval, reassembly) plus a line fitted to the measured
sampling seconds against patch-NFE of the uniform runs. Qualities are means over the images.
No plotting here (see viz/sampling.py).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from ..config import GroupingConfig, PGSConfig
from ..data import crop_to_scale, degrade
from ..diffusion.schedule import from_signal
from ..grouping import GROUP_NAMES, assign_groups
from ..patches import PatchLayout, unpatchify
from . import metrics
from .bench import group_psnr

Plan = tuple[tuple[int, int], tuple[int, int], tuple[int, int]]   # ((T1, N1), (T2, N2), (T3, N3))


@dataclass
class ImageRuns:
    """One image's cached uniform runs. hr, coarse: (1, 3, H, W) in [0, 1]; qmap: (1, nh, nw)."""

    hr: Tensor
    coarse: Tensor
    qmap: Tensor
    layout: PatchLayout
    patches: dict[tuple[int, int], Tensor]   # (T, N) -> restored patches (n, 3, P, P) in [-1, 1]
    fixed_seconds: float                     # GRM + grouping + retrieval + reassembly (mean)


@dataclass
class GridCache:
    """Uniform runs of every (T, N) on every image, and a memo of evaluated plans."""

    images: dict[str, ImageRuns]
    runs: pd.DataFrame                       # one row per (image, T, N): patch_nfe, sampling_s
    pgs: PGSConfig                           # the pipeline's PGS settings (default grouping)
    memo: dict = field(default_factory=dict, repr=False)

    @property
    def starts(self) -> list[int]:
        return sorted(self.runs["T"].unique().tolist())

    @property
    def steps(self) -> list[int]:
        return sorted(self.runs["N"].unique().tolist())

    def time_model(self) -> tuple[float, float]:
        """(seconds per patch-NFE, intercept) of sampling seconds, fitted over the uniform runs."""
        return fit_line(self.runs["patch_nfe"], self.runs["sampling_s"])


def center_crops(photos: dict[str, Tensor], size: int | None, scale: int = 4) -> dict[str, Tensor]:
    """{name: (3, H, W)} -> {name: (1, 3, s, s)} centre crops (whole photo if size is None)."""
    out = {}
    for k, v in photos.items():
        if size is not None:
            t, l = max(0, (v.shape[-2] - size) // 2), max(0, (v.shape[-1] - size) // 2)
            v = v[:, t:t + size, l:l + size]
        out[k] = crop_to_scale(v, scale)[None]
    return out


def fit_line(x, y) -> tuple[float, float]:
    """Least-squares line y = a x + b (numpy.polyfit, degree 1); returns (a, b)."""
    a, b = np.polyfit(np.asarray(x, dtype=float), np.asarray(y, dtype=float), 1)
    return float(a), float(b)


def final_patches(pipe, lr: Tensor, pgs: PGSConfig, seed: int = 0):
    """Run the pipeline once; also return its restored patches (n, 3, P, P) in [-1, 1], CPU.

    The sampler's callback sees x after every step; after the last one (t_next = 0) x is x0.
    """
    kept = []

    def keep(info):
        if info.t_next == 0:
            kept.append((info.idx.cpu(), info.x_next.float().cpu()))

    out = pipe(lr, generator=torch.Generator().manual_seed(seed), pgs=pgs, callback=keep)
    P = pipe.patch_size
    x0 = torch.empty(out.groups.numel(), 3, P, P)                         # (n, 3, P, P)
    for idx, x in kept:
        x0[idx] = x
    return out, x0


def run_grid(pipe, hrs: dict[str, Tensor], starts, steps, *, seed: int = 0,
             degradation: str = "bicubic", progress=None) -> GridCache:
    """Uniform (T, N) runs for every T in starts, N in steps (N <= T) on {name: HR (1, 3, H, W)}."""
    s, rows, images = pipe.grm.cfg.scale, [], {}
    for name, hr in hrs.items():
        hr = crop_to_scale(hr, s).cpu()
        lr = degrade(hr, s, degradation, generator=torch.Generator().manual_seed(seed)).to(pipe.device)
        patches, fixed = {}, []
        for T, N in itertools.product(starts, steps):
            if N > T:
                continue
            out, patches[(T, N)] = final_patches(pipe, lr, replace(pipe.pgs, uniform=(T, N)), seed)
            fixed.append(sum(v for k, v in out.seconds.items() if k != "sampling"))
            rows.append({"image": name, "T": T, "N": N, "patch_nfe": out.total_nfe,
                         "sampling_s": out.seconds["sampling"]})
            if progress is not None:
                progress(name, T, N)
        images[name] = ImageRuns(hr, out.coarse.cpu(), out.qmap.cpu(), out.layout, patches,
                                 float(np.mean(fixed)))
    return GridCache(images, pd.DataFrame(rows), pipe.pgs)


def group_ids(run: ImageRuns, grouping: GroupingConfig) -> Tensor:
    """(1, nh, nw) group ids of the cached image under `grouping` (grouping.assign_groups)."""
    return assign_groups(run.qmap, grouping)


def compose(run: ImageRuns, plan: Plan, groups: Tensor) -> Tensor:
    """The image (1, 3, H, W) in [0, 1] that PGS with `plan` gives under `groups` (1, nh, nw)."""
    g = groups.flatten()
    x0 = torch.empty_like(next(iter(run.patches.values())))               # (n, 3, P, P)
    for k, tn in enumerate(plan):
        x0[g == k] = run.patches[tuple(tn)][g == k]
    return from_signal(unpatchify(x0, run.layout))


def evaluate(cache: GridCache, plan: Plan, *, grouping: GroupingConfig | None = None,
             niqe: bool = True) -> dict:
    """Mean quality and cost of a per-group plan over the cached images (memoized).

    grouping: default the pipeline's (cache.pgs.grouping). Returns psnr, niqe, psnr_<group>,
    patches_<group>, patch_nfe (per image), seconds (modelled).
    """
    plan = tuple(tuple(int(v) for v in tn) for tn in plan)
    grouping = cache.pgs.grouping if grouping is None else grouping
    key = (plan, grouping, niqe)
    if key not in cache.memo:
        rows = [_plan_row(cache, run, plan, group_ids(run, grouping), niqe)
                for run in cache.images.values()]
        cache.memo[key] = pd.DataFrame(rows).mean().to_dict()
    return dict(cache.memo[key])


def _plan_row(cache: GridCache, run: ImageRuns, plan: Plan, g: Tensor, niqe: bool) -> dict:
    """Quality and cost of `plan` on one cached image under group ids g (1, nh, nw)."""
    slope, icpt = cache.time_model()
    img = compose(run, plan, g)
    counts = [int((g == k).sum()) for k in range(3)]
    nfe = sum(c * n for c, (_, n) in zip(counts, plan))
    r = {"psnr": metrics.psnr(img, run.hr), "patch_nfe": nfe,
         "seconds": run.fixed_seconds + icpt + slope * nfe,
         **group_psnr(img, run.hr, g, run.layout),
         **{f"patches_{n}": c for n, c in zip(GROUP_NAMES, counts)}}
    if niqe:
        r["niqe"] = metrics.niqe(img)
    return r

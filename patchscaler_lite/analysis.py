"""Group-sampling analysis: cached uniform runs, composed PGS plans, sweeps, budget allocation, scaling.

Patches are sampled independently, and even in uniform mode the sampler batches patches group by
group, so the patches PGS gives group g under (T_g, N_g) are the patches of the uniform run
(T_g, N_g) restricted to group g. `run_grid` runs every uniform (T, N) of a small grid once per image
and keeps the restored patches; `compose` then assembles the image of *any* per-group plan, under any
grouping, without another denoiser call (equal to a real PGS run up to float rounding). Sweeps,
sliders and the budget allocator all read that cache.

Costs: patch-NFE is exact, sum_g counts_g * N_g per image. Seconds of a composed plan are *modelled*:
the measured fixed stages (GRM, grouping, retrieval, reassembly) plus a line fitted to the measured
sampling seconds against patch-NFE of the uniform runs. Qualities are means over the images.
No plotting here (see viz_sampling.py).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from . import metrics
from .bench import group_psnr, make_runner, timed
from .data import crop_to_scale, degrade
from .grouping import GROUP_NAMES, groups_from_quantiles, groups_from_thresholds
from .patches import PatchLayout, make_layout, patchify, unpatchify
from .sampling import PGSConfig
from .schedule import alpha_bar, from_signal, shortcut_start, timesteps_for, to_signal

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
    last = [n - 1 for _, n in pgs.plan()]
    kept = []

    def keep(group, step, t, x, x0_hat, idx):
        if step == last[group]:
            kept.append((idx.cpu(), x.float().cpu()))

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
        layout = make_layout(hr.shape, pipe.patch_size, pipe.overlap)
        images[name] = ImageRuns(hr, out.coarse.cpu(), out.qmap.cpu(), layout, patches,
                                 float(np.mean(fixed)))
    return GridCache(images, pd.DataFrame(rows), pipe.pgs)


def group_ids(run: ImageRuns, quantiles=None, thresholds=None) -> Tensor:
    """(1, nh, nw) group ids: by quantiles, else thresholds, else the default PGS grouping."""
    if quantiles is not None:
        return groups_from_quantiles(run.qmap, quantiles)
    if thresholds is not None:
        return groups_from_thresholds(run.qmap, thresholds)
    raise ValueError("pass quantiles or thresholds")


def compose(run: ImageRuns, plan: Plan, groups: Tensor) -> Tensor:
    """The image (1, 3, H, W) in [0, 1] that PGS with `plan` gives under `groups` (1, nh, nw)."""
    g = groups.flatten()
    x0 = torch.empty_like(next(iter(run.patches.values())))               # (n, 3, P, P)
    for k, tn in enumerate(plan):
        x0[g == k] = run.patches[tuple(tn)][g == k]
    return from_signal(unpatchify(x0, run.layout))


def _grouping(cache: GridCache, quantiles, thresholds) -> dict:
    if quantiles is None and thresholds is None:
        quantiles, thresholds = cache.pgs.quantiles, cache.pgs.thresholds
    return {"quantiles": quantiles} if quantiles is not None else {"thresholds": thresholds}


def evaluate(cache: GridCache, plan: Plan, *, quantiles=None, thresholds=None,
             niqe: bool = True) -> dict:
    """Mean quality and cost of a per-group plan over the cached images (memoized).

    Returns psnr, niqe, psnr_<group>, patches_<group>, patch_nfe (per image), seconds (modelled).
    """
    plan = tuple(tuple(int(v) for v in tn) for tn in plan)
    how = _grouping(cache, quantiles, thresholds)
    key = (plan, tuple(how.items()), niqe)
    if key not in cache.memo:
        slope, icpt = cache.time_model()
        rows = []
        for run in cache.images.values():
            g = group_ids(run, **how)
            img = compose(run, plan, g)
            counts = [int((g == k).sum()) for k in range(3)]
            nfe = sum(c * n for c, (_, n) in zip(counts, plan))
            r = {"psnr": metrics.psnr(img, run.hr), "patch_nfe": nfe,
                 "seconds": run.fixed_seconds + icpt + slope * nfe,
                 **group_psnr(img, run.hr, g, run.layout),
                 **{f"patches_{n}": c for n, c in zip(GROUP_NAMES, counts)}}
            if niqe:
                r["niqe"] = metrics.niqe(img)
            rows.append(r)
        cache.memo[key] = pd.DataFrame(rows).mean().to_dict()
    return dict(cache.memo[key])


def plans(starts, steps, monotone: bool = True) -> list[Plan]:
    """Every per-group plan from the grid; monotone: T and N non-decreasing Simple -> Hard."""
    opts = list(itertools.product(starts, steps))
    out = []
    for p in itertools.product(opts, repeat=3):
        if any(n > t for t, n in p):
            continue
        if monotone and not all(a[0] <= b[0] and a[1] <= b[1] for a, b in zip(p, p[1:])):
            continue
        out.append(p)
    return out


def sweep(cache: GridCache, plan_list=None, *, niqe: bool = True, **grouping) -> pd.DataFrame:
    """One row per plan: T1, N1, ..., n_settings (distinct (T, N) used), kind, cost and quality."""
    rows = []
    for p in plan_list if plan_list is not None else plans(cache.starts, cache.steps):
        r = evaluate(cache, p, niqe=niqe, **grouping)
        n_set = len(set(p))
        rows.append({**{f"{a}{g + 1}": tn[i] for g, tn in enumerate(p) for i, a in enumerate("TN")},
                     "n_settings": n_set, "kind": "uniform" if n_set == 1 else "pgs", **r})
    return pd.DataFrame(rows)


def plan_of(row) -> Plan:
    """The plan ((T1, N1), (T2, N2), (T3, N3)) of a sweep row."""
    return tuple((int(row[f"T{g}"]), int(row[f"N{g}"])) for g in (1, 2, 3))


def pareto_front(df: pd.DataFrame, cost: str = "patch_nfe", quality: str = "niqe",
                 lower_is_better: bool = True) -> pd.DataFrame:
    """Rows no other row dominates (as cheap and as good, better in one), sorted by cost; of rows
    with equal cost and quality one is kept."""
    sign = 1.0 if lower_is_better else -1.0
    d = df.assign(_q=sign * df[quality]).sort_values([cost, "_q"], kind="stable")
    keep, best = [], np.inf
    for i, q in zip(d.index, d["_q"]):
        if q < best:
            keep.append(i)
            best = q
    return df.loc[keep]


def allocate(df: pd.DataFrame, budget: float, metric: str = "niqe", lower_is_better: bool = True,
             cost: str = "patch_nfe"):
    """The measured-best row with cost <= budget (ties: the cheaper), or None if none fits."""
    ok = df[df[cost] <= budget]
    if ok.empty:
        return None
    sign = 1.0 if lower_is_better else -1.0
    return ok.assign(_q=sign * ok[metric]).sort_values(["_q", cost], kind="stable").iloc[0].drop("_q")


def versus_uniform(df: pd.DataFrame, metric: str = "niqe", lower_is_better: bool = True) -> pd.DataFrame:
    """C3, per uniform plan: the best PGS plan at the same patch-NFE, and the cheapest PGS plan at
    least as good as uniform (its patch-NFE and the saving factor uniform / that)."""
    sign, pgs, rows = (1.0 if lower_is_better else -1.0), df[df.kind == "pgs"], []
    for _, u in df[df.kind == "uniform"].sort_values("patch_nfe").iterrows():
        same = allocate(pgs, u["patch_nfe"], metric, lower_is_better)
        ok = pgs[sign * pgs[metric] <= sign * u[metric]]
        match = ok["patch_nfe"].min() if len(ok) else float("nan")
        rows.append({"uniform (T, N)": plan_of(u)[0], "patch_nfe": u["patch_nfe"], metric: u[metric],
                     f"pgs_same_budget_{metric}": same[metric] if same is not None else float("nan"),
                     "pgs_same_budget_plan": plan_of(same) if same is not None else None,
                     "pgs_nfe_to_match": match, "saving": u["patch_nfe"] / match})
    return pd.DataFrame(rows)


def best_by_groups(df: pd.DataFrame, budgets, metric: str = "niqe", lower_is_better: bool = True):
    """C5: best measured metric within each budget using at most 1, 2 or 3 distinct (T, N)."""
    rows = []
    for b in budgets:
        r = {"budget": b}
        for k in (1, 2, 3):
            best = allocate(df[df.n_settings <= k], b, metric, lower_is_better)
            r[f"{k}_group"] = best[metric] if best is not None else float("nan")
        rows.append(r)
    return pd.DataFrame(rows).set_index("budget")


def uniform_curves(cache: GridCache) -> pd.DataFrame:
    """Per (image, T, N) of uniform runs: per-group PSNR to the truth and to the run with the most
    steps at the same T (how far the trajectory still moves), overall PSNR and NIQE."""
    rows = []
    for name, run in cache.images.items():
        g = group_ids(run, **_grouping(cache, None, None))
        for (T, N) in run.patches:
            n_max = max(n for t, n in run.patches if t == T)
            img, ref = compose(run, ((T, N),) * 3, g), compose(run, ((T, n_max),) * 3, g)
            conv = {k.replace("psnr", "conv"): (v if N < n_max else float("nan"))
                    for k, v in group_psnr(img, ref, g, run.layout).items()}
            rows.append({"image": name, "T": T, "N": N, "psnr": metrics.psnr(img, run.hr),
                         "niqe": metrics.niqe(img), **group_psnr(img, run.hr, g, run.layout), **conv})
    return pd.DataFrame(rows)


def group_only(cache: GridCache, T: int, base_steps: int = 1) -> pd.DataFrame:
    """NIQE / PSNR when only group g gets N steps and the others keep `base_steps` (all at T)."""
    rows = []
    for g, name in enumerate(GROUP_NAMES):
        for N in (n for t, n in cache.runs[["T", "N"]].drop_duplicates().values if t == T):
            p = [(T, base_steps)] * 3
            p[g] = (T, int(N))
            rows.append({"group": name, "N": int(N), **evaluate(cache, tuple(p))})
    return pd.DataFrame(rows)


@dataclass
class Trajectory:
    """Every step of one uniform (T, N) run on one image. Tensors CPU, patches in [-1, 1]."""

    ts: list[int]          # t_0 = T > ... > t_N = 0
    start: Tensor          # (n, 3, P, P) x_T, the shortcut start (Eq. 6)
    x0_hat: Tensor         # (N, n, 3, P, P) the model's clean estimate at each call
    x: Tensor              # (N, n, 3, P, P) the state after each DDIM step
    coarse: Tensor         # (n, 3, P, P) y0
    truth: Tensor          # (n, 3, P, P) HR patches
    groups: Tensor         # (n,) default group ids
    qmap: Tensor           # (n,)
    interior: Tensor       # (n,) bool: the patch lies inside the image (no replicate padding)

    def ranked(self, group: int) -> list[int]:
        """Interior patches of a group, most confident first for Simple, least first otherwise."""
        order = self.qmap.argsort(descending=group == 0).tolist()
        return [i for i in order if self.groups[i] == group and self.interior[i]]


def trajectory(pipe, hr: Tensor, T: int, N: int, *, seed: int = 0) -> Trajectory:
    """Watch a uniform (T, N) run through the sampler callback. hr: (1, 3, H, W) in [0, 1]."""
    lr = degrade(hr, pipe.grm.cfg.scale).to(pipe.device)
    n = make_layout(hr.shape, pipe.patch_size, pipe.overlap).patches_per_image
    x0s = torch.empty(N, n, 3, pipe.patch_size, pipe.patch_size)           # (S, n, 3, P, P)
    xs = torch.empty_like(x0s)

    def watch(group, step, t, x, x0_hat, idx):
        x0s[step, idx.cpu()], xs[step, idx.cpu()] = x0_hat.float().cpu(), x.float().cpu()

    out = pipe(lr, generator=torch.Generator().manual_seed(seed),
               pgs=replace(pipe.pgs, uniform=(T, N)), callback=watch)
    y0, lay = patchify(out.coarse.cpu(), pipe.patch_size, pipe.overlap)
    y0 = to_signal(y0)
    rows_in = torch.arange(lay.nh) * lay.stride + lay.patch_size <= lay.height     # (nh,)
    cols_in = torch.arange(lay.nw) * lay.stride + lay.patch_size <= lay.width      # (nw,)
    inside = rows_in[:, None] & cols_in[None, :]                                    # (nh, nw)
    eps = torch.randn(y0.shape, generator=torch.Generator().manual_seed(seed))  # the pipeline's noise
    return Trajectory(timesteps_for(T, N), shortcut_start(y0, T, eps, alpha_bar()), x0s, xs, y0,
                      to_signal(patchify(hr.cpu(), pipe.patch_size, pipe.overlap)[0]),
                      out.groups.flatten().cpu(), out.qmap.flatten().cpu(), inside.flatten())


def trajectory_stats(tr: Trajectory, i: int) -> pd.DataFrame:
    """Per step of patch i (step 0: the coarse y0; step k: the k-th call, made at t): PSNR (dB)
    of the estimate to the HR patch and to the final x0,
    and how much x0_hat moved since the previous call (RMS, [0, 1] units)."""
    est = from_signal(torch.cat([tr.coarse[i][None], tr.x0_hat[:, i]]))          # (S + 1, 3, P, P)
    truth, final = from_signal(tr.truth[i]), est[-1]

    def db(a, b):
        return (-10 * torch.log10((a - b).square().mean((1, 2, 3)).clamp_min(1e-12))).tolist()
    move = [float("nan")] + (est[1:] - est[:-1]).square().mean((1, 2, 3)).sqrt().tolist()
    return pd.DataFrame({"step": range(len(est)), "t": [tr.ts[0]] + tr.ts[:-1],
                         "psnr_truth": db(est, truth), "psnr_final": db(est, final), "move": move})


def size_scaling(pipe, hr: Tensor, lr_sizes, methods=("pgs",), *, seed: int = 0) -> pd.DataFrame:
    """Seconds and peak memory of `methods` on square LR crops (bench.timed protocol, warm-up first).

    hr: (1, 3, H, W) at least 4 * max(lr_sizes) a side. One row per (method, size).
    """
    s, rows = pipe.grm.cfg.scale, []
    for m in methods:
        run = make_runner(m, pipe, seed)
        run(degrade(hr[..., :s * min(lr_sizes), :s * min(lr_sizes)], s).to(pipe.device))   # warm-up
        for n in lr_sizes:
            lr = degrade(hr[..., :s * n, :s * n], s).to(pipe.device)
            _, extra, sec, mb = timed(run, lr, pipe.device)
            rows.append({"method": m, "lr_size": n, "hr_pixels": (s * n) ** 2, "seconds": sec,
                         "peak_mem_mb": mb, "patch_nfe": extra.get("patch_nfe", 0)})
    return pd.DataFrame(rows)


def bench_frames(result: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows, means) DataFrames of a bench.run_bench result: one row per (image, method) / method."""
    rows = pd.DataFrame(result["rows"])
    means = pd.DataFrame(result["methods"]).T.rename_axis("method")
    return rows, means


def texture_ablation(result: dict, with_: str = "pgs", without: str = "pgs-notexture") -> pd.DataFrame:
    """Per image: PSNR, Hard-patch PSNR and NIQE with and without the texture prompt, and the gain."""
    rows, _ = bench_frames(result)
    cols = ["psnr", "psnr_hard", "niqe", "seconds"]
    a = rows[rows.method == with_].set_index("image")[cols].astype(float)
    b = rows[rows.method == without].set_index("image")[cols].astype(float)
    gain = (a - b)[cols[:3]].add_prefix("gain_")
    gain["gain_niqe"] = -gain["gain_niqe"]          # NIQE: lower is better, so a drop is a gain
    gain["extra_seconds"] = a["seconds"] - b["seconds"]
    return pd.concat([a.add_suffix("_tex"), b.add_suffix("_notex"), gain], axis=1)


def device_name(device) -> str:
    """A human name for where the timings come from, e.g. 'cpu (2 threads)' or the GPU model."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


def timing_protocol(pipe) -> str:
    """One line stating how every timing in the notebooks is taken."""
    sync = "torch.cuda.synchronize() before each clock read, " if pipe.device.type == "cuda" else ""
    return (f"device {device_name(pipe.device)}; batch 1 image, {pipe.pgs.batch_size} patches per "
            f"denoiser call; one warm-up call first; wall-clock around the method only ({sync}"
            "degradation, metrics and I/O excluded)")

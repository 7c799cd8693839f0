"""The paper's claims C2, C3 and C5 measured on a GridCache (eval/grid.py): sweeps over per-group
plans, Pareto fronts, budget allocation, PGS against uniform sampling, 1 vs 2 vs 3 groups; and C4
(the texture prompt) from a bench result. Tables only (pandas); figures are in viz/sampling.py.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import torch
from scipy.stats import bootstrap

from ..config import GroupingConfig
from ..data import crop_to_scale, degrade
from ..grouping import GROUP_NAMES
from . import metrics
from .bench import group_psnr, run_bench
from .grid import GridCache, Plan, compose, evaluate, group_ids


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


def sweep(cache: GridCache, plan_list=None, *, niqe: bool = True,
          grouping: GroupingConfig | None = None) -> pd.DataFrame:
    """One row per plan: T1, N1, ..., n_settings (distinct (T, N) used), kind, cost and quality."""
    rows = []
    for p in plan_list if plan_list is not None else plans(cache.starts, cache.steps):
        r = evaluate(cache, p, niqe=niqe, grouping=grouping)
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
        g = group_ids(run, cache.pgs.grouping)
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


def paired_difference(rows: pd.DataFrame, a: str, b: str, metric: str, *, n: int = 10000,
                      seed: int = 0) -> dict:
    """Mean of metric(a) - metric(b) over the photos both methods ran on, with a 95% paired
    percentile-bootstrap interval over photos (scipy.stats.bootstrap). rows: bench rows
    (image, method, metric). Photos where either value is missing are left out."""
    wide = rows.pivot_table(index="image", columns="method", values=metric).dropna(subset=[a, b])
    d = (wide[a] - wide[b]).to_numpy(dtype=float)
    if len(d) < 2:
        return {"metric": metric, "a": a, "b": b, "photos": len(d), "mean": float(d.mean()) if len(d)
                else float("nan"), "low": float("nan"), "high": float("nan")}
    ci = bootstrap((d,), np.mean, n_resamples=n, method="percentile", confidence_level=0.95,
                   rng=np.random.default_rng(seed)).confidence_interval
    return {"metric": metric, "a": a, "b": b, "photos": len(d), "mean": float(d.mean()),
            "low": float(ci.low), "high": float(ci.high)}


def preset_tracks(pipes: dict, photos: dict, methods=("bicubic", "grm", "pgs"),
                  degradations=("bicubic", "realistic"), *, seed: int = 0) -> pd.DataFrame:
    """Every preset {name: pipeline} on both tracks: bench.run_bench per (preset, degradation), the
    same seeded LR for every preset. One row per (track, preset, method) of the per-method means."""
    frames = []
    for deg in degradations:
        for name, pipe in pipes.items():
            _, means = bench_frames(run_bench(pipe, photos, list(methods), degradation=deg, seed=seed,
                                              progress=False))
            frames.append(means.reset_index().assign(track=deg, preset=name))
    cols = ["track", "preset", "method", "psnr", "ssim", "niqe", "seconds", "patch_nfe"]
    return pd.concat(frames, ignore_index=True)[cols]


def compare_plans(pipe, photos: dict, configs: dict, *, seed: int = 0) -> pd.DataFrame:
    """Claim C5 with fixed plans: run the pipeline once per photo {name: (3, H, W)} and per
    PGSConfig of `configs` {label: cfg} (the same LR and noise for all). One row per (image,
    method): psnr, niqe, patch_nfe; feed it to `paired_difference`."""
    s, rows = pipe.grm.cfg.scale, []
    for name, hr in photos.items():
        hr = crop_to_scale(hr, s)[None].to(pipe.device)
        lr = degrade(hr, s)
        for label, cfg in configs.items():
            out = pipe(lr, generator=torch.Generator().manual_seed(seed), pgs=cfg)
            rows.append({"image": name, "method": label, "psnr": metrics.psnr(out.image, hr),
                         "niqe": metrics.niqe(out.image), "patch_nfe": out.total_nfe})
    return pd.DataFrame(rows)

"""Which patches need diffusion? Difficulty maps compared on the same photos and the same Patch-DiT.

A difficulty map d (B, nh, nw) scores each patch of the pipeline's layout (`pgs.grouping`, with its
overlap), higher = harder. Six of them (`MAPS`):

  qmap      1 - mean GRM confidence of the patch (the paper's learned Qmap)
  gradient  mean squared gradient of the bicubic upscale (free, no network)
  dihedral  mean variance of the GRM's coarse image over the 8 flips / rotations of the LR, each
            mapped back (training-free uncertainty, 8 GRM forwards)
  seeds     mean std of the restored patch over S noise seeds, every patch sampled with the Hard
            group's (T3, N3) (the Patch-DiT's own uncertainty; costs S x N3 calls a patch, more than
            sampling every patch Hard, so a diagnostic, not a usable grouping)
  random    uniform noise (the control)
  oracle    true MSE of the coarse patch against the HR truth (needs the truth: the upper bound)

`to_qmap` turns any d into a qmap by rank within each image, so maps of different scales compete on
order alone, which is all the quantile grouping uses. The real test plugs each map into PGS at equal
patch-NFE: the budget is set by the fraction of Hard patches (`budget_grouping`), and the images
are composed from cached uniform runs (eval/grid.py; exact, patches are sampled independently).
Tables only; figures are in viz/maps.py.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pandas as pd
import torch
from torch import Tensor

from ..config import GroupingConfig, PGSConfig
from ..data import bicubic_up, crop_to_scale, degrade
from ..grm.model import restore
from ..grouping import assign_groups
from ..patches import PatchLayout, dihedral, patch_means
from . import metrics
from .claims import paired_difference
from .difficulty import gradient_energy, spearman
from .grid import ImageRuns, compose, final_patches

MAPS = ("qmap", "gradient", "dihedral", "seeds", "random", "oracle")
LABELS = {"qmap": "Qmap (learned confidence)", "gradient": "gradient energy (free)",
          "dihedral": "flip/rotate disagreement", "seeds": "spread over seeds",
          "random": "random (control)", "oracle": "true error (oracle)"}
HARD_FRACTIONS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5)      # the budget ladder: fraction of Hard patches


def to_qmap(d: Tensor) -> Tensor:
    """Difficulty (B, nh, nw), higher = harder -> qmap (B, nh, nw) in (0, 1), higher = easier, by
    rank within each image: q = 1 - (r + 0.5) / n for rank r = 0 (easiest) .. n - 1; ties by position."""
    B, n = d.shape[0], d[0].numel()
    order = torch.sort(d.reshape(B, n).float(), dim=1, stable=True).indices      # easiest first
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(n, device=d.device).expand(B, n))
    return (1 - (rank.float() + 0.5) / n).reshape(d.shape)


def budget_grouping(hard: float, grouping: GroupingConfig) -> GroupingConfig:
    """Quantile grouping with a fraction `hard` of Hard patches, the Medium fraction of `grouping`
    (default 0.4; clipped to 1 - hard) and Simple the rest. The budget is then fixed per image:
    patch-NFE = n * ((1 - m - h) N1 + m N2 + h N3), whatever map ranks the patches."""
    m = (grouping.quantiles or GroupingConfig().quantiles)[1]
    m = min(m, 1.0 - hard)
    return replace(grouping, quantiles=(max(0.0, 1.0 - hard - m), m))


def undihedral(x: Tensor, k: int) -> Tensor:
    """Inverse of patches.dihedral: undihedral(dihedral(x, k), k) == x for k in 0..7."""
    x = x.flip(-1) if k >= 4 else x
    return torch.rot90(x, -(k % 4), dims=(-2, -1))


def dihedral_disagreement(upscale, lr: Tensor, layout: PatchLayout) -> Tensor:
    """upscale: (B, 3, h, w) -> (B, 3, H, W), run on the 8 flips / rotations of lr and mapped back;
    per pixel the variance over the 8 (channels averaged), per patch its mean -> (B, nh, nw).
    Zero for a model that commutes with flips and rotations."""
    ys = torch.stack([undihedral(upscale(dihedral(lr, k)), k) for k in range(8)])   # (8, B, 3, H, W)
    var = ys.var(0, unbiased=False).mean(1, keepdim=True)                           # (B, 1, H, W)
    return patch_means(var.cpu(), layout)


def seed_spread(runs: list[Tensor], layout: PatchLayout) -> Tensor:
    """S restored patch sets (n, 3, P, P) of one LR under S noise seeds -> per patch the mean over
    its pixels of the std over seeds (B, nh, nw)."""
    x = torch.stack([r.float().cpu() for r in runs])                  # (S, n, 3, P, P)
    return x.std(0, unbiased=False).mean((1, 2, 3)).reshape(layout.batch, layout.nh, layout.nw)


def static_maps(grm, lr: Tensor, hr: Tensor, coarse: Tensor, conf: Tensor, layout: PatchLayout,
                seed: int = 0) -> dict[str, Tensor]:
    """The maps that need no sampling: qmap, gradient, dihedral, random, oracle, each (B, nh, nw)
    on the CPU. lr (B, 3, h, w); hr, coarse (B, 3, H, W); conf (B, 1, H, W)."""
    s = grm.cfg.scale
    g = torch.Generator().manual_seed(seed)
    return {
        "qmap": 1 - patch_means(conf.cpu(), layout),
        "gradient": patch_means(gradient_energy(bicubic_up(lr, s)).cpu(), layout),
        "dihedral": dihedral_disagreement(lambda x: restore(grm, x)[0], lr, layout),
        "random": torch.rand((layout.batch, layout.nh, layout.nw), generator=g),
        "oracle": patch_means((coarse.cpu() - hr.cpu()).square(), layout),
    }


@dataclass
class PhotoMaps:
    """One photo: its LR (1, 3, h, w), the maps {name: (1, nh, nw) difficulty}, the pipeline's PGS
    settings, and `run` (hr, coarse, layout and the uniform runs of each group's (T_g, N_g))."""

    name: str
    lr: Tensor
    maps: dict[str, Tensor]
    pgs: PGSConfig
    run: ImageRuns

    @property
    def error(self) -> Tensor:
        """(1, nh, nw) true MSE of each coarse patch (the oracle map)."""
        return self.maps["oracle"]

    def groups(self, name: str, hard: float) -> Tensor:
        """(1, nh, nw) group ids when map `name` decides the grouping at budget `hard`."""
        return assign_groups(to_qmap(self.maps[name]), budget_grouping(hard, self.pgs.grouping))

    def image(self, name: str, hard: float) -> Tensor:
        """(1, 3, H, W) in [0, 1]: what PGS gives with map `name` at budget `hard` (composed)."""
        return compose(self.run, self.pgs.plan(), self.groups(name, hard))


@torch.no_grad()
def photo_maps(pipe, name: str, hr: Tensor, *, seeds: int = 3, seed: int = 0,
               degradation: str = "bicubic") -> PhotoMaps:
    """Degrade one HR photo (1, 3, H, W), run each group's (T_g, N_g) on every patch once (seed),
    the Hard plan under `seeds` seeds (seed, seed + 1, ...), and compute all six maps."""
    s, pgs = pipe.grm.cfg.scale, pipe.pgs
    hr = crop_to_scale(hr, s).cpu()
    lr = degrade(hr, s, degradation, generator=torch.Generator().manual_seed(seed)).to(pipe.device)
    plans, hard = list(dict.fromkeys(pgs.plan())), pgs.plan()[-1]
    outs = {tn: final_patches(pipe, lr, replace(pgs, uniform=tn), seed) for tn in plans}
    out = outs[hard][0]
    spread = [outs[hard][1]] + [final_patches(pipe, lr, replace(pgs, uniform=hard), seed + i)[1]
                                for i in range(1, seeds)]
    maps = static_maps(pipe.grm, lr, hr, out.coarse, out.confidence, out.layout, seed)
    maps["seeds"] = seed_spread(spread, out.layout)
    fixed = sum(v for k, v in out.seconds.items() if k != "sampling")
    run = ImageRuns(hr, out.coarse.cpu(), out.qmap.cpu(), out.layout,
                    {tn: p for tn, (_, p) in outs.items()}, fixed)
    return PhotoMaps(name, lr.cpu(), {k: maps[k] for k in MAPS}, pgs, run)


def evaluate_maps(pm: PhotoMaps, hards=HARD_FRACTIONS, *, niqe: bool = True) -> pd.DataFrame:
    """One row per (map, budget): image, map, hard, patch_nfe (exact), nfe_per_patch, psnr, niqe."""
    rows, steps = [], [n for _, n in pm.pgs.plan()]
    for name in pm.maps:
        for h in hards:
            g = pm.groups(name, h)
            img = compose(pm.run, pm.pgs.plan(), g)
            nfe = sum(int((g == k).sum()) * n for k, n in enumerate(steps))
            r = {"image": pm.name, "map": name, "hard": h, "patch_nfe": nfe,
                 "nfe_per_patch": nfe / g.numel(), "psnr": metrics.psnr(img, pm.run.hr)}
            if niqe:
                r["niqe"] = metrics.niqe(img)
            rows.append(r)
    return pd.DataFrame(rows)


def spearman_table(pms: list[PhotoMaps]) -> pd.DataFrame:
    """Spearman of each map with the true patch error: one row per photo, then the mean over
    photos (grouping ranks patches within a photo) and all patches pooled. Columns: MAPS."""
    rows = {pm.name: {k: spearman(v.flatten(), pm.error.flatten()) for k, v in pm.maps.items()}
            for pm in pms}
    table = pd.DataFrame.from_dict(rows, orient="index")
    pooled = {k: spearman(torch.cat([pm.maps[k].flatten() for pm in pms]),
                          torch.cat([pm.error.flatten() for pm in pms])) for k in table.columns}
    table.loc["mean over photos"] = table.mean()
    table.loc["pooled"] = pd.Series(pooled)
    return table


def curves(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean over photos of each (map, hard): nfe_per_patch, psnr (and niqe), for the budget plot."""
    return rows.groupby(["map", "hard"], sort=False).mean(numeric_only=True).reset_index()


def paired_table(rows: pd.DataFrame, a: str = "qmap", others=None, measures=("psnr", "niqe"),
                 **kw) -> pd.DataFrame:
    """Per budget and metric: mean of metric(a) - metric(other) over photos, with a 95% paired
    bootstrap interval (claims.paired_difference). NIQE: negative = `a` is more natural."""
    others = [m for m in rows["map"].unique() if m != a] if others is None else others
    out = []
    for h, d in rows.rename(columns={"map": "method"}).groupby("hard"):
        for b in others:
            for m in (m for m in measures if m in d):
                r = paired_difference(d, a, b, m, **kw)
                out.append({"hard": h, "nfe_per_patch": d["nfe_per_patch"].mean(), **r})
    return pd.DataFrame(out)

"""Choose the PGS defaults by measurement: quality / patch-NFE of candidate (T_g, N_g) settings.

    python scripts/sweep_pgs.py [--split val] [--out outputs/sweep_pgs.csv]   # ~10 min on 2 CPU cores

Runs the shipped pipeline on the x4 bicubic LR of each photo for every candidate and prints a table
of mean PSNR, NIQE and patch-NFE (and the same for uniform sampling at the Hard group's start).
"""

import argparse
import warnings

import pandas as pd
import torch

from patchscaler_lite.config import GroupingConfig, PGSConfig
from patchscaler_lite.data import crop_to_scale, degrade, load_photos
from patchscaler_lite.eval.metrics import niqe, psnr
from patchscaler_lite.pipeline import PatchScalerPipeline

ap = argparse.ArgumentParser()
ap.add_argument("--split", default="val")
ap.add_argument("--out", default="outputs/sweep_pgs.csv")
args = ap.parse_args()

pipe = PatchScalerPipeline.from_pretrained()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    photos = {k: crop_to_scale(v, 4)[None] for k, v in load_photos(args.split).items()}
# The candidates measured for the current defaults: (1, 2, 6) or (1, 3|4, 6) steps, with quantiles
# that keep patch-NFE <= 1/3 of uniform (350, 6); see PGSConfig's docstring for the outcome.
cands = [("uniform", PGSConfig(uniform=(350, 6)))]
for starts, steps, q in [
        ((100, 200, 350), (1, 2, 6), (0.6, 0.25)), ((200, 300, 350), (1, 2, 6), (0.6, 0.25)),
        ((150, 250, 350), (1, 2, 6), (0.6, 0.25)), ((250, 300, 350), (1, 2, 6), (0.6, 0.25)),
        ((300, 325, 350), (1, 2, 6), (0.6, 0.25)), ((50, 150, 350), (1, 2, 6), (0.6, 0.25)),
        ((50, 100, 350), (1, 2, 6), (0.6, 0.25)), ((25, 100, 350), (1, 2, 6), (0.6, 0.25)),
        ((25, 50, 350), (1, 2, 6), (0.6, 0.25)), ((50, 150, 350), (1, 3, 6), (0.65, 0.25)),
        ((50, 200, 350), (1, 3, 6), (0.65, 0.25)), ((50, 200, 350), (1, 4, 6), (0.72, 0.2)),
        ((50, 150, 350), (1, 2, 6), (0.5, 0.4)), ((50, 150, 350), (1, 2, 6), (0.4, 0.5)),
        ((50, 200, 350), (1, 2, 6), (0.4, 0.5))]:
    cands.append(("pgs", PGSConfig(starts=starts, steps=steps, grouping=GroupingConfig(quantiles=q))))
rows = []
for kind, cfg in cands:
    for name, hr in photos.items():
        out = pipe(degrade(hr, 4), generator=torch.Generator().manual_seed(0), pgs=cfg)
        rows.append({"kind": kind, "starts": cfg.starts if cfg.uniform is None else cfg.uniform[:1],
                     "steps": cfg.steps if cfg.uniform is None else cfg.uniform[1:],
                     "quantiles": cfg.grouping.quantiles if cfg.uniform is None else None,
                     "image": name, "psnr": psnr(out.image, hr), "niqe": niqe(out.image),
                     "patch_nfe": out.total_nfe, "sec": sum(out.seconds.values())})
    print(rows[-1])
df = pd.DataFrame(rows)
for c in ("starts", "steps", "quantiles"):
    df[c] = df[c].astype(str)
table = df.groupby(["kind", "starts", "steps", "quantiles"], sort=False).mean(numeric_only=True)
print(table.to_string(float_format=lambda v: f"{v:.3f}"))
df.to_csv(args.out, index=False)

"""Choose the PGS defaults by measurement: quality / patch-NFE of candidate (T_g, N_g) settings.

    python scripts/sweep_pgs.py [--split val] [--out outputs/sweep_pgs.csv]

Runs the shipped pipeline on the x4 bicubic LR of each photo for every candidate and prints a table
of mean PSNR, NIQE and patch-NFE (and the same for uniform sampling at the Hard group's start).
"""

import argparse
import itertools
import warnings

import pandas as pd
import torch

from patchscaler_lite.data import crop_to_scale, degrade, load_photos
from patchscaler_lite.metrics import niqe, psnr
from patchscaler_lite.pipeline import PatchScalerPipeline
from patchscaler_lite.sampling import PGSConfig

ap = argparse.ArgumentParser()
ap.add_argument("--split", default="val")
ap.add_argument("--out", default="outputs/sweep_pgs.csv")
ap.add_argument("--quantiles", default="0.5,0.3")
args = ap.parse_args()
q = tuple(float(v) for v in args.quantiles.split(","))

pipe = PatchScalerPipeline.from_pretrained()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    photos = {k: crop_to_scale(v, 4)[None] for k, v in load_photos(args.split).items()}
cands = [("uniform", PGSConfig(uniform=(T, N))) for T, N in [(100, 1), (200, 4), (350, 8), (200, 8)]]
cands += [("pgs", PGSConfig(starts=s, steps=n, quantiles=q))
          for s, n in itertools.product([(50, 100, 200), (100, 200, 350)], [(1, 2, 4), (1, 2, 8)])]
rows = []
for kind, cfg in cands:
    for name, hr in photos.items():
        out = pipe(degrade(hr, 4), generator=torch.Generator().manual_seed(0), pgs=cfg)
        rows.append({"kind": kind, "starts": cfg.starts if cfg.uniform is None else cfg.uniform[:1],
                     "steps": cfg.steps if cfg.uniform is None else cfg.uniform[1:],
                     "image": name, "psnr": psnr(out.image, hr), "niqe": niqe(out.image),
                     "patch_nfe": out.total_nfe, "sec": sum(out.seconds.values())})
    print(rows[-1])
df = pd.DataFrame(rows)
df["starts"], df["steps"] = df["starts"].astype(str), df["steps"].astype(str)
table = df.groupby(["kind", "starts", "steps"], sort=False).mean(numeric_only=True)
print(table.to_string(float_format=lambda v: f"{v:.3f}"))
df.to_csv(args.out, index=False)

"""Which patches need diffusion? Notebook 05's question on held-out photos, at equal patch-NFE.

    python scripts/which_patches.py --hr-dir data/corpus --split test --crop 512

For every photo (a centre crop of at most crop x crop HR pixels, x4 bicubic LR, seed 0) the six
difficulty maps of eval/maps.py (learned Qmap, gradient energy of the bicubic, flip/rotate
disagreement of the GRM, spread of the Hard plan over --seeds noise seeds, random, true error)
rank the patches; each ranking decides the PGS grouping at the same budgets (--hards: fraction of
Hard patches; Medium stays at the default 40%), and the image is composed from the cached uniform
runs of each group's (T_g, N_g), so every map is judged on the same samples. Reported: Spearman of
each map with the true patch error, PSNR and NIQE per map and budget, and paired differences over
photos with a 95% percentile bootstrap (eval.claims.paired_difference): the Qmap minus each other
map, and the oracle minus each map. Writes <out>.csv (one row per photo, map and budget) and
<out>.json. About 35 CPU seconds per 512 px photo with OMP_NUM_THREADS=1 (7.5 CPU minutes for
the 13 corpus test photos).
"""

import argparse
import json
import time
import warnings
from pathlib import Path

import pandas as pd
import torch

from patchscaler_lite.eval import grid, maps
from patchscaler_lite.photoset import load_photo_set
from patchscaler_lite.pipeline import PatchScalerPipeline

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--hr-dir", default="data/corpus")
ap.add_argument("--split", default="test")
ap.add_argument("--crop", type=int, default=512, help="centre crop side in HR pixels")
ap.add_argument("--seeds", type=int, default=3, help="noise seeds for the 'seeds' map")
ap.add_argument("--hards", default="0.05,0.1,0.3", help="budgets: fractions of Hard patches")
ap.add_argument("--out", default="outputs/which_patches")
args = ap.parse_args()
hards = [float(h) for h in args.hards.split(",")]

t0 = time.process_time()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    photos = grid.center_crops(load_photo_set(args.hr_dir, args.split).as_float(), args.crop)
pipe = PatchScalerPipeline.from_pretrained()
pms, rows = [], []
for name, hr in photos.items():
    pms.append(maps.photo_maps(pipe, name, hr, seeds=args.seeds))
    rows.append(maps.evaluate_maps(pms[-1], hards))
    print(f"{name}: {tuple(hr.shape[-2:])}, {pms[-1].run.layout.patches_per_image} patches, "
          f"{time.process_time() - t0:.0f} CPU s so far", flush=True)
rows = pd.concat(rows, ignore_index=True)

pd.set_option("display.width", 160)
rho = maps.spearman_table(pms)
print("\nSpearman with the true patch error of the coarse image:\n" + rho.round(3).to_string())
mean = maps.curves(rows).pivot(index="hard", columns="map", values=["psnr", "niqe"])
print("\nmean over photos, by fraction of Hard patches:\n" + mean.round(3).to_string())
paired = pd.concat([maps.paired_table(rows, "qmap"), maps.paired_table(rows, "oracle")])
print("\npaired differences a - b over photos (NIQE: negative = a more natural):")
print(paired[["hard", "nfe_per_patch", "metric", "a", "b", "mean", "low", "high"]]
      .round(3).to_string(index=False))

out = Path(args.out)
out.parent.mkdir(parents=True, exist_ok=True)
rows.to_csv(out.with_suffix(".csv"), index=False)
out.with_suffix(".json").write_text(json.dumps({
    "config": {**vars(args), "photos": len(photos), "pgs": pipe.pgs.to_dict(),
               "cpu_seconds": round(time.process_time() - t0, 1), "torch_threads": torch.get_num_threads()},
    "spearman": rho.to_dict(), "mean": maps.curves(rows).to_dict("records"),
    "paired": paired.to_dict("records")}, indent=2))
print(f"\nwrote {out.with_suffix('.csv')} and {out.with_suffix('.json')} "
      f"({time.process_time() - t0:.0f} CPU s)")

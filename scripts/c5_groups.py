"""Claim C5 on held-out photos: 1 vs 2 vs 3 groups at (nearly) equal patch-NFE, fixed in advance.

    python scripts/c5_groups.py --hr-dir data/corpus --split test --crop 256

The three plans are written down here, not chosen on the photos measured:
  1 group : every patch (T, N) = (350, 2)                                   2.0 calls per patch
  2 groups: 50% Simple (50, 1), 50% Hard (350, 3)                           2.0 calls per patch
  3 groups: the default PGS, 50/40/10% at (50, 1), (200, 2), (350, 6)       1.9 calls per patch
Paired differences over photos with a 95% percentile bootstrap (eval.claims.paired_difference).
"""

import argparse
import dataclasses
import json
import warnings
from pathlib import Path

import pandas as pd

from patchscaler_lite.config import GroupingConfig, PGSConfig
from patchscaler_lite.eval.claims import compare_plans, paired_difference
from patchscaler_lite.image_io import load_image
from patchscaler_lite.jobs.files import photos_in
from patchscaler_lite.pipeline import PatchScalerPipeline

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--hr-dir", default="data/corpus")
ap.add_argument("--split", default="test")
ap.add_argument("--crop", type=int, default=256)
ap.add_argument("--json", default="outputs/c5_groups.json")
args = ap.parse_args()

base = PGSConfig()
configs = {
    "1 group": dataclasses.replace(base, uniform=(350, 2)),
    "2 groups": dataclasses.replace(base, steps=(1, 2, 3),
                                    grouping=GroupingConfig(quantiles=(0.5, 0.0))),
    "3 groups": base,
}
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    photos = {}
    for p in photos_in(Path(args.hr_dir), args.split):
        im = load_image(p)
        t, l = max(0, (im.shape[-2] - args.crop) // 2), max(0, (im.shape[-1] - args.crop) // 2)
        photos[p.stem] = im[:, t:t + args.crop, l:l + args.crop]
rows = compare_plans(PatchScalerPipeline.from_pretrained(), photos, configs)
print(rows.groupby("method")[["psnr", "niqe", "patch_nfe"]].mean().to_string(float_format="%.3f"))
out = [paired_difference(rows, "3 groups", b, m) for b in ("1 group", "2 groups") for m in ("psnr", "niqe")]
for r in out:
    print(f"{r['a']} - {r['b']}, {r['metric']}: {r['mean']:+.3f} (95% paired bootstrap over "
          f"{r['photos']} photos: {r['low']:+.3f} .. {r['high']:+.3f})")
Path(args.json).parent.mkdir(parents=True, exist_ok=True)
Path(args.json).write_text(json.dumps({"rows": rows.to_dict("records"), "paired": out}, indent=2))
pd.set_option("display.width", 120)

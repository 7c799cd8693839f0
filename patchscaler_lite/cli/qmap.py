"""`qmap` (coarse image, confidence and groups per input) and `qmap-report` (claim C1, JSON)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..config import DEGRADATIONS
from ..jobs.qmap import qmap_report_file, run_qmap
from ..weights import default_weights
from .common import (
    add_device,
    add_force,
    add_grouping,
    add_max_pixels,
    add_preset,
    grouping_from_args,
    positive,
    resolve_device,
    seed,
)


def add_parser(sub) -> None:
    q = sub.add_parser("qmap", help="coarse x4 image, confidence heat map and group overlay per input")
    q.add_argument("inputs", nargs="+", help="image files or folders")
    q.add_argument("-o", "--out", required=True, help="output folder")
    q.add_argument("--weights", default=None, help="GRM weights file (default: the shipped GRM of "
                   "--preset)")
    add_preset(q)
    q.add_argument("--patch-size", type=positive, default=None,
                   help="Qmap patch size in HR pixels (default: the pipeline's, 32)")
    add_force(q)
    add_max_pixels(q)
    add_grouping(q)
    add_device(q)
    r = sub.add_parser("qmap-report", help="does the Qmap track the true per-patch error? (JSON)")
    r.add_argument("--hr-dir", required=True, help="folder of HR photos (e.g. data/photos)")
    r.add_argument("--split", default=None, help="only photos of this split of data/splits.json")
    r.add_argument("--degradation", default="bicubic", choices=DEGRADATIONS,
                   help=" | ".join(DEGRADATIONS) + " (default bicubic)")
    r.add_argument("--patch-size", type=positive, default=32)
    r.add_argument("--weights", default=None, help="GRM weights file (default: the shipped GRM of "
                   "--preset)")
    add_preset(r)
    r.add_argument("--json", required=True, help="output JSON file")
    r.add_argument("--seed", type=seed, default=0)
    add_force(r)
    add_device(r)


def _grm(args):
    """--weights, else the shipped GRM of --preset."""
    return args.weights or default_weights("grm", args.preset)


def run_qmap_command(args) -> int:
    rows = run_qmap(args.inputs, Path(args.out), grouping=grouping_from_args(args),
                    weights=_grm(args), device=resolve_device(args.device), force=args.force,
                    max_pixels=args.max_pixels)
    for r in rows:
        (w, h), (W, H) = r["size"], r["out_size"]
        print(f"{r['image']}: {w}x{h} -> {W}x{H}  simple {r['simple']}  medium {r['medium']}  "
              f"hard {r['hard']}")
    return 0


def run_report_command(args) -> int:
    rep = qmap_report_file(Path(args.hr_dir), Path(args.json), split=args.split,
                           degradation=args.degradation, patch_size=args.patch_size,
                           weights=_grm(args), device=resolve_device(args.device), seed=args.seed,
                           force=args.force)
    rows = [{"image": r["image"], "psnr_bicubic": r["psnr"]["bicubic"], "psnr_grm": r["psnr"]["grm"],
             "gain_db": r["psnr"]["grm"] - r["psnr"]["bicubic"], "spearman": r["spearman"],
             "spearman_heuristic": r["spearman_heuristic"]} for r in rep["images"]]
    df = pd.DataFrame(rows)
    df.loc[len(df)] = {"image": "mean", **df.drop(columns="image").mean().to_dict()}
    print(df.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"pooled over {rep['patches']} patches of {rep['patch_size']} px: "
          f"spearman {rep['spearman']:.3f} (heuristic {rep['spearman_heuristic']:.3f}); "
          f"PSNR bicubic {rep['psnr']['bicubic']:.2f} dB, GRM {rep['psnr']['grm']:.2f} dB")
    return 0

"""`bench`: speed and quality of every method on a folder of HR photos (table, JSON, CSV, plot)."""

from __future__ import annotations

from pathlib import Path

from ..config import DEGRADATIONS
from ..eval.bench import BASE_METHODS
from ..jobs.bench import bench_files
from .common import (
    add_device,
    add_force,
    add_grouping,
    add_preset,
    pgs_from_args,
    positive,
    resolve_device,
    seed,
)


def add_parser(sub) -> None:
    b = sub.add_parser("bench", help="speed/quality of bicubic, SPAN, SRMD, Real-ESRGAN, RealSR, GRM, "
                       "uniform, PGS")
    b.add_argument("--hr-dir", "--data", dest="hr_dir", required=True,
                   help="folder of HR photos (--data: the same, e.g. a corpus with --split test)")
    b.add_argument("--split", default=None, help="only photos of this split (splits.json in or "
                   "beside the folder: data/photos, a corpus)")
    b.add_argument("--degradation", default="bicubic", choices=DEGRADATIONS,
                   help=" | ".join(DEGRADATIONS) + " (default bicubic)")
    b.add_argument("--methods", default=None, help="comma-separated, of " + ", ".join(BASE_METHODS)
                   + ", uniform-<N> (default: all; the peers need pip install .[peers])")
    b.add_argument("--json", required=True)
    b.add_argument("--csv", default=None)
    b.add_argument("--plot", default=None, help="PNG: quality against seconds (Pareto view)")
    add_force(b)
    b.add_argument("--seed", type=seed, default=0)
    b.add_argument("--crop", type=positive, default=None, metavar="N",
                   help="bench a centre crop of at most N x N HR pixels of each photo")
    b.add_argument("--weights", default=None, help="folder of grm_/dit_/memory_<preset> weights "
                   "(default: the shipped ones)")
    add_preset(b)
    add_grouping(b)
    add_device(b)


def run(args) -> int:
    bench_files(Path(args.hr_dir), Path(args.json), split=args.split,
                methods=args.methods.split(",") if args.methods else None,
                degradation=args.degradation, pgs=pgs_from_args(args), weights=args.weights,
                device=resolve_device(args.device), seed=args.seed, csv=args.csv, plot=args.plot,
                crop=args.crop, force=args.force, preset=args.preset)
    return 0

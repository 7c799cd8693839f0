"""`train grm | dit`: reproduce the shipped weights (or train a tiny / base preset)."""

from __future__ import annotations

import dataclasses
import shlex
import sys
from pathlib import Path

from ..config import DEGRADATIONS, preset
from ..data import data_dir
from ..diffusion.training import train_dit
from ..errors import OutputError
from ..grm.model import load_grm
from ..grm.training import train_grm
from ..jobs.files import check_output, make_folders, remove_folders
from ..photoset import MARGIN, load_photo_set
from ..texture.store import load_memory
from ..weights import default_weights
from .common import add_device, non_negative, positive, resolve_device


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a model")
    tsub = p.add_subparsers(dest="what", required=True)
    t = tsub.add_parser("grm", help="train the Global Restoration Module on the shipped train photos")
    t.add_argument("--preset", default="lite", help="tiny | lite | base (default lite)")
    t.add_argument("--iters", type=positive, default=None, help="override the preset's iteration count")
    t.add_argument("--calib-iters", type=non_negative, default=None,
                   help="confidence-calibration steps after the joint stage (default: preset's)")
    _common(t)
    t = tsub.add_parser("dit", help="train Patch-DiT + texture encoder on GRM coarse / HR pairs")
    t.add_argument("--preset", default="lite", help="tiny | lite | base (default lite)")
    t.add_argument("--iters", type=positive, default=None, help="override the preset's iteration count")
    t.add_argument("--grm", default=None, help="GRM weights (default: shipped lite)")
    t.add_argument("--memory", default=None, help="texture memory (default: shipped lite)")
    _common(t)


def _common(t) -> None:
    t.add_argument("--degradation", default=None, choices=DEGRADATIONS,
                   help="of the training LR (default: the preset's, bicubic)")
    t.add_argument("--data", default=None, help="folder of HR photos with a splits.json in or beside "
                   "it (a built corpus: data/corpus); default: the shipped data/photos")
    t.add_argument("-o", "--out", required=True, help="output folder (checkpoint, weights, report)")
    t.add_argument("--no-resume", action="store_true", help="start over even if a checkpoint exists")
    t.add_argument("--force", action="store_true",
                   help="train again although the output folder holds finished weights")
    add_device(t)


def run(args) -> int:
    """Check the output folder, make it, train; a run that fails before its first checkpoint
    removes the folders it made (a checkpoint is kept: the next run resumes from it)."""
    pr = preset(args.preset)
    out = Path(args.out)
    _check_out(out, f"{args.what}_{pr.grm.name if args.what == 'grm' else pr.dit.dit.name}", args.force)
    made = make_folders(out)
    try:
        return _train(args, pr)
    except BaseException:
        if not (out / "checkpoint.pt").exists():
            remove_folders(made)
        raise


def _check_out(out: Path, stem: str, force: bool) -> None:
    """-o is a folder (or will be); its finished weights are replaced only with --force."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder (-o takes the output folder)")
    for suffix in (".safetensors", ".json", ".report.json"):
        check_output(out / f"{stem}{suffix}", force=force)


def _train(args, pr) -> int:
    command = "patchscaler-lite " + shlex.join(sys.argv[1:])
    device = resolve_device(args.device)
    folder = Path(args.data) if args.data else data_dir() / "photos"
    val = load_photo_set(folder, "val").as_float()
    if args.what == "dit":
        tc = pr.dit_train if args.iters is None else dataclasses.replace(pr.dit_train, iters=args.iters)
        if args.degradation is not None:
            tc = dataclasses.replace(tc, degradation=args.degradation)
        memory = load_memory(args.memory or default_weights("memory", "lite"),
                             patch_size=pr.dit.dit.patch_size)
        train = load_photo_set(folder, "train", min_side=pr.dit.dit.patch_size).as_float()
        report = train_dit(pr.dit, tc, load_grm(args.grm), memory, train, val, args.out,
                           device=device, resume=not args.no_resume, command=command)
        print(f"done in {report['seconds']:.0f} s: final {report['final']} -> {args.out}")
        return 0
    tc = pr.grm_train if args.iters is None else dataclasses.replace(pr.grm_train, iters=args.iters)
    if args.degradation is not None:
        tc = dataclasses.replace(tc, degradation=args.degradation)
    if args.calib_iters is not None:
        tc = dataclasses.replace(tc, calib_iters=args.calib_iters)
    train = load_photo_set(folder, "train", min_side=tc.crop + 2 * MARGIN * pr.grm.scale)
    print(f"train: {len(train.names)} photos, {train.megapixels:.1f} MP, {train.nbytes / 2**20:.0f} MB "
          f"as uint8; val: {len(val)} photos")
    report = train_grm(pr.grm, tc, train, val, args.out, device=device, resume=not args.no_resume,
                       command=command)
    print(f"val PSNR {report['final_val_psnr']:.2f} dB (bicubic {report['final_val_psnr_bicubic']:.2f},"
          f" gain {report['gain_db']:+.2f} dB) in {report['seconds']:.0f} s -> {args.out}")
    return 0

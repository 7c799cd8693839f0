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
from ..weights import default_weights, resolve_init
from .common import add_device, non_negative, non_negative_float, positive, resolve_device


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a model")
    tsub = p.add_subparsers(dest="what", required=True)
    t = tsub.add_parser("grm", help="train the Global Restoration Module on the shipped train photos")
    t.add_argument("--preset", default="lite", help="tiny | lite | real | base (default lite)")
    t.add_argument("--iters", type=positive, default=None, help="override the preset's iteration count")
    t.add_argument("--calib-iters", type=non_negative, default=None,
                   help="confidence-calibration steps after the joint stage (default: preset's)")
    t.add_argument("--calib-rank", type=non_negative_float, default=None,
                   help="weight of the patch-ranking term in the calibration; 0 = the paper's "
                        "bracket alone (default: preset's)")
    _common(t)
    t = tsub.add_parser("dit", help="train Patch-DiT + texture encoder on GRM coarse / HR pairs")
    t.add_argument("--preset", default="lite", help="tiny | lite | real | base (default lite)")
    t.add_argument("--iters", type=positive, default=None, help="override the preset's iteration count")
    t.add_argument("--grm", default=None, help="GRM weights (default: the shipped ones of the preset, "
                   "else lite)")
    t.add_argument("--memory", default=None, help="texture memory (default: the shipped one of the "
                   "preset, else lite)")
    _common(t)


def _common(t) -> None:
    t.add_argument("--degradation", default=None, choices=DEGRADATIONS,
                   help="of the training LR (default: the preset's, bicubic)")
    t.add_argument("--init", default=None, metavar="WEIGHTS",
                   help="fine-tune from these weights: a shipped preset name (lite) or a .safetensors "
                        "file; 'none' starts from random weights (default: the preset's, e.g. lite "
                        "for real, none for the others)")
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
    tc = _recipe(pr.grm_train if args.what == "grm" else pr.dit_train, args)
    made = make_folders(out)
    try:
        return _train(args, pr, tc)
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


def _recipe(tc, args):
    """The preset's training recipe with the command-line overrides."""
    changes = {k: v for k, v in (("iters", args.iters), ("degradation", args.degradation),
                                 ("calib_iters", getattr(args, "calib_iters", None)),
                                 ("calib_rank", getattr(args, "calib_rank", None))) if v is not None}
    if args.init is not None:
        changes["init"] = "" if args.init == "none" else args.init
    tc = dataclasses.replace(tc, **changes)
    if tc.init:
        resolve_init(tc.init, args.what)                # a missing file fails before any work
    return tc


def _shipped(kind: str, name: str):
    """The shipped weights of preset `name` if there are any, else the lite ones."""
    path = default_weights(kind, name)
    return path if path.exists() else default_weights(kind, "lite")


def _train(args, pr, tc) -> int:
    command = "patchscaler-lite " + shlex.join(sys.argv[1:])
    device = resolve_device(args.device)
    folder = Path(args.data) if args.data else data_dir() / "photos"
    val = load_photo_set(folder, "val").as_float()
    if args.what == "dit":
        memory = load_memory(args.memory or _shipped("memory", pr.name),
                             patch_size=pr.dit.dit.patch_size)
        train = load_photo_set(folder, "train", min_side=pr.dit.dit.patch_size).as_float()
        grm = load_grm(args.grm or _shipped("grm", pr.name))
        report = train_dit(pr.dit, tc, grm, memory, train, val, args.out,
                           device=device, resume=not args.no_resume, command=command)
        print(f"done in {report['seconds']:.0f} s: final {report['final']} -> {args.out}")
        return 0
    train = load_photo_set(folder, "train", min_side=tc.crop + 2 * MARGIN * pr.grm.scale)
    print(f"train: {len(train.names)} photos, {train.megapixels:.1f} MP, {train.nbytes / 2**20:.0f} MB "
          f"as uint8; val: {len(val)} photos")
    report = train_grm(pr.grm, tc, train, val, args.out, device=device, resume=not args.no_resume,
                       command=command)
    print(f"val PSNR {report['final_val_psnr']:.2f} dB (bicubic {report['final_val_psnr_bicubic']:.2f},"
          f" gain {report['gain_db']:+.2f} dB) in {report['seconds']:.0f} s -> {args.out}")
    return 0

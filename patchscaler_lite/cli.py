"""Command-line front end: `patchscaler-lite <command> ...` (also `python -m patchscaler_lite`).

Every user error is printed as one line `error: ...` on stderr with exit status 2.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import warnings
from pathlib import Path

from .errors import PatchScalerError


def _numbers(n: int, what: str, kind=float):
    """argparse type: exactly n comma-separated numbers of `kind` (float or int) -> tuple."""
    noun = "integers" if kind is int else "numbers"

    def parse(s: str) -> tuple:
        try:
            vals = tuple(kind(v) for v in s.split(","))
        except ValueError:
            vals = ()
        if len(vals) != n:
            raise argparse.ArgumentTypeError(f"{what}: expected {n} comma-separated {noun}, got {s!r}")
        return vals
    return parse


def _floats(n: int, what: str):
    return _numbers(n, what, float)


def _ints(n: int, what: str):
    return _numbers(n, what, int)


def _positive(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def resolve_device(name: str):
    """'auto' -> cuda if available else cpu; 'cuda' without CUDA is a clear error."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise PatchScalerError("--device cuda was requested but CUDA is not available on this machine")
    if name not in ("cpu", "cuda"):
        raise PatchScalerError(f"--device must be auto, cpu or cuda, got {name!r}")
    return torch.device(name)


def _add_device(p):
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto)")


def _add_grouping(p):
    g = p.add_mutually_exclusive_group()
    g.add_argument("--thresholds", type=_floats(2, "--thresholds"), default=None, metavar="G1,G2",
                   help="Qmap thresholds gamma1 > gamma2 in (0, 1) (default 0.6,0.3)")
    g.add_argument("--quantiles", type=_floats(2, "--quantiles"), default=None, metavar="F1,F2",
                   help="fractions of patches in Simple and Medium (rest Hard)")


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (`error: ...`, exit 2) instead of usage + message."""

    def error(self, message):
        print(f"error: {self.prog}: {message}", file=sys.stderr)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="patchscaler-lite", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a model")
    tsub = p.add_subparsers(dest="what", required=True)
    t = tsub.add_parser("grm", help="train the Global Restoration Module on the shipped train photos")
    t.add_argument("--preset", default="lite", help="tiny | lite (default lite)")
    t.add_argument("--iters", type=int, default=None, help="override the preset's iteration count")
    t.add_argument("--degradation", default=None, help="bicubic | realistic (default: preset's)")
    t.add_argument("-o", "--out", required=True, help="output folder (checkpoint, weights, report)")
    t.add_argument("--no-resume", action="store_true", help="start over even if a checkpoint exists")
    _add_device(t)
    t = tsub.add_parser("dit", help="train Patch-DiT + texture encoder on GRM coarse / HR pairs")
    t.add_argument("--preset", default="lite", help="tiny | lite | base (default lite)")
    t.add_argument("--iters", type=int, default=None, help="override the preset's iteration count")
    t.add_argument("--grm", default=None, help="GRM weights (default: shipped lite)")
    t.add_argument("--memory", default=None, help="texture memory (default: shipped lite)")
    t.add_argument("-o", "--out", required=True, help="output folder (checkpoint, weights, report)")
    t.add_argument("--no-resume", action="store_true", help="start over even if a checkpoint exists")
    _add_device(t)

    q = sub.add_parser("qmap", help="coarse x4 image, confidence heat map and group overlay per input")
    q.add_argument("inputs", nargs="+", help="image files or folders")
    q.add_argument("-o", "--out", required=True, help="output folder")
    q.add_argument("--weights", default=None, help="GRM weights (default: shipped lite weights)")
    q.add_argument("--patch-size", type=_positive, default=32, help="Qmap patch size in HR pixels")
    q.add_argument("--force", action="store_true", help="overwrite existing outputs")
    _add_grouping(q)
    _add_device(q)

    r = sub.add_parser("qmap-report", help="does the Qmap track the true per-patch error? (JSON)")
    r.add_argument("--hr-dir", required=True, help="folder of HR photos (e.g. data/photos)")
    r.add_argument("--split", default=None, help="only photos of this split of data/splits.json")
    r.add_argument("--degradation", default="bicubic", help="bicubic | realistic")
    r.add_argument("--patch-size", type=_positive, default=32)
    r.add_argument("--weights", default=None)
    r.add_argument("--json", required=True, help="output JSON file")
    r.add_argument("--seed", type=int, default=0)
    _add_device(r)
    u = sub.add_parser("upscale", help="x4 super-resolution with the full PatchScaler pipeline")
    u.add_argument("inputs", nargs="+", help="LR image files or folders")
    u.add_argument("-o", "--out", required=True, help="output folder (<name>_x4.png per input)")
    u.add_argument("--seed", type=int, default=0)
    u.add_argument("--starts", type=_ints(3, "--starts"), default=None, metavar="T1,T2,T3")
    u.add_argument("--steps", type=_ints(3, "--steps"), default=None, metavar="N1,N2,N3")
    u.add_argument("--uniform", type=_ints(2, "--uniform"), default=None, metavar="T,N",
                   help="baseline: every patch starts at T and takes N steps")
    u.add_argument("--no-texture", action="store_true", help="no texture prompt (ablation)")
    u.add_argument("--weights", default=None, help="folder with grm_/dit_/memory_lite.safetensors")
    u.add_argument("--force", action="store_true", help="overwrite existing outputs")
    _add_grouping(u)
    _add_device(u)

    b = sub.add_parser("bench", help="speed/quality of bicubic, Real-ESRGAN, GRM, uniform, PGS")
    b.add_argument("--hr-dir", required=True, help="folder of HR photos")
    b.add_argument("--split", default=None, help="only photos of this split of data/splits.json")
    b.add_argument("--degradation", default="bicubic", help="bicubic | realistic")
    b.add_argument("--methods", default=None, help="comma-separated (default: all)")
    b.add_argument("--json", required=True)
    b.add_argument("--csv", default=None)
    b.add_argument("--plot", default=None, help="PNG: quality against seconds (Pareto view)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--weights", default=None)
    _add_grouping(b)
    _add_device(b)

    from . import memory_cli

    memory_cli.add_parser(sub)

    d = sub.add_parser("demo", help="the main job on the shipped weights and val photos")
    d.add_argument("-o", "--out", default="outputs/demo", help="output folder (default outputs/demo)")
    d.add_argument("--weights", default=None)
    _add_device(d)
    return ap


def cmd_demo(args) -> int:
    from .demo import run_demo

    run_demo(Path(args.out), weights=args.weights, device=resolve_device(args.device))
    return 0


def _pgs_from_args(args):
    """PGSConfig from --thresholds/--quantiles/--starts/--steps/--uniform over the defaults."""
    import dataclasses

    from .sampling import PGSConfig, check_schedule

    base = PGSConfig()
    changes = {}
    if getattr(args, "starts", None) or getattr(args, "steps", None):
        changes["starts"] = args.starts or base.starts
        changes["steps"] = args.steps or base.steps
        check_schedule(changes["starts"], changes["steps"])
    if getattr(args, "uniform", None):
        check_schedule((args.uniform[0],), (args.uniform[1],))
        changes["uniform"] = args.uniform
    if args.thresholds:
        changes["thresholds"] = args.thresholds
        changes["quantiles"] = None                    # explicit thresholds replace the quantiles
    if args.quantiles:
        changes["quantiles"] = args.quantiles
    try:
        return dataclasses.replace(base, **changes)
    except ValueError as e:
        raise PatchScalerError(str(e)) from None


def cmd_upscale(args) -> int:
    from .upscale import upscale_files

    pgs = _pgs_from_args(args)
    upscale_files(args.inputs, Path(args.out), pgs=pgs, weights=args.weights,
                  device=resolve_device(args.device), seed=args.seed,
                  texture=not args.no_texture, force=args.force)
    return 0


def cmd_bench(args) -> int:
    from .upscale import bench_command

    bench_command(args, _pgs_from_args(args), resolve_device(args.device))
    return 0


def cmd_train(args) -> int:
    return cmd_train_dit(args) if args.what == "dit" else cmd_train_grm(args)


def cmd_train_dit(args) -> int:
    import dataclasses

    from .data import load_photos
    from .denoiser import DENOISER_PRESETS
    from .dit_training import DIT_TRAIN_PRESETS, train_dit
    from .restoration import load_grm
    from .texture_memory import load_memory
    from .weights import default_weights

    if args.preset not in DENOISER_PRESETS:
        raise PatchScalerError(f"unknown preset {args.preset!r}; choose from {', '.join(DENOISER_PRESETS)}")
    cfg = DENOISER_PRESETS[args.preset]
    tc = DIT_TRAIN_PRESETS[args.preset]
    if args.iters is not None:
        tc = dataclasses.replace(tc, iters=args.iters)
    memory = load_memory(args.memory or default_weights("memory", "lite"), patch_size=cfg.dit.patch_size)
    report = train_dit(cfg, tc, load_grm(args.grm), memory, load_photos("train"), load_photos("val"),
                       args.out, device=resolve_device(args.device), resume=not args.no_resume,
                       command="patchscaler-lite " + shlex.join(sys.argv[1:]))
    print(f"done in {report['seconds']:.0f} s: final {report['final']} -> {args.out}")
    return 0


def cmd_train_grm(args) -> int:
    import dataclasses

    from .config import GRM_PRESETS, GRM_TRAIN_PRESETS
    from .data import load_photos
    from .training import train_grm

    if args.preset not in GRM_PRESETS:
        raise PatchScalerError(f"unknown preset {args.preset!r}; choose from {', '.join(GRM_PRESETS)}")
    tc = GRM_TRAIN_PRESETS[args.preset]
    if args.iters is not None:
        tc = dataclasses.replace(tc, iters=args.iters)
    if args.degradation is not None:
        tc = dataclasses.replace(tc, degradation=args.degradation)
    report = train_grm(GRM_PRESETS[args.preset], tc, load_photos("train"), load_photos("val"),
                       args.out, device=resolve_device(args.device), resume=not args.no_resume,
                       command="patchscaler-lite " + shlex.join(sys.argv[1:]))
    print(f"val PSNR {report['final_val_psnr']:.2f} dB (bicubic {report['final_val_psnr_bicubic']:.2f},"
          f" gain {report['gain_db']:+.2f} dB) in {report['seconds']:.0f} s -> {args.out}")
    return 0


def cmd_qmap(args) -> int:
    from .report import run_qmap

    run_qmap(args.inputs, Path(args.out), weights=args.weights, device=resolve_device(args.device),
             patch_size=args.patch_size, thresholds=args.thresholds, quantiles=args.quantiles,
             force=args.force)
    return 0


def cmd_qmap_report(args) -> int:
    from .report import print_qmap_report, qmap_report

    rep = qmap_report(Path(args.hr_dir), Path(args.json), split=args.split,
                      degradation=args.degradation, patch_size=args.patch_size,
                      weights=args.weights, device=resolve_device(args.device), seed=args.seed)
    print_qmap_report(rep)
    return 0


def cmd_memory(args) -> int:
    from . import memory_cli

    return memory_cli.run(args)


COMMANDS = {"upscale": cmd_upscale, "bench": cmd_bench, "qmap": cmd_qmap, "qmap-report": cmd_qmap_report,
            "memory": cmd_memory, "train": cmd_train, "demo": cmd_demo}


def _show_note(message, category, filename, lineno, file=None, line=None):
    print(f"note: {message}", file=sys.stderr)


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:                            # usage errors (already printed) and --help
        return int(e.code or 0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", UserWarning)
            warnings.showwarning = _show_note          # conversions etc. as one `note:` line
            return COMMANDS[args.command](args)
    except PatchScalerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

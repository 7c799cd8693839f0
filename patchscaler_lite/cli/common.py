"""What every command shares: one-line argparse errors, number lists, seeds and counts checked when
parsing, --device, --force, grouping options."""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys

import torch

from ..config import PRESETS, GroupingConfig, PGSConfig, check_schedule, fidelity_pgs
from ..errors import PatchScalerError
from ..pipeline import MAX_LR_PIXELS
from ..weights import SHIPPED_PRESETS


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (`error: ...`, exit 2) instead of usage + message."""

    def error(self, message):
        print(f"error: {self.prog}: {message}", file=sys.stderr)
        sys.exit(2)


def numbers(n: int, what: str, kind=float):
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


def int_in(lo: int, hi: int | None, what: str):
    """argparse type: an integer in lo .. hi (hi None: no upper bound), `what` in the message."""
    def parse(s: str) -> int:
        try:
            v = int(s)
        except ValueError:
            v = None
        if v is None or v < lo or (hi is not None and v > hi):
            raise argparse.ArgumentTypeError(f"expected {what}, got {s!r}")
        return v
    return parse


def float_in(lo: float, hi: float, what: str):
    """argparse type: a finite number in lo .. hi (inclusive), `what` in the message."""
    def parse(s: str) -> float:
        try:
            v = float(s)
        except ValueError:
            v = float("nan")
        if not (lo <= v <= hi and math.isfinite(v)):                   # NaN fails the comparison
            raise argparse.ArgumentTypeError(f"expected {what}, got {s!r}")
        return v
    return parse


positive = int_in(1, None, "a positive integer")
non_negative = int_in(0, None, "an integer >= 0")
seed = int_in(0, 2**63 - 1, f"an integer in 0 .. {2**63 - 1}")    # what torch.Generator accepts
unit_interval = float_in(0.0, 1.0, "a number in [0, 1]")               # --fidelity
non_negative_float = float_in(0.0, math.inf, "a finite number >= 0")   # --calib-rank


def add_max_pixels(p) -> None:
    p.add_argument("--max-pixels", type=positive, default=MAX_LR_PIXELS, metavar="N",
                   help=f"refuse inputs above N LR pixels, read from the file header before "
                        f"decoding (default {MAX_LR_PIXELS:,}: a safety limit; time grows with the image, "
                        f"memory is bounded by the band)")


def add_force(p) -> None:
    p.add_argument("--force", action="store_true",
                   help="overwrite existing outputs (never an input; see README: outputs)")


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda if available else cpu; 'cuda' without CUDA is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise PatchScalerError("--device cuda was requested but CUDA is not available on this machine")
    if name not in ("cpu", "cuda"):
        raise PatchScalerError(f"--device must be auto, cpu or cuda, got {name!r}")
    return torch.device(name)


def add_preset(p) -> None:
    p.add_argument("--preset", default="lite", choices=SHIPPED_PRESETS,
                   help="which weights: lite (default; trained on x4 bicubic LR) | real (fine-tuned "
                        "on realistic LR: blur, noise, JPEG; for real photos)")


def add_device(p) -> None:
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto)")


def add_grouping(p) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--thresholds", type=numbers(2, "--thresholds"), default=None, metavar="G1,G2",
                   help="Qmap thresholds gamma1 > gamma2 in (0, 1) instead of the quantiles")
    g.add_argument("--quantiles", type=numbers(2, "--quantiles"), default=None, metavar="F1,F2",
                   help="fractions of patches in Simple and Medium, rest Hard (default 0.5,0.4)")


def grouping_from_args(args, base: GroupingConfig | None = None) -> GroupingConfig:
    """The default grouping with --thresholds (which replace the quantiles) or --quantiles."""
    base = GroupingConfig() if base is None else base
    changes = {}
    if getattr(args, "thresholds", None):
        changes.update(thresholds=args.thresholds, quantiles=None)
    if getattr(args, "quantiles", None):
        changes["quantiles"] = args.quantiles
    if getattr(args, "patch_size", None):           # the overlap keeps its share of the patch
        changes.update(patch_size=args.patch_size, overlap=base.overlap * args.patch_size // base.patch_size)
    return dataclasses.replace(base, **changes)


def pgs_from_args(args) -> PGSConfig:
    """PGSConfig from --fidelity/--thresholds/--quantiles/--starts/--steps/--uniform over the
    defaults. --fidelity sets the start steps (config.fidelity_pgs), so it excludes --starts and
    --uniform."""
    fidelity = getattr(args, "fidelity", None)
    if fidelity is not None and (getattr(args, "starts", None) or getattr(args, "uniform", None)):
        raise PatchScalerError("--fidelity sets the start steps: give it or --starts/--uniform, "
                               "not both")
    default = PRESETS[getattr(args, "preset", "lite")].pgs          # the preset's default plan
    base = default if fidelity is None else fidelity_pgs(fidelity, default)
    changes = {"grouping": grouping_from_args(args, base.grouping)}
    if getattr(args, "starts", None) or getattr(args, "steps", None):
        changes["starts"] = args.starts or base.starts
        changes["steps"] = args.steps or base.steps
        check_schedule(changes["starts"], changes["steps"])
    if getattr(args, "uniform", None):
        check_schedule((args.uniform[0],), (args.uniform[1],))
        changes["uniform"] = args.uniform
    return dataclasses.replace(base, **changes)

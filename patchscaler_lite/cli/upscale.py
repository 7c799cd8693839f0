"""`upscale`: x4 super-resolution of LR files with the whole PatchScaler pipeline."""

from __future__ import annotations

from pathlib import Path

from ..jobs.upscale import upscale_files
from .common import (
    add_device,
    add_force,
    add_grouping,
    add_max_pixels,
    add_preset,
    numbers,
    pgs_from_args,
    resolve_device,
    seed,
    unit_interval,
)


def add_parser(sub) -> None:
    u = sub.add_parser("upscale", help="x4 super-resolution with the full PatchScaler pipeline")
    u.add_argument("inputs", nargs="+", help="LR image files or folders")
    u.add_argument("-o", "--out", required=True, help="output folder (<name>_x4.png per input)")
    u.add_argument("--seed", type=seed, default=0)
    u.add_argument("--starts", type=numbers(3, "--starts", int), default=None, metavar="T1,T2,T3")
    u.add_argument("--steps", type=numbers(3, "--steps", int), default=None, metavar="N1,N2,N3")
    u.add_argument("--uniform", type=numbers(2, "--uniform", int), default=None, metavar="T,N",
                   help="baseline: every patch starts at T and takes N steps")
    u.add_argument("--fidelity", type=unit_interval, default=None, metavar="F",
                   help="0..1: 0 synthesises the most detail, 1 stays closest to the coarse image; "
                        "moves the groups' start steps at the same patch-NFE (default plan: 1/6)")
    u.add_argument("--no-texture", action="store_true", help="no texture prompt (ablation)")
    u.add_argument("--weights", default=None, help="folder with grm_/dit_/memory_<preset>.safetensors "
                   "(default: the shipped ones)")
    add_preset(u)
    add_force(u)
    add_max_pixels(u)
    add_grouping(u)
    add_device(u)


def run(args) -> int:
    upscale_files(args.inputs, Path(args.out), pgs=pgs_from_args(args), weights=args.weights,
                  device=resolve_device(args.device), seed=args.seed,
                  texture=not args.no_texture, force=args.force, max_pixels=args.max_pixels,
                  preset=args.preset)
    return 0

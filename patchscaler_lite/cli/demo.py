"""`demo` (what `make demo` runs): the main job on the shipped weights and the val photos."""

from __future__ import annotations

from pathlib import Path

from ..jobs.demo import run_demo
from .common import add_device, add_force, resolve_device


def add_parser(sub) -> None:
    d = sub.add_parser("demo", help="the main job on the shipped weights and val photos")
    d.add_argument("-o", "--out", default="outputs/demo", help="output folder (default outputs/demo)")
    d.add_argument("--weights", default=None)
    add_force(d)
    add_device(d)


def run(args) -> int:
    run_demo(Path(args.out), weights=args.weights, device=resolve_device(args.device), force=args.force)
    return 0

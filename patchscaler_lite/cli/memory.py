"""`memory build | query | eval`: the Reference Texture Memory on the command line."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import DEGRADATIONS, EmbedderConfig
from ..data import load_folder
from ..eval.retrieval import evaluate_retrieval
from ..image_io import list_images
from ..jobs.files import Outputs
from ..jobs.memory import build_memory_file, memory_config, query_figure
from ..photoset import split_names
from .common import add_force, positive, resolve_device, seed


def _xy(s: str) -> tuple[int, int]:
    try:
        x, y = (int(v) for v in s.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--xy: expected two integers X,Y, got {s!r}") from None
    return x, y


def add_parser(subparsers) -> None:
    """Register `memory` with its build / query / eval sub-commands on an argparse subparsers."""
    p = subparsers.add_parser("memory", help="Reference Texture Memory: build, query, eval")
    msub = p.add_subparsers(dest="memory_command", required=True)

    _add_build(msub)
    _add_query(msub)
    _add_eval(msub)


def _add_build(msub) -> None:
    b = msub.add_parser("build", help="build a texture memory from a folder of HR photos")
    b.add_argument("--images", required=True, help="folder of HR photos")
    b.add_argument("--split", default=None, help="only photos of this split (splits.json in or "
                   "beside the folder)")
    b.add_argument("--size", type=positive, default=1024, help="M: number of entries (default 1024)")
    b.add_argument("--patch-size", type=positive, default=32, help="P: patch side in HR pixels")
    b.add_argument("--n-patches", type=positive, default=50_000, help="HR patches to sample")
    b.add_argument("--seed", type=seed, default=0)
    b.add_argument("--keys", default="coarse",
                   help="coarse (default): describe each patch's GRM coarse twin, the domain of "
                        "the queries | hr: describe the HR patch itself")
    b.add_argument("--weights", default=None, help="GRM for --keys coarse (default: shipped)")
    b.add_argument("--degradation", default="bicubic", choices=DEGRADATIONS,
                   help="of the LR the coarse twins are restored from (default bicubic; the real "
                        "preset's memory: realistic)")
    b.add_argument("--descriptor", default="learned", choices=("learned", "gabor"),
                   help="learned (default): train a small texture embedding on these photos | "
                        "gabor: the fixed Gabor filter-bank descriptor")
    _add_embed_iters(b)
    b.add_argument("-o", "--out", required=True, help="output .safetensors (+ JSON beside it)")
    add_force(b)
    b.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto)")


def _add_query(msub) -> None:
    q = msub.add_parser("query", help="show the top-K memory entries for patches of a coarse image")
    q.add_argument("image", help="LR input image (or an HR photo with --hr)")
    q.add_argument("--memory", default=None, help="memory file (default: shipped memory_lite)")
    q.add_argument("--weights", default=None, help="GRM weights (default: shipped grm_lite)")
    q.add_argument("--hr", action="store_true", help="the image is HR: degrade it x4 first")
    q.add_argument("--k", type=positive, default=4, help="K entries per query (default 4)")
    q.add_argument("--xy", type=_xy, default=None, metavar="X,Y",
                   help="top-left corner of one query patch in coarse (HR) pixels")
    q.add_argument("--n", type=positive, default=4, help="query patches when --xy is not given")
    q.add_argument("-o", "--out", required=True, help="output PNG")
    add_force(q)
    q.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto)")


def _add_embed_iters(p) -> None:
    p.add_argument("--embed-iters", type=positive, default=None,
                   help=f"training steps of the learned texture embedding "
                        f"(default {EmbedderConfig.iters})")


def _add_eval(msub) -> None:
    e = msub.add_parser("eval", help="retrieval test on held-out texture halves (JSON)")
    e.add_argument("--json", required=True, help="output JSON file")
    e.add_argument("--weights", default=None, help="GRM weights (default: shipped grm_lite)")
    e.add_argument("--coarse", default="grm", help="grm | bicubic: how coarse queries are made")
    e.add_argument("--keys", default="coarse", help="coarse | hr: what the memory keys describe")
    e.add_argument("--size", type=positive, default=1024)
    e.add_argument("--k", type=positive, default=4)
    e.add_argument("--patch-size", type=positive, default=32)
    e.add_argument("--n-patches", type=positive, default=50_000)
    e.add_argument("--seed", type=seed, default=0)
    e.add_argument("--descriptor", default="learned", choices=("learned", "gabor"),
                   help="learned (default; trained on the memory photos only) | gabor")
    _add_embed_iters(e)
    e.add_argument("--ablate", action="store_true",
                   help="also score the Gabor descriptor and its texture-only and moments-only "
                        "variants")
    e.add_argument("--data", default=None, help="folder of HR photos (a corpus): halve every "
                   "photo of --split instead of the three shipped textures")
    e.add_argument("--split", default=None, help="with --data: only the photos of this split")
    add_force(e)
    e.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto)")


def run(args) -> int:
    """Dispatch `memory <sub-command>`."""
    return {"build": _build, "query": _query, "eval": _eval}[args.memory_command](args)


def _build(args) -> int:
    cfg = memory_config(args.size, args.patch_size, args.n_patches, args.descriptor, args.keys,
                        args.seed, args.degradation)
    mem = build_memory_file(args.images, Path(args.out), cfg, split=args.split, weights=args.weights,
                            device=resolve_device(args.device), embed_iters=args.embed_iters,
                            force=args.force)
    mb = Path(args.out).stat().st_size / 2**20
    print(f"memory: M={mem.size} entries of {mem.patch_size}x{mem.patch_size} from "
          f"{len(mem.source_names)} images ({cfg.n_patches} patches) in "
          f"{mem.info['build_seconds']:.1f} s -> {args.out} ({mb:.1f} MB)")
    return 0


def _query(args) -> int:
    rows = query_figure(Path(args.image), Path(args.out), memory=args.memory, weights=args.weights,
                        k=args.k, xy=args.xy, n=args.n, hr=args.hr, device=resolve_device(args.device),
                        force=args.force)
    for (x, y), hits in rows:
        print(f"({x},{y}): " + ", ".join(f"#{a} {src} {s:.3f}" for a, src, s in hits))
    print(f"-> {args.out}")
    return 0


def _eval_photos(args) -> dict:
    """photos/held_out for evaluate_retrieval: a --data folder halves every photo."""
    if args.data is None:
        return {}
    names = None if args.split is None else set(split_names(Path(args.data), args.split))
    return {"photos": load_folder(args.data, names), "held_out": None}


def _eval(args) -> int:
    inputs = [] if args.data is None else list_images([args.data])
    device = resolve_device(args.device)
    with Outputs([Path(args.json)], inputs=inputs, force=args.force) as outs:
        rep = evaluate_retrieval(weights=args.weights, coarse=args.coarse, keys=args.keys,
                                 size=args.size, k=args.k, descriptor=args.descriptor,
                                 patch_size=args.patch_size, n_patches=args.n_patches, seed=args.seed,
                                 ablate=args.ablate, device=device, embed_iters=args.embed_iters,
                                 **_eval_photos(args))
        outs.write_json(Path(args.json), rep)
    vals = sorted(rep["per_texture"].values())
    per = (", ".join(f"{n} {v:.2f}" for n, v in rep["per_texture"].items()) if len(vals) <= 5 else
           f"{len(vals)} photos: worst {vals[0]:.2f}, median {vals[len(vals) // 2]:.2f}")
    print(f"top-1 accuracy {rep['top1_accuracy']:.3f} ({per}); among the held-out photos only "
          f"{rep['top1_accuracy_textures_only']:.3f}; top-{rep['K']} any {rep['topk_accuracy']:.3f}; "
          f"M={rep['M']} in {rep['seconds']:.1f} s -> {args.json}")
    quart = ", ".join("-" if v is None else f"{v:.2f}" for v in rep["top1_by_texture_quartile"])
    print(f"top-1 by the query patch's gradient energy, flattest quarter first: {quart}")
    return 0

"""`patchscaler-lite memory build | query | eval`: the Reference Texture Memory on the command line.

Wiring (in cli.py): `memory_cli.add_parser(sub)` in build_parser and
COMMANDS["memory"] = memory_cli.run.
Heavy imports (torch, matplotlib) happen inside the handlers, so `--help` stays fast.
"""

from __future__ import annotations

import dataclasses
import json
import time
import warnings
from pathlib import Path

from .errors import PatchScalerError

TEXTURES = ("brick", "grass", "gravel")


def _xy(s: str) -> tuple[int, int]:
    import argparse
    try:
        x, y = (int(v) for v in s.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--xy: expected two integers X,Y, got {s!r}") from None
    return x, y


def add_parser(subparsers) -> None:
    """Register `memory` with its build / query / eval sub-commands on an argparse subparsers."""
    p = subparsers.add_parser("memory", help="Reference Texture Memory: build, query, eval")
    msub = p.add_subparsers(dest="memory_command", required=True)

    b = msub.add_parser("build", help="build a texture memory from a folder of HR photos")
    b.add_argument("--images", required=True, help="folder of HR photos")
    b.add_argument("--split", default=None, help="only photos of this split of data/splits.json")
    b.add_argument("--size", type=int, default=1024, help="M: number of entries (default 1024)")
    b.add_argument("--patch-size", type=int, default=32, help="P: patch side in HR pixels")
    b.add_argument("--n-patches", type=int, default=50_000, help="HR patches to sample")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--keys", default="coarse",
                   help="coarse (default): describe each patch's GRM coarse twin, the domain of "
                        "the queries | hr: describe the HR patch itself")
    b.add_argument("--weights", default=None, help="GRM for --keys coarse (default: shipped)")
    b.add_argument("--descriptor", default="learned", choices=("learned", "gabor"),
                   help="learned (default): train a small texture embedding on these photos | "
                        "gabor: the fixed Gabor filter-bank descriptor")
    b.add_argument("--embed-iters", type=int, default=None,
                   help="training steps of the learned texture embedding (default 500)")
    b.add_argument("-o", "--out", required=True, help="output .safetensors (+ JSON beside it)")
    b.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto)")

    q = msub.add_parser("query", help="show the top-K memory entries for patches of a coarse image")
    q.add_argument("image", help="LR input image (or an HR photo with --hr)")
    q.add_argument("--memory", default=None, help="memory file (default: shipped memory_lite)")
    q.add_argument("--weights", default=None, help="GRM weights (default: shipped grm_lite)")
    q.add_argument("--hr", action="store_true", help="the image is HR: degrade it x4 first")
    q.add_argument("--k", type=int, default=4, help="K entries per query (default 4)")
    q.add_argument("--xy", type=_xy, default=None, metavar="X,Y",
                   help="top-left corner of one query patch in coarse (HR) pixels")
    q.add_argument("--n", type=int, default=4, help="query patches when --xy is not given")
    q.add_argument("-o", "--out", required=True, help="output PNG")
    q.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto)")

    e = msub.add_parser("eval", help="retrieval test on held-out texture halves (JSON)")
    e.add_argument("--json", required=True, help="output JSON file")
    e.add_argument("--weights", default=None, help="GRM weights (default: shipped grm_lite)")
    e.add_argument("--coarse", default="grm", help="grm | bicubic: how coarse queries are made")
    e.add_argument("--keys", default="coarse", help="coarse | hr: what the memory keys describe")
    e.add_argument("--size", type=int, default=1024)
    e.add_argument("--k", type=int, default=4)
    e.add_argument("--patch-size", type=int, default=32)
    e.add_argument("--n-patches", type=int, default=50_000)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--descriptor", default="learned", choices=("learned", "gabor"),
                   help="learned (default; trained on the memory photos only) | gabor")
    e.add_argument("--ablate", action="store_true",
                   help="also score the Gabor descriptor and its texture-only and moments-only "
                        "variants")
    e.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto)")


def run(args) -> int:
    """Dispatch `memory <sub-command>`."""
    return {"build": cmd_build, "query": cmd_query, "eval": cmd_eval}[args.memory_command](args)


# ---------------------------------------------------------------------------- helpers
def load_image_folder(folder, names: set[str] | None = None) -> dict:
    """{stem: (3, H, W)} of the readable images in `folder` (sorted); other files are skipped with
    a warning. PatchScalerError if the folder is missing or holds no readable image."""
    from .image_io import IMAGE_SUFFIXES, ImageConversionWarning, load_image

    d = Path(folder)
    if not d.is_dir():
        raise PatchScalerError(f"{d}: not a folder")
    files = sorted(p for p in d.iterdir() if p.is_file() and not p.name.startswith("."))
    if names is not None:
        files = [p for p in files if p.name in names or p.stem in names]
    others = [p.name for p in files if p.suffix.lower() not in IMAGE_SUFFIXES]
    if others:
        warnings.warn(f"{d}: skipping {len(others)} non-image file(s): {', '.join(others[:5])}",
                      stacklevel=2)
    images = {}
    for p in files:
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ImageConversionWarning)
                images[p.stem] = load_image(p)
        except PatchScalerError as err:
            warnings.warn(f"skipping {err}", stacklevel=2)
    if not images:
        raise PatchScalerError(f"{d}: no readable images found")
    return images


def _device(name):
    from .cli import resolve_device
    return resolve_device(name)


def _generator(seed: int):
    import torch
    return torch.Generator().manual_seed(seed)


def _restorer(kind: str, weights, device):
    """LR (1, 3, h, w) -> coarse (1, 3, 4h, 4w): the GRM (default) or bicubic upsampling."""
    from .data import bicubic_up
    if kind == "bicubic":
        return lambda lr: bicubic_up(lr, 4)
    if kind != "grm":
        raise PatchScalerError(f"--coarse must be grm or bicubic, got {kind!r}")
    from .restoration import load_grm
    grm = load_grm(weights).to(device)
    return lambda lr: grm(lr)[0]


def _key_images(keys: str, images: dict, restore):
    from .texture_memory import coarse_twins
    if keys == "hr":
        return None
    if keys != "coarse":
        raise PatchScalerError(f"--keys must be coarse or hr, got {keys!r}")
    return coarse_twins(images, restore)


def _embedder(kind: str, images: dict, patch_size: int, seed: int, iters: int | None = None):
    """(TextureEmbedder, report) trained on `images` for kind 'learned'; (None, None) for 'gabor'."""
    if kind == "gabor":
        return None, None
    if kind != "learned":
        raise PatchScalerError(f"--descriptor must be learned or gabor, got {kind!r}")
    from .texture_embed import EmbedderConfig, train_embedder
    cfg = EmbedderConfig(patch_size=patch_size, seed=seed)
    if iters is not None:
        cfg = dataclasses.replace(cfg, iters=iters)
    return train_embedder(images, cfg)


def _descriptor(patch_size: int):
    from .descriptor import descriptor_for
    return descriptor_for(patch_size)


# ---------------------------------------------------------------------------- build
def cmd_build(args) -> int:
    from .texture_memory import build_memory, save_memory

    names = None
    if args.split is not None:
        from .data import photo_paths
        names = {p.name for p in photo_paths(args.split)}
    device = _device(args.device)
    if args.size > args.n_patches:
        raise PatchScalerError(f"memory size M={args.size} is larger than the number of sampled "
                               f"patches ({args.n_patches})")
    images = {n: im.to(device) for n, im in load_image_folder(args.images, names).items()}
    cfg = _descriptor(args.patch_size)
    if min(min(im.shape[-2:]) for im in images.values()) < args.patch_size:
        small = next(n for n, im in images.items() if min(im.shape[-2:]) < args.patch_size)
        raise PatchScalerError(f"patch size {args.patch_size} is larger than image {small}")
    restore = _restorer("grm", args.weights, device) if args.keys == "coarse" else None
    kims = _key_images(args.keys, images, restore)
    embedder, emb_report = _embedder(args.descriptor, kims or images, args.patch_size, args.seed,
                                     args.embed_iters)
    mem = build_memory(images, args.size, cfg, n_patches=args.n_patches, key_images=kims,
                       embedder=embedder, generator=_generator(args.seed))
    if emb_report is not None:
        mem.info["embedder_training"] = emb_report
    grm = str(args.weights or "shipped grm_lite") if args.keys == "coarse" else None
    mem.info.update(seed=args.seed, images=str(args.images), split=args.split, keys=args.keys,
                    grm_weights=grm)
    save_memory(mem, args.out)
    mb = Path(args.out).stat().st_size / 2**20
    print(f"memory: M={mem.size} entries of {mem.patch_size}x{mem.patch_size} from {len(images)} "
          f"images ({args.n_patches} patches) in {mem.info['build_seconds']:.1f} s -> {args.out} "
          f"({mb:.1f} MB)")
    return 0


# ---------------------------------------------------------------------------- query
def _default_memory() -> Path:
    from .weights import default_weights
    return default_weights("memory", "lite")


def _query_corners(H: int, W: int, P: int, xy, n: int) -> list[tuple[int, int]]:
    if xy is not None:
        x, y = xy
        if not (0 <= x <= W - P and 0 <= y <= H - P):
            raise PatchScalerError(f"--xy {x},{y}: a {P}x{P} patch must fit inside the coarse "
                                   f"image ({W}x{H}); use 0 <= X <= {W - P}, 0 <= Y <= {H - P}")
        return [(x, y)]
    if H < P or W < P:
        raise PatchScalerError(f"coarse image {W}x{H} is smaller than one {P}x{P} patch")
    grid = [(x, y) for y in range(0, H - P + 1, P) for x in range(0, W - P + 1, P)]
    step = max(1, len(grid) // max(n, 1))
    return grid[step // 2::step][:n]


def cmd_query(args) -> int:
    import torch

    from .data import degrade
    from .image_io import load_image, write_atomic
    from .restoration import load_grm
    from .texture_memory import load_memory, retrieve

    device = _device(args.device)
    mem = load_memory(args.memory or _default_memory())
    P = mem.patch_size
    if not 1 <= args.k <= mem.size:
        raise PatchScalerError(f"--k {args.k} must be between 1 and the memory size M={mem.size}")
    img = load_image(args.image).to(device)[None]                          # (1, 3, H, W)
    lr = degrade(img, 4) if args.hr else img
    grm = load_grm(args.weights).to(device)
    with torch.no_grad():
        coarse, _ = grm(lr)                                                 # (1, 3, 4h, 4w)
    H, W = coarse.shape[-2:]
    corners = _query_corners(H, W, P, args.xy, args.n)
    queries = torch.stack([coarse[0, :, y:y + P, x:x + P] for x, y in corners])   # (n, 3, P, P)
    idx, sims = retrieve(mem, queries, args.k)                              # (n, K)
    from .viz_memory import plot_retrievals
    fig = plot_retrievals(queries.cpu(), mem.values_float(idx.cpu()), sims.cpu(),
                          mem.source_of(idx), [f"({x},{y})" for x, y in corners])
    write_atomic(Path(args.out), lambda f: fig.savefig(f, format="png", dpi=100))
    for (x, y), i, s in zip(corners, idx.tolist(), sims.tolist(), strict=True):
        print(f"({x},{y}): " + ", ".join(f"#{a} {mem.source_names[int(mem.sources[a])]} {b:.3f}"
                                         for a, b in zip(i, s, strict=True)))
    print(f"-> {args.out}")
    return 0


# ---------------------------------------------------------------------------- eval
def cmd_eval(args) -> int:
    from .image_io import write_atomic

    rep = evaluate_retrieval(weights=args.weights, coarse=args.coarse, keys=args.keys,
                             size=args.size, k=args.k, descriptor=args.descriptor,
                             patch_size=args.patch_size, n_patches=args.n_patches, seed=args.seed,
                             ablate=args.ablate, device=_device(args.device))
    write_atomic(Path(args.json), lambda f: f.write(json.dumps(rep, indent=2).encode()))
    per = ", ".join(f"{n} {v:.2f}" for n, v in rep["per_texture"].items())
    print(f"top-1 accuracy {rep['top1_accuracy']:.3f} ({per}); among the 3 textures only "
          f"{rep['top1_accuracy_textures_only']:.3f}; "
          f"top-{rep['K']} any {rep['topk_accuracy']:.3f}; "
          f"M={rep['M']} in {rep['seconds']:.1f} s -> {args.json}")
    return 0


def evaluate_retrieval(*, weights=None, coarse: str = "grm", keys: str = "coarse",
                       size: int = 1024, k: int = 4, descriptor: str = "learned",
                       patch_size: int = 32, n_patches: int = 50_000, seed: int = 0,
                       ablate: bool = False, device=None) -> dict:
    """Memory from the left half of each texture photo + the other train photos (distractors);
    queries: coarse patches (x4 bicubic LR -> GRM, or bicubic upsampling) of the right halves.
    keys='coarse' describes the memory halves' coarse twins made the same way as the queries.
    descriptor='learned' trains the texture embedding on the memory photos' key images only (the
    query halves are never seen). Returns top-1 accuracy (entry from the same photo), per
    texture, among textures only, top-K."""
    import dataclasses

    from .data import crop_to_scale, load_photos
    from .patches import patchify
    from .texture_memory import coarse_twins

    t0 = time.perf_counter()
    photos = load_photos("train")
    mem_imgs, halves = {}, {}
    for name, im in photos.items():
        im = crop_to_scale(im, 4)                                          # twins align exactly
        if name in TEXTURES:
            w = im.shape[-1] // 2
            mem_imgs[name], halves[name] = im[..., :w].to(device), im[..., w:].to(device)
        else:
            mem_imgs[name] = im.to(device)
    restore = _restorer(coarse, weights, device)
    up = coarse_twins(halves, restore)                                     # {name: (3, H, W/2)}
    queries = {n: patchify(u[None], patch_size)[0] for n, u in up.items()}  # (n_q, 3, P, P) each
    kims = _key_images(keys, mem_imgs, restore)
    cfg = _descriptor(patch_size)
    embedder, emb_report = _embedder(descriptor, kims or mem_imgs, patch_size, seed)
    rep = _score(mem_imgs, kims, queries, cfg, size, k, n_patches, seed, embedder)
    rep.update(K=k, coarse=coarse, keys=keys, weights=str(weights or "shipped grm_lite"),
               descriptor_kind=descriptor, embedder_training=emb_report,
               patch_size=patch_size,
               n_patches=n_patches, seed=seed,
               descriptor=cfg.to_dict() if embedder is None else embedder.cfg.to_dict(),
               seconds=round(time.perf_counter() - t0, 2))
    if ablate:                                      # Gabor descriptor variants as baselines
        no_moments = dict(contrast_weight=0.0, intensity_weight=0.0, color_weight=0.0)
        variants = [("texture_only", no_moments), ("moments_only", dict(texture_weight=0.0))]
        if embedder is not None:
            variants.insert(0, ("gabor", {}))
        for label, kw in variants:
            r = _score(mem_imgs, kims, queries, dataclasses.replace(cfg, **kw), size, k,
                       n_patches, seed)
            keep = ("top1_accuracy", "top1_accuracy_textures_only", "per_texture")
            rep[f"ablation_{label}"] = {key: r[key] for key in keep}
    return rep


def _score(mem_imgs, key_images, queries, cfg, size, k, n_patches, seed, embedder=None) -> dict:
    """Build one memory and score the queries against it (see evaluate_retrieval)."""
    import torch

    from .texture_memory import build_memory, retrieve, search

    mem = build_memory(mem_imgs, size, cfg, n_patches=n_patches, key_images=key_images,
                       embedder=embedder, generator=_generator(seed))
    names = mem.source_names
    tex_rows = torch.tensor([i for i, s in enumerate(mem.sources.tolist()) if names[s] in TEXTURES])
    hits = hits3 = hitsk = total = 0
    per = {}
    t_query = time.perf_counter()
    for name, q in queries.items():
        idx, _ = retrieve(mem, q, k)                                       # (n_q, K)
        src = mem.sources[idx.cpu()]                                       # (n_q, K)
        want = names.index(name)
        h = (src[:, 0] == want)
        per[name] = round(h.float().mean().item(), 4)
        hits += int(h.sum())
        hitsk += int((src == want).any(1).sum())
        total += len(q)
        i3, _ = search(mem.embed(q), mem.keys[tex_rows], 1)                # textures only
        hits3 += int((mem.sources[tex_rows[i3[:, 0].cpu()]] == want).sum())
    return {"top1_accuracy": round(hits / total, 4), "per_texture": per,
            "top1_accuracy_textures_only": round(hits3 / total, 4),
            "topk_accuracy": round(hitsk / total, 4), "queries": total, "M": mem.size,
            "build_seconds": mem.info["build_seconds"],
            "query_seconds": round(time.perf_counter() - t_query, 3),
            "memory_sources": {n: int((mem.sources == i).sum()) for i, n in enumerate(names)}}

"""File-level jobs behind `upscale` and `bench`: inputs checked first, outputs written atomically."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .errors import PatchScalerError
from .image_io import ensure_dir, load_image, save_image, write_atomic
from .report import _check_inputs


def load_pipeline(weights, device, pgs):
    from .pipeline import PatchScalerPipeline

    return PatchScalerPipeline.from_pretrained(weights, pgs=pgs).to(device)


def upscale_files(inputs, out: Path, *, pgs, weights=None, device="cpu", seed=0, texture=True,
                  force=False) -> list[Path]:
    """Upscale each input to out/<stem>_x4.png; refuse clashes before any work is done."""
    paths = _check_inputs(inputs)
    targets = [out / f"{p.stem}_x4.png" for p in paths]
    if len(set(targets)) != len(targets):
        raise PatchScalerError("two inputs share a file name stem; upscale them into separate folders")
    ensure_dir(out)
    for p, t in zip(paths, targets):
        if t.exists() and not force:
            raise PatchScalerError(f"{t}: exists (use --force to overwrite)")
        if t.resolve() == p.resolve():
            raise PatchScalerError(f"{t}: output would overwrite its input")
    pipe = load_pipeline(weights, device, pgs)
    for p, t in tqdm(list(zip(paths, targets)), desc="upscale", unit="img"):
        lr = load_image(p)[None].to(pipe.device)
        res = pipe(lr, generator=torch.Generator().manual_seed(seed), texture=texture)
        save_image(res.image, t)
        tqdm.write(f"{p.name} -> {t}  ({res.image.shape[-1]}x{res.image.shape[-2]}, patch-NFE "
                   f"{res.total_nfe}, groups " + "/".join(str(v) for v in res.counts.values()) + ")")
    return targets


def bench_command(args, pgs, device) -> dict:
    """`patchscaler-lite bench`: run, print the means table, write JSON (+ CSV, + plot)."""
    import pandas as pd

    from .bench import default_methods, run_bench
    from .report import _photos_in

    paths = _photos_in(Path(args.hr_dir), args.split)
    pipe = load_pipeline(args.weights, device, pgs)
    methods = args.methods.split(",") if args.methods else default_methods(pipe)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        photos = {p.stem: load_image(p) for p in paths}
    res = run_bench(pipe, photos, methods, degradation=args.degradation, seed=args.seed)
    table = pd.DataFrame(res["methods"]).T
    cols = [c for c in ("psnr", "ssim", "niqe", "seconds", "patch_nfe", "peak_mem_mb",
                        "seconds_per_mp", "psnr_hard") if c in table]
    print(f"device: {res['device']}; PGS {res['pgs_config']}")
    print(table[cols].to_string(float_format=lambda v: f"{v:.3f}"))
    write_atomic(Path(args.json), lambda f: f.write(json.dumps(res, indent=2).encode()))
    if args.csv:
        df = pd.DataFrame(res["rows"])
        write_atomic(Path(args.csv), lambda f: f.write(df.to_csv(index=False).encode()))
    if args.plot:
        from .viz import pareto_plot

        pareto_plot(res, Path(args.plot))
    return res

"""`make demo`: the whole method on the shipped weights and the val photos.

For each val photo: x4 bicubic LR, the PatchScaler output, the GRM's coarse image, its confidence
heat map and the group overlay go to outputs/demo/; then the benchmark table of every method on
the val split is printed and saved (bench.json, bench.csv, pareto.png).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..data import crop_to_scale, data_dir, degrade, load_photos
from ..viz import group_overlay, heatmap
from .bench import bench_files
from .files import Outputs
from .upscale import load_pipeline

KINDS = ("lr", "patchscaler", "coarse", "confidence", "groups")
BENCH_FILES = ("bench.json", "bench.csv", "pareto.png")


def run_demo(out: Path, *, weights=None, device="cpu", seed: int = 0, bench: bool = True,
             photos: dict | None = None, force: bool = False) -> dict:
    """Upscale the val photos (or `photos` {name: (3, H, W)}) into `out`, then print and save the
    val benchmark (bench=False skips it). Returns the bench result, or {}.

    Every output is checked before the work and all are published together (files.Outputs).
    """
    out = Path(out)
    photos = load_photos("val") if photos is None else photos
    names = [out / f"{n}_{k}.png" for n in photos for k in KINDS]
    outputs = Outputs(names + [out / b for b in (BENCH_FILES if bench else ())], force=force)
    pipe = load_pipeline(weights, device)
    with outputs as outs:
        for name, hr in photos.items():
            _demo_photo(pipe, name, hr, seed, out, outs)
        if not bench:
            return {}
        return bench_files(data_dir() / "photos", out / "bench.json", split="val", seed=seed,
                           csv=out / "bench.csv", plot=out / "pareto.png", pipe=pipe, outputs=outs)


def _demo_photo(pipe, name: str, hr, seed: int, out: Path, outs: Outputs) -> None:
    """The five images of one photo, and one line."""
    hr = crop_to_scale(hr, 4)[None].to(pipe.device)                    # (1, 3, H, W)
    lr = degrade(hr, 4)
    res = pipe(lr, generator=torch.Generator().manual_seed(seed))
    outs.write_image(out / f"{name}_lr.png", lr)
    outs.write_image(out / f"{name}_patchscaler.png", res.image)
    outs.write_image(out / f"{name}_coarse.png", res.coarse)
    outs.write_image(out / f"{name}_confidence.png", heatmap(res.confidence))
    outs.write_image(out / f"{name}_groups.png", group_overlay(res.coarse[0], res.groups[0], res.layout))
    print(f"{name}: {lr.shape[-1]}x{lr.shape[-2]} -> {hr.shape[-1]}x{hr.shape[-2]}, groups "
          + ", ".join(f"{k} {v}" for k, v in res.counts.items())
          + f", patch-NFE {res.total_nfe}, {sum(res.seconds.values()):.1f} s")

"""`make demo`: the whole method on the shipped weights and the val photos.

For each val photo: x4 bicubic LR, the PatchScaler output, the GRM's coarse image, its confidence
heat map and the group overlay go to outputs/demo/; then the benchmark table of every method on
the val split is printed and saved (bench.json, bench.csv, pareto.png).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..data import crop_to_scale, data_dir, degrade, load_photos
from ..image_io import ensure_dir, save_image
from ..viz import group_overlay, heatmap
from .bench import bench_files
from .upscale import load_pipeline


def run_demo(out: Path, *, weights=None, device="cpu", seed: int = 0, bench: bool = True,
             photos: dict | None = None) -> dict:
    """Upscale the val photos (or `photos` {name: (3, H, W)}) into `out`, then print and save the
    val benchmark (bench=False skips it). Returns the bench result, or {}."""
    out = ensure_dir(out)
    pipe = load_pipeline(weights, device)
    for name, hr in (load_photos("val") if photos is None else photos).items():
        hr = crop_to_scale(hr, 4)[None].to(pipe.device)
        lr = degrade(hr, 4)
        res = pipe(lr, generator=torch.Generator().manual_seed(seed))
        save_image(lr, out / f"{name}_lr.png")
        save_image(res.image, out / f"{name}_patchscaler.png")
        save_image(res.coarse, out / f"{name}_coarse.png")
        save_image(heatmap(res.confidence), out / f"{name}_confidence.png")
        save_image(group_overlay(res.coarse[0], res.groups[0], res.layout), out / f"{name}_groups.png")
        print(f"{name}: {lr.shape[-1]}x{lr.shape[-2]} -> {hr.shape[-1]}x{hr.shape[-2]}, groups "
              + ", ".join(f"{k} {v}" for k, v in res.counts.items())
              + f", patch-NFE {res.total_nfe}, {sum(res.seconds.values()):.1f} s")
    if not bench:
        return {}
    return bench_files(data_dir() / "photos", out / "bench.json", split="val", seed=seed,
                       csv=out / "bench.csv", plot=out / "pareto.png", pipe=pipe)

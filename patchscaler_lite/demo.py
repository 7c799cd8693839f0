"""`make demo`: the whole method on the shipped weights and the val photos.

For each val photo: x4 bicubic LR, the PatchScaler output, the GRM's coarse image, its confidence
heat map and the group overlay go to outputs/demo/; then the benchmark table of every method on
the val split is printed and saved (bench.json, bench.csv, pareto.png).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import torch

from . import viz
from .data import crop_to_scale, degrade, load_photos
from .image_io import ensure_dir, save_image
from .patches import make_layout
from .sampling import PGSConfig
from .upscale import bench_command, load_pipeline


def run_demo(out: Path, *, weights=None, device="cpu", seed: int = 0, bench: bool = True) -> dict:
    """Upscale the val photos into `out`, then print and save the val benchmark."""
    out = ensure_dir(out)
    pipe = load_pipeline(weights, device, PGSConfig())
    for name, hr in load_photos("val").items():
        hr = crop_to_scale(hr, 4)[None].to(pipe.device)
        lr = degrade(hr, 4)
        res = pipe(lr, generator=torch.Generator().manual_seed(seed))
        save_image(lr, out / f"{name}_lr.png")
        save_image(res.image, out / f"{name}_patchscaler.png")
        save_image(res.coarse, out / f"{name}_coarse.png")
        save_image(viz.heatmap(res.confidence), out / f"{name}_confidence.png")
        layout = make_layout(res.coarse.shape, pipe.patch_size, pipe.overlap)
        save_image(viz.group_overlay(res.coarse[0], res.groups[0], layout), out / f"{name}_groups.png")
        print(f"{name}: {lr.shape[-1]}x{lr.shape[-2]} -> {hr.shape[-1]}x{hr.shape[-2]}, groups "
              + ", ".join(f"{k} {v}" for k, v in res.counts.items())
              + f", patch-NFE {res.total_nfe}, {sum(res.seconds.values()):.1f} s")
    if not bench:
        return {}
    data = Path(__file__).resolve().parent.parent / "data" / "photos"
    args = SimpleNamespace(hr_dir=str(data), split="val", degradation="bicubic", methods=None,
                           json=str(out / "bench.json"), csv=str(out / "bench.csv"),
                           plot=str(out / "pareto.png"), seed=seed, weights=weights)
    return bench_command(args, pipe.pgs, pipe.device)

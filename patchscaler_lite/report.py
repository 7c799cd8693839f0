"""The GRM/Qmap jobs behind the CLI: per-image Qmap outputs, the Qmap-vs-true-error report, demo.

Claim C1 of the paper: the confidence map tracks real reconstruction difficulty. `qmap_report`
measures it as the Spearman rank correlation, pooled over every patch of every image, between
patch difficulty (1 - mean confidence) and the true per-patch MSE of the coarse image, and
compares it with a free heuristic (gradient energy of the bicubic upscale).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .data import bicubic_up, crop_to_scale, degrade
from .errors import ImageError, PatchScalerError
from .grouping import group_patches, qmap
from .image_io import ensure_dir, list_images, load_image, save_image, write_atomic
from .patches import patch_means
from .restoration import load_grm, restore


def gradient_energy(x: Tensor) -> Tensor:
    """Per-pixel squared gradient magnitude of the luma of (B, 3, H, W) -> (B, 1, H, W)."""
    y = x.mean(1, keepdim=True)
    gx = F.pad(y[..., :, 1:] - y[..., :, :-1], (0, 1, 0, 0))
    gy = F.pad(y[..., 1:, :] - y[..., :-1, :], (0, 0, 0, 1))
    return gx.square() + gy.square()


def spearman(a, b) -> float:
    """Spearman rank correlation of two 1-D sequences (scipy, average ranks for ties)."""
    from scipy.stats import spearmanr

    return float(spearmanr(np.asarray(a), np.asarray(b)).statistic)


def _check_inputs(inputs) -> list[Path]:
    paths = list_images(inputs)
    if not paths:
        raise PatchScalerError(f"no image files found in {', '.join(map(str, inputs))}")
    for p in paths:
        if not p.exists():
            raise ImageError(f"{p}: no such file")
    return paths


def _prepare_out(out: Path, names: list[str], force: bool) -> None:
    ensure_dir(out)
    clash = [n for n in names if (out / n).exists()]
    if clash and not force:
        raise PatchScalerError(f"{out / clash[0]}: exists (use --force to overwrite)")


def run_qmap(inputs, out: Path, *, weights=None, device="cpu", patch_size=32, thresholds=None,
             quantiles=None, force=False) -> list[dict]:
    """For each LR input: <stem>_coarse.png (x4), <stem>_confidence.png, <stem>_groups.png."""
    from . import viz
    from .config import GroupingConfig

    GroupingConfig(patch_size, thresholds or (0.6, 0.3), quantiles)     # validate before any work
    paths = _check_inputs(inputs)
    kinds = ("coarse", "confidence", "groups")
    _prepare_out(Path(out), [f"{p.stem}_{k}.png" for p in paths for k in kinds], force)
    model = load_grm(weights).to(device)
    rows = []
    for p in paths:
        lr = load_image(p)[None].to(device)
        coarse, conf = restore(model, lr)
        grp = group_patches(conf, patch_size, thresholds=thresholds or (0.6, 0.3), quantiles=quantiles)
        save_image(coarse, out / f"{p.stem}_coarse.png")
        save_image(viz.heatmap(conf), out / f"{p.stem}_confidence.png")
        save_image(viz.group_overlay(coarse[0], grp.groups[0], grp.layout), out / f"{p.stem}_groups.png")
        rows.append({"image": p.name, **grp.counts})
        print(f"{p.name}: {lr.shape[-1]}x{lr.shape[-2]} -> {coarse.shape[-1]}x{coarse.shape[-2]}  "
              + "  ".join(f"{k} {v}" for k, v in grp.counts.items()))
    return rows


def image_stats(model, hr: Tensor, lr: Tensor, patch_size: int) -> dict:
    """Per-patch difficulty, heuristic and true MSE, plus PSNR/SSIM, for one (1, 3, H, W) image."""
    from .metrics import psnr, ssim

    coarse, conf = restore(model, lr)
    bic = bicubic_up(lr, model.cfg.scale)
    q, layout = qmap(conf, patch_size)
    mse = patch_means((coarse - hr).square(), layout)
    heur = patch_means(gradient_energy(bic), layout)
    return {
        "difficulty": (1 - q).flatten().cpu(), "mse": mse.flatten().cpu(),
        "heuristic": heur.flatten().cpu(), "coarse": coarse, "conf": conf,
        "psnr": {"bicubic": psnr(bic, hr), "grm": psnr(coarse, hr)},
        "ssim": {"bicubic": ssim(bic, hr), "grm": ssim(coarse, hr)},
    }


def _photos_in(hr_dir: Path, split: str | None) -> list[Path]:
    paths = _check_inputs([hr_dir])
    if split is not None:
        splits_file = Path(hr_dir).parent / "splits.json"
        if not splits_file.is_file():
            raise PatchScalerError(f"--split given but {splits_file} does not exist")
        names = json.loads(splits_file.read_text()).get(split)
        if names is None:
            raise PatchScalerError(f"split {split!r} not in {splits_file}")
        paths = [p for p in paths if p.name in names]
    return paths


def qmap_report(hr_dir: Path, json_path: Path, *, split=None, degradation="bicubic",
                patch_size=32, weights=None, device="cpu", seed=0) -> dict:
    """Degrade HR photos, run the GRM, correlate Qmap difficulty with true patch MSE; write JSON."""
    import warnings

    paths = _photos_in(hr_dir, split)
    model = load_grm(weights).to(device)
    t0 = time.time()
    images, pooled = [], {"difficulty": [], "mse": [], "heuristic": []}
    for i, p in enumerate(paths):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            hr = crop_to_scale(load_image(p), model.cfg.scale)[None].to(device)
        lr = degrade(hr, model.cfg.scale, degradation, generator=torch.Generator().manual_seed(seed + i))
        st = image_stats(model, hr, lr, patch_size)
        for k in pooled:
            pooled[k].append(st[k])
        images.append({"image": p.name, "size": list(hr.shape[-2:]), "patches": len(st["mse"]),
                       "psnr": st["psnr"], "ssim": st["ssim"],
                       "spearman": spearman(st["difficulty"], st["mse"]),
                       "spearman_heuristic": spearman(st["heuristic"], st["mse"])})
    cat = {k: torch.cat(v).numpy() for k, v in pooled.items()}
    report = {
        "spearman": spearman(cat["difficulty"], cat["mse"]),
        "spearman_heuristic": spearman(cat["heuristic"], cat["mse"]),
        "psnr": {m: float(np.mean([r["psnr"][m] for r in images])) for m in ("bicubic", "grm")},
        "ssim": {m: float(np.mean([r["ssim"][m] for r in images])) for m in ("bicubic", "grm")},
        "patches": int(len(cat["mse"])), "patch_size": patch_size, "degradation": degradation,
        "weights": str(weights or "shipped lite"), "device": str(device),
        "seconds": round(time.time() - t0, 2), "images": images,
    }
    json_path = Path(json_path)
    ensure_dir(json_path.parent)
    write_atomic(json_path, lambda f: f.write(json.dumps(report, indent=2).encode()))
    return report


def print_qmap_report(rep: dict) -> None:
    import pandas as pd

    rows = [{"image": r["image"], "psnr_bicubic": r["psnr"]["bicubic"], "psnr_grm": r["psnr"]["grm"],
             "gain_db": r["psnr"]["grm"] - r["psnr"]["bicubic"], "spearman": r["spearman"],
             "spearman_heuristic": r["spearman_heuristic"]} for r in rep["images"]]
    df = pd.DataFrame(rows)
    mean = df.drop(columns="image").mean().to_dict()
    df.loc[len(df)] = {"image": "mean", **mean}
    print(df.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"pooled over {rep['patches']} patches of {rep['patch_size']} px: "
          f"spearman {rep['spearman']:.3f} (heuristic {rep['spearman_heuristic']:.3f}); "
          f"PSNR bicubic {rep['psnr']['bicubic']:.2f} dB, GRM {rep['psnr']['grm']:.2f} dB")

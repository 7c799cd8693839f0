"""`qmap` and `qmap-report`: per-image GRM outputs, and the Qmap-vs-true-error report (claim C1)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch

from ..config import GroupingConfig
from ..eval.difficulty import qmap_report
from ..grm.model import load_grm, restore
from ..grouping import group_patches
from ..image_io import ensure_dir, load_image, save_image, write_atomic
from ..viz import group_overlay, heatmap
from .files import check_inputs, photos_in, prepare_out

KINDS = ("coarse", "confidence", "groups")


def run_qmap(inputs, out: Path, *, grouping: GroupingConfig | None = None, weights=None,
             device="cpu", force: bool = False) -> list[dict]:
    """For each LR input: <stem>_coarse.png (x4), <stem>_confidence.png, <stem>_groups.png.

    grouping: the one the pipeline uses by default, so `qmap` and `upscale` agree on a photo.
    """
    grouping = GroupingConfig() if grouping is None else grouping
    paths = check_inputs(inputs)
    prepare_out(Path(out), [f"{p.stem}_{k}.png" for p in paths for k in KINDS], force)
    model = load_grm(weights).to(device)
    rows = []
    for p in paths:
        lr = load_image(p)[None].to(device)
        coarse, conf = restore(model, lr)
        grp = group_patches(conf, grouping)
        save_image(coarse, out / f"{p.stem}_coarse.png")
        save_image(heatmap(conf), out / f"{p.stem}_confidence.png")
        save_image(group_overlay(coarse[0], grp.groups[0], grp.layout), out / f"{p.stem}_groups.png")
        rows.append({"image": p.name, "size": (lr.shape[-1], lr.shape[-2]),
                     "out_size": (coarse.shape[-1], coarse.shape[-2]), **grp.counts})
    return rows


def qmap_report_file(hr_dir: Path, json_path: Path, *, split=None, degradation="bicubic",
                     patch_size=32, weights=None, device="cpu", seed=0) -> dict:
    """eval.difficulty.qmap_report on the photos of a folder (or one split); writes the JSON."""
    model = load_grm(weights).to(device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        photos = {p.name: load_image(p) for p in photos_in(hr_dir, split)}
    with torch.no_grad():
        report = qmap_report(model, photos, degradation=degradation, patch_size=patch_size, seed=seed)
    report["weights"] = str(weights or "shipped lite")
    json_path = Path(json_path)
    ensure_dir(json_path.parent)
    write_atomic(json_path, lambda f: f.write(json.dumps(report, indent=2).encode()))
    return report

"""`qmap` and `qmap-report`: per-image GRM outputs, and the Qmap-vs-true-error report (claim C1)."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from ..config import GroupingConfig
from ..errors import PatchScalerError
from ..eval.difficulty import qmap_report
from ..grm.model import load_grm, restore
from ..grouping import group_patches
from ..image_io import ImageInfo, load_image
from ..pipeline import MAX_LR_PIXELS
from ..viz import group_overlay, heatmap
from .files import Outputs, check_inputs, photo_infos

KINDS = ("coarse", "confidence", "groups")
SCALE = 4                     # the GRM's: a photo's coarse image is 4 * (H // 4) x 4 * (W // 4)


def run_qmap(inputs, out: Path, *, grouping: GroupingConfig | None = None, weights=None,
             device="cpu", force: bool = False, max_pixels: int = MAX_LR_PIXELS) -> list[dict]:
    """For each LR input: <stem>_coarse.png (x4), <stem>_confidence.png, <stem>_groups.png.

    grouping: the one the pipeline uses by default, so `qmap` and `upscale` agree on a photo.
    Inputs (header, `max_pixels`, one decode) and outputs are checked before the GRM loads; the
    outputs are published together at the end (files.Outputs).
    """
    grouping = GroupingConfig() if grouping is None else grouping
    paths = [info.path for info in check_inputs(inputs, max_pixels=max_pixels)]
    outputs = Outputs([Path(out) / f"{p.stem}_{k}.png" for p in paths for k in KINDS], inputs=paths,
                      force=force)
    model = load_grm(weights).to(device)
    with outputs as outs:
        return [_qmap_one(model, p, Path(out), grouping, device, outs) for p in paths]


def _qmap_one(model, path: Path, out: Path, grouping: GroupingConfig, device, outs: Outputs) -> dict:
    lr = load_image(path)[None].to(device)                               # (1, 3, h, w)
    coarse, conf = restore(model, lr)                                    # (1, 3, H, W), (1, 1, H, W)
    grp = group_patches(conf, grouping)
    outs.write_image(out / f"{path.stem}_coarse.png", coarse)
    outs.write_image(out / f"{path.stem}_confidence.png", heatmap(conf))
    outs.write_image(out / f"{path.stem}_groups.png", group_overlay(coarse[0], grp.groups[0], grp.layout))
    return {"image": path.name, "size": (lr.shape[-1], lr.shape[-2]),
            "out_size": (coarse.shape[-1], coarse.shape[-2]), **grp.counts}


def qmap_report_file(hr_dir: Path, json_path: Path, *, split=None, degradation="bicubic",
                     patch_size=32, weights=None, device="cpu", seed=0, force: bool = False) -> dict:
    """eval.difficulty.qmap_report on the photos of a folder (or one split); writes strict JSON."""
    infos = photo_infos(hr_dir, split)
    _check_patch_size(infos, patch_size)
    outputs = Outputs([json_path], inputs=[i.path for i in infos], force=force)
    model = load_grm(weights).to(device)
    with outputs as outs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            photos = {i.path.name: load_image(i.path) for i in infos}
        with torch.no_grad():
            report = qmap_report(model, photos, degradation=degradation, patch_size=patch_size,
                                 seed=seed)
        report["weights"] = str(weights or "shipped lite")
        outs.write_json(json_path, report)
    return report


def _check_patch_size(infos: list[ImageInfo], patch_size: int) -> None:
    """--patch-size must fit in every photo's coarse image (checked on the headers)."""
    small = min(infos, key=lambda i: min(i.width, i.height))
    side = SCALE * (min(small.width, small.height) // SCALE)
    if patch_size > side:
        raise PatchScalerError(f"--patch-size {patch_size} is larger than photo {small.path} "
                               f"({small.width}x{small.height}); use at most {side}")

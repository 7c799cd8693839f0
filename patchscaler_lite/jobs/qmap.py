"""`qmap` and `qmap-report`: per-image GRM outputs, and the Qmap-vs-true-error report (claim C1)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from ..config import GroupingConfig
from ..errors import PatchScalerError
from ..eval.difficulty import qmap_report
from ..grm.model import load_grm
from ..grouping import Grouping, assign_groups
from ..image_io import ImageInfo, load_image, to_uint8
from ..patches import make_layout
from ..pipeline import MAX_LR_PIXELS
from ..streaming import PATCH_BUDGET, stream_qmap
from ..viz import group_overlay, heatmap
from .files import Outputs, check_inputs, photo_infos

KINDS = ("coarse", "confidence", "groups")
OVERLAY_ROWS = 256            # HR rows tinted at a time
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
    """The three images of one LR file, drawn a band of patch rows at a time (streaming.py: the
    GRM with an exact halo), so memory holds three uint8 canvases, never the float HR image."""
    lr = load_image(path)[None].to(device)                               # (1, 3, h, w)
    H, W = lr.shape[-2] * SCALE, lr.shape[-1] * SCALE
    layout = make_layout((1, 3, H, W), grouping.patch_size, grouping.overlap)
    coarse, conf = (np.empty((H, W, 3), np.uint8) for _ in range(2))

    def draw(row0: int, c: torch.Tensor, k: torch.Tensor) -> None:
        coarse[row0:row0 + c.shape[-2]] = to_uint8(c)
        conf[row0:row0 + c.shape[-2]] = heatmap(k)
    with torch.no_grad():
        q, _ = stream_qmap(model, lr, layout, PATCH_BUDGET, sink=draw)
    grp = Grouping(q[None], assign_groups(q[None], grouping), layout)
    outs.write_image(out / f"{path.stem}_coarse.png", coarse)
    outs.write_image(out / f"{path.stem}_confidence.png", conf)
    for r in range(0, H, OVERLAY_ROWS):                                  # in place, row chunks
        coarse[r:r + OVERLAY_ROWS] = group_overlay(coarse[r:r + OVERLAY_ROWS], grp.groups[0], layout,
                                                   row0=r)
    outs.write_image(out / f"{path.stem}_groups.png", coarse)
    return {"image": path.name, "size": (lr.shape[-1], lr.shape[-2]), "out_size": (W, H), **grp.counts}


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

"""Image quality metrics: a thin layer over pyiqa (no hand-written formulas).

All functions take float RGB tensors (B, 3, H, W) or (3, H, W) in [0, 1] and return the batch mean
as a float. Images are rounded to the 8-bit grid first, as if saved to PNG, so numbers match what
a user measures on the written files. Y-channel variants use ITU-R BT.601 YCbCr, the SR convention.

Work offline: psnr, psnry, ssim, ssimy, niqe (parameters shipped, see assets/NIQE_PROVENANCE.md),
piqe. Need weight files in TORCH_HOME (downloaded by pyiqa when online): lpips, dists, musiq,
clipiqa, maniqa; without them you get one MetricWeightsError naming the missing file and where to
put it.
"""

from __future__ import annotations

import contextlib
import functools
import io
import re
from pathlib import Path

import torch
from torch import Tensor
from torch.hub import get_dir

from ..data import quantize8
from ..errors import PatchScalerError
from ..image_io import check_image

ASSETS = Path(__file__).resolve().parent.parent / "assets"
NIQE_PARAMS = ASSETS / "niqe_modelparameters.mat"

# our name -> (pyiqa name, options, needs a reference image, lower is better)
METRICS: dict[str, tuple[str, dict, bool, bool]] = {
    "psnr": ("psnr", {"test_y_channel": False}, True, False),
    "psnry": ("psnr", {"test_y_channel": True, "color_space": "ycbcr"}, True, False),
    "ssim": ("ssim", {"test_y_channel": False}, True, False),
    "ssimy": ("ssim", {"test_y_channel": True, "color_space": "ycbcr"}, True, False),
    "niqe": ("niqe", {"pretrained_model_path": str(NIQE_PARAMS)}, False, True),
    "piqe": ("piqe", {}, False, True),
    "lpips": ("lpips", {}, True, True),
    "dists": ("dists", {}, True, True),
    "musiq": ("musiq", {}, False, False),
    "clipiqa": ("clipiqa", {}, False, False),
    "maniqa": ("maniqa", {}, False, False),
}
OFFLINE_METRICS = ("psnr", "psnry", "ssim", "ssimy", "niqe", "piqe")


class MetricWeightsError(PatchScalerError):
    """A deep metric's weight file is not on disk and cannot be downloaded."""


@functools.lru_cache(maxsize=32)
def get_metric(name: str, device: str = "cpu"):
    """The pyiqa metric object for one of METRICS (created once per name and device)."""
    if name not in METRICS:
        raise PatchScalerError(f"unknown metric {name!r}; choose from {', '.join(METRICS)}")
    import pyiqa  # optional-heavy: ~3-5 s to import, so only when a metric is first used

    pyiqa_name, opts, _, _ = METRICS[name]
    log = io.StringIO()
    try:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            return pyiqa.create_metric(pyiqa_name, device=torch.device(device), as_loss=False, **opts)
    except Exception as e:  # pyiqa raises URLError, OSError, HF hub errors ... when offline
        raise MetricWeightsError(_missing_message(name, log.getvalue(), e)) from None


def _missing_message(name: str, log: str, exc: Exception) -> str:
    """Name the file pyiqa tried to download (from its 'Downloading: "url" to path' line)."""
    hits = re.findall(r'Downloading:? "?([^"\s]+)"? to (\S+)', log)
    if hits:
        url, path = hits[-1]
        return (f"metric {name!r} needs the weight file {Path(path).name} (from {url}), not found "
                f"offline: place it at {path}")
    return (f"metric {name!r} needs weight files that are not available offline "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}); place "
            f"them under {get_dir()}/pyiqa or {get_dir()}/checkpoints")


def score(name: str, x: Tensor, ref: Tensor | None = None) -> Tensor:
    """Per-image scores (B,) of metric `name`; `ref` is required for full-reference metrics."""
    x = quantize8(check_image(x, "image"))
    if name not in METRICS:
        raise PatchScalerError(f"unknown metric {name!r}; choose from {', '.join(METRICS)}")
    needs_ref = METRICS[name][2]
    metric = get_metric(name, str(x.device))
    with torch.no_grad():
        if needs_ref:
            if ref is None:
                raise PatchScalerError(f"metric {name!r} needs a reference image")
            ref = quantize8(check_image(ref, "reference"))
            if ref.shape != x.shape:
                raise PatchScalerError(f"image {tuple(x.shape)} and reference {tuple(ref.shape)} "
                                       "differ in shape")
            return metric(x.float(), ref.float()).reshape(-1).float().cpu()
        return metric(x.float()).reshape(-1).float().cpu()


def psnr(x: Tensor, ref: Tensor, y_channel: bool = False) -> float:
    """PSNR in dB (RGB, or Y of YCbCr), batch mean."""
    return score("psnry" if y_channel else "psnr", x, ref).mean().item()


def ssim(x: Tensor, ref: Tensor, y_channel: bool = False) -> float:
    """SSIM (per channel on RGB, or on Y), batch mean."""
    return score("ssimy" if y_channel else "ssim", x, ref).mean().item()


def niqe(x: Tensor) -> float:
    """NIQE (no reference; lower is more natural), batch mean. Needs at least ~96 px a side."""
    return score("niqe", x).mean().item()


def piqe(x: Tensor) -> float:
    """PIQE (no reference; lower is better), batch mean."""
    return score("piqe", x).mean().item()

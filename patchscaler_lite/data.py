"""Shipped photographs and LR synthesis (degradation).

Images are float (B, 3, H, W) RGB in [0, 1]. `degrade` returns LR of size (H // s, W // s):
an HR whose sides are not multiples of the scale is first cropped at the bottom/right to
(s * (H // s), s * (W // s)); `crop_to_scale` gives the HR that matches.
"""

from __future__ import annotations

import io
import json
import math
import os
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from .config import DEGRADATIONS
from .errors import PatchScalerError
from .image_io import IMAGE_SUFFIXES, ImageConversionWarning, check_image, load_image


def data_dir() -> Path:
    """The shipped `data/` folder (repo checkout), or $PATCHSCALER_DATA when set."""
    env = os.environ.get("PATCHSCALER_DATA")
    d = Path(env) if env else Path(__file__).resolve().parent.parent / "data"
    if not (d / "splits.json").is_file():
        raise PatchScalerError(f"{d}: shipped photos not found (set PATCHSCALER_DATA to the data/ folder)")
    return d


def photo_paths(split: str = "all") -> list[Path]:
    """Paths of the shipped photos of one split: 'train', 'val' or 'all'."""
    d = data_dir()
    splits = json.loads((d / "splits.json").read_text())
    if split == "all":
        names = splits["train"] + splits["val"]
    elif split in splits:
        names = splits[split]
    else:
        raise PatchScalerError(f"unknown split {split!r}; choose train, val or all")
    return [d / "photos" / n for n in names]


def load_photos(split: str = "all") -> dict[str, Tensor]:
    """{name: (3, H, W) float in [0, 1]} for the shipped photos of a split (grayscale -> RGB)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ImageConversionWarning)  # the textures are grayscale on purpose
        return {p.stem: load_image(p) for p in photo_paths(split)}


def crop_to_scale(hr: Tensor, scale: int) -> Tensor:
    """Crop (..., H, W) at the bottom/right so both sides are multiples of `scale`."""
    H, W = hr.shape[-2:]
    if H < scale or W < scale:
        raise PatchScalerError(f"image {H}x{W} is smaller than the scale factor {scale}")
    return hr[..., : H - H % scale, : W - W % scale]


def quantize8(x: Tensor) -> Tensor:
    """Round to the 8-bit grid, as if saved to and read from a PNG."""
    return torch.round(x.clamp(0, 1) * 255.0) / 255.0


def degrade(hr: Tensor, scale: int = 4, kind: str = "bicubic", *,
            generator: torch.Generator | None = None, quantize: bool = True) -> Tensor:
    """Synthesize an LR image: (B, 3, H, W) or (3, H, W) in [0, 1] -> (B, 3, H // s, W // s).

    bicubic:   antialiased bicubic downsampling (the classic SR benchmark setting).
    realistic: second-order Real-ESRGAN style chain with seeded random parameters per image:
               the blur -> resize -> noise -> JPEG stage twice (`_realistic_one` lists the ranges),
               the first resize to about half size, the second to exactly 1/s.
    The HR is cropped to a multiple of `scale` first (see `crop_to_scale`).
    """
    if kind not in DEGRADATIONS:
        raise PatchScalerError(f"unknown degradation {kind!r}; choose one of {', '.join(DEGRADATIONS)}")
    if scale < 1:
        raise PatchScalerError(f"scale must be a positive integer, got {scale}")
    x = crop_to_scale(check_image(hr, "hr"), scale)
    if kind == "bicubic":
        lr = bicubic_down(x, scale)
        return quantize8(lr) if quantize else lr
    return torch.cat([_realistic_one(xi[None], scale, generator) for xi in x])


def bicubic_down(x: Tensor, scale: int) -> Tensor:
    """Antialiased bicubic downsampling by an integer factor, clamped to [0, 1]."""
    h, w = x.shape[-2] // scale, x.shape[-1] // scale
    return F.interpolate(x, size=(h, w), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)


def bicubic_up(x: Tensor, scale: int) -> Tensor:
    """Bicubic upsampling by an integer factor, clamped to [0, 1] (the classic SR baseline)."""
    return F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False).clamp(0, 1)


def _uniform(g: torch.Generator | None, lo: float, hi: float) -> float:
    return lo + (hi - lo) * torch.rand((), generator=g).item()


def _gaussian_kernel(sx: float, sy: float, theta: float, size: int = 21) -> Tensor:
    """Anisotropic Gaussian blur kernel (size, size), normalised to sum 1."""
    r = torch.arange(size, dtype=torch.float32) - size // 2
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    c, s = math.cos(theta), math.sin(theta)
    u, v = c * xx + s * yy, -s * xx + c * yy
    k = torch.exp(-0.5 * ((u / sx) ** 2 + (v / sy) ** 2))
    return k / k.sum()


def _jpeg(x: Tensor, quality: int) -> Tensor:
    """Round-trip one image (1, 3, h, w) through Pillow's JPEG encoder."""
    arr = (x[0].permute(1, 2, 0).clamp(0, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=quality)
    out = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"), dtype=np.float32) / 255
    return torch.from_numpy(out).permute(2, 0, 1)[None].to(x)


def _stage(x: Tensor, size: tuple[int, int], g: torch.Generator | None, blur: tuple[float, float],
           p_blur: float, noise: tuple[float, float]) -> Tensor:
    """One order of the chain on (1, 3, H, W): blur (probability p_blur; sigma in `blur`, anisotropic
    half of the time) -> resize to `size` (bicubic, bilinear or area) -> Gaussian noise (sigma in
    `noise` / 255, grey 40% of the time) -> JPEG (quality 30-95). Clamped to [0, 1] after each step."""
    if torch.rand((), generator=g).item() < p_blur:
        sx, sy = _uniform(g, *blur), _uniform(g, *blur)
        if torch.rand((), generator=g).item() < 0.5:
            sy = sx                                         # isotropic half of the time
        k = _gaussian_kernel(sx, sy, _uniform(g, 0, math.pi)).to(x)
        x = F.conv2d(F.pad(x, [10] * 4, mode="replicate"), k.expand(3, 1, -1, -1), groups=3)
    mode = ["bicubic", "bilinear", "area"][int(torch.randint(3, (), generator=g))]
    kw = {"antialias": True, "align_corners": False} if mode != "area" else {}
    x = F.interpolate(x, size=size, mode=mode, **kw).clamp(0, 1)
    sigma = _uniform(g, *noise) / 255.0
    gray = torch.rand((), generator=g).item() < 0.4
    x = (x + sigma * torch.randn((1, 1 if gray else 3, *size), generator=g).to(x)).clamp(0, 1)
    return _jpeg(x, int(_uniform(g, 30, 95)))


def _realistic_one(x: Tensor, scale: int, g: torch.Generator | None) -> Tensor:
    """One image (1, 3, H, W) -> (1, 3, H // s, W // s): Real-ESRGAN's second-order chain, milder.

    Order 1: blur sigma 0.2-3 -> resize to (s/2 x a jitter in 0.75-1.25) times smaller -> noise
    1-20 -> JPEG. Order 2: blur sigma 0.2-1.5 with probability 0.8 -> resize to exactly 1/s ->
    noise 1-15 -> JPEG. (Real-ESRGAN's noise goes to 30/25 and adds sinc filters and Poisson noise.)
    """
    H, W = x.shape[-2:]
    f = max(1.0, scale / 2 * _uniform(g, 0.75, 1.25))
    mid = (max(H // scale, round(H / f)), max(W // scale, round(W / f)))
    x = _stage(x, mid, g, (0.2, 3.0), 1.0, (1, 20))
    return _stage(x, (H // scale, W // scale), g, (0.2, 1.5), 0.8, (1, 15))


def load_folder(folder, names: set[str] | None = None) -> dict:
    """{stem: (3, H, W)} of the readable images in `folder` (sorted); other files are skipped with
    a warning. PatchScalerError if the folder is missing or holds no readable image."""
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

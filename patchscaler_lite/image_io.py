"""Image I/O: the one place where files become float RGB tensors in [0, 1] and back.

Every other module sees images only as float tensors, (3, H, W) or (B, 3, H, W), RGB, in [0, 1].
Unusual files are converted, and the conversion is announced with an `ImageConversionWarning`:
grayscale is replicated to RGB, palette images are expanded, alpha is composited over white,
16-bit images are scaled by 1/65535 (full precision kept).
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from .errors import ImageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
MAX_PIXELS = 64_000_000  # refuse inputs above this many pixels before decoding them


class ImageConversionWarning(UserWarning):
    """An input file was converted to 8/16-bit RGB on load (grayscale, palette, alpha, 16-bit)."""


def _to_float_rgb(im: Image.Image, name: str) -> np.ndarray:
    """PIL image of any common mode -> float32 array (H, W, 3) in [0, 1]."""
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float64)
        peak = 65535.0 if (mode.startswith("I;16") or arr.max() > 255) else 255.0
        warnings.warn(f"{name}: {mode} grayscale scaled by 1/{peak:.0f} and replicated to RGB",
                      ImageConversionWarning, stacklevel=3)
        arr = np.clip(arr / peak, 0, 1)
        return np.repeat(arr[..., None], 3, axis=2).astype(np.float32)
    if mode == "F":
        raise ImageError(f"{name}: floating-point images (mode F) are not supported; save as 8/16-bit")
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
        warnings.warn(f"{name}: alpha channel composited over white", ImageConversionWarning, stacklevel=3)
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, rgba).convert("RGB")
    elif mode != "RGB":
        what = {"L": "grayscale", "P": "palette", "1": "1-bit", "CMYK": "CMYK"}.get(mode, mode)
        warnings.warn(f"{name}: {what} image converted to RGB", ImageConversionWarning, stacklevel=3)
        im = im.convert("RGB")
    return np.asarray(im, dtype=np.float32) / 255.0


def load_image(path: str | os.PathLike) -> Tensor:
    """Read an image file -> float32 tensor (3, H, W), RGB, in [0, 1]. Never modifies the file.

    Raises ImageError (one line) for a missing path, a directory, a non-image, a truncated or
    corrupt file, or an image above MAX_PIXELS.
    """
    p = Path(path)
    if not p.exists():
        raise ImageError(f"{p}: no such file")
    if p.is_dir():
        raise ImageError(f"{p}: is a directory, expected an image file")
    try:
        with Image.open(p) as im:
            if im.width * im.height > MAX_PIXELS:
                raise ImageError(f"{p}: {im.width}x{im.height} is larger than the limit of "
                                 f"{MAX_PIXELS:,} pixels")
            im.load()
            arr = _to_float_rgb(im, p.name)
    except UnidentifiedImageError:
        raise ImageError(f"{p}: not an image file (Pillow cannot identify it)") from None
    except Image.DecompressionBombError as e:
        raise ImageError(f"{p}: refused as too large ({e})") from None
    except (OSError, SyntaxError, ValueError) as e:
        if isinstance(e, ImageError):
            raise
        raise ImageError(f"{p}: truncated or corrupt image ({e})") from None
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()   # (3, H, W)


def check_image(x: Tensor, name: str = "image") -> Tensor:
    """Validate an image tensor: (3, H, W) or (B, 3, H, W), floating, finite, within [0, 1].

    Returns it as (B, 3, H, W). Raises ImageError with a one-line reason otherwise.
    """
    if not isinstance(x, Tensor):
        raise ImageError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4 or x.shape[1] != 3:
        raise ImageError(f"{name}: expected shape (3, H, W) or (B, 3, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ImageError(f"{name}: expected a floating tensor in [0, 1], got {x.dtype}")
    if not torch.isfinite(x).all():
        raise ImageError(f"{name}: contains NaN or infinite values")
    lo, hi = x.min().item(), x.max().item()
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise ImageError(f"{name}: values must lie in [0, 1], got range [{lo:.3g}, {hi:.3g}]")
    return x


def to_uint8(x: Tensor) -> np.ndarray:
    """(3, H, W) or (1, 3, H, W) float in [0, 1] -> uint8 array (H, W, 3), rounded."""
    if x.dim() == 4:
        if x.shape[0] != 1:
            raise ImageError(f"to_uint8 takes one image, got a batch of {x.shape[0]}")
        x = x[0]
    if not torch.isfinite(x).all():
        raise ImageError("to_uint8: image contains NaN or infinite values")
    x = x.detach().float().clamp(0, 1).cpu()
    return (x.permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)


def save_image(x: Tensor | np.ndarray, path: str | os.PathLike, *, overwrite: bool = True) -> Path:
    """Write an image atomically: a temporary file in the same folder, then os.replace.

    x: float tensor (3, H, W) / (1, 3, H, W) in [0, 1], or a uint8 array (H, W, 3).
    Nothing half-written is ever left at `path`.
    """
    p = Path(path)
    if p.exists() and not overwrite:
        raise ImageError(f"{p}: exists (use --force to overwrite)")
    arr = x if isinstance(x, np.ndarray) else to_uint8(x)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ImageError(f"{p}: expected a uint8 array (H, W, 3), got {arr.dtype} {arr.shape}")
    write_atomic(p, lambda f: Image.fromarray(arr).save(f, format=_format_for(p)))
    return p


def _format_for(p: Path) -> str:
    fmt = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".tif": "TIFF",
           ".tiff": "TIFF", ".webp": "WEBP"}.get(p.suffix.lower())
    if fmt is None:
        raise ImageError(f"{p}: unsupported output extension {p.suffix!r}; use .png")
    return fmt


def write_atomic(path: Path, write) -> None:
    """Call write(fileobj) on a temp file beside `path`, then rename it into place."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise ImageError(f"{folder}: output directory does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as e:
        raise ImageError(f"{folder}: output directory is not writable ({e.strerror})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)       # mkstemp creates 0600; outputs get ordinary modes
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def ensure_dir(path: str | os.PathLike) -> Path:
    """mkdir -p with a one-line ImageError when the folder cannot be created."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ImageError(f"{p}: cannot create output directory ({e.strerror})") from None
    if not os.access(p, os.W_OK):
        raise ImageError(f"{p}: output directory is not writable")
    return p


def list_images(paths, *, recursive: bool = False) -> list[Path]:
    """Expand files and folders into a sorted list of image files (by suffix)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            it = p.rglob("*") if recursive else p.iterdir()
            out += sorted(q for q in it if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES)
        else:
            out.append(p)
    return out

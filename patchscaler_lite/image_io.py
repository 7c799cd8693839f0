"""Image I/O: the one place where files become float RGB tensors in [0, 1] and back.

Every other module sees images only as float tensors, (3, H, W) or (B, 3, H, W), RGB, in [0, 1].
Reading: the header is checked (size, frames) before any pixel is decoded. Unusual files are
converted, and each conversion is announced with an `ImageConversionWarning`: grayscale is
replicated to RGB, palette images are expanded, alpha is composited over white, 16-bit images
(grayscale, RGB, RGBA) keep their 16-bit precision (scaled by 1/65535), an EXIF orientation is
applied, and a file of several frames (animated GIF/PNG, multi-page TIFF) gives its first frame.
Writing: `save_image`, through atomic.write_atomic (a hidden partial file, then a rename).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from .atomic import ensure_dir, write_atomic
from .errors import ImageError

__all__ = ["IMAGE_SUFFIXES", "MAX_PIXELS", "ImageConversionWarning", "ImageInfo", "check_image",
           "ensure_dir", "image_writer", "list_images", "load_image", "probe_image", "save_image",
           "to_uint8", "write_atomic"]   # ensure_dir, write_atomic: atomic.py's, for older callers

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
MAX_PIXELS = 64_000_000  # refuse inputs above this many pixels before decoding them
EXIF_ORIENTATION = 0x0112


class ImageConversionWarning(UserWarning):
    """An input file was converted on load (grayscale, palette, alpha, 16-bit, EXIF, frames)."""


@dataclass(frozen=True)
class ImageInfo:
    """What an image file's header says; nothing decoded. frames: 1, or more (animation, pages)."""

    path: Path
    width: int
    height: int
    format: str
    mode: str
    frames: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


def _check_path(p: Path) -> None:
    """A one-line ImageError for a path that cannot be an image file (said plainly)."""
    try:
        st = os.stat(p)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise ImageError(f"{p}: symbolic link loop") from None
        if os.path.islink(p):
            raise ImageError(f"{p}: broken symbolic link (to {os.readlink(p)})") from None
        if e.errno == errno.ENOENT:
            raise ImageError(f"{p}: no such file") from None
        raise ImageError(f"{p}: cannot read ({e.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        raise ImageError(f"{p}: is a directory, expected an image file")


@contextlib.contextmanager
def _opened(p: Path):
    """Image.open(p); every failure, while opening or decoding, as one ImageError naming p."""
    _check_path(p)
    try:
        with Image.open(p) as im:
            yield im
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{p}: not an image file (Pillow cannot identify it)") from None
    except Image.DecompressionBombError as e:
        raise ImageError(f"{p}: refused as too large ({e})") from None
    except PermissionError as e:
        raise ImageError(f"{p}: cannot read ({e.strerror})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageError(f"{p}: truncated or corrupt image ({e})") from None


def _info(p: Path, im: Image.Image) -> ImageInfo:
    info = ImageInfo(p, im.width, im.height, im.format or "?", im.mode, getattr(im, "n_frames", 1))
    if info.pixels > MAX_PIXELS:
        raise ImageError(f"{p}: {im.width}x{im.height} is larger than the limit of {MAX_PIXELS:,} "
                         f"pixels")
    return info


def probe_image(path: str | os.PathLike, *, decode: bool = False) -> ImageInfo:
    """Open an image file's header: size, format, mode, frames (MAX_PIXELS checked, nothing decoded).

    decode=True then decodes the pixels once (discarded) to find a truncated or corrupt file.
    Raises ImageError (one line naming the file) like load_image.
    """
    p = Path(path)
    with _opened(p) as im:
        info = _info(p, im)
        if decode:
            im.load()
    return info


def load_image(path: str | os.PathLike) -> Tensor:
    """Read an image file -> float32 tensor (3, H, W), RGB, in [0, 1]. Never modifies the file.

    Raises ImageError (one line) for a missing path, a directory, a symbolic link loop, a
    non-image, a truncated or corrupt file, or an image above MAX_PIXELS (checked on the header).
    """
    p = Path(path)
    with _opened(p) as im:
        info = _info(p, im)
        arr = _decode(p, im, info)
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()   # (3, H, W)


def _decode(p: Path, im: Image.Image, info: ImageInfo) -> np.ndarray:
    """First frame, upright, as float32 (H, W, 3) in [0, 1]; each conversion announced."""
    if info.frames > 1:
        _note(f"{p.name}: {info.frames} frames ({info.format}); only the first frame is used")
    raw = _rawmode(im)                                   # before getexif: it may decode a PNG
    orientation = im.getexif().get(EXIF_ORIENTATION, 1)
    if orientation in range(2, 9):
        _note(f"{p.name}: EXIF orientation {orientation} applied (the image is turned upright)")
    wide = _sixteen_bit(p, im, raw)
    if wide is not None:
        return _float_from_16bit(wide, p.name)
    if ";16" in raw and im.mode not in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        _note(f"{p.name}: 16-bit {im.mode} reduced to 8 bits per channel (save it as a 16-bit "
              f"RGB PNG to keep the precision)")
    ImageOps.exif_transpose(im, in_place=True)
    return _to_float_rgb(im, p.name)


def _note(message: str) -> None:
    warnings.warn(message, ImageConversionWarning, stacklevel=4)


def _rawmode(im: Image.Image) -> str:
    """The pixel layout the decoder reads (e.g. 'RGB;16B'), '' when unknown or already decoded."""
    if len(im.tile) != 1:
        return ""
    args = im.tile[0].args
    first = args if isinstance(args, str) else (args[0] if isinstance(args, tuple) and args else "")
    return first if isinstance(first, str) else ""


def _sixteen_bit(p: Path, im: Image.Image, raw: str) -> np.ndarray | None:
    """(H, W, C) uint16 of a 16-bit RGB / RGBA file, which Pillow would cut to 8 bits; None if not.

    The file is decoded twice with the same decoder: once for the high byte of every sample
    (its own byte order), once for the low byte (the other byte order), both turned upright.
    """
    if im.mode not in ("RGB", "RGBA") or not raw.endswith(("16B", "16L", "16N")):
        return None
    order = {"N": "L" if sys.byteorder == "little" else "B"}.get(raw[-1], raw[-1])   # native
    swapped = raw[:-1] + ("L" if order == "B" else "B")
    try:
        low = _decode_as(p, swapped)
    except (ValueError, KeyError):              # no unpacker for that layout: 8 bits, with a note
        return None
    return (_decode_as(p, raw).astype(np.uint16) << 8) | low


def _decode_as(p: Path, rawmode: str) -> np.ndarray:
    """The file's first frame decoded with another raw mode of the same bit depth, upright."""
    with Image.open(p) as im:
        tile = im.tile[0]
        args = rawmode if isinstance(tile.args, str) else (rawmode, *tile.args[1:])
        im.tile = [tile._replace(args=args)]
        ImageOps.exif_transpose(im, in_place=True)
        return np.asarray(im)


def _float_from_16bit(arr: np.ndarray, name: str) -> np.ndarray:
    """(H, W, 3 or 4) uint16 -> float32 (H, W, 3) in [0, 1]; alpha composited over white."""
    x = arr.astype(np.float64) / 65535.0
    if x.shape[2] == 4:
        warnings.warn(f"{name}: alpha channel composited over white", ImageConversionWarning,
                      stacklevel=4)
        x = x[..., :3] * x[..., 3:] + (1.0 - x[..., 3:])
    return x.astype(np.float32)


def _to_float_rgb(im: Image.Image, name: str) -> np.ndarray:
    """PIL image of any common mode -> float32 array (H, W, 3) in [0, 1]."""
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(im, dtype=np.float64)
        peak = 65535.0 if (mode.startswith("I;16") or arr.max() > 255) else 255.0
        warnings.warn(f"{name}: {mode} grayscale scaled by 1/{peak:.0f} and replicated to RGB",
                      ImageConversionWarning, stacklevel=4)
        arr = np.clip(arr / peak, 0, 1)
        return np.repeat(arr[..., None], 3, axis=2).astype(np.float32)
    if mode == "F":
        raise ImageError(f"{name}: floating-point images (mode F) are not supported; save as 8/16-bit")
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
        warnings.warn(f"{name}: alpha channel composited over white", ImageConversionWarning,
                      stacklevel=4)
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, rgba).convert("RGB")
    elif mode != "RGB":
        what = {"L": "grayscale", "P": "palette", "1": "1-bit", "CMYK": "CMYK"}.get(mode, mode)
        warnings.warn(f"{name}: {what} image converted to RGB", ImageConversionWarning, stacklevel=4)
        im = im.convert("RGB")
    return np.asarray(im, dtype=np.float32) / 255.0


def check_image(x: Tensor, name: str = "image") -> Tensor:
    """Validate an image tensor: (3, H, W) or (B, 3, H, W), floating, finite, within [0, 1].

    Returns it as (B, 3, H, W) float32 (float64 / float16 / bfloat16 are converted once checked).
    Raises ImageError with a one-line reason otherwise (an empty tensor included).
    """
    if not isinstance(x, Tensor):
        raise ImageError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4 or x.shape[1] != 3:
        raise ImageError(f"{name}: expected shape (3, H, W) or (B, 3, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ImageError(f"{name}: expected a floating tensor in [0, 1], got {x.dtype}")
    if x.numel() == 0:
        raise ImageError(f"{name}: empty image tensor of shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ImageError(f"{name}: contains NaN or infinite values")
    lo, hi = x.min().item(), x.max().item()
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise ImageError(f"{name}: values must lie in [0, 1], got range [{lo:.3g}, {hi:.3g}]")
    return x.float()


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


def image_writer(x: Tensor | np.ndarray | Image.Image, path: str | os.PathLike):
    """write(fileobj) that encodes `x` in the format of `path`'s extension, all checked first.

    x: float tensor (3, H, W) / (1, 3, H, W) in [0, 1], a uint8 array (H, W, 3), or an RGB
    PIL image (what a large image is assembled into band by band: no second copy to save it).
    """
    p = Path(path)
    fmt = _format_for(p)
    if isinstance(x, Image.Image):
        if x.mode != "RGB":
            raise ImageError(f"{p}: expected an RGB image, got mode {x.mode}")
        return lambda f: x.save(f, format=fmt)
    arr = x if isinstance(x, np.ndarray) else to_uint8(x)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ImageError(f"{p}: expected a uint8 array (H, W, 3), got {arr.dtype} {arr.shape}")
    return lambda f: Image.fromarray(arr).save(f, format=fmt)


def save_image(x: Tensor | np.ndarray, path: str | os.PathLike, *, overwrite: bool = True) -> Path:
    """Write an image atomically (write_atomic); overwrite=False never replaces an existing file.

    x: float tensor (3, H, W) / (1, 3, H, W) in [0, 1], or a uint8 array (H, W, 3).
    Nothing half-written is ever left at `path`.
    """
    p = Path(path)
    if not overwrite and os.path.lexists(p):
        raise ImageError(f"{p}: exists (use --force to overwrite)")
    write_atomic(p, image_writer(x, p), exclusive=not overwrite)
    return p


def _format_for(p: Path) -> str:
    fmt = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".tif": "TIFF",
           ".tiff": "TIFF", ".webp": "WEBP"}.get(p.suffix.lower())
    if fmt is None:
        raise ImageError(f"{p}: unsupported output extension {p.suffix!r}; use .png")
    return fmt


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

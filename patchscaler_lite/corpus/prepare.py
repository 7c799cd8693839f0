"""Turn one source photo into a prepared corpus PNG, and score its sharpness.

Recipe (RECIPE, stored in each PNG so a change of recipe redoes the photo):
  1. decode (JPEG, PNG, JPEG XL through the optional `pillow-jxl-plugin`), apply the EXIF
     orientation, convert an embedded ICC profile to sRGB, convert to 8-bit RGB (16-bit grey is
     scaled by 1/257, not clipped);
  2. crop one row/column if a side is odd, then downscale x2 with Pillow's LANCZOS filter
     (antialiased: the 3-lobe kernel is stretched over the x2 footprint), as DIV2K-style corpora do:
     it removes JPEG blocking and most softness;
  3. save as PNG atomically (image_io.write_atomic: a temporary file in the same folder, renamed).

Sharpness (`sharpness_db`): PSNR in dB of a bicubic x2 down-and-up round trip (Pillow BICUBIC,
antialiased down) of the centre crop of side min(1024, W, H) (even) of the *prepared* image, on
8-bit RGB. A soft photo has little energy above half its Nyquist frequency, so the round trip
barely changes it (high dB); a detailed photo loses its fine texture (25-35 dB). The build drops
photos above SOFT_DB (see build.py for the rule and the numbers it was chosen from).
"""

from __future__ import annotations

import errno
import hashlib
import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageOps, PngImagePlugin

from ..errors import PatchScalerError
from ..image_io import write_atomic

RECIPE = "x2-lanczos-srgb8-v1"
SHARPNESS_CROP = 1024
META_KEYS = ("source", "source_sha256", "archive_sha256", "source_size", "sharpness_db", "recipe")


@dataclass(frozen=True)
class Prepared:
    """A prepared photo: the image (RGB 8-bit) and the text stored alongside it in the PNG."""

    image: Image.Image
    meta: dict


def _ensure_jxl(name: str) -> None:
    """Register the JPEG XL decoder (optional dependency) or fail with the install hint."""
    try:
        import pillow_jxl  # noqa: F401  optional dep (extra `corpus`): registers the .jxl decoder
    except ImportError:
        raise PatchScalerError(f"{name} is JPEG XL: install the decoder with `pip install .[corpus]` "
                               "(pillow-jxl-plugin)") from None


def _to_srgb8(img: Image.Image) -> Image.Image:
    """Any decoded mode -> 8-bit RGB in sRGB (ICC-converted when the file carries a profile)."""
    icc = img.info.get("icc_profile")
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        grey = np.asarray(img, dtype=np.float64) / 257.0         # 65535 -> 255
        img = Image.fromarray(grey.round().clip(0, 255).astype(np.uint8))
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA").convert("RGB")         # photos: alpha is unused (opaque)
    if icc and img.mode in ("RGB", "CMYK", "L"):
        try:
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            img = ImageCms.profileToProfile(img, src, ImageCms.createProfile("sRGB"), outputMode="RGB")
        except (ImageCms.PyCMSError, OSError):
            pass                                         # unreadable profile: keep the values as sRGB
    return img.convert("RGB")


def decode(data: bytes, name: str) -> Image.Image:
    """Bytes of a JPEG / PNG / JPEG XL file -> upright 8-bit sRGB RGB image (PIL)."""
    if name.lower().endswith(".jxl"):
        _ensure_jxl(name)
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
        upright = ImageOps.exif_transpose(img)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise PatchScalerError(f"{name}: cannot decode ({e})") from None
    return _to_srgb8(upright)


def downscale2(img: Image.Image) -> Image.Image:
    """(W, H) -> (W // 2, H // 2): crop an odd row/column, then antialiased LANCZOS."""
    w, h = img.size
    img = img.crop((0, 0, w - w % 2, h - h % 2))
    return img.resize((w // 2, h // 2), Image.Resampling.LANCZOS)


def sharpness_db(img: Image.Image, crop: int = SHARPNESS_CROP) -> float:
    """PSNR (dB, capped at 99) of a bicubic x2 down-up round trip of the centre crop; high = soft."""
    w, h = img.size
    s = min(crop, w, h) // 2 * 2
    left, top = (w - s) // 2, (h - s) // 2
    c = img.convert("RGB").crop((left, top, left + s, top + s))
    rt = c.resize((s // 2, s // 2), Image.Resampling.BICUBIC).resize((s, s), Image.Resampling.BICUBIC)
    mse = np.mean((np.asarray(c, np.float64) - np.asarray(rt, np.float64)) ** 2)
    return min(99.0, 10 * math.log10(255.0 ** 2 / mse)) if mse > 0 else 99.0


def prepare(data: bytes, name: str, source: str, archive_sha256: str) -> Prepared:
    """Decode, downscale x2 and score one photo.

    `source` (`<archive key> <path>`) and the archive's sha256 are stored in the PNG's text, so a
    finished PNG describes itself and a re-run needs neither the archive nor a record.
    """
    full = decode(data, name)
    img = downscale2(full)
    meta = {"source": source, "source_sha256": hashlib.sha256(data).hexdigest(),
            "archive_sha256": archive_sha256, "source_size": f"{full.width}x{full.height}",
            "sharpness_db": f"{sharpness_db(img):.2f}", "recipe": RECIPE}
    return Prepared(img, meta)


def save_png_atomic(img: Image.Image, path: Path, meta: dict) -> None:
    """Write a PNG with `meta` as text chunks, atomically; on failure nothing is left behind.

    A full disk (or any OSError) becomes a one-line PatchScalerError.
    """
    info = PngImagePlugin.PngInfo()
    for k, v in meta.items():
        info.add_text(f"patchscaler:{k}", str(v))
    try:
        write_atomic(path, lambda f: img.save(f, format="PNG", pnginfo=info))
    except OSError as e:                                     # write_atomic removed its temporary file
        hint = ": the disk is full; free space and re-run (finished photos are kept)" \
            if e.errno == errno.ENOSPC else ""
        raise PatchScalerError(f"cannot write {path}: {e.strerror or e}{hint}") from None


def read_done(path: Path) -> dict | None:
    """The stored text of a finished prepared PNG, or None if it is missing or does not verify.

    Verifies the PNG chunk checksums up to IEND (no pixel decoding) and that every key is there.
    """
    if not path.is_file():
        return None
    try:
        with Image.open(path) as im:
            # the text chunks precede IDAT, so im.info has them without decoding (im.text would decode)
            text = {k.removeprefix("patchscaler:"): v for k, v in im.info.items() if isinstance(v, str)}
            size = im.size
            im.verify()
    except (OSError, SyntaxError, ValueError):
        return None
    if any(k not in text for k in META_KEYS):
        return None
    return {**text, "width": size[0], "height": size[1]}

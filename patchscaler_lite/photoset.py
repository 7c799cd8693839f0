"""Training photos from any folder: decoded once, kept as uint8, cut into random aligned crops.

A `PhotoSet` holds every photo of a folder (or of one split of it) as a (3, H, W) uint8 tensor:
1 byte per channel, so the ~83 megapixels of the corpus train split take ~250 MB, and no PNG is
decoded during training. `sample_crops` draws photos by area, cuts an HR region with a margin,
degrades it on the fly (bicubic, or the realistic chain with the run's generator), keeps the centre
and applies one of the 8 flips/rotations. With a margin of 4 LR pixels a bicubic crop's LR equals
the same pixels of the whole photo's LR (the x4 antialiased kernel reaches 2 LR pixels): no border
effects, at any HR offset.
Split files: `splits.json` ({"train": [file names], "val": [...], "test": [...]}) in the folder
(a built corpus) or beside it (the shipped data/photos).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from .data import degrade, load_folder
from .errors import PatchScalerError
from .patches import dihedral

MARGIN = 4            # LR pixels cut around each crop before degrading it, then dropped


@dataclass
class PhotoSet:
    """names[i] and images[i]: (3, H, W) uint8 RGB."""

    names: list[str]
    images: list[Tensor]

    @classmethod
    def from_tensors(cls, photos: dict[str, Tensor]) -> PhotoSet:
        """From {name: (3, H, W) float in [0, 1]} (rounded to 8 bits)."""
        return cls(list(photos), [(p.clamp(0, 1) * 255 + 0.5).to(torch.uint8) for p in photos.values()])

    @property
    def megapixels(self) -> float:
        return sum(im.shape[-1] * im.shape[-2] for im in self.images) / 1e6

    @property
    def nbytes(self) -> int:
        return sum(im.numel() for im in self.images)

    def as_float(self) -> dict[str, Tensor]:
        """{name: (3, H, W) float32 in [0, 1]} (for evaluation on whole photos)."""
        return {n: im.float() / 255 for n, im in zip(self.names, self.images)}


def split_names(folder: Path, split: str) -> list[str]:
    """File names of `split` in folder/splits.json or folder/../splits.json (one-line errors)."""
    for f in (Path(folder) / "splits.json", Path(folder).parent / "splits.json"):
        if f.is_file():
            names = json.loads(f.read_text()).get(split)
            if names is None:
                raise PatchScalerError(f"split {split!r} not in {f}")
            return list(names)
    raise PatchScalerError(f"--split {split} given but no splits.json in {folder} or beside it")


def load_photo_set(folder, split: str | None = None, *, min_side: int = 0) -> PhotoSet:
    """Every readable photo of `folder` (or of one split), as uint8. Non-images are skipped with a
    warning (load_folder); photos with a side below `min_side` are skipped and counted in one
    warning; a split naming photos that are not in the folder is an error."""
    folder = Path(folder)
    names = None if split is None else split_names(folder, split)
    if names is not None:
        missing = [n for n in names if not (folder / n).is_file()]
        if missing:
            raise PatchScalerError(f"{folder}: split {split!r} names {len(missing)} missing photo(s), "
                                   f"e.g. {missing[0]}")
    photos = load_folder(folder, None if names is None else set(names))
    small = [n for n, p in photos.items() if min(p.shape[-2:]) < min_side]
    if small:
        warnings.warn(f"{folder}: skipping {len(small)} photo(s) smaller than {min_side} px: "
                      f"{', '.join(small[:3])}", stacklevel=2)
    kept = {n: p for n, p in photos.items() if n not in small}
    if not kept:
        raise PatchScalerError(f"{folder}: no photo is at least {min_side} px a side")
    return PhotoSet.from_tensors(kept)


def sample_crops(photos: PhotoSet, batch: int, crop: int, scale: int, g: torch.Generator, *,
                 degradation: str = "bicubic", rescale=(1.0,)) -> tuple[Tensor, Tensor]:
    """Random aligned pairs (lr (B, 3, c/s, c/s), hr (B, 3, c, c)) in [0, 1]; photos drawn by area.

    rescale: factors f drawn uniformly per crop: an HR region of side c/f is resized to c
    (antialiased bicubic) before degrading, so content appears at new scales.
    """
    areas = torch.tensor([float(im.shape[-1] * im.shape[-2]) for im in photos.images])
    idx = torch.multinomial(areas, batch, replacement=True, generator=g)
    side = crop + 2 * MARGIN * scale                                   # HR side degraded per crop
    lrs, hrs = [], []
    for i in idx.tolist():
        f = rescale[int(torch.randint(len(rescale), (), generator=g))]
        hr = _region(photos.images[i], round(side / f), g)             # (1, 3, R, R) float
        if hr.shape[-1] != side:
            hr = F.interpolate(hr, size=(side, side), mode="bicubic", antialias=True,
                               align_corners=False).clamp(0, 1)
        lr = degrade(hr, scale, degradation, generator=g)[..., MARGIN:-MARGIN, MARGIN:-MARGIN]
        k = int(torch.randint(8, (), generator=g))
        lrs.append(dihedral(lr[0], k))
        hrs.append(dihedral(hr[0, :, MARGIN * scale:-MARGIN * scale, MARGIN * scale:-MARGIN * scale], k))
    return torch.stack(lrs), torch.stack(hrs)


def _region(im: Tensor, r: int, g: torch.Generator) -> Tensor:
    """A random r x r region of a uint8 photo (3, H, W) as float (1, 3, r, r); r is clipped to fit."""
    r = min(r, im.shape[-2], im.shape[-1])
    y = int(torch.randint(im.shape[-2] - r + 1, (), generator=g))
    x = int(torch.randint(im.shape[-1] - r + 1, (), generator=g))
    return im[None, :, y:y + r, x:x + r].float() / 255

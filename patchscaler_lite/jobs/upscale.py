"""`upscale`: LR files -> <stem>_x4.png with the whole PatchScaler pipeline."""

from __future__ import annotations

from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..config import PGSConfig
from ..errors import PatchScalerError
from ..image_io import ensure_dir, load_image, save_image
from ..pipeline import PatchScalerPipeline
from .files import check_inputs


def load_pipeline(weights, device, pgs: PGSConfig | None = None) -> PatchScalerPipeline:
    """The pipeline from a weights folder (None: the shipped lite weights), on `device`."""
    return PatchScalerPipeline.from_pretrained(weights, pgs=pgs).to(device)


def upscale_files(inputs, out: Path, *, pgs: PGSConfig | None = None, weights=None, device="cpu",
                  seed: int = 0, texture: bool = True, force: bool = False) -> list[Path]:
    """Upscale each input to out/<stem>_x4.png; refuse clashes before any work is done."""
    paths = check_inputs(inputs)
    targets = [Path(out) / f"{p.stem}_x4.png" for p in paths]
    if len(set(targets)) != len(targets):
        raise PatchScalerError("two inputs share a file name stem; upscale them into separate folders")
    ensure_dir(out)
    for p, t in zip(paths, targets):
        if t.exists() and not force:
            raise PatchScalerError(f"{t}: exists (use --force to overwrite)")
        if t.resolve() == p.resolve():
            raise PatchScalerError(f"{t}: output would overwrite its input")
    pipe = load_pipeline(weights, device, pgs)
    for p, t in tqdm(list(zip(paths, targets)), desc="upscale", unit="img"):
        lr = load_image(p)[None].to(pipe.device)
        res = pipe(lr, generator=torch.Generator().manual_seed(seed), texture=texture)
        save_image(res.image, t)
        tqdm.write(f"{p.name} -> {t}  ({res.image.shape[-1]}x{res.image.shape[-2]}, patch-NFE "
                   f"{res.total_nfe}, groups " + "/".join(str(v) for v in res.counts.values()) + ")")
    return targets

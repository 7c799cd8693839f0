"""`upscale`: LR files -> <stem>_x4.png with the whole PatchScaler pipeline."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from PIL import Image
from tqdm.auto import tqdm

from ..config import PGSConfig
from ..errors import PatchScalerError
from ..image_io import load_image, to_uint8
from ..pipeline import MAX_LR_PIXELS, PatchScalerPipeline
from ..streaming import stream_upscale
from .files import Outputs, check_inputs


def load_pipeline(weights, device, pgs: PGSConfig | None = None,
                  preset: str = "lite") -> PatchScalerPipeline:
    """The pipeline of `preset` from a weights folder (None: the shipped weights), on `device`.

    A folder holding one other preset only (grm_tiny, dit_tiny, memory_tiny) is used with a note.
    """
    if weights is not None and Path(weights).is_file():
        raise PatchScalerError(f"{weights}: is a file; --weights takes a folder holding the "
                               f"grm_*, dit_* and memory_*.safetensors files")
    pipe = PatchScalerPipeline.from_pretrained(weights, preset=preset, pgs=pgs).to(device)
    if weights is not None and pipe.grm.cfg.name != preset:
        warnings.warn(f"{weights}: no *_{preset} weights in the folder; using its "
                      f"{pipe.grm.cfg.name} preset", stacklevel=2)
    return pipe


def upscale_files(inputs, out: Path, *, pgs: PGSConfig | None = None, weights=None, device="cpu",
                  seed: int = 0, texture: bool = True, force: bool = False,
                  max_pixels: int = MAX_LR_PIXELS, preset: str = "lite") -> list[Path]:
    """Upscale each input to out/<stem>_x4.png (files.Outputs: all published together at the end).

    Every input is checked (header, `max_pixels` LR pixels, one decode) and every output path
    before the models load.
    """
    paths = [info.path for info in check_inputs(inputs, max_pixels=max_pixels)]
    targets = [Path(out) / f"{p.stem}_x4.png" for p in paths]
    if len(set(targets)) != len(targets):
        raise PatchScalerError("two inputs share a file name stem; upscale them into separate folders")
    outputs = Outputs(targets, inputs=paths, force=force)
    pipe = load_pipeline(weights, device, pgs, preset)
    with outputs as outs:
        for p, t in tqdm(list(zip(paths, targets)), desc="upscale", unit="img", disable=None):
            image, stats = _upscale_one(pipe, p, seed, texture)
            outs.write_image(t, image)
            tqdm.write(f"{p.name} -> {t}  ({image.width}x{image.height}, patch-NFE "
                       f"{stats.total_nfe}, groups " + "/".join(map(str, stats.counts)) + ")")
    return targets


def _upscale_one(pipe: PatchScalerPipeline, path: Path, seed: int, texture: bool):
    """The pipeline on one file, a band at a time (streaming.py: memory bounded by the band, the
    same result as the whole-image run), pasted into an RGB canvas that is saved as it is (the
    one thing that grows with the image: 4 bytes per HR pixel); errors name the file."""
    lr = load_image(path)[None].to(pipe.device)                         # (1, 3, h, w)
    s = pipe.grm.cfg.scale
    canvas = Image.new("RGB", (lr.shape[-1] * s, lr.shape[-2] * s))

    def sink(row0: int, rows: torch.Tensor) -> None:
        canvas.paste(Image.fromarray(to_uint8(rows)), (0, row0))
    try:
        stats = stream_upscale(pipe, lr, sink, generator=torch.Generator().manual_seed(seed),
                               texture=texture)
    except PatchScalerError as e:
        raise PatchScalerError(f"{path}: {e}") from None
    return canvas, stats

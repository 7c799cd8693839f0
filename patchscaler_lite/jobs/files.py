"""Checks shared by the file-level jobs: the input list, the output folder, split files."""

from __future__ import annotations

from pathlib import Path

from ..errors import ImageError, PatchScalerError
from ..image_io import ensure_dir, list_images
from ..photoset import split_names


def check_inputs(inputs) -> list[Path]:
    """The image files among `inputs` (files or folders); a one-line error if there are none."""
    paths = list_images(inputs)
    if not paths:
        raise PatchScalerError(f"no image files found in {', '.join(map(str, inputs))}")
    for p in paths:
        if not p.exists():
            raise ImageError(f"{p}: no such file")
    return paths


def prepare_out(out: Path, names: list[str], force: bool) -> None:
    """Create `out`; refuse (one line) if any of `names` exists there, unless force."""
    ensure_dir(out)
    clash = [n for n in names if (out / n).exists()]
    if clash and not force:
        raise PatchScalerError(f"{out / clash[0]}: exists (use --force to overwrite)")


def photos_in(hr_dir: Path, split: str | None) -> list[Path]:
    """Images of a folder, or only those of `split` (splits.json in the folder or beside it)."""
    paths = check_inputs([hr_dir])
    if split is not None:
        names = set(split_names(Path(hr_dir), split))
        paths = [p for p in paths if p.name in names]
    return paths

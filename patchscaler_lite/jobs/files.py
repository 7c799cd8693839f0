"""Checks shared by the file-level jobs: the input list, the output folder, split files."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import ImageError, PatchScalerError
from ..image_io import ensure_dir, list_images


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
    """Images of a folder, or only those of `split` in the splits.json beside the folder."""
    paths = check_inputs([hr_dir])
    if split is not None:
        splits_file = Path(hr_dir).parent / "splits.json"
        if not splits_file.is_file():
            raise PatchScalerError(f"--split given but {splits_file} does not exist")
        names = json.loads(splits_file.read_text()).get(split)
        if names is None:
            raise PatchScalerError(f"split {split!r} not in {splits_file}")
        paths = [p for p in paths if p.name in names]
    return paths

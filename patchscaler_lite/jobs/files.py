"""The input and output policies of every command that reads images or writes files.

Inputs (`check_inputs`, `photo_infos`): every input is opened and checked, its size read from the
header (and checked against the pixel limit) before any model loads or any output is written.

Outputs (`Outputs`): every output path is checked before the work: an existing file needs
--force, an input is never written over (not even through a hard or symbolic link), a missing
folder is made. Files are written under hidden partial names beside their targets and
published together once the work has succeeded, each created exclusively: a file another run
wrote meanwhile is never replaced (this run stops and names it). On any failure (disk full,
permission denied, Ctrl-C, a bug) the partial files, the files this run published and the
folders it made are removed; nothing else is touched.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..atomic import json_bytes, partial_path, publish, sweep_partials
from ..errors import USER_ERRNOS, ImageError, OutputError, PatchScalerError
from ..image_io import ImageInfo, image_writer, list_images, probe_image
from ..photoset import split_names


def check_inputs(inputs, *, max_pixels: int | None = None, decode: bool = True) -> list[ImageInfo]:
    """The image files among `inputs` (files or folders), each opened and checked: size from the
    header against `max_pixels` (LR pixels, raised with --max-pixels), then (decode=True) decoded
    once to find truncated files. One-line ImageError naming the first bad file."""
    paths = list_images(inputs)
    if not paths:
        raise PatchScalerError(f"no image files found in {', '.join(map(str, inputs))}")
    infos = [probe_image(p) for p in paths]              # headers first: cheap refusals first
    for info in infos:
        if max_pixels is not None and info.pixels > max_pixels:
            raise ImageError(f"{info.path}: {info.width}x{info.height} is {info.pixels:,} pixels, "
                             f"above the limit of {max_pixels:,} LR pixels (--max-pixels raises "
                             f"it; the time grows with the image)")
    if decode:
        infos = [probe_image(p, decode=True) for p in paths]
    return infos


def photo_infos(hr_dir: Path, split: str | None) -> list[ImageInfo]:
    """Images of a folder, or only those of `split` (splits.json in the folder or beside it),
    each header checked."""
    hr_dir = Path(hr_dir)
    if not hr_dir.is_dir():
        raise PatchScalerError(f"{hr_dir}: not a folder")
    paths = list_images([hr_dir])
    if split is not None:
        names = set(split_names(hr_dir, split))
        paths = [p for p in paths if p.name in names]
    return check_inputs(paths or [hr_dir], decode=False)


def photos_in(hr_dir: Path, split: str | None) -> list[Path]:
    """The paths of photo_infos."""
    return [info.path for info in photo_infos(hr_dir, split)]


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)                   # follows symbolic links; hard links share
    except OSError:                                     # the inode
        return False


def _existing_ancestor(p: Path) -> Path:
    p = Path(os.path.abspath(p))
    while not os.path.lexists(p):
        p = p.parent
    return p


def check_output(p: Path, inputs=(), force: bool = False) -> None:
    """One output path, before any work: never an input, not a folder, existing only with force,
    in a folder that exists (or can be made) and is writable. OutputError otherwise."""
    for inp in inputs:
        if _same_file(p, inp):
            raise OutputError(f"{p}: is the input {inp}; an output never replaces an input "
                              f"(choose another output name)")
    if os.path.isdir(p):
        raise OutputError(f"{p}: is a folder, expected an output file name")
    if os.path.lexists(p) and not force:
        raise OutputError(f"{p}: exists (use --force to overwrite)")
    folder = _existing_ancestor(p.parent)
    if not folder.is_dir():
        raise OutputError(f"{folder}: exists and is not a folder (needed for {p})")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{folder}: cannot write in this folder (permission denied)")


def make_folders(folder: Path) -> list[Path]:
    """mkdir -p; returns the folders it made, outermost first (so a failed run can remove them)."""
    missing = []
    p = Path(folder)
    while not os.path.lexists(p):
        missing.append(p)
        p = p.parent
    made = []
    for m in reversed(missing):
        try:
            m.mkdir()
        except OSError as e:
            remove_folders(made)
            raise OutputError(f"{m}: cannot create the folder ({e.strerror})") from None
        made.append(m)
    return made


def remove_folders(made: list[Path]) -> None:
    """Remove the folders a run made, innermost first, where they are empty."""
    for folder in reversed(made):
        try:
            folder.rmdir()
        except OSError:
            pass


class Outputs:
    """Every file one command writes: checked when made, published together on success.

        outputs = Outputs([out / "a.png", out / "r.json"], inputs=paths, force=force)  # checks
        ...load the models...
        with outputs as outs:                      # makes the missing folders
            outs.write_image(out / "a.png", x)     # partial files until the block succeeds
            outs.write_json(out / "r.json", report)
    """

    def __init__(self, paths, *, inputs=(), force: bool = False):
        self.paths = [Path(p) for p in paths if p is not None]
        seen = set()
        for p in self.paths:
            if os.path.abspath(p) in seen:
                raise OutputError(f"{p}: two outputs of this command have the same name")
            seen.add(os.path.abspath(p))
            check_output(p, [Path(i) for i in inputs], force)
        self._replace = {p for p in self.paths if os.path.lexists(p)}     # force, checked above
        self._made: list[Path] = []
        self._staged: list[tuple[Path, Path]] = []                         # (partial, final)
        self._published: list[Path] = []

    def __enter__(self) -> Outputs:
        try:
            for folder in dict.fromkeys(p.parent for p in self.paths):
                self._made += make_folders(folder)
            for p in self.paths:
                sweep_partials(p)
        except BaseException:
            self._rollback()
            raise
        return self

    def __exit__(self, kind, exc, tb) -> bool:
        if kind is None:
            try:
                self._publish_all()
            except BaseException as e:
                self._fail(e)
                raise
            return False
        self._fail(exc)
        return False

    def _fail(self, exc: BaseException) -> None:
        """Roll back; an OSError the user can act on (disk full, permission) becomes one line."""
        user = isinstance(exc, OSError) and exc.errno in USER_ERRNOS
        error = self._os_error(exc) if user else None
        self._rollback()
        if error is not None:
            raise error from exc

    def _planned(self, path) -> Path:
        p = Path(path)
        if p not in self.paths:
            raise ValueError(f"{p} is not one of the planned outputs {self.paths}")
        return p

    def write(self, path, write) -> None:
        """Write a planned output with write(fileobj), under its partial name until published."""
        final = self._planned(path)
        tmp = partial_path(final)
        self._staged.append((tmp, final))
        try:
            with open(tmp, "xb") as f:
                write(f)
        except OSError as e:
            raise OutputError(f"{final}: cannot write ({e.strerror})") from None

    def write_image(self, path, x) -> None:
        """A float (3, H, W) / (1, 3, H, W) image in [0, 1] or a uint8 (H, W, 3) array."""
        self.write(path, image_writer(x, path))

    def write_json(self, path, obj) -> None:
        """Strict JSON: NaN and infinities become null (with a note naming the file)."""
        text = json_bytes(obj, path)
        self.write(path, lambda f: f.write(text))

    def stage(self, path, *siblings: str) -> Path:
        """The partial name for a planned output a library function writes itself, e.g.
        save_memory(mem, outs.stage(p, ".json")); siblings: suffixes of files it writes beside."""
        final = self._planned(path)
        tmp = partial_path(final, keep_suffix=True)
        self._staged.append((tmp, final))
        self._staged += [(tmp.with_suffix(s), self._planned(final.with_suffix(s))) for s in siblings]
        return tmp

    def _publish_all(self) -> None:
        for tmp, final in self._staged:
            if os.path.lexists(tmp):
                publish(tmp, final, replace=final in self._replace)
                self._published.append(final)
        self._staged = []

    def _rollback(self) -> None:
        for tmp, _ in self._staged:
            tmp.unlink(missing_ok=True)
        for final in self._published:                  # created by this run (replaced ones stay)
            if final not in self._replace:
                final.unlink(missing_ok=True)
        remove_folders(self._made)
        self._staged, self._published, self._made = [], [], []

    def _os_error(self, e: OSError) -> OutputError:
        """An OSError of a library writer as one line naming the output (not its partial name)."""
        name = Path(e.filename) if e.filename else None
        final = next((f for t, f in self._staged if t == name), None)
        if name is not None and final is None:                  # not one of ours: say it as is
            return OutputError(f"{name}: {e.strerror}")
        return OutputError(f"{final or (self.paths or ['.'])[0]}: cannot write ({e.strerror})")

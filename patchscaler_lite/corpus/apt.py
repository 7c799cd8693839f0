"""The real downloader: `apt-get download` through a private APT configuration, `pip download`.

Nothing is installed and nothing on the system changes. APT reads a configuration file written
under the cache folder (APT_CONFIG): its own sources.list (one line per suite of SUITES, the same
mirror and keyring as the machine's own /etc/apt sources), lists, caches and an empty dpkg status
file, all under `<cache>/apt/`. `apt-get update` runs once per build, and only when a .deb must be
downloaded. Versions only in sid or bullseye leave the mirror one day: such a source is reported as
gone (None), and the builder skips it with one warning.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

from ..errors import PatchScalerError
from .sources import Archive

SUITES = ("bookworm", "trixie", "sid", "bullseye")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
# What apt-get / pip print when the pinned version is not (or no longer) in the index.
GONE_MESSAGES = ("Unable to locate package", "was not found", "Can't select", "has no installation candidate",
                 "No matching distribution found", "Could not find a version")
# Index files nobody here reads (AppStream metadata, translations): a smaller, faster `apt-get update`.
_NO_EXTRAS = "".join(f'Acquire::IndexTargets::deb::{t}::DefaultEnabled "false";\n' for t in (
    "DEP-11", "DEP-11-icons", "DEP-11-icons-small", "DEP-11-icons-large", "DEP-11-icons-hidpi",
    "Contents-deb", "Contents-udeb"))


def _mirror_of_deb822(text: str) -> tuple[str, str | None] | None:
    """(URI, Signed-By) of the first deb822 stanza serving Debian's main archive, or None."""
    for stanza in re.split(r"\n\s*\n", text):
        fields = dict(re.findall(r"^([A-Za-z-]+):[ \t]*(.*)$", stanza, re.M))
        uris = fields.get("URIs", "").split()
        if "deb" in fields.get("Types", "").split() and uris and uris[0].rstrip("/").endswith("/debian"):
            return uris[0].rstrip("/"), fields.get("Signed-By") or None
    return None


def _mirror_of_list(text: str) -> tuple[str, str | None] | None:
    """(URI, signed-by) of the first one-line `deb ...` entry serving Debian's main archive, or None."""
    for m in re.finditer(r"^deb\s+(?:\[([^\]]*)\]\s+)?(\S+)\s", text, re.M):
        if m.group(2).rstrip("/").endswith("/debian"):
            opts = dict(o.split("=", 1) for o in (m.group(1) or "").split() if "=" in o)
            return m.group(2).rstrip("/"), opts.get("signed-by")
    return None


def system_mirror(etc_apt: Path = Path("/etc/apt")) -> tuple[str, str | None]:
    """The machine's Debian mirror and keyring, read from its APT sources (default deb.debian.org)."""
    files = [etc_apt / "sources.list"] + sorted((etc_apt / "sources.list.d").glob("*.list"))
    files += sorted((etc_apt / "sources.list.d").glob("*.sources"))
    for f in files:
        if f.is_file():
            found = (_mirror_of_deb822 if f.suffix == ".sources" else _mirror_of_list)(f.read_text())
            if found:
                return found
    return DEFAULT_MIRROR, DEFAULT_KEYRING if Path(DEFAULT_KEYRING).is_file() else None


def write_apt_config(root: Path, mirror: str, keyring: str | None, suites=SUITES) -> Path:
    """Write `root/apt.conf` + its sources.list, lists, cache and empty status; returns the conf path.

    Every path in it is absolute: APT reads a relative Dir:: path as relative to /etc/apt or
    /var/lib/apt, which would leave our folder (and touch the system's).
    """
    root = Path(root).resolve()
    for d in ("lists/partial", "cache/archives/partial", "sources.list.d", "preferences.d"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "status").touch()
    opt = f"[signed-by={keyring}] " if keyring else ""
    (root / "sources.list").write_text("".join(f"deb {opt}{mirror} {s} main\n" for s in suites))
    conf = root / "apt.conf"
    conf.write_text(
        f'Dir::Etc::sourcelist "{root}/sources.list";\n'
        f'Dir::Etc::sourceparts "{root}/sources.list.d";\n'
        f'Dir::Etc::preferences "{root}/preferences";\n'
        f'Dir::Etc::preferencesparts "{root}/preferences.d";\n'
        f'Dir::State::Lists "{root}/lists";\n'
        f'Dir::State::status "{root}/status";\n'
        f'Dir::Cache "{root}/cache";\n'
        'APT::Sandbox::User "root";\n'           # as root: no `_apt` user needing access to our folder
        'Acquire::Languages "none";\n' + _NO_EXTRAS)
    return conf


def _run(cmd: list[str], cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)


def _last_error(proc: subprocess.CompletedProcess) -> str:
    """The most telling line of a failed command's output (its last `E:`/`ERROR:` line)."""
    lines = [ln.strip() for ln in (proc.stderr + "\n" + proc.stdout).splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith(("E:", "ERROR:", "error:"))]
    return (errors or lines or [f"exit status {proc.returncode}"])[-1]


def _is_gone(proc: subprocess.CompletedProcess) -> bool:
    return any(m in proc.stderr + proc.stdout for m in GONE_MESSAGES)


class SystemDownloader:
    """`downloader(archive, dest) -> Path | None`: fetch one archive into the folder `dest`.

    Returns the downloaded file, or None when the pinned version is gone from the mirror/index.
    Other failures (network, mirror down) raise PatchScalerError with apt's or pip's error line.
    """

    tools = ("apt-get", "dpkg-deb", "pip")

    def __init__(self, cache: Path, suites=SUITES, etc_apt: Path = Path("/etc/apt")):
        self.root = Path(cache).resolve() / "apt"          # absolute: see write_apt_config
        self.suites, self.etc_apt = tuple(suites), etc_apt
        self._env: dict | None = None                    # set by the first .deb download

    def __call__(self, archive: Archive, dest: Path) -> Path | None:
        dest.mkdir(parents=True, exist_ok=True)
        proc = self._deb(archive, dest) if archive.kind == "deb" else self._wheel(archive, dest)
        if proc.returncode != 0:
            if _is_gone(proc):
                return None
            raise PatchScalerError(f"downloading {archive.key} failed: {_last_error(proc)}")
        found = sorted(dest.glob("*.deb" if archive.kind == "deb" else "*.whl"))
        if not found:
            raise PatchScalerError(f"downloading {archive.key} left no archive in {dest}")
        return found[0]

    def _apt_env(self) -> dict:
        """Write the private APT configuration and run `apt-get update` (once per downloader)."""
        if self._env is None:
            conf = write_apt_config(self.root, *system_mirror(self.etc_apt), self.suites)
            self._env = {**os.environ, "APT_CONFIG": str(conf), "LC_ALL": "C"}
            proc = _run(["apt-get", "update"], env=self._env)
            if not any((self.root / "lists").glob("*_Packages*")):
                raise PatchScalerError(f"apt-get update fetched no package list: {_last_error(proc)}")
            if proc.returncode != 0:                     # e.g. one suite gone: the rest still works
                warnings.warn(f"apt-get update: {_last_error(proc)}", stacklevel=2)
        return self._env

    def _deb(self, archive: Archive, dest: Path) -> subprocess.CompletedProcess:
        # A binary package cache (the system's config turns it off) makes each call ~4x faster.
        pkgcache = f"Dir::Cache::pkgcache={self.root}/cache/pkgcache.bin"
        return _run(["apt-get", "-o", pkgcache, "download", f"{archive.name}={archive.version}"],
                    cwd=dest, env=self._apt_env())

    def _wheel(self, archive: Archive, dest: Path) -> subprocess.CompletedProcess:
        return _run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                     "--no-cache-dir", "-d", str(dest), f"{archive.name}=={archive.version}"])

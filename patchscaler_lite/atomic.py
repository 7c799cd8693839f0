"""Files written whole or not at all: a hidden partial file beside the target, then published.

`write_atomic` writes through a partial file `.<name>~partial-<host>-<pid>-<random>.tmp` and
renames it into place (or, exclusive, hard-links it: never over a file another run wrote
meanwhile). A kill -9 can leave a partial file; `sweep_partials` removes those of dead processes.
`json_bytes` is the one JSON encoder of the outputs: strict JSON, NaN and infinities as null.
"""

from __future__ import annotations

import errno
import functools
import glob
import hashlib
import json
import math
import os
import re
import secrets
import socket
import warnings
from pathlib import Path

import numpy as np
from torch import Tensor

from .errors import ImageError

PARTIAL = "~partial-"    # marks a file being written


@functools.cache
def _host() -> str:
    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:6]


def partial_path(path: str | os.PathLike, pid: int | None = None, *, keep_suffix: bool = False) -> Path:
    """The hidden name `path` is written under before it is published, beside it:
    .<name>~partial-<host>-<pid>-<random>.tmp, so a later run can tell a dead run's leftover.

    keep_suffix=True: .<stem>~partial-...<suffix>, for a writer that derives sibling files from
    the suffix (p.with_suffix(".json")).
    """
    path = Path(path)
    tag = f"{PARTIAL}{_host()}-{os.getpid() if pid is None else pid}-{secrets.token_hex(4)}"
    name = f".{path.stem}{tag}{path.suffix}" if keep_suffix else f".{path.name}{tag}.tmp"
    return path.with_name(name)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:                   # alive, another user's
        return True
    return True


def sweep_partials(path: str | os.PathLike) -> None:
    """Remove the partial files of `path` left by dead processes of this host (a kill -9)."""
    path = Path(path)
    names = "|".join(re.escape(n) for n in {path.name, path.stem})
    pattern = re.compile(rf"^\.+(?:{names}){re.escape(PARTIAL)}(\w{{6}})-(\d+)-")
    for q in path.parent.glob(f".*{glob.escape(path.stem)}*{PARTIAL}*"):
        m = pattern.match(q.name)
        if m and m[1] == _host() and int(m[2]) != os.getpid() and not _alive(int(m[2])):
            q.unlink(missing_ok=True)


def publish(tmp: Path, path: Path, *, replace: bool) -> None:
    """Move the finished file `tmp` to `path`. replace=False: only if no file is there, decided
    atomically by a hard link, so two runs can never silently replace each other's file."""
    if replace:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise ImageError(f"{path}: another run wrote this file meanwhile; not replaced") from None
    except OSError as e:                      # a file system without hard links: check, rename
        if e.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
            raise
        if os.path.lexists(path):
            raise ImageError(f"{path}: another run wrote this file meanwhile; not replaced") from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def write_atomic(path: str | os.PathLike, write, *, exclusive: bool = False) -> None:
    """Call write(fileobj) on a partial file beside `path`, then publish it (rename into place).

    exclusive=True refuses (ImageError) if a file appears at `path` meanwhile. On any failure
    the partial file is removed and an existing file at `path` is left as it was.
    """
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        raise ImageError(f"{folder}: output directory does not exist")
    tmp = partial_path(path)
    try:
        f = open(tmp, "xb")                   # created exclusively, mode 0666 & ~umask
    except OSError as e:
        raise ImageError(f"{folder}: output directory is not writable ({e.strerror})") from None
    try:
        with f:
            write(f)
        publish(tmp, path, replace=not exclusive)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def json_bytes(obj, name: str | os.PathLike) -> bytes:
    """Strict JSON (no NaN / Infinity): non-finite numbers become null, with one note naming `name`.

    numpy scalars and tuples are written as numbers and lists.
    """
    bad: list[int] = []
    clean = _finite(obj, bad)
    if bad:
        warnings.warn(f"{name}: {len(bad)} values were NaN or infinite; written as null",
                      stacklevel=2)
    return json.dumps(clean, indent=2, allow_nan=False).encode()


def _finite(v, bad: list):
    """v with every non-finite float replaced by None (each one counted in `bad`)."""
    if isinstance(v, dict):
        return {k: _finite(x, bad) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x, bad) for x in v]
    if isinstance(v, (np.ndarray, Tensor)):
        return _finite(v.tolist(), bad)
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, (float, np.floating)):
        if math.isfinite(v):
            return float(v)
        bad.append(v)
        return None
    return v


def ensure_dir(path: str | os.PathLike) -> Path:
    """mkdir -p with a one-line ImageError when the folder cannot be created."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ImageError(f"{p}: cannot create output directory ({e.strerror})") from None
    if not os.access(p, os.W_OK):
        raise ImageError(f"{p}: output directory is not writable")
    return p

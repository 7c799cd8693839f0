"""Process-wide CPU settings for the command-line tools. The library never applies them on import:
a notebook kernel or another program keeps whatever its owner chose.

- OMP_WAIT_POLICY=PASSIVE: torch's OpenMP threads sleep, instead of spinning, between parallel
  regions. On an idle machine this changes nothing measurable; when another process competes for
  the cores (a second job, a notebook, a browser) spinning threads steal each other's time, and the
  pipeline ran several times faster with it (scripts/bench_cpu.py --contended; README "Speed").
  OpenMP reads it once, when torch is loaded, so it is set before the first `import torch`
  (`patchscaler_lite/__init__.py` imports nothing heavy until a name is used). An explicit value
  in the environment wins. For a notebook kernel: `OMP_WAIT_POLICY=PASSIVE jupyter lab` (`make lab`).
- glibc allocator: large blocks stay in the heap (no mmap / munmap per big tensor) and the heap is
  not trimmed back after every call; measured in scripts/bench_cpu.py. Linux/glibc only, a no-op
  elsewhere. Costs: freed memory is kept for reuse by the same process until it exits.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4           # glibc <malloc.h> mallopt parameters
TRIM_THRESHOLD = 1 << 30                          # return heap memory to the OS above 1 GiB free


def configure_cli_process(env=os.environ) -> dict[str, str]:
    """Apply the CLI's CPU policy to this process; returns what was set (for the tests)."""
    done = {}
    if "OMP_WAIT_POLICY" not in env and "torch" not in sys.modules:
        env["OMP_WAIT_POLICY"] = done["OMP_WAIT_POLICY"] = "PASSIVE"
    if os.environ.get("PATCHSCALER_MALLOC", "1") != "0" and _mallopt(M_MMAP_MAX, 0) \
            and _mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD):
        done["malloc"] = "no mmap, trim above 1 GiB"
    return done


def _mallopt(param: int, value: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(param, value))
    except (OSError, AttributeError):
        return False

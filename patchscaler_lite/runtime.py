"""Process-wide CPU settings for the command-line tools. The library never applies them on import:
a notebook kernel or another program keeps whatever its owner chose.

OMP_WAIT_POLICY=PASSIVE: torch's OpenMP threads sleep, instead of spinning, between parallel
regions. Measured with scripts/bench_cpu.py --policies (2-core CPU, median of interleaved runs):
alone on the machine it changes nothing (1.02x at 128^2 LR, 0.99x at 384^2); beside one other
CPU-bound process the pipeline ran 2.06x and 2.08x faster, because spinning threads no longer
steal the cores they wait for. OpenMP reads the variable once, when torch is loaded, so it is set
before the first `import torch` (`patchscaler_lite/__init__.py` imports nothing heavy until a name
is used). An explicit value in the environment wins. For a notebook kernel:
`OMP_WAIT_POLICY=PASSIVE jupyter lab` (what `make lab` does).

Not applied: the glibc allocator settings (no mmap for large blocks, no trimming) gave no speed-up
here and raised the peak memory of a 512^2 LR upscale by 60-120 MB.
"""

from __future__ import annotations

import os
import sys


def configure_cli_process(env=os.environ) -> dict[str, str]:
    """Apply the CLI's CPU policy to this process; returns what was set (for the tests)."""
    done = {}
    if "OMP_WAIT_POLICY" not in env and "torch" not in sys.modules:
        env["OMP_WAIT_POLICY"] = done["OMP_WAIT_POLICY"] = "PASSIVE"
    return done

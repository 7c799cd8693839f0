"""The core library imports no plotting (and no pyiqa until a metric is used), with no I/O."""

import json
import os
import subprocess
import sys

CORE = ["config", "errors", "image_io", "data", "patches", "grm.model", "grouping", "weights",
        "eval.metrics", "grm.pairs", "grm.training", "trainer"]

SCRIPT = f"""
import json, sys
import patchscaler_lite
for m in {CORE!r}:
    __import__("patchscaler_lite." + m)
print(json.dumps({{"matplotlib": sorted(k for k in sys.modules if k.split(".")[0] == "matplotlib"),
                  "pyiqa": "pyiqa" in sys.modules}}))
"""


def test_core_imports_no_matplotlib(tmp_path):
    # PATCHSCALER_DATA points nowhere: importing must not touch the data folder (no I/O at import).
    env = {**os.environ, "PATCHSCALER_DATA": str(tmp_path / "missing"), "MPLBACKEND": "Agg",
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert loaded["matplotlib"] == [], f"core modules import {loaded['matplotlib'][:5]}"
    assert loaded["pyiqa"] is False, "pyiqa (~4 s) should load only when a metric is first used"
    assert list(tmp_path.iterdir()) == []                          # and nothing was written

"""The CLI's process-wide CPU policy (runtime.py): applied by the entry point, never by the library."""

import os
import subprocess
import sys

from patchscaler_lite import runtime

# A fresh interpreter with the variable unset (or set to `preset`) before anything is imported.
PROBE = ("import os; os.environ.pop('OMP_WAIT_POLICY', None); {pre}; {imp}; import torch; "
         "print(os.environ.get('OMP_WAIT_POLICY'))")


def _probe(imp: str, preset: str | None = None) -> str:
    pre = f"os.environ['OMP_WAIT_POLICY'] = {preset!r}" if preset else "pass"
    done = subprocess.run([sys.executable, "-c", PROBE.format(pre=pre, imp=imp)], env=os.environ,
                          capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_the_entry_point_sets_a_passive_wait_policy_before_torch_loads():
    assert _probe("import patchscaler_lite.cli") == "PASSIVE"


def test_the_library_leaves_the_process_alone():
    assert _probe("import patchscaler_lite as psl; psl.restore; psl.PatchScalerPipeline") == "None"


def test_an_explicit_choice_wins():
    assert _probe("import patchscaler_lite.cli", preset="ACTIVE") == "ACTIVE"


def test_too_late_once_torch_is_loaded():
    """OpenMP reads the variable when torch loads, so setting it afterwards would be a lie."""
    env = {}
    assert "torch" in sys.modules
    done = runtime.configure_cli_process(env)
    assert "OMP_WAIT_POLICY" not in env and "OMP_WAIT_POLICY" not in done

"""A throw-away JupyterLab server for the browser test: 127.0.0.1, a free port, no token.

It serves a temporary copy of the notebooks with PATCHSCALER_FAST=1 in the environment (so every
kernel it starts runs in fast mode), and keeps its settings, workspaces and runtime files in the same
temporary folder, so the user's own JupyterLab set-up is neither read nor changed.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "outputs" / "browser"          # screenshots of failures (and of everything with --shots all)

# Lab settings for an unattended run: no news or update checks (no network here), no dialogs.
SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
        {"fetchNews": "false", "checkForUpdates": False},
    # every cell attached to the page (no virtual scrolling), the kernel started without a dialog
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings":
        {"autoStartDefaultKernel": True, "windowingMode": "none"},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def copy_notebooks(src: Path, dst: Path) -> list[str]:
    """Copy the notebooks folder (and whatever sits beside the notebooks) without outputs of old runs."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    return sorted(p.name for p in dst.glob("[0-9][0-9]_*.ipynb"))


class Lab:
    """`with Lab(folder) as lab:` starts `jupyter lab` on lab.url and stops it on exit."""

    def __init__(self, root: Path, *, env: dict | None = None, startup_timeout: float = 90):
        self.root, self.port = Path(root), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_env, self.startup_timeout = env or {}, startup_timeout
        self.log_path = self.root.parent / "jupyterlab.log"

    def __enter__(self) -> Lab:
        state = self.root.parent / "lab-state"
        for rel, value in SETTINGS.items():
            path = state / "settings" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(value))
        env = {**os.environ, "PATCHSCALER_FAST": "1", "JUPYTERLAB_SETTINGS_DIR": str(state / "settings"),
               "JUPYTERLAB_WORKSPACES_DIR": str(state / "workspaces"),
               "JUPYTER_RUNTIME_DIR": str(state / "runtime"), "JUPYTER_DATA_DIR": str(state / "data"),
               **self.extra_env}
        env.pop("MPLBACKEND", None)                  # the notebooks' figures must reach the page
        cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
               "--ip=127.0.0.1", f"--port={self.port}", "--port-retries=0",
               "--IdentityProvider.token=", "--ServerApp.password=", "--ServerApp.disable_check_xsrf=True",
               f"--ServerApp.root_dir={self.root}", "--LabApp.news_url=None"]
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, cwd=self.root, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        end = time.monotonic() + self.startup_timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited ({self.proc.returncode}); see {self.log_path}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/status", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"jupyter lab did not answer on {self.url} in {self.startup_timeout:.0f} s; "
                           f"see {self.log_path}")

    def api(self, path: str, method: str = "GET"):
        req = urllib.request.Request(f"{self.url}/api/{path}", method=method)
        with urllib.request.urlopen(req, timeout=30) as r:
            body = r.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self) -> None:
        """Stop every kernel (one notebook's torch must not sit in memory during the next)."""
        for k in self.api("kernels"):
            self.api(f"kernels/{k['id']}", "DELETE")

    def __exit__(self, *exc) -> None:
        try:
            self.shutdown_kernels()
        except OSError:
            pass
        self.proc.terminate()                        # our own child, by its handle
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()

"""Fixtures of the browser test: one JupyterLab server and one headless Chromium for the session.

Run with `make test-browser` (or `.venv/bin/python -m pytest tests_browser`). The browser is the
system's Chromium (Debian `chromium`), driven by Playwright's Python API with `executable_path`:
Playwright's own browser download is never used. No Chromium: one line on stderr and exit status 4.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))     # lab.py beside this file (no package, no install)

from lab import ROOT, SHOTS, Lab, copy_notebooks  # noqa: E402

# The flags a headless run needs on these machines: no sandbox as root, no GPU, and no background
# connections (the closed network refuses them, many at a time).
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1366, "height": 900}     # a common laptop / projector width


def chromium_path() -> str | None:
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    return path if Path(path).is_file() and os.access(path, os.X_OK) else None


def pytest_addoption(parser):
    parser.addoption("--shots", choices=("failures", "all"), default="failures",
                     help="screenshots under outputs/browser/: of failures only, or of every notebook")


def pytest_sessionstart(session):
    if chromium_path() is None:
        sys.stderr.write("test-browser: no Chromium found (looked at $CHROMIUM, `chromium` on PATH, "
                         "/usr/bin/chromium); install it with `apt-get install -y chromium`\n")
        pytest.exit("no Chromium", returncode=4)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    if rep.when == "call":
        item.rep_call = rep                # the page fixture screenshots failed notebooks
    return rep


@pytest.fixture(scope="session")
def lab(request):
    """JupyterLab on a temporary copy of notebooks/; its log goes to outputs/browser/ on failure."""
    tmp = Path(tempfile.mkdtemp(prefix="psl-browser-"))
    copy_notebooks(ROOT / "notebooks", tmp / "notebooks")
    with Lab(tmp / "notebooks") as server:
        yield server
    if request.session.testsfailed:
        SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(server.log_path, SHOTS / "jupyterlab.log")
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, lab, request):
    """A fresh page (its own context: no state between notebooks); kernels stopped afterwards.
    With --shots all the window is taller (same width, so the same cell width), so that a cell's
    screenshot holds its whole figure."""
    tall = request.config.getoption("--shots") == "all"
    context = browser.new_context(viewport={**VIEWPORT, "height": 2400} if tall else VIEWPORT)
    pg = context.new_page()
    yield pg
    rep = getattr(request.node, "rep_call", None)
    failed = rep is not None and rep.failed
    if failed or request.config.getoption("--shots") == "all":
        SHOTS.mkdir(parents=True, exist_ok=True)
        name = request.node.callspec.id.removesuffix(".ipynb")
        path = SHOTS / f"{name}{'-FAILED' if failed else ''}.png"
        try:
            pg.screenshot(path=path, full_page=True)
        except Exception as e:                    # a screenshot must not hide the real failure
            sys.stderr.write(f"screenshot {path} failed: {e}\n")
    context.close()
    lab.shutdown_kernels()

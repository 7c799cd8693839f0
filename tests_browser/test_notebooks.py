"""Every notebook as a class sees it: JupyterLab in a real (headless) Chromium, fast mode.

For each notebooks/[0-9][0-9]_*.ipynb: Run All from the Run menu, wait until the kernel is idle with
no cell queued, save, and check
- no error output and every code cell executed (read from the saved file);
- every widget output renders as controls (ipywidgets DOM: slider handles, <select>), not as text;
- no figure is shrunk to the cell width (its PNG is at most as wide as the cell shows it), so the
  figures' 8 pt minimum (tests/test_viz_readable.py) is what reaches the screen;
- moving one control (a slider with the keyboard, else a dropdown) changes the figure under it
  (the bytes of its <img>, or its text readout).
"""

from __future__ import annotations

import json
import time

import pytest
from lab import ROOT, SHOTS

NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
RUN_TIMEOUT_S = 420          # one notebook's Run All, on a busy 2-core machine
REDRAW_TIMEOUT_S = 60        # one control move until its figure is replaced
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"

# Read from the page: the code cells' prompts and the notebook's execution indicator.
RUN_STATE_JS = """() => {
  const p = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')]
    .map(e => e.textContent.trim());
  const ind = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator');
  return {queued: p.filter(s => s.includes('*')).length, done: p.filter(s => /\\[\\d+\\]/.test(s)).length,
          status: ind ? ind.dataset.status : null};
}"""

# Per code cell: widget outputs rendered as widgets, controls, images and text fallbacks.
CELLS_JS = """() => [...document.querySelectorAll('.jp-Notebook .jp-CodeCell')].map((c, i) => {
  const outs = [...c.querySelectorAll('.jp-OutputArea-output')];
  return {
    i,
    widget_outputs: outs.filter(o => o.querySelector(':scope > .jupyter-widgets, .jupyter-widgets')).length,
    sliders: c.querySelectorAll('.widget-slider .noUi-handle').length,
    dropdowns: c.querySelectorAll('.widget-dropdown select').length,
    imgs: [...c.querySelectorAll('.jp-OutputArea-output img')].map(im =>
      ({natural: im.naturalWidth, shown: Math.round(im.getBoundingClientRect().width),
        cell: Math.round(im.closest('.jp-OutputArea-output').getBoundingClientRect().width)})),
    fallback: outs.map(o => o.innerText).filter(t =>
      /Error displaying widget|Loading widget|(IntSlider|FloatSlider|Dropdown|VBox)\\(/.test(t)),
  };
})"""


def open_notebook(page, lab, name: str) -> None:
    page.goto(f"{lab.url}/lab/tree/{name}?reset", wait_until="domcontentloaded")
    page.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=90_000)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status=idle]", timeout=90_000)
    page.get_by_text("| Idle").first.wait_for(timeout=90_000)        # the kernel, in the status bar


def run_all(page) -> float:
    """Run > Run All Cells, then wait until nothing is queued and the kernel is idle; seconds."""
    t0 = time.monotonic()
    for _ in range(3):                         # the menu can miss a click while Lab is still settling
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        try:
            page.wait_for_function(f"() => ({RUN_STATE_JS})().queued > 0 || ({RUN_STATE_JS})().done > 0",
                                   timeout=10_000)
            break
        except Exception:
            page.keyboard.press("Escape")
    else:
        pytest.fail("Run > Run All Cells did not start the notebook")
    page.wait_for_function(f"""() => {{ const s = ({RUN_STATE_JS})();
                                       return s.queued === 0 && s.status === 'idle'; }}""",
                           timeout=RUN_TIMEOUT_S * 1000, polling=1000)
    page.wait_for_timeout(1500)                # late display updates and widget views
    return time.monotonic() - t0


def saved_notebook(page, lab, name: str) -> dict:
    """Save from the browser (Ctrl+S) and read the file the server wrote."""
    path = lab.root / name
    before = path.stat().st_mtime_ns
    page.locator(".jp-Notebook").first.click(position={"x": 5, "y": 5})
    page.keyboard.press("Escape")
    page.keyboard.press("Control+s")
    for _ in range(60):
        if path.stat().st_mtime_ns != before:
            break
        page.wait_for_timeout(250)
    else:
        pytest.fail("the notebook was not saved")
    page.wait_for_timeout(300)
    return json.loads(path.read_text())


def check_outputs(nb: dict) -> int:
    """No error output, every code cell executed; returns the number of widget outputs."""
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    errors = [f"cell {i}: {o['ename']}: {o['evalue']}" for i, c in enumerate(code)
              for o in c["outputs"] if o["output_type"] == "error"]
    assert not errors, "error output:\n" + "\n".join(errors)
    missing = [i for i, c in enumerate(code) if c["source"] and c["execution_count"] is None]
    assert not missing, f"code cells never executed: {missing}"
    return sum(WIDGET_MIME in o.get("data", {}) for c in code for o in c["outputs"])


def pick_control(cells: list[dict]) -> tuple[int, str]:
    """(code cell index, 'slider' | 'dropdown'): the first slider in a cell with a figure, else
    the first dropdown in one, else the first control at all."""
    for kind in ("sliders", "dropdowns"):
        for c in cells:
            if c[kind] and c["imgs"]:
                return c["i"], kind[:-1]
    for kind in ("sliders", "dropdowns"):
        for c in cells:
            if c[kind]:
                return c["i"], kind[:-1]
    pytest.fail("no slider or dropdown rendered")


def figure_state(cell):
    """What the control redraws: the cell's first image bytes (its data URL), else its text."""
    img = cell.locator(".jp-OutputArea-output img")
    if img.count():
        return img.first.get_attribute("src")
    return cell.locator(".jp-OutputArea-output .jp-RenderedText").last.inner_text()


def move(page, cell, kind: str) -> str:
    if kind == "slider":
        handle = cell.locator(".widget-slider .noUi-handle").first
        before = cell.locator(".widget-slider .widget-readout").first.inner_text()
        handle.focus()
        page.keyboard.press("ArrowRight")
        page.wait_for_timeout(300)
        if cell.locator(".widget-slider .widget-readout").first.inner_text() == before:
            page.keyboard.press("ArrowLeft")         # it sat at its maximum
            page.keyboard.press("ArrowLeft")
        return f"slider {before} -> {cell.locator('.widget-slider .widget-readout').first.inner_text()}"
    select = cell.locator(".widget-dropdown select").first
    options = select.locator("option").all_inner_texts()
    current = select.evaluate("s => s.options[s.selectedIndex].text")
    target = next(o for o in options if o != current)
    select.select_option(label=target)
    return f"dropdown {current} -> {target}"


def shoot_cells(page, name: str, cells: list[dict]) -> None:
    """With --shots all: one PNG per code cell with a figure, under outputs/browser/<notebook>/."""
    folder = SHOTS / name.removesuffix(".ipynb")
    folder.mkdir(parents=True, exist_ok=True)
    code = page.locator(".jp-Notebook .jp-CodeCell")
    for c in cells:
        if c["imgs"] or c["sliders"] or c["dropdowns"]:
            out = code.nth(c["i"]).locator(".jp-Cell-outputWrapper")
            out.scroll_into_view_if_needed()
            out.screenshot(path=folder / f"cell{c['i']:02d}.png")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_in_jupyterlab(page, lab, name, request, record_property):
    open_notebook(page, lab, name)
    seconds = run_all(page)
    record_property("run_all_seconds", round(seconds, 1))
    print(f"{name}: Run All {seconds:.1f} s")

    n_widgets = check_outputs(saved_notebook(page, lab, name))
    cells = page.evaluate(CELLS_JS)
    assert n_widgets > 0, "no widget output: the notebook has no controls?"
    assert sum(c["widget_outputs"] for c in cells) == n_widgets, \
        f"{n_widgets} widget outputs, {sum(c['widget_outputs'] for c in cells)} rendered as widgets"
    assert not [t for c in cells for t in c["fallback"]], "widgets shown as text"
    assert any(c["sliders"] or c["dropdowns"] for c in cells), "no slider or dropdown rendered"
    shrunk = [f"cell {c['i']}: {im['natural']} px shown at {im['shown']} px"
              for c in cells for im in c["imgs"] if im["natural"] > im["shown"] + 1]
    if request.config.getoption("--shots") == "all":
        shoot_cells(page, name, cells)
    assert not shrunk, "figures wider than the cell, shrunk (text smaller than drawn):\n" + "\n".join(shrunk)

    i, kind = pick_control(cells)
    cell = page.locator(".jp-Notebook .jp-CodeCell").nth(i)
    cell.scroll_into_view_if_needed()
    before = figure_state(cell)
    moved = move(page, cell, kind)
    t0 = time.monotonic()
    while figure_state(cell) == before:
        if time.monotonic() - t0 > REDRAW_TIMEOUT_S:
            pytest.fail(f"cell {i}: {moved}, but its figure did not change in {REDRAW_TIMEOUT_S} s")
        page.wait_for_timeout(250)
    print(f"{name}: cell {i} {moved}: redrawn in {time.monotonic() - t0:.1f} s")

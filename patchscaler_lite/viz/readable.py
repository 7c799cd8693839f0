"""Figures readable in a notebook cell, and when projected: a width budget and a text check.

JupyterLab shows an output image at its own pixel size, but shrinks one wider than the cell to the
cell's width, and every font with it. The inline backend draws at 100 dpi. In Chromium at 1366 px
(a common laptop and projector width), with JupyterLab's file browser open, a notebook cell is
934 px wide (measured by tests_browser). So every figure here is at most CELL_INCHES wide (as saved
with bbox_inches="tight", as the inline backend does) and no text is under MIN_POINTS.
`readability_problems` checks both, plus overlapping labels; tests/test_viz_readable.py runs it
on every figure the notebooks show. It reads a few private matplotlib attributes (the ticks draw()
will draw, the suptitle, the side titles): an upgrade that moves them fails those tests loudly.
"""

from __future__ import annotations

import itertools

from matplotlib.text import Text
from matplotlib.transforms import Bbox

CELL_INCHES = 9.0          # 900 px at the inline backend's 100 dpi: fits the 934 px cell
MIN_POINTS = 8.0


def _axis_texts(ax) -> list[Text]:
    """Tick labels that are drawn (inside the view limits), axis labels and offset texts."""
    if not ax.axison:
        return []
    out = []
    for axis in (ax.xaxis, ax.yaxis):
        if not axis.get_visible():
            continue
        ticks = axis._update_ticks()          # exactly the ticks that draw() will draw
        out += [lab for t in ticks for lab in (t.label1, t.label2) if lab.get_visible()]
        out += [axis.label, axis.offsetText]
    return out


def _texts(fig) -> list[tuple[Text, object, str]]:
    """(text, owning axes or None, kind) for every non-empty visible text of the figure."""
    found = [(t, None, "figure") for t in fig.texts]
    if fig._suptitle is not None and fig._suptitle not in fig.texts:
        found.append((fig._suptitle, None, "figure"))
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        found += [(t, ax, "title") for t in (ax.title, ax._left_title, ax._right_title)]
        found += [(t, ax, "axis") for t in _axis_texts(ax)]
        found += [(t, ax, "annotation") for t in ax.texts]
        leg = ax.get_legend()
        if leg is not None and leg.get_visible():
            found += [(t, ax, "legend") for t in [*leg.get_texts(), leg.get_title()]]
    return [(t, ax, k) for t, ax, k in found if t.get_visible() and t.get_text().strip()]


def _overlap(a: Bbox, b: Bbox, pad: float = 1.0) -> bool:
    """True when a and b share more than a pad-pixel sliver."""
    return (min(a.x1, b.x1) - max(a.x0, b.x0) > pad) and (min(a.y1, b.y1) - max(a.y0, b.y0) > pad)


def readability_problems(fig, max_inches: float = CELL_INCHES, min_points: float = MIN_POINTS) -> list[str]:
    """What would be hard to read in a notebook cell: a figure wider than max_inches (tight bbox),
    text under min_points, two labels overlapping, a label over another panel, or an annotation
    across its panel's frame. [] when readable. Draws the figure (any non-interactive canvas)."""
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    problems = []
    width = fig.get_tightbbox(r).width
    if width > max_inches + 0.05:
        problems.append(f"figure {width:.2f} in wide > {max_inches} in")
    texts = _texts(fig)
    boxes = [t.get_window_extent(r) for t, _, _ in texts]
    for t, _, _ in texts:
        if t.get_fontsize() < min_points - 1e-6:
            problems.append(f"{t.get_text()!r}: {t.get_fontsize():g} pt < {min_points:g} pt")
    for (i, (t1, _, _)), (j, (t2, _, _)) in itertools.combinations(enumerate(texts), 2):
        if _overlap(boxes[i], boxes[j]):
            problems.append(f"{t1.get_text()!r} overlaps {t2.get_text()!r}")
    for (t, owner, kind), box in zip(texts, boxes):
        if kind == "annotation":
            frame = owner.bbox.padded(1)
            inside = frame.contains(box.x0, box.y0) and frame.contains(box.x1, box.y1)
            if _overlap(box, owner.bbox) and not inside:
                problems.append(f"annotation {t.get_text()!r} crosses its panel's frame")
            continue
        if kind == "legend":
            continue                               # legends sit inside their panel on purpose
        for ax in fig.axes:
            if ax.get_visible() and _overlap(box, ax.bbox, pad=2.0):
                problems.append(f"{t.get_text()!r} lies over a panel")
                break
    return problems

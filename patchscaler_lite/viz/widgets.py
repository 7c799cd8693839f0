"""ipywidgets controls with sensible ranges for the notebooks (never imported by the core).

Slider builders return widgets whose defaults are computed from the data, so a headless run (which
draws once with the defaults) shows a meaningful figure; `live` wires controls to a drawing function.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from IPython.display import Pretty, display
from ipywidgets import FloatSlider, IntSlider, VBox
from torch import Tensor


def threshold_sliders(q: Tensor, fractions=(0.6, 0.25)) -> tuple[FloatSlider, FloatSlider]:
    """(gamma1, gamma2) sliders spanning the Qmap values q (any shape).

    Defaults sit at the Qmap quantiles that put `fractions` (Simple, Medium) of the patches in the
    first two groups, since the absolute confidence scale depends on the GRM weights.
    """
    v = q.detach().flatten().float().cpu()
    lo, hi = float(v.min()), float(v.max())
    step = max((hi - lo) / 200, 1e-4)
    g1 = float(v.quantile(1 - fractions[0]))
    g2 = float(v.quantile(1 - fractions[0] - fractions[1]))
    kw = dict(min=lo, max=hi, step=step, readout_format=".3f", continuous_update=False)
    return (FloatSlider(value=g1, description="gamma1", **kw),
            FloatSlider(value=g2, description="gamma2", **kw))


def fraction_sliders(fractions=(0.6, 0.25)) -> tuple[FloatSlider, FloatSlider]:
    """(f_simple, f_medium) quantile sliders in [0, 1]; clip f_medium to 1 - f_simple before use."""
    kw = dict(min=0.0, max=1.0, step=0.05, continuous_update=False)
    return (FloatSlider(value=fractions[0], description="f_simple", **kw),
            FloatSlider(value=fractions[1], description="f_medium", **kw))


def xy_sliders(height: int, width: int, patch_size: int, step: int = 8) -> tuple[IntSlider, IntSlider]:
    """(x, y) sliders for the top-left corner of a P x P patch inside an H x W image, centred."""
    mx, my = max(width - patch_size, 0), max(height - patch_size, 0)
    kw = dict(step=step, continuous_update=False)
    return (IntSlider(value=mx // 2 // step * step, min=0, max=mx, description="x", **kw),
            IntSlider(value=my // 2 // step * step, min=0, max=my, description="y", **kw))


def live(draw, **controls) -> None:
    """Show `controls` (name -> widget) above draw(**their values), and redraw on every change.

    draw returns a matplotlib Figure (or any displayable object, e.g. a message string). The result
    is shown with IPython's display(..., display_id=True) and replaced in place with
    DisplayHandle.update: no ipywidgets Output widget is involved, so the first drawing is an
    ordinary cell output and headless runs (nbclient, nbmake) keep it. Cells whose output goes
    through an Output widget, as with `interact`, can stall nbclient until its cell timeout
    (jupyter/nbclient#312).
    """
    def render():
        obj = draw(**{k: w.value for k, w in controls.items()})
        if isinstance(obj, plt.Figure):
            plt.close(obj)                    # displayed once, by us, not again by the backend
        return Pretty(obj) if isinstance(obj, str) else obj    # text as text, not its repr

    display(VBox(list(controls.values())))
    handle = display(render(), display_id=True)

    def redraw(_change) -> None:
        obj = render()
        if handle is not None:
            handle.update(obj)
        else:                                 # plain Python (no IPython shell): just show it
            display(obj)

    for w in controls.values():
        w.observe(redraw, names="value")

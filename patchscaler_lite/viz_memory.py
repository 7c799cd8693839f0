"""Figures for the texture memory (matplotlib; never imported by the core modules)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
from torch import Tensor  # noqa: E402


def _show(ax, patch: Tensor, title: str) -> None:
    ax.imshow(patch.permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="nearest")
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_retrievals(queries: Tensor, values: Tensor, sims: Tensor, sources: list[list[str]],
                    labels: list[str] | None = None):
    """One row per query: the coarse query patch, then its K retrieved HR values.

    queries (n, 3, P, P), values (n, K, 3, P, P) in [0, 1]; sims (n, K); sources[n][K] photo names.
    Returns the matplotlib Figure.
    """
    n, K = sims.shape
    fig, axes = plt.subplots(n, K + 1, figsize=(1.6 * (K + 1), 1.8 * n), squeeze=False)
    for r in range(n):
        _show(axes[r, 0], queries[r], f"query {labels[r] if labels else r}")
        for c in range(K):
            _show(axes[r, c + 1], values[r, c], f"{sources[r][c]}\nsim {sims[r, c]:.3f}")
    fig.tight_layout()
    return fig

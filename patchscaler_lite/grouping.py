"""Stage 2, Qmap and grouping: per-patch mean confidence -> Simple / Medium / Hard.

Group ids: 0 = Simple (high confidence, few steps), 1 = Medium, 2 = Hard (low confidence).
`assign_groups(qmap, cfg)` is the one rule used by the pipeline, `qmap`, `upscale` and the analyses.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .config import GroupingConfig, validate_quantiles, validate_thresholds
from .errors import PatchScalerError
from .patches import PatchLayout, make_layout, patch_means

GROUP_NAMES = ("simple", "medium", "hard")


@dataclass
class Grouping:
    """Result of grouping one batch. qmap, groups: (B, nh, nw); counts: (3,) Simple/Medium/Hard."""

    qmap: Tensor
    groups: Tensor
    layout: PatchLayout

    @property
    def counts(self) -> dict[str, int]:
        return {n: int((self.groups == g).sum()) for g, n in enumerate(GROUP_NAMES)}


def qmap(confidence: Tensor, patch_size: int, overlap: int = 0) -> tuple[Tensor, PatchLayout]:
    """Qmap: mean confidence per patch. confidence (B, 1, H, W) in (0, 1] -> (B, nh, nw)."""
    if confidence.dim() != 4 or confidence.shape[1] != 1:
        raise PatchScalerError(f"confidence must be (B, 1, H, W), got {tuple(confidence.shape)}")
    layout = make_layout(confidence.shape, patch_size, overlap)
    return patch_means(confidence, layout), layout


def groups_from_thresholds(q: Tensor, thresholds) -> Tensor:
    """Simple if q > gamma1, Medium if gamma2 < q <= gamma1, Hard if q <= gamma2 -> int64 ids."""
    g1, g2 = validate_thresholds(thresholds)
    ids = torch.full_like(q, 2, dtype=torch.long)
    ids[q > g2] = 1
    ids[q > g1] = 0
    return ids


def groups_from_quantiles(q: Tensor, quantiles) -> Tensor:
    """Per image: the most confident round(f_simple * n) patches are Simple, the next
    round(f_medium * n) Medium, the rest Hard. q: (B, nh, nw) -> int64 ids of the same shape.
    Ties are broken by position (stable sort), so the result is deterministic.
    """
    f1, f2 = validate_quantiles(quantiles)
    B = q.shape[0]
    flat = q.reshape(B, -1)                                             # (B, n)
    n = flat.shape[1]
    n1 = round(f1 * n)
    n2 = min(n - n1, round(f2 * n))
    order = torch.sort(flat, dim=1, descending=True, stable=True).indices
    rank_ids = torch.full((n,), 2, dtype=torch.long, device=q.device)
    rank_ids[:n1] = 0
    rank_ids[n1 : n1 + n2] = 1
    ids = torch.empty_like(flat, dtype=torch.long)
    ids.scatter_(1, order, rank_ids.expand(B, n))
    return ids.reshape(q.shape)


def assign_groups(q: Tensor, cfg: GroupingConfig) -> Tensor:
    """Qmap (B, nh, nw) -> group ids (B, nh, nw) int64: by cfg.quantiles when set, else thresholds."""
    if cfg.quantiles is not None:
        return groups_from_quantiles(q, cfg.quantiles)
    return groups_from_thresholds(q, cfg.thresholds)


def group_patches(confidence: Tensor, cfg: GroupingConfig | None = None) -> Grouping:
    """Confidence map (B, 1, H, W) -> Grouping (Qmap, group ids, layout) under `cfg`."""
    cfg = GroupingConfig() if cfg is None else cfg
    q, layout = qmap(confidence, cfg.patch_size, cfg.overlap)
    return Grouping(q, assign_groups(q, cfg), layout)


def patch_nfe(counts, steps) -> int:
    """Predicted denoiser calls: sum_g counts_g * N_g. counts: {name: n} (Grouping.counts) or (3,)."""
    if isinstance(counts, dict):
        counts = [counts[n] for n in GROUP_NAMES]
    return int(sum(int(c) * int(n) for c, n in zip(counts, steps, strict=True)))

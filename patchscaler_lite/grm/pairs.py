"""Training data of the GRM: aligned (HR, LR) pairs, random aligned crops, and their evaluation.

LR images are synthesised once per photo (the bicubic kernel is symmetric, so flipping or rotating
an aligned HR/LR crop pair gives exactly the pair of the flipped photo); crops are then cut at
LR-grid-aligned positions. Everything random comes from the caller's torch.Generator.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..data import bicubic_up, crop_to_scale, degrade
from ..eval.metrics import psnr
from ..patches import dihedral


def make_pairs(images: list[Tensor], scale: int, degradation: str, generator=None,
               variants: int = 1) -> list[tuple[Tensor, Tensor]]:
    """[(hr (3, H, W), lr (3, H/s, W/s))]; `variants` degraded copies per photo (realistic only)."""
    pairs = []
    for hr in images:
        hr = crop_to_scale(hr, scale)
        n = variants if degradation == "realistic" else 1
        for _ in range(n):
            pairs.append((hr, degrade(hr, scale, degradation, generator=generator)[0]))
    return pairs


def sample_crops(pairs, batch: int, crop: int, scale: int, g: torch.Generator):
    """Random aligned crops: (lr (B, 3, c/s, c/s), hr (B, 3, c, c)); photos drawn by area."""
    areas = torch.tensor([float(hr.shape[-1] * hr.shape[-2]) for hr, _ in pairs])
    idx = torch.multinomial(areas, batch, replacement=True, generator=g)
    c = crop // scale
    lrs, hrs = [], []
    for i in idx.tolist():
        hr, lr = pairs[i]
        y = int(torch.randint(lr.shape[-2] - c + 1, (), generator=g))
        x = int(torch.randint(lr.shape[-1] - c + 1, (), generator=g))
        k = int(torch.randint(8, (), generator=g))
        lrs.append(dihedral(lr[:, y : y + c, x : x + c], k))
        hrs.append(dihedral(hr[:, y * scale : (y + c) * scale, x * scale : (x + c) * scale], k))
    return torch.stack(lrs), torch.stack(hrs)


@torch.no_grad()
def evaluate(model: torch.nn.Module, pairs, device) -> dict[str, float]:
    """Mean PSNR (RGB, dB, 8-bit quantised) of the model and of bicubic over full images."""
    was = model.training
    model.eval()
    out = {"grm": 0.0, "bicubic": 0.0}
    for hr, lr in pairs:
        lr, hr = lr[None].to(device), hr[None].to(device)
        coarse, _ = model(lr)
        out["grm"] += psnr(coarse, hr) / len(pairs)
        out["bicubic"] += psnr(bicubic_up(lr, model.cfg.scale), hr) / len(pairs)
    model.train(was)
    return out

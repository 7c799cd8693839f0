"""Validation data of the GRM: whole (HR, LR) photo pairs, degraded once, and their evaluation.

(Training crops come from photoset.sample_crops.) Everything random comes from the caller's
torch.Generator.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..data import bicubic_up, crop_to_scale, degrade
from ..eval.metrics import psnr


def make_pairs(images: list[Tensor], scale: int, degradation: str,
               generator=None) -> list[tuple[Tensor, Tensor]]:
    """[(hr (3, H, W), lr (3, H/s, W/s))]: each photo degraded once."""
    pairs = []
    for hr in images:
        hr = crop_to_scale(hr, scale)
        pairs.append((hr, degrade(hr, scale, degradation, generator=generator)[0]))
    return pairs


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

"""Claim C1: does the Qmap track real reconstruction difficulty? Per-patch numbers, one home.

`patch_stats` is the one place where per-patch difficulty (1 - mean confidence), the true MSE of
the coarse patch and the free heuristic (gradient energy of the bicubic upscale) are computed;
the `qmap-report` command, the GRM's calibration stage, notebook 01 and the README figure all
use it. Agreement is the Spearman rank correlation, pooled over every patch of every image.
Images (1, 3, H, W) float RGB in [0, 1]; confidence (1, 1, H, W).
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr
from torch import Tensor

from ..data import bicubic_up, crop_to_scale, degrade
from ..grm.model import confidence_bracket, restore
from ..grouping import qmap
from ..patches import patch_means
from .metrics import psnr, ssim


def gradient_energy(x: Tensor) -> Tensor:
    """Per-pixel squared gradient magnitude of the luma of (B, 3, H, W) -> (B, 1, H, W)."""
    y = x.mean(1, keepdim=True)
    gx = F.pad(y[..., :, 1:] - y[..., :, :-1], (0, 1, 0, 0))
    gy = F.pad(y[..., 1:, :] - y[..., :-1, :], (0, 0, 0, 1))
    return gx.square() + gy.square()


def spearman(a, b) -> float:
    """Spearman rank correlation of two 1-D sequences (scipy, average ranks for ties)."""
    return float(spearmanr(np.asarray(a), np.asarray(b)).statistic)


def patch_stats(hr: Tensor, coarse: Tensor, conf: Tensor, bicubic: Tensor | None,
                patch_size: int) -> dict:
    """Per-patch numbers for claim C1 from full-size maps (all (1, C, H, W), same H, W).

    Returns {"qmap": (nh, nw) mean C, "layout", and flat (n,) CPU tensors "difficulty" = 1 - Qmap,
    "mse" = true patch MSE of the coarse image, "heuristic" = gradient energy of the bicubic
    (only when `bicubic` is given)}. Patches do not overlap.
    """
    q, layout = qmap(conf, patch_size)                                      # (1, nh, nw)
    mse = patch_means((coarse - hr).square(), layout)
    out = {"qmap": q[0], "layout": layout, "difficulty": (1 - q).flatten().cpu(),
           "mse": mse.flatten().cpu()}
    if bicubic is not None:
        out["heuristic"] = patch_means(gradient_energy(bicubic), layout).flatten().cpu()
    return out


@torch.no_grad()
def image_stats(model, hr: Tensor, lr: Tensor, patch_size: int) -> dict:
    """patch_stats of the GRM on one (1, 3, H, W) image, plus PSNR / SSIM of GRM and bicubic."""
    coarse, conf = restore(model, lr)
    bic = bicubic_up(lr, model.cfg.scale)
    return {**patch_stats(hr, coarse, conf, bic, patch_size), "coarse": coarse, "conf": conf,
            "psnr": {"bicubic": psnr(bic, hr), "grm": psnr(coarse, hr)},
            "ssim": {"bicubic": ssim(bic, hr), "grm": ssim(coarse, hr)}}


@torch.no_grad()
def pooled_spearman(model, pairs, patch_size: int = 32) -> float:
    """Spearman, pooled over all patches of all (hr, lr) pairs (3, H, W), of 1 - Qmap vs patch MSE."""
    diff, mse = [], []
    for hr, lr in pairs:
        coarse, conf = restore(model, lr[None])
        st = patch_stats(hr[None], coarse, conf, None, patch_size)
        diff.append(st["difficulty"])
        mse.append(st["mse"])
    return spearman(torch.cat(diff), torch.cat(mse))


def qmap_report(model, photos: dict[str, Tensor], *, degradation: str = "bicubic",
                patch_size: int = 32, seed: int = 0) -> dict:
    """Degrade each HR photo {name: (3, H, W)} (seed + i), run the GRM, and correlate Qmap
    difficulty and the heuristic with the true patch MSE: pooled and per photo. JSON-ready dict."""
    device = next(model.parameters()).device
    t0 = time.time()
    images, pooled = [], {"difficulty": [], "mse": [], "heuristic": []}
    for i, (name, hr) in enumerate(photos.items()):
        hr = crop_to_scale(hr, model.cfg.scale)[None].to(device)
        lr = degrade(hr, model.cfg.scale, degradation, generator=torch.Generator().manual_seed(seed + i))
        st = image_stats(model, hr, lr, patch_size)
        for k in pooled:
            pooled[k].append(st[k])
        images.append({"image": name, "size": list(hr.shape[-2:]), "patches": len(st["mse"]),
                       "psnr": st["psnr"], "ssim": st["ssim"],
                       "spearman": spearman(st["difficulty"], st["mse"]),
                       "spearman_heuristic": spearman(st["heuristic"], st["mse"])})
    cat = {k: torch.cat(v).numpy() for k, v in pooled.items()}
    return {
        "spearman": spearman(cat["difficulty"], cat["mse"]),
        "spearman_heuristic": spearman(cat["heuristic"], cat["mse"]),
        "psnr": {m: float(np.mean([r["psnr"][m] for r in images])) for m in ("bicubic", "grm")},
        "ssim": {m: float(np.mean([r["ssim"][m] for r in images])) for m in ("bicubic", "grm")},
        "patches": int(len(cat["mse"])), "patch_size": patch_size, "degradation": degradation,
        "device": str(device), "seconds": round(time.time() - t0, 2), "images": images,
    }


def binned_mean(score, err, bins: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Calibration curve: sort patches by score, cut into `bins` equal-count bins, and return
    (mean score rank in [0, 1] of each bin, mean err of each bin), both (bins,).

    Ties in score keep their input order (stable sort). A score that tracks err gives an
    increasing curve; a useless one a flat curve.
    """
    score, err = np.asarray(score, dtype=np.float64), np.asarray(err, dtype=np.float64)
    order = np.argsort(score, kind="stable")
    rank = np.empty(len(score))
    rank[order] = (np.arange(len(score)) + 0.5) / len(score)
    parts = np.array_split(order, bins)
    return (np.array([rank[p].mean() for p in parts]), np.array([err[p].mean() for p in parts]))


def minimise_bracket(err2: Tensor, eta: float, max_iter: int = 200) -> Tensor:
    """Minimise C e^2 - eta log C over C in (0, 1] numerically, for each e^2 of err2 (E,) -> C (E,).

    L-BFGS (torch.optim) on u = log C without the constraint; the bracket is convex in u, so the
    constrained minimiser is the unconstrained one clipped to u <= 0 (C <= 1). The closed form it
    should match is grm.model.confidence_optimum: min(1, eta / e^2).
    """
    e2 = err2.detach().double()
    u = torch.zeros_like(e2, requires_grad=True)
    opt = torch.optim.LBFGS([u], lr=1.0, max_iter=max_iter, tolerance_grad=1e-14,
                            tolerance_change=1e-16, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad()
        f = confidence_bracket(u.exp(), e2, eta).sum() / eta                # scaled to O(1)
        f.backward()
        return f

    opt.step(closure)
    return u.detach().clamp(max=0.0).exp().to(err2.dtype)

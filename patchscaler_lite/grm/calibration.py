"""Second training stage of the GRM: calibrate the confidence head with the body frozen.

Why: in joint training the confidence term lam * (C e^2 - eta log C) is tiny next to the L1 term
(lam = 0.05, e^2 ~ 1e-3), so the shared body learns for the image and the confidence head is left
under-trained: measured on the val photos after the joint run, C never exceeded 0.57 and its
patch means ranked patches across images poorly. With the body and the RGB head frozen, the coarse
image (and so every PSNR number) is unchanged, and the head alone minimises the confidence bracket,
whose per-pixel optimum is still C* = min(1, eta / e^2). Adam makes the loss scale irrelevant.

Generalisation: the body has seen every train photo, so its errors there are lower and more
"memorised" than on new photos, and a head fitted to them ranks val patches poorly across images.
The calibration therefore sees the train photos at several scales (each copy downscaled, with
antialiasing, before the x4 degradation: content at a new scale is partly new to the body) and
with their colour channels randomly permuted (the head must not key on the colours of ten
photos). Measured on the val photos (pooled Spearman of 1 - Qmap vs true patch MSE): see the
training report's `confidence_calibration`.

Ranking term (optional, `GRMTrainConfig.calib_rank`): the bracket's optimum C* = min(1, eta / e^2)
is flat at 1 wherever e^2 < eta, so patches of smooth, well-restored content (PSNR above ~30 dB)
all tie at difficulty 0 and the Qmap cannot rank them. `patch_rank_loss` adds a pairwise logistic
(Bradley-Terry) loss on the log patch difficulties log(1 - mean C) against the order of the true
patch MSEs, which gives the head a signal in that regime too. It ranks within and across the
crops of a batch.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from ..eval.difficulty import pooled_spearman
from ..photoset import PhotoSet, sample_crops
from .model import GlobalRestorationModule, confidence_bracket
from .pairs import make_pairs

CALIB_SCALES = (1.0, 0.75, 0.5)


def permute_channels(lr: Tensor, hr: Tensor, g: torch.Generator) -> tuple[Tensor, Tensor]:
    """The same random RGB permutation for each (lr, hr) pair of a batch (B, 3, ., .)."""
    perm = torch.stack([torch.randperm(3, generator=g) for _ in range(lr.shape[0])])
    def pick(x):
        return x.gather(1, perm[:, :, None, None].expand(-1, -1, *x.shape[-2:]))
    return pick(lr), pick(hr)


def patch_rank_loss(conf: Tensor, err2: Tensor, patch: int = 32, margin: float = 0.5) -> Tensor:
    """Pairwise ranking loss of patch difficulty against true patch error, for a batch.

    conf, err2: (B, 1, H, W), H and W multiples of `patch`. With d = 1 - patch mean of C and m =
    log patch MSE, every pair of non-overlapping patches (i, j) whose m differ by more than
    `margin` contributes -log P(the harder one is ranked harder), under the Bradley-Terry model
    P(i harder than j) = d_i / (d_i + d_j), i.e. softplus(-sign(m_i - m_j) * (log d_i - log d_j)).
    It depends only on difficulty *ratios*, so it orders patches without forcing the scale of C
    (which the bracket sets). The mean over those pairs; 0 when no pair qualifies.
    """
    d = (1 - F.avg_pool2d(conf, patch).flatten()).clamp_min(1e-7)       # (n,) patch difficulty
    m = torch.log(F.avg_pool2d(err2, patch).flatten() + 1e-8)            # (n,) log true patch MSE
    dm = m[:, None] - m[None]                                            # (n, n)
    keep = dm.abs() > margin
    if not keep.any():
        return conf.sum() * 0
    ld = d.log()
    return F.softplus(-torch.sign(dm[keep]) * (ld[:, None] - ld[None])[keep]).mean()


def calibrate_confidence(model: GlobalRestorationModule, train: PhotoSet, val_images, *,
                         iters: int = 1500, batch_size: int = 16, crop: int = 96, lr: float = 1e-3,
                         seed: int = 0, device="cpu", progress: bool = True,
                         degradation: str = "bicubic", rank_weight: float = 0.0) -> dict:
    """Train model.to_conf only (in place) on crops of the train photos at the CALIB_SCALES, channels
    permuted, LR made by `degradation` (the joint stage's). val_images {name: (3, H, W)}, degraded
    once as in the joint stage (seed 12345). rank_weight: the weight of patch_rank_loss added to
    the bracket (0: the paper's bracket alone). Returns a report with the val Spearman
    before/after."""
    g = torch.Generator().manual_seed(seed)
    model = model.to(device)
    s = model.cfg.scale
    val_pairs = [(h.to(device), l.to(device)) for h, l in
                 make_pairs(list(val_images.values()), s, degradation,
                            torch.Generator().manual_seed(12345))]
    before = pooled_spearman(model.eval(), val_pairs)
    for p in model.parameters():
        p.requires_grad_(False)
    params = list(model.to_conf.parameters())
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, iters)
    t0 = time.time()
    model.eval()                                           # no dropout/BN; clamps the coarse image
    for _ in tqdm(range(iters), desc="calibrate confidence", disable=not progress):
        lr_img, hr_img = permute_channels(*sample_crops(train, batch_size, crop, s, g,
                                                        degradation=degradation,
                                                        rescale=CALIB_SCALES), g)
        coarse, conf = model(lr_img.to(device))
        err2 = (coarse - hr_img.to(device)).square().mean(1, keepdim=True)
        loss = confidence_bracket(conf.clamp_min(1e-6), err2, model.cfg.eta).mean()
        if rank_weight > 0:
            loss = loss + rank_weight * patch_rank_loss(conf, err2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    for p in model.parameters():
        p.requires_grad_(True)
    after = pooled_spearman(model.eval(), val_pairs)
    return {"iters": iters, "batch_size": batch_size, "crop": crop, "lr": lr, "seed": seed,
            "scales": list(CALIB_SCALES), "permute_channels": True, "degradation": degradation,
            "rank_weight": rank_weight,
            "seconds": round(time.time() - t0, 1), "val_spearman_before": round(before, 4),
            "val_spearman_after": round(after, 4)}

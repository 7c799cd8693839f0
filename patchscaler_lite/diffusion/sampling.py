"""Patch-adaptive Group Sampling (PGS) with shortcut paths, and the uniform baseline.

Group g (0 Simple, 1 Medium, 2 Hard) starts at T_g from the coarse patches noised by Eq. 6 and runs
N_g deterministic DDIM calls down to 0. Patches are independent, so each group is processed as
bounded batches of patches; memory does not grow with image size. `patch_nfe` counts exactly one
per patch per denoiser call.

Samplers take one `condition(y0, idx) -> denoise` callable, called once per patch batch (idx: the
indices of the batch's patches, so the caller can look up per-patch conditions such as texture
prompts, and prepare them once for the whole path); `denoise(x_t, t) -> x0_hat` is then called at
every step. A per-step `callback(StepInfo)` lets notebooks watch every step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..config import PGSConfig
from ..errors import PatchScalerError
from .schedule import alpha_bar, ddim_step, shortcut_start, timesteps_for


@dataclass(frozen=True)
class StepInfo:
    """What the sampler's callback receives after every denoiser call (k-diffusion style).

    x_t: the batch's state at t (the denoiser's input); x_next: after the DDIM step to t_next
    (x0 itself when t_next = 0); x0_hat: the denoiser's clean estimate; all (M, 3, P, P) in
    [-1, 1]. idx: (M,) indices of these patches among all N patches of the call.
    """

    group: int
    step: int
    t: int
    t_next: int
    x_t: Tensor
    x_next: Tensor
    x0_hat: Tensor
    idx: Tensor


@dataclass
class SampleStats:
    """Exact accounting: patches and denoiser calls per group."""

    patches: list[int] = field(default_factory=lambda: [0, 0, 0])
    patch_nfe: list[int] = field(default_factory=lambda: [0, 0, 0])

    @property
    def total_nfe(self) -> int:
        return sum(self.patch_nfe)


@torch.no_grad()
def sample_group(condition, y0: Tensor, idx: Tensor, t_start: int, steps: int, eps: Tensor,
                 abar: Tensor, *, group: int = 0, callback=None) -> Tensor:
    """Shortcut path for one batch: y0 (M, 3, P, P) in [-1, 1] noised to t_start (Eq. 6), then
    `steps` DDIM calls down to t = 0. eps: (M, 3, P, P) standard normal. Returns x0 (M, 3, P, P)."""
    ts = timesteps_for(t_start, steps)                                # t_0 > ... > t_S = 0
    x = shortcut_start(y0, t_start, eps, abar)
    denoise = condition(y0, idx)                                      # once for the whole path
    for i, (t, t_next) in enumerate(zip(ts[:-1], ts[1:])):
        tt = torch.full((len(x),), t, device=x.device, dtype=torch.long)
        x0_hat = denoise(x, tt).float()
        x_next = ddim_step(x, x0_hat, t, t_next, abar) if t_next > 0 else x0_hat
        if callback is not None:
            callback(StepInfo(group, i, t, t_next, x, x_next, x0_hat, idx))
        x = x_next
    return x


@torch.no_grad()
def sample_patches(condition, y0: Tensor, groups: Tensor, cfg: PGSConfig, eps: Tensor, *,
                   callback=None, progress=None) -> tuple[Tensor, SampleStats]:
    """Run PGS over all patches. y0, eps: (N, 3, P, P); groups: (N,) ids in {0, 1, 2};
    condition(y0_batch, idx) -> denoise(x_t, t) -> x0_hat (see the module docstring).

    Returns the restored patches (N, 3, P, P) in [-1, 1] and the exact NFE accounting.
    """
    if y0.shape != eps.shape or groups.shape != (len(y0),):
        raise PatchScalerError(f"y0 {tuple(y0.shape)}, eps {tuple(eps.shape)} and groups "
                               f"{tuple(groups.shape)} do not match")
    abar = alpha_bar().to(y0.device)
    out = torch.empty_like(y0)
    stats = SampleStats()
    for g, (t_start, steps) in enumerate(cfg.plan()):
        sel = (groups == g).nonzero().flatten()
        stats.patches[g] = len(sel)
        stats.patch_nfe[g] = len(sel) * steps
        for chunk in sel.split(cfg.batch_size):
            out[chunk] = sample_group(condition, y0[chunk], chunk, t_start, steps, eps[chunk], abar,
                                      group=g, callback=callback)
            if progress is not None:
                progress(len(chunk))
    return out, stats

"""Patch-adaptive Group Sampling (PGS) with shortcut paths, and the uniform baseline.

Group g (0 Simple, 1 Medium, 2 Hard) starts at T_g from the coarse patches noised by Eq. 6 and runs
N_g deterministic DDIM calls down to 0. Patches are independent and the denoiser takes one timestep
per patch, so one call can serve patches of every group at once: the sampler keeps a pool of at
most `batch_size` patches in flight, each at its own place on its own path, and refills the pool
as patches finish. Every call but the last few is full, whatever the group sizes (a group of 17
Hard patches no longer costs 6 calls of 17), and memory does not grow with image size.
`patch_nfe` counts exactly one per patch per denoiser call.

Samplers take a `Conditioner`: `prepare(y0, idx)` is called once per patch (in the cohort of
patches that enter the pool together; idx: their indices, so the caller can look up per-patch
conditions such as texture prompts and encode them once for the whole path), `join(conds)` makes
one condition of several cohorts' conditions, and `denoise(x_t, t, cond) -> x0_hat` is one
denoiser call (t: one timestep per patch). A per-cohort `callback(StepInfo)` after every call lets
notebooks watch every step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor

from ..config import PGSConfig
from ..errors import PatchScalerError
from .schedule import alpha_bar, ddim_step, shortcut_start, timesteps_for


class Conditioner(Protocol):
    """What the sampler needs from a denoiser: see the module docstring."""

    def prepare(self, y0: Tensor, idx: Tensor) -> Any: ...

    def join(self, conds: list) -> Any: ...

    def denoise(self, x_t: Tensor, t: Tensor, cond: Any) -> Tensor: ...


@dataclass(frozen=True)
class StepInfo:
    """What the sampler's callback receives after every denoiser call, once per cohort of patches
    that share a group and a step (k-diffusion style).

    x_t: the cohort's state at t (the denoiser's input); x_next: after the DDIM step to t_next
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
    """Exact accounting: patches and patch-NFE per group, and the denoiser calls made."""

    patches: list[int] = field(default_factory=lambda: [0, 0, 0])
    patch_nfe: list[int] = field(default_factory=lambda: [0, 0, 0])
    calls: int = 0

    @property
    def total_nfe(self) -> int:
        return sum(self.patch_nfe)


@dataclass
class _Cohort:
    """Patches of one group that entered the pool together, so they share their step."""

    group: int
    idx: Tensor
    path: list[int]                  # t_0 > ... > t_S = 0
    x: Tensor
    cond: Any
    step: int = 0


@torch.no_grad()
def sample_patches(conditioner: Conditioner, y0: Tensor, groups: Tensor, cfg: PGSConfig,
                   eps: Tensor, *, callback=None, progress=None) -> tuple[Tensor, SampleStats]:
    """Run PGS over all patches. y0, eps: (N, 3, P, P); groups: (N,) ids in {0, 1, 2}.

    Patches enter the pool longest path first (Hard, Medium, Simple: the longest-processing-time
    rule, so the short paths fill the last calls). progress(n): n more patches finished.
    Returns the restored patches (N, 3, P, P) in [-1, 1] and the exact NFE accounting.
    """
    if y0.shape != eps.shape or groups.shape != (len(y0),):
        raise PatchScalerError(f"y0 {tuple(y0.shape)}, eps {tuple(eps.shape)} and groups "
                               f"{tuple(groups.shape)} do not match")
    abar = alpha_bar().to(y0.device)
    out = torch.empty_like(y0)
    stats = SampleStats()
    plan = cfg.plan()
    queue: list[tuple[int, Tensor]] = []                  # (group, indices waiting), in entry order
    for g in sorted(range(len(plan)), key=lambda g: -plan[g][1]):
        sel = (groups == g).nonzero().flatten()
        stats.patches[g], stats.patch_nfe[g] = len(sel), len(sel) * plan[g][1]
        if len(sel):
            queue.append((g, sel))
    pool: list[_Cohort] = []
    joined = None                                         # the pool's condition, while it holds
    while pool or queue:
        free = cfg.batch_size - sum(len(c.idx) for c in pool)
        while free > 0 and queue:                         # refill the pool
            g, sel = queue[0]
            idx, rest = sel[:free], sel[free:]
            queue[0] = (g, rest)
            if not len(rest):
                queue.pop(0)
            path = timesteps_for(*plan[g])
            pool.append(_Cohort(g, idx, path, shortcut_start(y0[idx], path[0], eps[idx], abar),
                                conditioner.prepare(y0[idx], idx)))
            free -= len(idx)
            joined = None
        if joined is None:
            joined = conditioner.join([c.cond for c in pool])
        x = torch.cat([c.x for c in pool])
        t = torch.cat([torch.full((len(c.idx),), c.path[c.step], device=x.device, dtype=torch.long)
                       for c in pool])
        x0_hat = conditioner.denoise(x, t, joined).float().split([len(c.idx) for c in pool])
        stats.calls += 1
        done = 0
        for c, x0 in zip(pool, x0_hat):
            t_now, t_next = c.path[c.step], c.path[c.step + 1]
            x_next = ddim_step(c.x, x0, t_now, t_next, abar) if t_next > 0 else x0
            if callback is not None:
                callback(StepInfo(c.group, c.step, t_now, t_next, c.x, x_next, x0, c.idx))
            c.x, c.step = x_next, c.step + 1
            if t_next == 0:
                out[c.idx] = x_next
                done += len(c.idx)
        if done:
            pool = [c for c in pool if c.path[c.step] > 0]
            joined = None
            if progress is not None:
                progress(done)
    return out, stats

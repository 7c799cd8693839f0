"""Patch-adaptive Group Sampling (PGS) with shortcut paths, and the uniform baseline.

Group g (0 Simple, 1 Medium, 2 Hard) starts at T_g from the coarse patches noised by Eq. 6 and runs
N_g deterministic DDIM calls down to 0. Patches are independent and the denoiser takes one timestep
per patch, so one call can serve patches of every group at once: the sampler keeps `batch_size`
slots, each holding one patch at its own place on its own path, and refills a slot as soon as its
patch is done. Every call but the last few is full whatever the group sizes (17 Hard patches no
longer cost 6 calls of 17), and memory does not grow with image size. `patch_nfe` counts exactly
one per patch per denoiser call.

Samplers take a `Conditioner`. `prepare(y0, idx)` does the work that stays fixed along a patch's
path (texture prompt, its keys and values...) once per patch, for up to `batch_size` waiting
patches at a time (idx: their indices, so the caller can look up per-patch conditions).
`rows(cond, sel)` copies some rows of a condition and `put(buf, slots, src, rows)` writes rows of
one into slots of another, so the slots' condition is one buffer updated in place.
`denoise(x_t, t, cond) -> x0_hat` is one denoiser call (t: one timestep per patch). After every
call, `callback(StepInfo)` sees each cohort of patches that share a group and a step, so
notebooks can watch every step.
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

    def rows(self, cond: Any, sel: Tensor) -> Any: ...

    def put(self, buf: Any, slots: Tensor, src: Any, rows: Tensor) -> None: ...

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


@torch.no_grad()
def sample_patches(conditioner: Conditioner, y0: Tensor, groups: Tensor, cfg: PGSConfig,
                   eps: Tensor, *, callback=None, progress=None) -> tuple[Tensor, SampleStats]:
    """Run PGS over all patches. y0, eps: (N, 3, P, P); groups: (N,) ids in {0, 1, 2}.

    Patches enter the slots longest path first (Hard, Medium, Simple: the longest-processing-time
    rule, so the short paths fill the last calls). progress(n): n more patches finished.
    Returns the restored patches (N, 3, P, P) in [-1, 1] and the exact NFE accounting.
    """
    if y0.shape != eps.shape or groups.shape != (len(y0),):
        raise PatchScalerError(f"y0 {tuple(y0.shape)}, eps {tuple(eps.shape)} and groups "
                               f"{tuple(groups.shape)} do not match")
    dev, B = y0.device, cfg.batch_size
    abar = alpha_bar().to(dev)
    plan = cfg.plan()
    stats = SampleStats()
    rank = sorted(range(len(plan)), key=lambda g: -plan[g][1])          # longest path first
    order = torch.cat([(groups == g).nonzero().flatten() for g in rank]).to(dev)   # entry order
    for g, (_, steps) in enumerate(plan):
        stats.patches[g] = int((groups == g).sum())
        stats.patch_nfe[g] = stats.patches[g] * steps
    longest = max(steps for _, steps in plan)
    paths = torch.tensor([timesteps_for(*p) + [0] * (longest - p[1]) for p in plan], device=dev)
    groups = groups.to(dev)

    out = torch.empty_like(y0)
    slot = torch.full((B,), -1, dtype=torch.long, device=dev)          # entry position, -1 free
    step = torch.zeros(B, dtype=torch.long, device=dev)
    x = y0.new_empty((B, *y0.shape[1:]))
    buf = ready = None                                                  # slots' / prepared condition
    ready_at = ready_len = entered = 0                  # ready: order[ready_at:ready_at + ready_len]
    while True:
        free = (slot < 0).nonzero().flatten()
        while len(free) and entered < len(order):                       # refill the free slots
            if entered == ready_at + ready_len:                         # prepare the next ones
                ready_at = entered
                ready_idx = order[entered:entered + B]
                ready, ready_len = conditioner.prepare(y0[ready_idx], ready_idx), len(ready_idx)
            n = min(len(free), ready_at + ready_len - entered)
            into, pos = free[:n], torch.arange(entered, entered + n, device=dev)
            if buf is None:
                buf = conditioner.rows(ready, torch.zeros(B, dtype=torch.long, device=dev))
            conditioner.put(buf, into, ready, pos - ready_at)
            p = order[pos]
            slot[into], step[into] = pos, 0
            x[into] = shortcut_start(y0[p], paths[groups[p], 0], eps[p], abar)
            entered, free = entered + n, free[n:]
        live = (slot >= 0).nonzero().flatten()
        if not len(live):
            break
        full = len(live) == B
        p = order[slot[live]]                                           # patch index per live slot
        g, s = groups[p], step[live]
        t, t_next = paths[g, s], paths[g, s + 1]
        x_t = x if full else x[live]
        x0_hat = conditioner.denoise(x_t, t, buf if full else conditioner.rows(buf, live)).float()
        stats.calls += 1
        x_next = torch.where((t_next == 0)[:, None, None, None], x0_hat,
                             ddim_step(x_t, x0_hat, t, t_next, abar))
        if callback is not None:
            _report(callback, slot[live], g, s, t, t_next, x_t, x_next, x0_hat, p)
        done = t_next == 0
        x[live], step[live] = x_next, s + 1
        out[p[done]] = x_next[done]
        slot[live[done]] = -1
        if progress is not None and done.any():
            progress(int(done.sum()))
    return out, stats


def _report(callback, pos, g, s, t, t_next, x_t, x_next, x0_hat, p) -> None:
    """One StepInfo per (group, step) cohort of a call, in entry order, patches in entry order."""
    pos_sorted, perm = pos.sort()
    key = (g * 10_000 + s)[perm]
    seen = []
    for k in key.tolist():
        if k not in seen:
            seen.append(k)
    for k in seen:
        m = perm[key == k]
        i = int(m[0])
        callback(StepInfo(int(g[i]), int(s[i]), int(t[i]), int(t_next[i]), x_t[m], x_next[m],
                          x0_hat[m], p[m]))

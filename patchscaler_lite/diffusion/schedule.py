"""Diffusion math as pure functions: VP schedule, q_sample, DDIM (eta = 0), timesteps, shortcut.

Conventions (ours; the paper works in a VAE latent, we work in pixels):
- Diffusion runs on images mapped to [-1, 1] (`to_signal` / `from_signal`).
- Timesteps are integers t in [0, T]; abar[0] = 1 (clean data), abar[t] = prod_{s=1..t} (1 - beta_s).
- The denoiser predicts x0 (parametrised as the coarse patch plus a residual, see dit.py); DDIM
  derives eps from it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..config import T_MAX
from ..errors import PatchScalerError


def to_signal(img: Tensor) -> Tensor:
    """[0, 1] image -> [-1, 1] diffusion signal."""
    return img * 2 - 1


def from_signal(x: Tensor) -> Tensor:
    """[-1, 1] diffusion signal -> [0, 1] image (clamped)."""
    return ((x + 1) / 2).clamp(0, 1)


def alpha_bar(T: int = T_MAX, beta_start: float = 1e-4, beta_end: float = 0.02) -> Tensor:
    """(T + 1,) float64 cumulative alphas of the linear VP schedule, abar[0] = 1, decreasing."""
    betas = torch.linspace(beta_start, beta_end, T, dtype=torch.float64)
    return torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1 - betas, 0)])


def _ab(abar: Tensor, t: Tensor | int, like: Tensor) -> Tensor:
    """abar[t] gathered per sample and shaped to broadcast against `like` (M, C, P, P)."""
    t = torch.as_tensor(t, device=abar.device).long().reshape(-1)
    a = abar[t].to(device=like.device, dtype=like.dtype)
    return a.reshape(-1, *([1] * (like.dim() - 1)))


def q_sample(x0: Tensor, t: Tensor | int, eps: Tensor, abar: Tensor) -> Tensor:
    """Forward process: sqrt(abar_t) x0 + sqrt(1 - abar_t) eps. x0, eps: (M, C, P, P)."""
    a = _ab(abar, t, x0)
    return a.sqrt() * x0 + (1 - a).sqrt() * eps


def shortcut_start(y0: Tensor, t_start: int, eps: Tensor, abar: Tensor) -> Tensor:
    """The paper's Eq. 6: y_T = sqrt(abar_T) y0 + sqrt(1 - abar_T) eps, the coarse patch noised
    straight to the group's start step (instead of starting from pure noise at T_MAX)."""
    return q_sample(y0, t_start, eps, abar)


def ddim_step(x_t: Tensor, x0_hat: Tensor, t: int, t_next: int, abar: Tensor) -> Tensor:
    """Deterministic DDIM (eta = 0) from t to t_next < t given the model's x0 estimate."""
    a, a_next = _ab(abar, t, x_t), _ab(abar, t_next, x_t)
    eps_hat = (x_t - a.sqrt() * x0_hat) / (1 - a).sqrt().clamp_min(1e-8)
    return a_next.sqrt() * x0_hat + (1 - a_next).sqrt() * eps_hat


def timesteps_for(t_start: int, steps: int) -> list[int]:
    """Evenly spaced integer timesteps t_start = t_0 > t_1 > ... > t_steps = 0 (steps + 1 values).

    Each consecutive pair is one denoiser call, so `steps` is the number of function evaluations.
    """
    if not 1 <= t_start <= T_MAX:
        raise PatchScalerError(f"start step must be in [1, {T_MAX}], got {t_start}")
    if not 1 <= steps <= t_start:
        raise PatchScalerError(f"steps must be in [1, start step {t_start}], got {steps}")
    ts = [round(t_start * (1 - i / steps)) for i in range(steps + 1)]
    return ts

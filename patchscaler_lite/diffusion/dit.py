"""Patch-DiT: a diffusion transformer that denoises one image patch at a time.

Input tokens: the noisy patch x_t and the coarse patch y0 (both in [-1, 1]) concatenated on channels
and cut into p x p tokens. Each block: adaLN-Zero self-attention (timestep-modulated), cross-attention
to the texture-prompt tokens (skipped when there is no prompt), adaLN-Zero MLP. Output: x0_hat =
y0 + residual, so a freshly initialised model (zero output layer) returns the coarse patch.
Attention goes through torch's scaled_dot_product_attention.

Sampling calls the DiT several times on the same patches with the same y0 and prompt: everything
that depends only on them (y0's share of the token embedding, each block's cross-attention keys
and values) is computed once by `condition` and reused by every `step`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ..config import DiTConfig


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding of integer timesteps (M,) -> (M, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def sincos_2d(n: int, dim: int) -> Tensor:
    """Fixed 2-D sin-cos position embedding for an n x n token grid -> (n * n, dim)."""
    q = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(q, dtype=torch.float32) / q)
    yy, xx = torch.meshgrid(torch.arange(n, dtype=torch.float32), torch.arange(n, dtype=torch.float32),
                            indexing="ij")
    out = [f(c.reshape(-1, 1) * omega) for c in (yy, xx) for f in (torch.sin, torch.cos)]
    return torch.cat(out, dim=1)                                      # (n*n, dim)


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return x * (1 + scale[:, None]) + shift[:, None]


class Attention(nn.Module):
    """Multi-head attention; self-attention when `context` is None."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def keys_values(self, ctx: Tensor) -> tuple[Tensor, Tensor]:
        """(M, Nc, D) context -> keys and values, each (M, h, Nc, D/h)."""
        M, Nc, D = ctx.shape
        k, v = self.kv(ctx).reshape(M, Nc, 2, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        return k, v

    def forward(self, x: Tensor, kv: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """Self-attention when kv is None, else attention to the given (keys_values) context."""
        M, N, D = x.shape
        h = self.heads
        q = self.q(x).reshape(M, N, h, D // h).transpose(1, 2)                 # (M, h, N, D/h)
        k, v = self.keys_values(x) if kv is None else kv
        out = F.scaled_dot_product_attention(q, k, v)                          # (M, h, N, D/h)
        return self.proj(out.transpose(1, 2).reshape(M, N, D))


class DiTBlock(nn.Module):
    """adaLN-Zero self-attention, cross-attention to the prompt, adaLN-Zero MLP."""

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        d = cfg.dim
        self.norm1 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(d, cfg.heads)
        self.norm_x = nn.LayerNorm(d, eps=1e-6)
        self.cross = Attention(d, cfg.heads)
        self.cross_gate = nn.Parameter(torch.zeros(d))                # zero-init: starts as no-op
        self.norm2 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        hidden = int(d * cfg.mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(d, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, d))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(d, 6 * d))
        nn.init.zeros_(self.ada[1].weight)
        nn.init.zeros_(self.ada[1].bias)

    def forward(self, x: Tensor, c: Tensor, prompt_kv: tuple[Tensor, Tensor] | None) -> Tensor:
        """prompt_kv: self.cross.keys_values(prompt), or None for no cross-attention."""
        sh1, sc1, g1, sh2, sc2, g2 = self.ada(c).chunk(6, dim=1)              # each (M, D)
        x = x + g1[:, None] * self.attn(modulate(self.norm1(x), sh1, sc1))
        if prompt_kv is not None:
            x = x + self.cross_gate * self.cross(self.norm_x(x), prompt_kv)
        return x + g2[:, None] * self.mlp(modulate(self.norm2(x), sh2, sc2))


@dataclass
class PatchCondition:
    """What a denoising step needs besides x_t and t, computed once per patch batch:
    y0 (M, 3, P, P); y0's share of the token embedding plus bias and positions (M, N, D); and per
    block the prompt's cross-attention keys and values (None: no prompt)."""

    y0: Tensor
    y_tokens: Tensor
    prompt_kv: list[tuple[Tensor, Tensor]] | None


class PatchDiT(nn.Module):
    """(x_t, t, y0, prompt) -> x0_hat. x_t, y0: (M, 3, P, P) in [-1, 1]; t: (M,) ints; prompt:
    (M, L, D) texture tokens or None (the --no-texture path)."""

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        self.cfg = cfg
        p, d = cfg.token_size, cfg.dim
        self.grid = cfg.patch_size // p
        self.embed = nn.Linear(6 * p * p, d)
        self.register_buffer("pos", sincos_2d(self.grid, d), persistent=False)
        self.t_mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.blocks = nn.ModuleList(DiTBlock(cfg) for _ in range(cfg.depth))
        self.norm_out = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.ada_out = nn.Sequential(nn.SiLU(), nn.Linear(d, 2 * d))
        self.out = nn.Linear(d, 3 * p * p)
        for m in (self.ada_out[1], self.out):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    def tokens(self, x: Tensor) -> Tensor:
        """(M, C, P, P) -> (M, n*n, C*p*p), row-major over the token grid."""
        M, C, P, _ = x.shape
        p, n = self.cfg.token_size, self.grid
        x = x.reshape(M, C, n, p, n, p).permute(0, 2, 4, 1, 3, 5)             # (M, n, n, C, p, p)
        return x.reshape(M, n * n, C * p * p)

    def untokens(self, x: Tensor) -> Tensor:
        """(M, n*n, 3*p*p) -> (M, 3, P, P)."""
        M = x.shape[0]
        p, n = self.cfg.token_size, self.grid
        x = x.reshape(M, n, n, 3, p, p).permute(0, 3, 1, 4, 2, 5)             # (M, 3, n, p, n, p)
        return x.reshape(M, 3, n * p, n * p)

    def condition(self, y0: Tensor, prompt: Tensor | None = None) -> PatchCondition:
        """The step-independent work for patches y0 (M, 3, P, P) and prompt (M, L, D) or None.

        The embedding is linear in the concatenated (x_t, y0) channels, so it splits exactly into
        an x_t part (per step) and a y0 part (here)."""
        w_y = self.embed.weight[:, self.embed.in_features // 2:]                # y0's columns
        y_tokens = F.linear(self.tokens(y0), w_y, self.embed.bias) + self.pos    # (M, N, D)
        kv = None if prompt is None else [b.cross.keys_values(prompt) for b in self.blocks]
        return PatchCondition(y0, y_tokens, kv)

    def step(self, x_t: Tensor, t: Tensor, cond: PatchCondition) -> Tensor:
        """x0_hat (M, 3, P, P) for noisy patches x_t at timesteps t (M,), given `condition`."""
        w_x = self.embed.weight[:, :self.embed.in_features // 2]                # x_t's columns
        h = F.linear(self.tokens(x_t), w_x) + cond.y_tokens                     # (M, N, D)
        c = self.t_mlp(timestep_embedding(t, self.cfg.dim))                     # (M, D)
        for i, blk in enumerate(self.blocks):
            h = blk(h, c, None if cond.prompt_kv is None else cond.prompt_kv[i])
        sh, sc = self.ada_out(c).chunk(2, dim=1)
        res = self.untokens(self.out(modulate(self.norm_out(h), sh, sc)))      # (M, 3, P, P)
        return cond.y0 + res

    def forward(self, x_t: Tensor, t: Tensor, y0: Tensor, prompt: Tensor | None = None) -> Tensor:
        return self.step(x_t, t, self.condition(y0, prompt))

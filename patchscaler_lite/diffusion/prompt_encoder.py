"""The Patch-DiT's prompt encoder (the paper's Similarity-Aware Texture Encoder): K retrieved HR
patches + their similarities -> prompt tokens.

Trained later together with Patch-DiT (the tokens condition it, e.g. by cross-attention). Each value
patch is cut into L = (P / t)^2 tokens by a strided convolution (ViT patch embedding); every token
gets a position embedding, an embedding of its retrieval rank, and an embedding of its similarity
(Fourier features -> MLP). The tokens of entry k are then multiplied by a learned gate
sigmoid(a * (s_k - b)): a poor match (low cosine similarity s_k) contributes tokens near zero, so
the DiT can learn to ignore it. a, b start at `gate_scale`, `gate_center` and are trained.
Shapes: values (B, K, 3, P, P) in [0, 1]; similarities (B, K) in [-1, 1]; tokens (B, K * L, D).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
from torch import Tensor

from ..config import TextureEncoderConfig
from ..errors import PatchScalerError


def similarity_features(sims: Tensor, n_freqs: int) -> Tensor:
    """Fourier features of similarities: (B, K) -> (B, K, 2 * n_freqs), sin/cos at pi * 2^i * s."""
    freqs = math.pi * 2.0 ** torch.arange(n_freqs, device=sims.device, dtype=sims.dtype)
    ang = sims[..., None] * freqs                                          # (B, K, n_freqs)
    return torch.cat([ang.sin(), ang.cos()], -1)


class SimilarityAwareTextureEncoder(nn.Module):
    """(values (B, K, 3, P, P) in [0, 1], sims (B, K)) -> prompt tokens (B, K * L, D)."""

    def __init__(self, cfg: TextureEncoderConfig):
        super().__init__()
        self.cfg = cfg
        D, t, L = cfg.dim, cfg.token_size, cfg.tokens_per_patch
        self.patch_embed = nn.Conv2d(3, D, t, stride=t)                     # (., D, P/t, P/t)
        self.pos = nn.Parameter(torch.randn(L, D) * 0.02)                 # token position
        self.rank = nn.Parameter(torch.randn(cfg.max_k, D) * 0.02)        # retrieval rank
        self.sim_mlp = nn.Sequential(nn.Linear(2 * cfg.sim_freqs, D), nn.SiLU(), nn.Linear(D, D))
        self.norm = nn.LayerNorm(D)
        self.gate_scale = nn.Parameter(torch.tensor(float(cfg.gate_scale)))
        self.gate_center = nn.Parameter(torch.tensor(float(cfg.gate_center)))

    def gate(self, sims: Tensor) -> Tensor:
        """Per-entry weight in (0, 1), increasing in the similarity: (B, K) -> (B, K)."""
        return torch.sigmoid(self.gate_scale * (sims - self.gate_center))

    def forward(self, values: Tensor, sims: Tensor) -> Tensor:
        cfg = self.cfg
        P, D, L = cfg.patch_size, cfg.dim, cfg.tokens_per_patch
        if values.dim() != 5 or values.shape[2:] != (3, P, P):
            raise PatchScalerError(f"values must be (B, K, 3, {P}, {P}), got {tuple(values.shape)}")
        B, K = values.shape[:2]
        if sims.shape != (B, K):
            raise PatchScalerError(f"similarities must be (B, K) = ({B}, {K}), "
                                   f"got {tuple(sims.shape)}")
        if K > cfg.max_k:
            raise PatchScalerError(f"K={K} retrieved patches exceeds max_k={cfg.max_k}")
        x = self.patch_embed(values.reshape(B * K, 3, P, P) - 0.5)        # (B*K, D, P/t, P/t)
        x = x.flatten(2).transpose(1, 2).reshape(B, K, L, D)               # (B, K, L, D)
        s = self.sim_mlp(similarity_features(sims, cfg.sim_freqs))        # (B, K, D)
        x = x + self.pos + self.rank[:K, None] + s[:, :, None]             # (B, K, L, D)
        x = self.norm(x) * self.gate(sims)[..., None, None]                # poor matches -> ~0
        return x.reshape(B, K * L, D)                                      # (B, K*L, D)

"""The trainable part of PatchScaler: Patch-DiT + similarity-aware texture encoder, as one module.

Denoiser(x_t, t, y0, refs, sims) -> x0_hat, all patches (M, 3, P, P) in the [-1, 1] signal space
except the references refs (M, K, 3, P, P) in [0, 1] with similarities sims (M, K).
refs = None is the no-texture path (no prompt tokens: the ablation of claim C4).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch.nn as nn
from torch import Tensor

from .dit import DIT_PRESETS, DiTConfig, PatchDiT
from .texture_encoder import SimilarityAwareTextureEncoder, TextureEncoderConfig


@dataclass(frozen=True)
class DenoiserConfig:
    dit: DiTConfig = field(default_factory=DiTConfig)

    @property
    def encoder(self) -> TextureEncoderConfig:
        d = self.dit
        return TextureEncoderConfig(patch_size=d.patch_size, token_size=d.prompt_token_size,
                                    dim=d.dim, max_k=d.top_k)

    def to_dict(self) -> dict:
        """Flat: the encoder is fully determined by the DiT config."""
        return self.dit.to_dict()

    @classmethod
    def from_dict(cls, d: dict) -> DenoiserConfig:
        return cls(dit=DiTConfig(**d))


DENOISER_PRESETS = {name: DenoiserConfig(dit=cfg) for name, cfg in DIT_PRESETS.items()}


class Denoiser(nn.Module):
    """Texture encoder -> prompt tokens (M, K*L, D) -> Patch-DiT cross-attention -> x0_hat."""

    def __init__(self, cfg: DenoiserConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = SimilarityAwareTextureEncoder(cfg.encoder)
        self.dit = PatchDiT(cfg.dit)

    def prompt(self, refs: Tensor | None, sims: Tensor | None) -> Tensor | None:
        return None if refs is None else self.encoder(refs, sims)          # (M, K*L, D)

    def forward(self, x_t: Tensor, t: Tensor, y0: Tensor, refs: Tensor | None = None,
                sims: Tensor | None = None, keep: Tensor | None = None) -> Tensor:
        """keep: optional (M,) bool; False zeroes that sample's prompt (prompt dropout in training)."""
        prompt = self.prompt(refs, sims)
        if prompt is not None and keep is not None:
            prompt = prompt * keep[:, None, None].to(prompt.dtype)
        return self.dit(x_t, t, y0, prompt)


def load_denoiser(path, expect: DenoiserConfig | None = None) -> Denoiser:
    """Build a Denoiser from a weight file written by dit_training (eval mode, CPU)."""
    from pathlib import Path

    from .errors import WeightsError
    from .weights import load_into, load_state

    path = Path(path)
    state, cfg = load_state(path, "dit", expect.to_dict() if expect is not None else None)
    try:
        config = DenoiserConfig.from_dict(cfg)
    except (KeyError, TypeError, ValueError) as e:
        raise WeightsError(f"{path}: invalid Patch-DiT config in the file ({e})") from None
    model = Denoiser(config)
    load_into(model, state, path)
    return model.eval()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


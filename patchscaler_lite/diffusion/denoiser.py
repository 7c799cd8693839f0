"""The trainable part of PatchScaler: Patch-DiT + its texture prompt encoder, as one module.

Denoiser(x_t, t, y0, refs, sims) -> x0_hat, all patches (M, 3, P, P) in the [-1, 1] signal space
except the references refs (M, K, 3, P, P) in [0, 1] with similarities sims (M, K).

No texture prompt (refs = None, the ablation of claim C4) and prompt dropout in training take ONE
path: the prompt tokens of those patches are zeros, which the DiT still cross-attends to. So the
`--no-texture` ablation runs exactly the computation the weights were trained for.
"""

from __future__ import annotations

from pathlib import Path

import torch.nn as nn
from torch import Tensor

from ..config import DenoiserConfig
from ..errors import WeightsError
from ..weights import load_into, load_state
from .dit import PatchCondition, PatchDiT
from .prompt_encoder import SimilarityAwareTextureEncoder


class Denoiser(nn.Module):
    """Texture encoder -> prompt tokens (M, K*L, D) -> Patch-DiT cross-attention -> x0_hat."""

    def __init__(self, cfg: DenoiserConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = SimilarityAwareTextureEncoder(cfg.encoder)
        self.dit = PatchDiT(cfg.dit)

    def null_prompt(self, m: int, like: Tensor) -> Tensor:
        """(m, K*L, D) zeros: the prompt of a patch without texture references."""
        e = self.cfg.encoder
        return like.new_zeros(m, self.cfg.dit.top_k * e.tokens_per_patch, e.dim)

    def prompt(self, refs: Tensor | None, sims: Tensor | None, keep: Tensor | None, like: Tensor) -> Tensor:
        """Prompt tokens (M, K*L, D); zeros where refs is None or keep (M,) bool is False."""
        if refs is None:
            return self.null_prompt(len(like), like)
        p = self.encoder(refs, sims)                                        # (M, K*L, D)
        return p if keep is None else p * keep[:, None, None].to(p.dtype)

    def condition(self, y0: Tensor, refs: Tensor | None = None, sims: Tensor | None = None,
                  keep: Tensor | None = None) -> PatchCondition:
        """Encode the prompt and everything else that stays fixed over a sampling path, once."""
        return self.dit.condition(y0, self.prompt(refs, sims, keep, y0))

    def step(self, x_t: Tensor, t: Tensor, cond: PatchCondition) -> Tensor:
        return self.dit.step(x_t, t, cond)

    def forward(self, x_t: Tensor, t: Tensor, y0: Tensor, refs: Tensor | None = None,
                sims: Tensor | None = None, keep: Tensor | None = None) -> Tensor:
        """keep: optional (M,) bool; False drops that patch's prompt (prompt dropout in training)."""
        return self.step(x_t, t, self.condition(y0, refs, sims, keep))


def load_denoiser(path, expect: DenoiserConfig | None = None) -> Denoiser:
    """Build a Denoiser from a weight file written by diffusion/training.py (eval mode, CPU)."""
    path = Path(path)
    state, cfg = load_state(path, "dit", expect.to_dict() if expect is not None else None)
    try:
        config = DenoiserConfig.from_dict(cfg)
    except (KeyError, TypeError, ValueError) as e:
        raise WeightsError(f"{path}: invalid Patch-DiT config in the file ({e})") from None
    model = Denoiser(config)
    load_into(model, state, path)
    return model.eval()

"""Learned texture embedding: a small "texture classifier" whose penultimate features key the memory.

The paper keys its Reference Texture Memory with a pretrained texture classifier. None can be
installed here, so we train a tiny one on the memory's own photos: a 4-stage CNN maps a P x P
patch to a D-dim unit vector, trained as a cosine classifier (normalised weights W, logits
s * <f(x), w_c>) to tell which photo a patch was cut from. Patches are drawn with flips and
rotations from the *coarse twins* of the photos (the GRM's output for their x4 LR), the domain of
the queries. After training the classifier weights are dropped; the embedding is frozen and
stored inside the memory file, so a memory always carries the descriptor its keys were made with.

Measured on the retrieval test (`patchscaler-lite memory eval`, see README): this embedding finds
the right texture photo for far more coarse queries than the fixed Gabor descriptor
(`texture/gabor.py`), which stays available (`--descriptor gabor`) as the explainable baseline.
It is trained only on the images the memory is built from, never on query images.
Patches (N, 3, P, P) float RGB in [0, 1]; embeddings (N, D) unit rows.
"""

from __future__ import annotations

import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from ..config import EmbedderConfig
from ..errors import PatchScalerError
from ..weights import count_parameters
from .patch_sampling import extract_patches, sample_positions


class TextureEmbedder(nn.Module):
    """(N, 3, P, P) in [0, 1] -> (N, D) unit vectors: conv-BN-ReLU stages, then the mean and std
    of the last feature map over space (texture statistics, position-free), then a linear map."""

    def __init__(self, cfg: EmbedderConfig):
        super().__init__()
        self.cfg = cfg
        layers, c_in = [], 3
        for i, c in enumerate(cfg.widths):
            layers += [nn.Conv2d(c_in, c, 3, 1 if i == 0 else 2, 1), nn.BatchNorm2d(c), nn.ReLU()]
            c_in = c
        self.features = nn.Sequential(*layers)
        self.proj = nn.Linear(2 * c_in, cfg.dim)

    def forward(self, x: Tensor) -> Tensor:
        P = self.cfg.patch_size
        if x.dim() != 4 or x.shape[1] != 3 or x.shape[-2:] != (P, P):
            raise PatchScalerError(f"texture embedder expects (N, 3, {P}, {P}) patches, "
                                   f"got {tuple(x.shape)}")
        h = self.features(x.float() - 0.5)                              # (N, C, P/8, P/8)
        stats = torch.cat([h.mean((2, 3)), h.std((2, 3))], 1)           # (N, 2C)
        return F.normalize(self.proj(stats), dim=1)                     # (N, D)

    @torch.no_grad()
    def embed(self, patches: Tensor, chunk: int = 4096) -> Tensor:
        """Eval-mode embedding in chunks: (N, 3, P, P) -> (N, D) on the patches' device."""
        was = self.training
        self.eval()
        out = [self(patches[i:i + chunk]) for i in range(0, len(patches), chunk)]
        self.train(was)
        return torch.cat(out) if out else patches.new_zeros(0, self.cfg.dim)


def train_embedder(images: dict[str, Tensor], cfg: EmbedderConfig | None = None, *,
                   device=None, progress: bool = True) -> tuple[TextureEmbedder, dict]:
    """Train the embedding to tell the photos of `images` {name: (3, H, W)} apart from patches.

    Each step draws `batch_size` patches (photos uniformly, random corner and dihedral transform,
    `texture.patch_sampling.sample_positions`), labels them with their photo, and minimises the cosine
    classifier's cross-entropy. Seeded by cfg.seed. Returns (embedder in eval mode, report).
    """
    cfg = EmbedderConfig() if cfg is None else cfg
    if len(images) < 2:
        raise PatchScalerError(f"the texture embedding needs at least 2 photos to tell apart, "
                               f"got {len(images)}")
    ims = list(images.values())
    device = ims[0].device if device is None else torch.device(device)
    with torch.random.fork_rng(devices=[]):                  # seeded init, global RNG untouched
        torch.manual_seed(cfg.seed)
        model = TextureEmbedder(cfg).to(device)
        classes = nn.Parameter(0.1 * torch.randn(len(ims), cfg.dim).to(device))
    opt = torch.optim.Adam([*model.parameters(), classes], lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.iters)
    g = torch.Generator().manual_seed(cfg.seed)
    shapes = [tuple(im.shape[-2:]) for im in ims]
    t0, losses = time.perf_counter(), []
    model.train()
    for _ in tqdm(range(cfg.iters), desc="train texture embedding", disable=not progress):
        pos = sample_positions(shapes, cfg.batch_size, cfg.patch_size, generator=g)
        x = extract_patches(ims, pos, cfg.patch_size).to(device)
        logits = cfg.logit_scale * model(x) @ F.normalize(classes, dim=1).T
        loss = F.cross_entropy(logits, pos[:, 0].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    model.eval()
    tail = losses[-50:]
    report = {"photos": list(images), "iters": cfg.iters, "final_loss": round(sum(tail) / len(tail), 4),
              "seconds": round(time.perf_counter() - t0, 1),
              "parameters": count_parameters(model)}
    return model, report

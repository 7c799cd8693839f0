"""Random patches for the texture stage: positions (source, y, x, dihedral) and the patches there.

Shared by the memory build (texture/memory.py) and the key network's training (key_network.py).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import PatchScalerError
from ..patches import dihedral


def sample_positions(shapes: list[tuple[int, int]], n: int, patch_size: int, *,
                     generator: torch.Generator | None = None) -> Tensor:
    """n random (source, y, x, dihedral) rows, (n, 4) int64: sources uniform over images (each
    image gets about the same count, so small texture crops are not drowned), then a uniform
    top-left corner inside that image and one of the 8 dihedral transforms."""
    P = patch_size
    for i, (H, W) in enumerate(shapes):
        if H < P or W < P:
            raise PatchScalerError(f"patch size {P} is larger than image #{i} ({H}x{W})")
    src = torch.randint(len(shapes), (n,), generator=generator)
    room = torch.tensor([[H - P + 1, W - P + 1] for H, W in shapes], dtype=torch.float64)[src]
    u = torch.rand(n, 2, generator=generator, dtype=torch.float64)
    yx = (u * room).long()                                                 # (n, 2) in [0, room)
    d = torch.randint(8, (n,), generator=generator)
    return torch.cat([src[:, None], yx, d[:, None]], 1)                    # (n, 4)


def extract_patches(images: list[Tensor], positions: Tensor, patch_size: int) -> Tensor:
    """Cut patches at `positions` (n, 4) from images [(3, H, W)] -> (n, 3, P, P), same dtype."""
    P = patch_size
    out = images[0].new_empty(len(positions), 3, P, P)
    r = torch.arange(P)
    for s in positions[:, 0].unique().tolist():
        rows = (positions[:, 0] == s).nonzero().squeeze(1)
        y, x = positions[rows, 1], positions[rows, 2]
        Y = (y[:, None] + r)[:, :, None]                                   # (n_s, P, 1)
        X = (x[:, None] + r)[:, None, :]                                   # (n_s, 1, P)
        out[rows] = images[s][:, Y, X].permute(1, 0, 2, 3)                 # (n_s, 3, P, P)
    for d in range(1, 8):
        rows = (positions[:, 3] == d).nonzero().squeeze(1)
        if len(rows):
            out[rows] = dihedral(out[rows], d)
    return out

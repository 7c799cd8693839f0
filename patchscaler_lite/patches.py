"""Patchify / unpatchify with optional overlap and smooth blending.

Patches are cut on a regular grid with stride P - overlap, after padding the image on the
bottom/right (replicate) so the grid covers it; unpatchify blends overlaps with a separable
raised-cosine window, normalises by the summed window, and crops back to (H, W).
Without overlap the round trip is exact; with overlap it is exact up to float rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import PatchScalerError


@dataclass(frozen=True)
class PatchLayout:
    """Where the N = B * nh * nw patches of a (B, C, H, W) batch came from."""

    batch: int
    channels: int
    height: int          # H, original
    width: int           # W, original
    patch_size: int      # P
    overlap: int
    nh: int              # patch rows
    nw: int              # patch columns

    @property
    def stride(self) -> int:
        return self.patch_size - self.overlap

    @property
    def padded(self) -> tuple[int, int]:
        """(Hp, Wp): the padded size that the grid covers exactly."""
        return (self.patch_size + self.stride * (self.nh - 1),
                self.patch_size + self.stride * (self.nw - 1))

    @property
    def patches_per_image(self) -> int:
        return self.nh * self.nw


def make_layout(shape, patch_size: int, overlap: int = 0) -> PatchLayout:
    """Layout for an image batch of `shape` (B, C, H, W)."""
    B, C, H, W = shape
    if patch_size < 1:
        raise PatchScalerError(f"patch_size must be >= 1, got {patch_size}")
    if not 0 <= overlap < patch_size:
        raise PatchScalerError(f"overlap must be in [0, patch_size), got {overlap} for P={patch_size}")
    s = patch_size - overlap
    nh = max(1, math.ceil((H - patch_size) / s) + 1)
    nw = max(1, math.ceil((W - patch_size) / s) + 1)
    return PatchLayout(B, C, H, W, patch_size, overlap, nh, nw)


def patchify(x: Tensor, patch_size: int, overlap: int = 0) -> tuple[Tensor, PatchLayout]:
    """(B, C, H, W) -> patches (B * nh * nw, C, P, P), row-major per image, and the layout.

    An image smaller than one patch is padded up to it (replicate).
    """
    layout = make_layout(x.shape, patch_size, overlap)
    Hp, Wp = layout.padded
    x = F.pad(x, (0, Wp - layout.width, 0, Hp - layout.height), mode="replicate")
    P, s = patch_size, layout.stride
    cols = F.unfold(x, kernel_size=P, stride=s)                      # (B, C*P*P, N)
    N = cols.shape[-1]
    patches = cols.transpose(1, 2).reshape(layout.batch * N, layout.channels, P, P)
    return patches, layout


def blend_window(patch_size: int, overlap: int, device=None, dtype=torch.float32) -> Tensor:
    """Separable weight (P, P): 1 in the middle, raised-cosine ramps of width `overlap` at edges.

    The ramp never reaches 0, so every pixel keeps a positive total weight.
    """
    w = torch.ones(patch_size, device=device, dtype=dtype)
    if overlap > 0:
        t = (torch.arange(overlap, device=device, dtype=dtype) + 0.5) / overlap   # (0, 1)
        ramp = 0.5 - 0.5 * torch.cos(math.pi * t)
        w[:overlap] = ramp
        w[-overlap:] = torch.minimum(w[-overlap:], ramp.flip(0))
    return w[:, None] * w[None, :]                                           # (P, P)


def unpatchify(patches: Tensor, layout: PatchLayout) -> Tensor:
    """(B * nh * nw, C, P, P) -> (B, C, H, W), overlaps blended with `blend_window`."""
    num, den = fold_sums(patches, layout)
    return (num / den)[..., : layout.height, : layout.width]


def fold_sums(patches: Tensor, layout: PatchLayout) -> tuple[Tensor, Tensor]:
    """The two sums of the blend over the padded canvas: sum of window * patch (B, C, Hp, Wp) and
    sum of window (1, 1, Hp, Wp); their ratio is the blended image. Kept apart so that a large
    image can be blended a band of patch rows at a time (streaming.py)."""
    P, s = layout.patch_size, layout.stride
    N = layout.patches_per_image
    C = patches.shape[1]  # may differ from layout.channels (e.g. a 1-channel map on an RGB layout)
    if patches.shape[0] != layout.batch * N or patches.shape[-2:] != (P, P):
        raise PatchScalerError(f"patches {tuple(patches.shape)} do not fit layout "
                               f"{layout.batch}x{N} patches of {P}x{P}")
    win = blend_window(P, layout.overlap, patches.device, patches.dtype)
    cols = (patches * win).reshape(layout.batch, N, C * P * P).transpose(1, 2)   # (B, C*P*P, N)
    Hp, Wp = layout.padded
    num = F.fold(cols, (Hp, Wp), kernel_size=P, stride=s)                       # (B, C, Hp, Wp)
    wcols = win.reshape(1, P * P, 1).expand(1, P * P, N)
    return num, F.fold(wcols, (Hp, Wp), kernel_size=P, stride=s)                # (1, 1, Hp, Wp)


def patch_means(x: Tensor, layout: PatchLayout) -> Tensor:
    """Mean of a (B, C, H, W) map over each patch of `layout` -> (B, nh, nw), channels averaged.

    Only pixels inside the original image count: padding is excluded from the mean.
    """
    Hp, Wp = layout.padded
    pad = (0, Wp - layout.width, 0, Hp - layout.height)
    v = F.pad(x.mean(1, keepdim=True), pad)                              # zeros outside
    m = F.pad(torch.ones_like(v[:, :, : layout.height, : layout.width]), pad)
    P, s = layout.patch_size, layout.stride
    total = F.unfold(v, kernel_size=P, stride=s).sum(1)                  # (B, N)
    count = F.unfold(m, kernel_size=P, stride=s).sum(1)                  # (B, N)
    return (total / count).reshape(x.shape[0], layout.nh, layout.nw)


def run_tiled(fn, x: Tensor, tile: int, overlap: int, scale: int) -> Tensor:
    """fn on overlapping (1, C, tile, tile) tiles of x (B, C, h, w), one tile at a time; its
    (1, C', s*tile, s*tile) outputs are blended (`unpatchify`) into (B, C', s*h, s*w)."""
    tiles, layout = patchify(x, tile, overlap)                       # (B*N, C, tile, tile)
    out = torch.cat([fn(t[None]) for t in tiles])                    # (B*N, C', s*tile, s*tile)
    shape = (x.shape[0], out.shape[1], x.shape[-2] * scale, x.shape[-1] * scale)
    return unpatchify(out, make_layout(shape, tile * scale, overlap * scale))


def run_with_halo(fn, x: Tensor, tile: int, halo: int, scale: int) -> Tensor:
    """fn on (B, C, <= tile + 2 halo, ...) windows of x (B, C, h, w), one at a time -> (B, C', s*h, s*w).

    The image is cut into disjoint `tile` x `tile` cores; each is run with `halo` extra LR pixels
    of real context on every side (fewer at the image border, where the whole image has no more
    either) and only its core is kept. When `halo` covers fn's receptive field, the result equals
    fn(x) up to float rounding: nothing is blended, every output pixel saw what it sees untiled.
    """
    if tile < 1 or halo < 0:
        raise PatchScalerError(f"tile must be >= 1 and halo >= 0, got tile={tile}, halo={halo}")
    H, W = x.shape[-2:]
    out = None
    for r0 in range(0, H, tile):
        for c0 in range(0, W, tile):
            r1, c1 = min(r0 + tile, H), min(c0 + tile, W)
            a, b = max(r0 - halo, 0), max(c0 - halo, 0)
            y = fn(x[..., a:min(r1 + halo, H), b:min(c1 + halo, W)])     # (B, C', s*., s*.)
            if out is None:
                out = y.new_empty(*y.shape[:-2], H * scale, W * scale)
            core = y[..., (r0 - a) * scale:(r1 - a) * scale, (c0 - b) * scale:(c1 - b) * scale]
            out[..., r0 * scale:r1 * scale, c0 * scale:c1 * scale] = core
    return out


def dihedral(x: Tensor, k: int) -> Tensor:
    """One of the 8 flips/rotations of (..., H, W): rotate by k % 4 quarter turns, flip if k >= 4."""
    x = torch.rot90(x, k % 4, dims=(-2, -1))
    return x.flip(-1) if k >= 4 else x


def interior_mask(layout: PatchLayout) -> Tensor:
    """(nh, nw) bool: the patch lies wholly inside the image (no replicate padding in it)."""
    rows = torch.arange(layout.nh) * layout.stride + layout.patch_size <= layout.height
    cols = torch.arange(layout.nw) * layout.stride + layout.patch_size <= layout.width
    return rows[:, None] & cols[None, :]

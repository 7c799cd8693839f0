"""The pipeline for images of any size, in bounded memory: the same result, a band at a time.

`PatchScalerPipeline.__call__` holds every patch of the image at once (coarse image, confidence,
patches, noise, results), so its memory grows with the photo. Here the image is walked in bands
of whole patch rows, with at most `patch_budget` patches in flight:

1. Qmap pass: for each band, the GRM runs on the LR rows the band needs plus a halo as wide as
   its receptive field (so each band's coarse image and confidence are exactly the whole image's;
   grm.model.restore tiles the columns the same way), and only the patch means are kept.
2. The groups are assigned from the whole Qmap (the quantile grouping needs all of it).
3. Sampling pass: band by band again, the GRM is re-run (cheaper than keeping the HR image),
   the band's patches are retrieved, sampled on their group's path with the noise the whole-image
   run would draw for them (drawn in the same raster order from the same generator), and blended
   (raised-cosine window, patches.fold_sums). Rows that no later patch touches are final and go
   to `sink(row0, rows)`; the overlap rows are carried into the next band.

Every patch's result depends only on its own inputs, so the output equals the whole-image run up
to float rounding (tests/test_streaming.py), while peak memory is set by the band, not the photo.
On an image of several bands the GRM runs twice, plus its halo rows: a few per cent more time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from .config import PGSConfig
from .diffusion.sampling import sample_patches
from .diffusion.schedule import from_signal, to_signal
from .errors import PatchScalerError
from .grm.model import restore
from .grouping import assign_groups
from .patches import PatchLayout, fold_sums, make_layout, patch_means, patchify

PATCH_BUDGET = 2048          # patches per band: ~100 MB of patches, noise, results and prompts


@dataclass
class StreamStats:
    """What the streamed run did: per-group patches and patch-NFE, the Qmap and the groups."""

    layout: PatchLayout
    qmap: Tensor | None = None                   # (nh, nw)
    groups: Tensor | None = None                 # (nh, nw)
    counts: list[int] = field(default_factory=lambda: [0, 0, 0])
    patch_nfe: list[int] = field(default_factory=lambda: [0, 0, 0])

    @property
    def total_nfe(self) -> int:
        return sum(self.patch_nfe)


def bands(layout: PatchLayout, patch_budget: int) -> list[tuple[int, int]]:
    """Patch-row ranges [i0, i1) with at most max(patch_budget, one row) patches each."""
    k = max(1, min(layout.nh, patch_budget // layout.nw))
    return [(i, min(i + k, layout.nh)) for i in range(0, layout.nh, k)]


def band_rows(layout: PatchLayout, i0: int, i1: int) -> tuple[int, int]:
    """HR rows [a, b) of the image that patch rows [i0, i1) cover (clipped to the image)."""
    s = layout.stride
    return i0 * s, min(layout.height, (i1 - 1) * s + layout.patch_size)


def band_grm(grm, lr: Tensor, layout: PatchLayout, i0: int, i1: int) -> tuple[Tensor, Tensor]:
    """The whole image's coarse image and confidence on the HR rows of patch rows [i0, i1)."""
    s, halo = grm.cfg.scale, grm.receptive_radius
    a, b = band_rows(layout, i0, i1)
    la, lb = a // s, -(-b // s)                                          # LR rows they come from
    ha, hb = max(0, la - halo), min(lr.shape[-2], lb + halo)
    coarse, conf = restore(grm, lr[..., ha:hb, :])
    rows = slice(a - ha * s, b - ha * s)
    return coarse[..., rows, :], conf[..., rows, :]


def stream_qmap(grm, lr: Tensor, layout: PatchLayout, budget: int, sink=None) -> tuple[Tensor, tuple | None]:
    """Pass 1: the Qmap (nh, nw), band by band; and the GRM's output when the image is one band
    (then pass 2 reuses it, and a small image costs what the whole-image run costs).
    sink(row0, coarse (3, r, W), conf (1, r, W)), if given, sees every band (`qmap` draws them)."""
    q, parts = [], bands(layout, budget)
    for i0, i1 in parts:
        coarse, conf = band_grm(grm, lr, layout, i0, i1)
        if sink is not None:
            sink(band_rows(layout, i0, i1)[0], coarse[0], conf[0])
        q.append(patch_means(conf, make_layout(conf.shape, layout.patch_size, layout.overlap))[0])
    return torch.cat(q), ((coarse, conf) if len(parts) == 1 else None)


class _Blender:
    """Raised-cosine blending a band at a time; emits the rows no later band can touch."""

    def __init__(self, layout: PatchLayout, sink):
        self.layout, self.sink, self.carry = layout, sink, None

    def add(self, x0: Tensor, i0: int, i1: int) -> None:
        L = self.layout
        a, b = band_rows(L, i0, i1)
        band = make_layout((1, 3, (i1 - i0 - 1) * L.stride + L.patch_size, L.width), L.patch_size,
                           L.overlap)
        num, den = fold_sums(x0, band)                                   # (1, 3, hb, Wp), (1,1,..)
        if self.carry is not None:
            c = self.carry[0].shape[-2]
            num[..., :c, :] += self.carry[0]
            den[..., :c, :] += self.carry[1]
        last = i1 == L.nh
        done = b - a if last else (i1 - i0) * L.stride
        self.carry = None if last else (num[..., done:, :], den[..., done:, :])
        self.sink(a, from_signal(num[..., :done, :L.width] / den[..., :done, :L.width])[0])


def stream_upscale(pipe, lr: Tensor, sink, *, generator=None, pgs: PGSConfig | None = None,
                   texture: bool = True, patch_budget: int | None = None, progress=None) -> StreamStats:
    """Upscale one LR image (1, 3, h, w) or (3, h, w), calling sink(row0, rows (3, r, W) in [0, 1])
    in row order; returns the run's StreamStats. Same result as pipe(lr) (see the module doc)."""
    lr = lr if lr.dim() == 4 else lr[None]
    if lr.shape[0] != 1:
        raise PatchScalerError(f"stream_upscale takes one image, got a batch of {lr.shape[0]}")
    pgs = pipe._checked(pgs or pipe.pgs)
    patch_budget = PATCH_BUDGET if patch_budget is None else patch_budget
    s, P = pipe.grm.cfg.scale, pipe.patch_size
    layout = make_layout((1, 3, lr.shape[-2] * s, lr.shape[-1] * s), P, pgs.grouping.overlap)
    stats = StreamStats(layout)
    stats.qmap, kept = stream_qmap(pipe.grm, lr, layout, patch_budget)
    stats.groups = assign_groups(stats.qmap[None], pgs.grouping)[0]
    blender = _Blender(layout, sink)
    for i0, i1 in bands(layout, patch_budget):
        coarse, _ = kept or band_grm(pipe.grm, lr, layout, i0, i1)
        y0, _ = patchify(coarse, P, layout.overlap)                      # (k * nw, 3, P, P)
        eps = torch.randn((len(y0), 3, P, P), generator=generator).to(y0)
        x0, st = sample_patches(pipe._conditioner(y0, texture), to_signal(y0),
                                stats.groups[i0:i1].flatten(), pgs, eps, progress=progress)
        stats.counts = [c + n for c, n in zip(stats.counts, st.patches)]
        stats.patch_nfe = [c + n for c, n in zip(stats.patch_nfe, st.patch_nfe)]
        blender.add(x0, i0, i1)
    return stats


def upscale_image(pipe, lr: Tensor, **kwargs) -> tuple[Tensor, StreamStats]:
    """stream_upscale collected into one (1, 3, H, W) image (tests, and images that fit)."""
    rows: list[Tensor] = []
    stats = stream_upscale(pipe, lr, lambda row0, r: rows.append(r), **kwargs)
    return torch.cat(rows, 1)[None], stats

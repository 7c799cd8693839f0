"""Stage 3, the Reference Texture Memory (RTM): build (sample, describe, k-means), top-K retrieval.

An entry is a k-means centroid of the descriptors of many HR patches (the *key*, L2-normalised)
and the real HR patch of its cluster nearest to that centroid (the *value*, uint8 (3, P, P)), with
the name of the photo it came from. Queries are GRM coarse patches; retrieval is exact top-K by
inner product (= cosine, all keys and queries are unit vectors), batched and chunked over M.
Glossary: N sampled patches, M entries, K retrieved, F descriptor features, P patch size.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..config import DescriptorConfig
from ..data import crop_to_scale, degrade
from ..errors import PatchScalerError
from .gabor import describe, describe_raw, embed, fit_standardizer
from .key_network import TextureEmbedder
from .kmeans import kmeans, representatives
from .patch_sampling import extract_patches, sample_positions


@dataclass
class TextureMemory:
    """M entries. keys (M, F) unit float32; values (M, 3, P, P) uint8; sources (M,) int64 indices
    into source_names; positions (M, 4) int64 (source, y, x, dihedral) of each value patch;
    mean, std (F,): the descriptor standardiser fitted on the sampled patches.
    embedder: the learned texture embedding that made the keys, or None for the Gabor descriptor
    (then F = descriptor.dim; with an embedder F = its dim and mean, std are 0, 1)."""

    keys: Tensor
    values: Tensor
    sources: Tensor
    positions: Tensor
    mean: Tensor
    std: Tensor
    source_names: list[str]
    descriptor: DescriptorConfig
    info: dict = field(default_factory=dict)
    embedder: TextureEmbedder | None = None

    @property
    def size(self) -> int:
        return self.keys.shape[0]

    @property
    def patch_size(self) -> int:
        return self.descriptor.patch_size

    @property
    def descriptor_kind(self) -> str:
        """'learned' (keys from the stored TextureEmbedder) or 'gabor' (texture/gabor.py)."""
        return "gabor" if self.embedder is None else "learned"

    def values_float(self, indices: Tensor) -> Tensor:
        """Values of `indices` (...) as float RGB in [0, 1]: (..., 3, P, P), on indices' device."""
        v = self.values[indices.cpu()].to(indices.device)
        return v.float() / 255.0

    def source_of(self, indices: Tensor) -> list:
        """Source photo names of `indices`, nested like indices.tolist()."""
        names = self.source_names
        flat = [names[i] for i in self.sources[indices.cpu().reshape(-1)].tolist()]
        return _nest(flat, list(indices.shape))

    def embed(self, patches: Tensor) -> Tensor:
        """Query keys: (B, 3, P, P) coarse patches in [0, 1] -> (B, F) unit, on patches' device."""
        if self.embedder is not None:
            return self.embedder.to(patches.device).embed(patches)
        return describe(patches, self.descriptor, self.mean, self.std)


def _nest(flat: list, shape: list[int]) -> list:
    if len(shape) <= 1:
        return flat
    step = len(flat) // shape[0]
    return [_nest(flat[i * step:(i + 1) * step], shape[1:]) for i in range(shape[0])]


# ---------------------------------------------------------------------------- build
@torch.no_grad()
def coarse_twins(images: dict[str, Tensor], restore, scale: int = 4, degradation: str = "bicubic",
                 seed: int = 0) -> dict[str, Tensor]:
    """The coarse version of every HR image, as a query would see it: restore(x4 LR), the LR made by
    `degradation` (photo i's random chain drawn with seed + i, so it is reproducible).

    images {name: (3, H, W)}; restore: (1, 3, h, w) LR -> (1, 3, s*h, s*w), e.g. the GRM's coarse
    output or bicubic upsampling. Returns {name: (3, s * (H // s), s * (W // s))}: the twin is
    aligned with the HR image's top-left corner, so a patch position means the same pixels in both.
    """
    out = {}
    for i, (name, im) in enumerate(images.items()):
        g = torch.Generator().manual_seed(seed + i)
        y = restore(degrade(crop_to_scale(im, scale)[None], scale, degradation, generator=g))
        y = y[0] if isinstance(y, tuple) else y                             # GRM: (coarse, conf)
        out[name] = y[0].clamp(0, 1)
    return out


@dataclass
class KeySamples:
    """The sampled patches of a memory build: positions (N, 4) (source, y, x, dihedral), their unit
    keys x (N, F), and the descriptor standardiser mean, std (F,) (0 and 1 for learned keys)."""

    positions: Tensor
    x: Tensor
    mean: Tensor
    std: Tensor


def sample_keys(images: dict[str, Tensor], n_patches: int, cfg: DescriptorConfig, *,
                key_images: dict[str, Tensor] | None = None, embedder: TextureEmbedder | None = None,
                chunk: int = 8192, generator: torch.Generator | None = None) -> KeySamples:
    """Step 1 of a build: n_patches random positions (with flips/rotations) and the keys there.

    key_images: optional {name: (3, H', W')} aligned twins to describe instead of the HR images
    (e.g. `coarse_twins`, so keys live in the same domain as GRM coarse queries).
    """
    ims = list(images.values())
    kims = ims if key_images is None else [key_images[n] for n in images]
    shapes = [(min(im.shape[-2], k.shape[-2]), min(im.shape[-1], k.shape[-1]))
              for im, k in zip(ims, kims, strict=True)]
    pos = sample_positions(shapes, n_patches, cfg.patch_size, generator=generator)
    x, mean, std = _describe_all(kims, pos, cfg, embedder, chunk)           # x: (N, F) unit
    return KeySamples(pos, x, mean, std)


def memory_from_samples(images: dict[str, Tensor], samples: KeySamples, size: int,
                        cfg: DescriptorConfig, *, iters: int = 30, embedder: TextureEmbedder | None = None,
                        generator: torch.Generator | None = None, callback=None) -> TextureMemory:
    """Step 2: k-means of the keys into `size` entries; each entry's value is the HR patch of its
    cluster nearest the centroid. callback(iteration, centroids, assign, inertia) per k-means step."""
    res = kmeans(samples.x, size, iters=iters, generator=generator, callback=callback)
    rep = representatives(samples.x, res.centroids, res.assign)           # (M,) rows of x
    vpos = samples.positions[rep.cpu()]
    values = extract_patches(list(images.values()), vpos, cfg.patch_size)
    info = {"n_patches": len(samples.x), "iters_run": len(res.inertia), "inertia": res.inertia[-1],
            "inertia_history": [float(v) for v in res.inertia]}
    return TextureMemory(
        keys=torch.nn.functional.normalize(res.centroids, dim=1).float().cpu(),
        values=(values.clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu(),
        sources=vpos[:, 0].clone(), positions=vpos.clone(), mean=samples.mean.cpu(),
        std=samples.std.cpu(), source_names=list(images), descriptor=cfg, info=info,
        embedder=None if embedder is None else embedder.cpu().eval())


def build_memory(images: dict[str, Tensor], size: int, cfg: DescriptorConfig | None = None, *,
                 n_patches: int = 50_000, iters: int = 30, chunk: int = 8192,
                 key_images: dict[str, Tensor] | None = None,
                 embedder: TextureEmbedder | None = None,
                 generator: torch.Generator | None = None, callback=None) -> TextureMemory:
    """Sample n_patches HR patches from `images` {name: (3, H, W) in [0, 1]}, describe them, reduce
    to `size` entries with seeded k-means++ / Lloyd: `sample_keys` then `memory_from_samples`.

    embedder: a trained `TextureEmbedder` (texture.key_network.train_embedder) to key the memory
    with instead of the Gabor descriptor `cfg`; it is stored in the memory. Its patch size must be
    P. callback: passed to k-means. Runs on the device of the images; the memory is on CPU.
    """
    t0 = time.perf_counter()
    cfg = DescriptorConfig() if cfg is None else cfg
    _check_build(images, size, n_patches, cfg.patch_size, embedder)
    samples = sample_keys(images, n_patches, cfg, key_images=key_images, embedder=embedder,
                          chunk=chunk, generator=generator)
    mem = memory_from_samples(images, samples, size, cfg, iters=iters, embedder=embedder,
                              generator=generator, callback=callback)
    mem.info["build_seconds"] = round(time.perf_counter() - t0, 3)
    return mem


def _check_build(images: dict, size: int, n_patches: int, P: int, embedder) -> None:
    """One-line errors for a build that cannot work, before any work is done."""
    if not images:
        raise PatchScalerError("no images to build a texture memory from")
    if size < 1:
        raise PatchScalerError(f"memory size must be >= 1, got {size}")
    if size > n_patches:
        raise PatchScalerError(f"memory size M={size} is larger than the number of sampled "
                               f"patches ({n_patches})")
    small = [f"{n} ({im.shape[-2]}x{im.shape[-1]})" for n, im in images.items()
             if min(im.shape[-2:]) < P]
    if small:
        raise PatchScalerError(f"patch size {P} is larger than image {small[0]}")
    if embedder is not None and embedder.cfg.patch_size != P:
        raise PatchScalerError(f"texture embedder is for {embedder.cfg.patch_size}x"
                               f"{embedder.cfg.patch_size} patches, the memory for {P}x{P}")


def _describe_all(images, pos, cfg, embedder, chunk) -> tuple[Tensor, Tensor, Tensor]:
    """Unit keys (N, F) of the patches at `pos`, and the standardiser (mean, std) (F,) used."""
    P = cfg.patch_size
    if embedder is not None:
        embedder = embedder.to(images[0].device)
        x = torch.cat([embedder.embed(extract_patches(images, pos[i:i + chunk], P))
                       for i in range(0, len(pos), chunk)])
        return x, torch.zeros(x.shape[1]), torch.ones(x.shape[1])
    raw = torch.cat([describe_raw(extract_patches(images, pos[i:i + chunk], P), cfg)
                     for i in range(0, len(pos), chunk)])                 # (N, F)
    mean, std = fit_standardizer(raw)
    return embed(raw, mean, std, cfg), mean, std


# ---------------------------------------------------------------------------- retrieval
def search(queries: Tensor, keys: Tensor, k: int, *, chunk: int = 16384,
           exclude: Tensor | None = None, key_sources: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Exact top-k by inner product. queries (B, F), keys (M, F) -> indices (B, k) int64 and
    similarities (B, k), best first. Runs on the queries' device; keys are read `chunk` rows at a
    time, so memory stays O(B * (chunk + k)) for any M. exclude (B,) with key_sources (M,): key j
    is never returned for query b when key_sources[j] == exclude[b] (similarity -inf)."""
    M = keys.shape[0]
    if not 1 <= k <= M:
        raise PatchScalerError(f"k={k} must be between 1 and the memory size M={M}")
    keys = keys.to(queries.device, queries.dtype)
    best_s, best_i = None, None
    for start in range(0, M, chunk):
        s = queries @ keys[start:start + chunk].T                           # (B, m)
        if exclude is not None:
            src = key_sources[start:start + chunk].to(queries.device)
            s = s.masked_fill(src[None] == exclude.to(queries.device)[:, None], float("-inf"))
        cs, ci = s.topk(min(k, s.shape[1]), dim=1)                          # (B, k')
        ci = ci + start
        if best_s is not None:
            both = torch.cat([best_s, cs], 1)
            cs, pick = both.topk(min(k, both.shape[1]), dim=1)               # merge (B, k)
            ci = torch.cat([best_i, ci], 1).gather(1, pick)
        best_s, best_i = cs, ci
    return best_i, best_s


# Patches embedded and searched at a time (see retrieve). Measured (scripts/bench_cpu.py --chunks,
# 4096 patches, 2-core CPU): 32 -> 0.49 s, 128 -> 0.70 s, 512 -> 1.79 s, and less peak memory.
QUERY_CHUNK = 32


def retrieve(memory: TextureMemory, patches: Tensor, k: int = 4, *, exclude: Tensor | None = None,
             chunk: int = QUERY_CHUNK) -> tuple[Tensor, Tensor]:
    """Top-k entries for coarse patches (B, 3, P, P) in [0, 1] -> (indices (B, k), sims (B, k)).

    Values: memory.values_float(indices) -> (B, k, 3, P, P). exclude: optional (B,) source ids
    (indices into memory.source_names): entries cut from that photo are skipped, so in training
    the memory never hands the model the very HR patch it must produce.
    The queries are embedded and searched `chunk` patches at a time: the embedder's activations
    and the (chunk, M) similarity block stay bounded whatever the image size, and each patch's
    result does not depend on the chunk it falls in.
    """
    if not 1 <= k <= memory.size:
        raise PatchScalerError(f"k={k} must be between 1 and the memory size M={memory.size}")
    if chunk < 1:
        raise PatchScalerError(f"chunk must be >= 1, got {chunk}")
    ids, sims = [], []
    for start in range(0, len(patches), chunk):
        ex = None if exclude is None else exclude[start:start + chunk]
        i, s = search(memory.embed(patches[start:start + chunk]), memory.keys, k, exclude=ex,
                      key_sources=memory.sources)
        ids.append(i)
        sims.append(s)
    if not ids:
        return patches.new_zeros(0, k, dtype=torch.long), patches.new_zeros(0, k)
    return torch.cat(ids), torch.cat(sims)

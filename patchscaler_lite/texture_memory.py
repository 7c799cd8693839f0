"""Reference Texture Memory (RTM): build (sample, describe, k-means), top-K retrieval, save/load.

An entry is a k-means centroid of the descriptors of many HR patches (the *key*, L2-normalised)
and the real HR patch of its cluster nearest to that centroid (the *value*, uint8 (3, P, P)), with
the name of the photo it came from. Queries are GRM coarse patches; retrieval is exact top-K by
inner product (= cosine, all keys and queries are unit vectors), batched and chunked over M.
Glossary: N sampled patches, M entries, K retrieved, F descriptor features, P patch size.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from .descriptor import DescriptorConfig, describe, describe_raw, fit_standardizer
from .errors import PatchScalerError, WeightsError
from .kmeans import kmeans, representatives
from .texture_embed import EmbedderConfig, TextureEmbedder

KIND = "texture_memory"
FORMAT_VERSION = 1


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
        """'learned' (keys from the stored TextureEmbedder) or 'gabor' (descriptor.py)."""
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


# ---------------------------------------------------------------------------- sampling
def dihedral(x: Tensor, d: int) -> Tensor:
    """One of the 8 flips/rotations of (..., P, P): rot90 by d % 4, then a flip if d >= 4."""
    x = torch.rot90(x, d % 4, dims=(-2, -1))
    return x.flip(-1) if d >= 4 else x


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


# ---------------------------------------------------------------------------- build
@torch.no_grad()
def coarse_twins(images: dict[str, Tensor], restore, scale: int = 4) -> dict[str, Tensor]:
    """The coarse version of every HR image, as a query would see it: restore(x4 bicubic LR).

    images {name: (3, H, W)}; restore: (1, 3, h, w) LR -> (1, 3, s*h, s*w), e.g. the GRM's coarse
    output or bicubic upsampling. Returns {name: (3, s * (H // s), s * (W // s))}: the twin is
    aligned with the HR image's top-left corner, so a patch position means the same pixels in both.
    """
    from .data import crop_to_scale, degrade

    out = {}
    for name, im in images.items():
        y = restore(degrade(crop_to_scale(im, scale)[None], scale))
        y = y[0] if isinstance(y, tuple) else y                             # GRM: (coarse, conf)
        out[name] = y[0].clamp(0, 1)
    return out


def build_memory(images: dict[str, Tensor], size: int, cfg: DescriptorConfig | None = None, *,
                 n_patches: int = 50_000, iters: int = 30, chunk: int = 8192,
                 key_images: dict[str, Tensor] | None = None,
                 embedder: TextureEmbedder | None = None,
                 generator: torch.Generator | None = None) -> TextureMemory:
    """Sample n_patches HR patches (with flips/rotations) from `images` {name: (3, H, W) in [0, 1]},
    describe them, reduce to `size` entries with seeded k-means++ / Lloyd.

    key_images: optional {name: (3, H', W')} aligned twins to describe instead of the HR images
    (e.g. `coarse_twins`, so keys live in the same domain as GRM coarse queries); values are
    always cut from `images`, at the same positions.
    embedder: a trained `TextureEmbedder` (texture_embed.train_embedder) to key the memory with
    instead of the Gabor descriptor `cfg`; it is stored in the memory. Its patch size must be P.

    The work runs on the device of the images; the memory is returned on CPU.
    """
    t0 = time.perf_counter()
    cfg = DescriptorConfig() if cfg is None else cfg
    if not images:
        raise PatchScalerError("no images to build a texture memory from")
    names, ims = list(images), list(images.values())
    P = cfg.patch_size
    if size < 1:
        raise PatchScalerError(f"memory size must be >= 1, got {size}")
    if size > n_patches:
        raise PatchScalerError(f"memory size M={size} is larger than the number of sampled "
                               f"patches ({n_patches})")
    small = [f"{n} ({im.shape[-2]}x{im.shape[-1]})" for n, im in images.items()
             if min(im.shape[-2:]) < P]
    if small:
        raise PatchScalerError(f"patch size {P} is larger than image {small[0]}")
    kims = ims if key_images is None else [key_images[n] for n in names]
    shapes = [(min(im.shape[-2], k.shape[-2]), min(im.shape[-1], k.shape[-1]))
              for im, k in zip(ims, kims, strict=True)]
    if embedder is not None and embedder.cfg.patch_size != P:
        raise PatchScalerError(f"texture embedder is for {embedder.cfg.patch_size}x"
                               f"{embedder.cfg.patch_size} patches, the memory for {P}x{P}")
    pos = sample_positions(shapes, n_patches, P, generator=generator)
    x, mean, std = _describe_all(kims, pos, cfg, embedder, chunk)           # x: (N, F) unit
    res = kmeans(x, size, iters=iters, generator=generator)
    rep = representatives(x, res.centroids, res.assign)                    # (M,) rows of x
    vpos = pos[rep.cpu()]
    values = extract_patches(ims, vpos, P)
    info = {"n_patches": n_patches, "iters_run": len(res.inertia), "inertia": res.inertia[-1],
            "build_seconds": round(time.perf_counter() - t0, 3)}
    return TextureMemory(
        keys=torch.nn.functional.normalize(res.centroids, dim=1).float().cpu(),
        values=(values.clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu(),
        sources=vpos[:, 0].clone(), positions=vpos.clone(), mean=mean.cpu(), std=std.cpu(),
        source_names=names, descriptor=cfg, info=info,
        embedder=None if embedder is None else embedder.cpu().eval())


def _describe_all(images, pos, cfg, embedder, chunk) -> tuple[Tensor, Tensor, Tensor]:
    """Unit keys (N, F) of the patches at `pos`, and the standardiser (mean, std) (F,) used."""
    P = cfg.patch_size
    if embedder is not None:
        embedder = embedder.to(images[0].device)
        x = torch.cat([embedder.embed(extract_patches(images, pos[i:i + chunk], P))
                       for i in range(0, len(pos), chunk)])
        return x, torch.zeros(x.shape[1]), torch.ones(x.shape[1])
    from .descriptor import embed

    raw = torch.cat([describe_raw(extract_patches(images, pos[i:i + chunk], P), cfg)
                     for i in range(0, len(pos), chunk)])                 # (N, F)
    mean, std = fit_standardizer(raw)
    return embed(raw, mean, std, cfg), mean, std


# ---------------------------------------------------------------------------- retrieval
def search(queries: Tensor, keys: Tensor, k: int, *, chunk: int = 16384) -> tuple[Tensor, Tensor]:
    """Exact top-k by inner product. queries (B, F), keys (M, F) -> indices (B, k) int64 and
    similarities (B, k), best first. Runs on the queries' device; keys are read `chunk` rows at a
    time, so memory stays O(B * (chunk + k)) for any M."""
    M = keys.shape[0]
    if not 1 <= k <= M:
        raise PatchScalerError(f"k={k} must be between 1 and the memory size M={M}")
    keys = keys.to(queries.device, queries.dtype)
    best_s, best_i = None, None
    for start in range(0, M, chunk):
        s = queries @ keys[start:start + chunk].T                           # (B, m)
        cs, ci = s.topk(min(k, s.shape[1]), dim=1)                          # (B, k')
        ci = ci + start
        if best_s is not None:
            both = torch.cat([best_s, cs], 1)
            cs, pick = both.topk(min(k, both.shape[1]), dim=1)               # merge (B, k)
            ci = torch.cat([best_i, ci], 1).gather(1, pick)
        best_s, best_i = cs, ci
    return best_i, best_s


def retrieve(memory: TextureMemory, patches: Tensor, k: int = 4) -> tuple[Tensor, Tensor]:
    """Top-k entries for coarse patches (B, 3, P, P) in [0, 1] -> (indices (B, k), sims (B, k)).

    Values: memory.values_float(indices) -> (B, k, 3, P, P).
    """
    if not 1 <= k <= memory.size:
        raise PatchScalerError(f"k={k} must be between 1 and the memory size M={memory.size}")
    return search(memory.embed(patches), memory.keys, k)


# ---------------------------------------------------------------------------- save / load
def _meta(memory: TextureMemory) -> dict:
    return {"kind": KIND, "format": FORMAT_VERSION, "size": memory.size,
            "patch_size": memory.patch_size, "descriptor": memory.descriptor.to_dict(),
            "descriptor_kind": memory.descriptor_kind,
            "embedder": None if memory.embedder is None else memory.embedder.cfg.to_dict(),
            "sources": memory.source_names, **memory.info}


def save_memory(memory: TextureMemory, path) -> Path:
    """Write safetensors (tensors + metadata) and a JSON twin beside it, both atomically."""
    from safetensors.torch import save

    from .image_io import write_atomic

    path = Path(path)
    meta = _meta(memory)
    tensors = {"keys": memory.keys, "values": memory.values, "positions": memory.positions,
               "mean": memory.mean, "std": memory.std}
    if memory.embedder is not None:
        tensors.update({f"embedder.{k}": v for k, v in memory.embedder.state_dict().items()})
    blob = save({k: v.contiguous() for k, v in tensors.items()},
                metadata={"kind": KIND, "meta": json.dumps(meta, sort_keys=True)})
    write_atomic(path, lambda f: f.write(blob))
    write_atomic(path.with_suffix(".json"), lambda f: f.write(json.dumps(meta, indent=2).encode()))
    return path


def load_memory(path, *, patch_size: int | None = None, descriptor: DescriptorConfig | None = None,
                descriptor_kind: str | None = None) -> TextureMemory:
    """Read a memory file; if given, its patch size, descriptor config and kind must match.

    Raises WeightsError (one line) for a missing, corrupt or mismatching file.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: memory file not found")
    try:
        from safetensors import safe_open
        with safe_open(str(path), framework="pt") as f:
            raw_meta = f.metadata() or {}
        t = load(path.read_bytes())
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise WeightsError(f"{path}: not a readable memory file ({msg})") from None
    if raw_meta.get("kind") != KIND:
        raise WeightsError(f"{path}: not a texture memory (kind={raw_meta.get('kind')!r})")
    try:
        meta = json.loads(raw_meta["meta"])
        cfg = DescriptorConfig(**meta["descriptor"])
        ecfg = meta.get("embedder")
        ecfg = None if ecfg is None else EmbedderConfig.from_dict(ecfg)
    except (KeyError, TypeError, ValueError, PatchScalerError) as e:
        raise WeightsError(f"{path}: corrupt memory metadata ({e})") from None
    _check_match(path, cfg, patch_size, descriptor)
    kind = "gabor" if ecfg is None else "learned"
    if descriptor_kind is not None and descriptor_kind != kind:
        raise WeightsError(f"{path}: memory keys come from the {kind} descriptor, "
                           f"{descriptor_kind} requested")
    if ecfg is not None and ecfg.patch_size != cfg.patch_size:
        raise WeightsError(f"{path}: corrupt memory: embedder patch size {ecfg.patch_size} != "
                           f"memory patch size {cfg.patch_size}")
    embedder = None if ecfg is None else _load_embedder(path, ecfg, t)
    mem = TextureMemory(keys=t.get("keys"), values=t.get("values"), sources=None,
                        positions=t.get("positions"), mean=t.get("mean"), std=t.get("std"),
                        source_names=list(meta.get("sources", [])), descriptor=cfg,
                        info={k: meta[k] for k in ("n_patches", "iters_run", "inertia",
                                                   "build_seconds", "embedder_training")
                                  if k in meta},
                        embedder=embedder)
    _check_tensors(path, mem, meta)
    mem.sources = mem.positions[:, 0].clone()
    return mem


def _load_embedder(path, ecfg: EmbedderConfig, tensors: dict) -> TextureEmbedder:
    """The stored texture embedding, strictly matching its config (WeightsError otherwise)."""
    model = TextureEmbedder(ecfg)
    state = {k[len("embedder."):]: v for k, v in tensors.items() if k.startswith("embedder.")}
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise WeightsError(f"{path}: corrupt memory: texture embedder weights do not match its "
                           f"config ({str(e).splitlines()[0]})") from None
    return model.eval()


def _check_match(path, cfg: DescriptorConfig, patch_size, descriptor) -> None:
    if patch_size is not None and cfg.patch_size != patch_size:
        raise WeightsError(f"{path}: memory was built with patch size {cfg.patch_size}, "
                           f"{patch_size} requested")
    if descriptor is not None and descriptor != cfg:
        a, b = cfg.to_dict(), descriptor.to_dict()
        k = next(k for k in a if a[k] != b[k])
        raise WeightsError(f"{path}: memory was built with another descriptor config: "
                           f"{k}={a[k]!r} in the file, {b[k]!r} requested")


def _check_tensors(path, mem: TextureMemory, meta: dict) -> None:
    M, P = meta.get("size"), mem.patch_size
    F = mem.descriptor.dim if mem.embedder is None else mem.embedder.cfg.dim
    want = {"keys": ((M, F), torch.float32), "values": ((M, 3, P, P), torch.uint8),
            "positions": ((M, 4), torch.int64), "mean": ((F,), torch.float32),
            "std": ((F,), torch.float32)}
    for name, (shape, dtype) in want.items():
        v = getattr(mem, name)
        if v is None or tuple(v.shape) != shape or v.dtype != dtype:
            got = "missing" if v is None else f"{tuple(v.shape)} {v.dtype}"
            raise WeightsError(f"{path}: corrupt memory: tensor {name} is {got}, "
                               f"expected {shape} {dtype}")
    src = mem.positions[:, 0]
    if M and (src.min() < 0 or src.max() >= len(mem.source_names)):
        raise WeightsError(f"{path}: corrupt memory: source indices outside the "
                           f"{len(mem.source_names)} sources")
    if not torch.isfinite(mem.keys).all():
        raise WeightsError(f"{path}: corrupt memory: keys contain NaN or infinite values")

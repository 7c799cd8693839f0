"""Saving and loading a Reference Texture Memory: safetensors (tensors + metadata) with a JSON twin.

A memory file holds keys, values, positions, the descriptor standardiser and, for learned keys, the
key network's weights, so a memory always carries the descriptor its keys were made with. Loading
checks kind, format, shapes and (if asked) the descriptor; problems are one-line WeightsErrors.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load, save

from ..config import DescriptorConfig, EmbedderConfig
from ..errors import PatchScalerError, WeightsError
from ..image_io import write_atomic
from ..weights import check_finite
from .key_network import TextureEmbedder
from .memory import TextureMemory

KIND = "texture_memory"
FORMAT_VERSION = 1

def _meta(memory: TextureMemory) -> dict:
    return {"kind": KIND, "format": FORMAT_VERSION, "size": memory.size,
            "patch_size": memory.patch_size, "descriptor": memory.descriptor.to_dict(),
            "descriptor_kind": memory.descriptor_kind,
            "embedder": None if memory.embedder is None else memory.embedder.cfg.to_dict(),
            "sources": memory.source_names, **memory.info}


def save_memory(memory: TextureMemory, path) -> Path:
    """Write safetensors (tensors + metadata) and a JSON twin beside it, both atomically."""
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
    path = Path(path)
    raw_meta, t = _read(path)
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


def _read(path: Path) -> tuple[dict, dict]:
    """(raw safetensors metadata, tensors) of a file; WeightsError if missing or unreadable."""
    if not path.is_file():
        raise WeightsError(f"{path}: memory file not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw_meta = f.metadata() or {}
        tensors = load(path.read_bytes())
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise WeightsError(f"{path}: not a readable memory file ({msg})") from None
    check_finite(tensors, path)
    return raw_meta, tensors


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

"""Weights on disk: safetensors + a JSON config beside it (+ a training report).

`grm_lite.safetensors` is accompanied by `grm_lite.json` ({"kind", "config"}) and
`grm_lite.report.json`. The config is also stored in the safetensors metadata, so a weight file
alone is self-describing; loading checks that the file's kind and config match what is asked for.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save

from .atomic import json_bytes, write_atomic
from .errors import WeightsError

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


SHIPPED_PRESETS = ("lite", "real")     # lite: x4 bicubic (teaching default); real: realistic LR


def default_weights(kind: str, preset: str = "lite") -> Path:
    """Path of the shipped weights of a kind ('grm', ...) and preset, inside the package."""
    return WEIGHTS_DIR / f"{kind}_{preset}.safetensors"


def save_weights(path, state: dict[str, torch.Tensor], kind: str, config: dict,
                 report: dict | None = None) -> Path:
    """Write `state` atomically as safetensors, with the config JSON (and report) beside it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"kind": kind, "config": json.dumps(config, sort_keys=True)}
    blob = save({k: v.detach().float().cpu().contiguous() for k, v in state.items()}, metadata=meta)
    write_atomic(path, lambda f: f.write(blob))
    side = json_bytes({"kind": kind, "config": config}, path.with_suffix(".json"))
    write_atomic(path.with_suffix(".json"), lambda f: f.write(side))
    if report is not None:
        text = json_bytes(report, path.with_suffix(".report.json"))
        write_atomic(path.with_suffix(".report.json"), lambda f: f.write(text))
    return path


def read_metadata(path) -> tuple[str, dict]:
    """(kind, config) stored in a weight file; WeightsError if missing or corrupt."""
    path = Path(path)
    if path.is_dir():
        raise WeightsError(f"{path}: is a folder, expected a .safetensors weight file")
    if not path.is_file():
        raise WeightsError(f"{path}: weight file not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(f"{path}: not a readable safetensors file ({e})") from None
    if "kind" not in meta or "config" not in meta:
        raise WeightsError(f"{path}: no patchscaler_lite metadata (kind/config) in the file")
    try:
        config = json.loads(meta["config"])
    except ValueError:
        config = None
    if not isinstance(config, dict):
        raise WeightsError(f"{path}: the config stored in the file is not a JSON object")
    return meta["kind"], config


def load_state(path, kind: str, expect_config: dict | None = None) -> tuple[dict, dict]:
    """Load (state_dict, config) of `kind`; check the kind and, if given, the config.

    Raises WeightsError naming the file and the first mismatching field.
    """
    path = Path(path)
    got_kind, cfg = read_metadata(path)
    if got_kind != kind:
        raise WeightsError(f"{path}: holds {got_kind!r} weights, expected {kind!r}")
    if expect_config is not None:
        for k, v in expect_config.items():
            if k != "name" and cfg.get(k) != v:
                raise WeightsError(f"{path}: config mismatch: {k}={cfg.get(k)!r} in the file, "
                                   f"{v!r} requested")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(f"{path}: corrupt tensor data ({e})") from None
    check_finite(state, path)
    return state, cfg


def check_finite(state: dict[str, torch.Tensor], path) -> None:
    """WeightsError naming the file and a tensor when any weight is NaN or infinite."""
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise WeightsError(f"{path}: tensor {bad[0]} holds NaN or infinite values ({len(bad)} of "
                           f"{len(state)} tensors; a damaged file or a diverged training run)")


def load_into(model: torch.nn.Module, state: dict, path) -> None:
    """load_state_dict with a one-line WeightsError on missing, unexpected or mis-shaped tensors."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    if missing or extra:
        raise WeightsError(f"{path}: tensors do not match the model (missing {missing[:3]}, "
                           f"unexpected {extra[:3]})")
    for k, v in state.items():
        if own[k].shape != v.shape:
            raise WeightsError(f"{path}: tensor {k} has shape {tuple(v.shape)}, the model expects "
                               f"{tuple(own[k].shape)}")
    model.load_state_dict(state)


def resolve_init(init: str, kind: str) -> Path:
    """A training run's starting weights: a shipped preset's name ('lite') or a weights file."""
    shipped = default_weights(kind, init)
    if "/" not in init and "." not in init and shipped.exists():
        return shipped
    path = Path(init)
    if not path.is_file():
        raise WeightsError(f"{init}: initial weights not found (give a {kind} .safetensors file or a "
                           f"shipped preset name)")
    return path


def init_from(model: torch.nn.Module, path, kind: str, config: dict) -> None:
    """Fill `model` from a weights file of the same architecture (fine-tuning: the preset name may
    differ, load_state ignores it); WeightsError naming the file and the first differing field
    otherwise."""
    state, _ = load_state(path, kind, config)
    load_into(model, state, path)


def count_parameters(model: torch.nn.Module) -> int:
    """Number of parameters of a module."""
    return sum(p.numel() for p in model.parameters())

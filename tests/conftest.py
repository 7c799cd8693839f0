"""Shared fixtures. Tests are CPU-only, offline and small; outputs go under pytest's tmp_path.

Helpers are fixtures (never `import tests...`: the pyiqa wheel installs a package named `tests`).
"""

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # a hub lookup fails in 0.2 s instead of ~47 s of retries

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings

settings.register_profile("fast", max_examples=40, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("fast")

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def val_photos() -> dict:
    """The shipped validation photos, {name: (3, H, W) float in [0, 1]} (loaded once)."""
    from patchscaler_lite import data

    return data.load_photos("val")


@pytest.fixture(scope="session")
def train_photos() -> dict:
    from patchscaler_lite import data

    return data.load_photos("train")


@pytest.fixture(scope="session")
def astronaut(val_photos):
    """(1, 3, 512, 512) float in [0, 1]."""
    return val_photos["astronaut"][None]


@pytest.fixture
def sha256():
    """sha256(path) -> hex digest of the file's bytes, to prove a function never modifies a file."""
    def digest(path) -> str:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return digest


@pytest.fixture
def rand_image():
    """rand_image(seed, h, w, b=1) -> (b, 3, h, w) float32 uniform in [0, 1], seeded."""
    def make(seed: int, h: int, w: int, b: int = 1) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return torch.rand((b, 3, h, w), generator=g)
    return make


@pytest.fixture
def rand_uint8():
    """rand_uint8(seed, shape) -> numpy uint8 array, seeded."""
    def make(seed: int, shape) -> np.ndarray:
        return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)
    return make


@pytest.fixture(scope="session")
def tiny_models():
    """tiny_models() -> (GRM, Denoiser): fresh tiny presets, seeded, weights slightly perturbed so
    that a pipeline built on them is not an identity (zero-initialised heads)."""
    from patchscaler_lite.config import PRESETS
    from patchscaler_lite.diffusion.denoiser import Denoiser
    from patchscaler_lite.grm.model import GlobalRestorationModule

    def perturb(module, scale, seed):
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in module.parameters():
                p.add_(scale * torch.randn(p.shape, generator=g))
        return module

    def make():
        torch.manual_seed(0)
        grm = perturb(GlobalRestorationModule(PRESETS["tiny"].grm), 0.02, 1)
        return grm, perturb(Denoiser(PRESETS["tiny"].dit), 0.02, 2)
    return make


@pytest.fixture(scope="module")
def tiny_pipeline(tiny_models, train_photos):
    """A tiny random pipeline (P = 32, overlap 8, short plans, batch 32), fresh for each module,
    with a 16-entry memory of three train crops."""
    from patchscaler_lite.config import GroupingConfig, PGSConfig
    from patchscaler_lite.pipeline import PatchScalerPipeline
    from patchscaler_lite.texture.memory import build_memory

    grm, den = tiny_models()
    photos = {k: v[:, :160, :160] for k, v in list(train_photos.items())[:3]}
    mem = build_memory(photos, 16, n_patches=256, iters=5, generator=torch.Generator().manual_seed(0))
    pgs = PGSConfig(starts=(50, 100, 200), steps=(1, 2, 3), batch_size=32,
                    grouping=GroupingConfig(patch_size=32, overlap=8))
    return PatchScalerPipeline(grm, den, mem, pgs=pgs)


@pytest.fixture(scope="module")
def tiny_grm(tmp_path_factory):
    """A file grm_tiny.safetensors: a fresh, seeded tiny GRM (CLI tests)."""
    from patchscaler_lite.config import PRESETS
    from patchscaler_lite.grm.model import GlobalRestorationModule
    from patchscaler_lite.weights import save_weights

    torch.manual_seed(0)
    m = GlobalRestorationModule(PRESETS["tiny"].grm)
    path = tmp_path_factory.mktemp("w") / "grm_tiny.safetensors"
    save_weights(path, m.state_dict(), "grm", m.cfg.to_dict())
    return path


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    """A folder with tiny GRM, Patch-DiT and texture memory files, as `--weights` expects."""
    from patchscaler_lite.config import PRESETS
    from patchscaler_lite.data import load_photos
    from patchscaler_lite.diffusion.denoiser import Denoiser
    from patchscaler_lite.grm.model import GlobalRestorationModule
    from patchscaler_lite.texture.memory import build_memory
    from patchscaler_lite.texture.store import save_memory
    from patchscaler_lite.weights import save_weights

    d = tmp_path_factory.mktemp("tiny_weights")
    torch.manual_seed(0)
    grm = GlobalRestorationModule(PRESETS["tiny"].grm)
    save_weights(d / "grm_tiny.safetensors", grm.state_dict(), "grm", grm.cfg.to_dict())
    den = Denoiser(PRESETS["tiny"].dit)
    save_weights(d / "dit_tiny.safetensors", den.state_dict(), "dit", den.cfg.to_dict())
    photos = {k: v[:, :96, :96] for k, v in list(load_photos("train").items())[:2]}
    save_memory(build_memory(photos, 8, n_patches=64, iters=3,
                             generator=torch.Generator().manual_seed(0)), d / "memory_tiny.safetensors")
    return d

"""patchscaler_lite: patch-adaptive diffusion super-resolution (PatchScaler), small and explained.

The stages of the paper, one place each:
    grm/        stage 1  Global Restoration Module: LR -> coarse HR + confidence map
    grouping.py stage 2  Qmap -> Simple / Medium / Hard groups
    texture/    stage 3  Reference Texture Memory: descriptor, key network, k-means, retrieval
    diffusion/  stage 4  schedule, Patch-DiT, prompt encoder, PGS sampler, training
    pipeline.py          composes them
Tooling sits apart: eval/ (metrics, bench, claim analyses), viz/ (figures, widgets), jobs/ (file
jobs), cli/. Importing the package loads nothing heavy; the first public name used loads the core
(torch, numpy, Pillow, safetensors); pyiqa is imported on first use of a metric, matplotlib only
by viz/.
"""

import importlib

__version__ = "0.1.0"

# Public name -> the module that defines it. Loaded on first use (PEP 562), so that importing the
# package is cheap and the command-line entry point can set process-wide CPU options before torch
# loads (runtime.py); `from patchscaler_lite import X` and `psl.X` work as usual.
_EXPORTS = {
    "config": ["PRESETS", "GRMConfig", "GroupingConfig", "PGSConfig"],
    "data": ["bicubic_up", "crop_to_scale", "degrade", "load_photos", "photo_paths"],
    "errors": ["ImageError", "PatchScalerError", "WeightsError"],
    "grm.model": ["GlobalRestorationModule", "confidence_loss", "load_grm", "restore"],
    "grouping": ["GROUP_NAMES", "Grouping", "assign_groups", "group_patches", "qmap"],
    "image_io": ["load_image", "save_image"],
    "patches": ["PatchLayout", "patch_means", "patchify", "unpatchify"],
    "pipeline": ["PatchScalerPipeline", "PipelineOutput"],
}
_HOME = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = list(_HOME)


def __getattr__(name: str):
    if name in _HOME:
        value = getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
    else:                                   # a submodule, e.g. psl.data, psl.eval
        try:
            value = importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOME))

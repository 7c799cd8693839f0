"""patchscaler_lite: patch-adaptive diffusion super-resolution (PatchScaler), small and explained.

The stages of the paper, one place each:
    grm/        stage 1  Global Restoration Module: LR -> coarse HR + confidence map
    grouping.py stage 2  Qmap -> Simple / Medium / Hard groups
    texture/    stage 3  Reference Texture Memory: descriptor, key network, k-means, retrieval
    diffusion/  stage 4  schedule, Patch-DiT, prompt encoder, PGS sampler, training
    pipeline.py          composes them
Tooling sits apart: eval/ (metrics, bench, claim analyses), viz/ (figures, widgets), jobs/ (file
jobs), cli/. Importing the package loads the core only (torch, numpy, Pillow, safetensors); pyiqa
is imported on first use of a metric, matplotlib only by viz/.
"""

from .config import PRESETS, GRMConfig, GroupingConfig, PGSConfig
from .data import bicubic_up, crop_to_scale, degrade, load_photos, photo_paths
from .errors import ImageError, PatchScalerError, WeightsError
from .grm.model import GlobalRestorationModule, confidence_loss, load_grm, restore
from .grouping import GROUP_NAMES, Grouping, assign_groups, group_patches, qmap
from .image_io import load_image, save_image
from .patches import PatchLayout, patch_means, patchify, unpatchify
from .pipeline import PatchScalerPipeline, PipelineOutput

__version__ = "0.1.0"

__all__ = [
    "PRESETS", "GRMConfig", "GroupingConfig", "PGSConfig", "bicubic_up", "crop_to_scale", "degrade",
    "load_photos", "photo_paths", "ImageError", "PatchScalerError", "WeightsError", "GROUP_NAMES",
    "Grouping", "assign_groups", "group_patches", "qmap", "load_image", "save_image", "PatchLayout",
    "patch_means", "patchify", "unpatchify", "GlobalRestorationModule", "confidence_loss", "load_grm",
    "restore", "PatchScalerPipeline", "PipelineOutput",
]

"""patchscaler_lite: patch-adaptive diffusion super-resolution (PatchScaler), small and explained.

Importing the package loads the core only (torch, numpy, Pillow, safetensors); plotting lives in
`patchscaler_lite.viz` and pyiqa is imported on first use of a metric.
"""

from .config import GRM_PRESETS, GRMConfig, GroupingConfig
from .data import bicubic_up, crop_to_scale, degrade, load_photos, photo_paths
from .errors import ImageError, PatchScalerError, WeightsError
from .grouping import GROUP_NAMES, Grouping, group_patches, qmap
from .image_io import load_image, save_image
from .patches import PatchLayout, patch_means, patchify, unpatchify
from .pipeline import PatchScalerPipeline, PipelineOutput
from .restoration import GlobalRestorationModule, confidence_loss, load_grm, restore
from .sampling import PGSConfig

__version__ = "0.1.0"

__all__ = [
    "GRM_PRESETS", "GRMConfig", "GroupingConfig", "bicubic_up", "crop_to_scale", "degrade",
    "load_photos", "photo_paths", "ImageError", "PatchScalerError", "WeightsError", "GROUP_NAMES",
    "Grouping", "group_patches", "qmap", "load_image", "save_image", "PatchLayout", "patch_means",
    "patchify", "unpatchify", "GlobalRestorationModule", "confidence_loss", "load_grm", "restore",
    "PatchScalerPipeline", "PipelineOutput", "PGSConfig",
]

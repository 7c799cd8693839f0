"""Frozen configuration dataclasses and presets.

Every module takes its config as one object (nanoGPT style); ablations use
`dataclasses.replace(cfg, field=value)`. Validation happens in `__post_init__` so a bad
value fails where it is written, with a message that names it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .errors import PatchScalerError


def _check(cond: bool, msg: str) -> None:
    """Raise PatchScalerError (a ValueError) with `msg` unless `cond`."""
    if not cond:
        raise PatchScalerError(msg)


@dataclass(frozen=True)
class GRMConfig:
    """Global Restoration Module: LR (B, 3, h, w) -> coarse HR (B, 3, 4h, 4w) + confidence.

    The body runs entirely at LR resolution (cheap on CPU); one pixel-shuffle head makes the
    HR residual over bicubic, another the HR confidence logits.
    """

    name: str = "lite"
    scale: int = 4
    channels: int = 64          # D: body width
    blocks: int = 12            # residual blocks in the body
    res_scale: float = 1.0      # residual branch multiplier (EDSR uses 0.1 for very deep nets)
    conf_channels: int = 32     # hidden width of the confidence head
    # Confidence loss  L = |y - x|_1 + lam * (C * (y - x)^2 - eta * log C).
    # Minimising over C gives C* = eta / e^2 (clipped to 1): see restoration.confidence_loss.
    # eta = 1e-3: pixels with RMS error below ~0.03 keep C = 1, so C measures the *large*
    # errors that dominate a patch's MSE (1e-4 made C ~ 1 / e^2 almost everywhere, a harmonic
    # mean dominated by the easiest pixels, which ranked patches across photos poorly).
    lam: float = 0.05
    eta: float = 1e-3

    def __post_init__(self):
        _check(self.scale in (2, 4), f"GRMConfig.scale must be 2 or 4, got {self.scale}")
        _check(self.channels >= 4, f"GRMConfig.channels must be >= 4, got {self.channels}")
        _check(self.blocks >= 1, f"GRMConfig.blocks must be >= 1, got {self.blocks}")
        _check(self.lam >= 0, f"GRMConfig.lam must be >= 0, got {self.lam}")
        _check(self.eta > 0, f"GRMConfig.eta must be > 0, got {self.eta}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class GRMTrainConfig:
    """Recipe for training the GRM (crops, schedule, EMA). Sizes are in HR pixels."""

    # 500, not more: with ten train photos the body overfits early. A 6000-step run peaked on val
    # PSNR at step 1500; a 1500-step run reached +1.27 dB but its confidence head, calibrated as
    # below, ranked val patches poorly (pooled Spearman 0.48); 500 steps: +1.08 dB and 0.80.
    iters: int = 500
    batch_size: int = 16
    crop: int = 96              # HR crop side; the LR crop is crop // scale
    lr: float = 5e-4
    warmup: int = 200
    min_lr_ratio: float = 0.01  # cosine decay ends at lr * min_lr_ratio
    ema: float = 0.999
    grad_clip: float = 1.0
    val_every: int = 500
    ckpt_every: int = 250
    seed: int = 0
    degradation: str = "bicubic"
    # Stage 2: the confidence head alone, body frozen (see calibration.py); 0 skips it.
    calib_iters: int = 300
    calib_lr: float = 1e-3

    def __post_init__(self):
        _check(self.calib_iters >= 0, f"calib_iters must be >= 0, got {self.calib_iters}")
        _check(self.iters >= 1, f"iters must be >= 1, got {self.iters}")
        _check(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        _check(self.crop % 4 == 0 and self.crop >= 16, f"crop must be a multiple of 4 >= 16, got {self.crop}")
        _check(0 <= self.ema < 1, f"ema must be in [0, 1), got {self.ema}")
        _check(self.degradation in ("bicubic", "realistic"), f"unknown degradation {self.degradation!r}")


GRM_PRESETS: dict[str, GRMConfig] = {
    "tiny": GRMConfig(name="tiny", channels=8, blocks=1, conf_channels=8),
    "lite": GRMConfig(name="lite"),
}

GRM_TRAIN_PRESETS: dict[str, GRMTrainConfig] = {
    "tiny": GRMTrainConfig(iters=20, batch_size=4, crop=32, warmup=2, val_every=10, ckpt_every=10,
                           calib_iters=5),
    "lite": GRMTrainConfig(),
}


@dataclass(frozen=True)
class GroupingConfig:
    """Qmap -> three groups. Either fixed thresholds (gamma1 > gamma2) or quantiles.

    thresholds: Simple if Qmap > gamma1, Medium if gamma2 < Qmap <= gamma1, Hard otherwise.
    quantiles (f_simple, f_medium): fractions of patches that go to Simple and Medium; the rest
    are Hard. Exactly one of the two is used: quantiles win when given.
    """

    patch_size: int = 32
    thresholds: tuple[float, float] = (0.6, 0.3)
    quantiles: tuple[float, float] | None = None

    def __post_init__(self):
        _check(self.patch_size >= 1, f"patch_size must be >= 1, got {self.patch_size}")
        validate_thresholds(self.thresholds)
        if self.quantiles is not None:
            validate_quantiles(self.quantiles)


def validate_thresholds(th) -> tuple[float, float]:
    """Check gamma1 > gamma2, both inside (0, 1); return them as floats."""
    _check(len(th) == 2, f"thresholds need two values gamma1,gamma2, got {len(th)}")
    g1, g2 = float(th[0]), float(th[1])
    _check(0 < g2 < 1 and 0 < g1 < 1, f"thresholds must lie inside (0, 1), got {g1}, {g2}")
    _check(g1 > g2, f"thresholds must satisfy gamma1 > gamma2, got gamma1={g1}, gamma2={g2}")
    return g1, g2


def validate_quantiles(q) -> tuple[float, float]:
    """Check the Simple and Medium fractions are in [0, 1] and sum to at most 1."""
    _check(len(q) == 2, f"quantiles need two fractions f_simple,f_medium, got {len(q)}")
    f1, f2 = float(q[0]), float(q[1])
    _check(0 <= f1 <= 1 and 0 <= f2 <= 1, f"quantiles must lie in [0, 1], got {f1}, {f2}")
    _check(f1 + f2 <= 1 + 1e-9, f"quantiles must sum to at most 1, got {f1} + {f2}")
    return f1, f2

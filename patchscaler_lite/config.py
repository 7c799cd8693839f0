"""Every frozen configuration, and ONE presets table (`PRESETS`) naming them per model size.

Each stage takes its config as one object (nanoGPT style); ablations use
`dataclasses.replace(cfg, field=value)`. Validation happens in `__post_init__`, so a bad value fails
where it is written, with a message that names it (PatchScalerError, a ValueError).
Sizes are in HR pixels unless said otherwise. This module is longer than 300 lines on purpose: one
table of every knob reads better than ten small files.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from .errors import PatchScalerError

T_MAX = 1000                      # diffusion steps of the VP schedule (diffusion/schedule.py)
DEGRADATIONS = ("bicubic", "realistic")


def _check(cond: bool, msg: str) -> None:
    """Raise PatchScalerError with `msg` unless `cond`."""
    if not cond:
        raise PatchScalerError(msg)


class _Dict:
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------- stage 1: GRM
@dataclass(frozen=True)
class GRMConfig(_Dict):
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
    # Minimising over C gives C* = eta / e^2 (clipped to 1): see grm.model.confidence_loss.
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


@dataclass(frozen=True)
class GRMTrainConfig(_Dict):
    """Recipe for training the GRM (crops, schedule, EMA) and calibrating its confidence head."""

    # On the corpus train split (57 photos, 83 MP; `make corpus`): 12000 steps, ~45 min on 2 CPU
    # cores. (On the ten shipped photos the body overfit after ~1500 steps, so 500 were used.)
    iters: int = 12000
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
    init: str = ""              # fine-tune from these weights (a shipped preset name or a file)
    # Stage 2: the confidence head alone, body frozen (see grm/calibration.py); 0 skips it.
    # 3000 steps with the patch-ranking term at weight 1 (calib_rank; 0 = the paper's bracket
    # alone), chosen on corpus val (README, "Global Restoration Module"): pooled Qmap Spearman
    # 0.915 -> 0.939 with C kept as close to the bracket's optimum as before. ~5 min on 2 CPU cores.
    calib_iters: int = 3000
    calib_lr: float = 1e-3
    calib_rank: float = 1.0

    def __post_init__(self):
        _check(self.calib_iters >= 0, f"calib_iters must be >= 0, got {self.calib_iters}")
        _check(self.calib_rank >= 0, f"calib_rank must be >= 0, got {self.calib_rank}")
        _check(self.iters >= 1, f"iters must be >= 1, got {self.iters}")
        _check(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        _check(self.crop % 4 == 0 and self.crop >= 16, f"crop must be a multiple of 4 >= 16, got {self.crop}")
        _check(0 <= self.ema < 1, f"ema must be in [0, 1), got {self.ema}")
        _check(self.degradation in DEGRADATIONS, f"unknown degradation {self.degradation!r}")


# ---------------------------------------------------------------------------- stage 2: grouping
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


@dataclass(frozen=True)
class GroupingConfig(_Dict):
    """Qmap -> three groups; the ONE grouping used by `qmap`, `upscale`, the pipeline and analyses.

    Patches of `patch_size` overlap by `overlap` pixels (the pipeline blends them). Grouping is by
    quantiles when given: the most confident f_simple of the patches of an image are Simple, the
    next f_medium Medium, the rest Hard. With `quantiles=None`, the paper's thresholds: Simple if
    Qmap > gamma1, Medium if gamma2 < Qmap <= gamma1, Hard otherwise. Quantiles are the default
    because the absolute confidence scale depends on the GRM weights.
    """

    patch_size: int = 32                               # P
    overlap: int = 8
    quantiles: tuple[float, float] | None = (0.5, 0.4)   # fractions Simple, Medium (rest Hard)
    thresholds: tuple[float, float] = (0.6, 0.3)       # gamma1 > gamma2 on the Qmap

    def __post_init__(self):
        _check(self.patch_size >= 1, f"patch_size must be >= 1, got {self.patch_size}")
        _check(0 <= self.overlap < max(1, self.patch_size // 2),
               f"overlap must be in [0, {self.patch_size // 2}), got {self.overlap}")
        validate_thresholds(self.thresholds)
        if self.quantiles is not None:
            validate_quantiles(self.quantiles)


# ---------------------------------------------------------------------------- stage 3: texture memory
@dataclass(frozen=True)
class DescriptorConfig(_Dict):
    """Gabor bank + moments (texture/gabor.py). Wavelengths in HR pixels; weights per feature group."""

    patch_size: int = 32              # P: the descriptor is built for this patch size
    scales: int = 3                   # S: wavelengths min_wavelength * 2**s, s < S
    orientations: int = 6             # O: angles k * pi / O
    min_wavelength: float = 6.0
    bandwidth: float = 1.0            # radial bandwidth of each Gabor band, in octaves (FWHM)
    blur_sigma: float = 1.0           # Gaussian low-pass (HR px) applied to keys and queries alike
    texture_weight: float = 1.0       # Gabor log-spectrum shape (S*O features)
    contrast_weight: float = 0.5      # log luminance contrast (1 feature)
    intensity_weight: float = 0.5     # luminance mean (1 feature)
    color_weight: float = 0.5         # opponent-colour means and stds (4 features)

    def __post_init__(self):
        _check(self.patch_size >= 8, f"DescriptorConfig.patch_size must be >= 8, got {self.patch_size}")
        _check(self.scales >= 1 and self.orientations >= 1,
               "DescriptorConfig.scales and orientations must be >= 1")
        top = self.min_wavelength * 2 ** (self.scales - 1)
        _check(2.0 <= self.min_wavelength <= top <= self.patch_size,
               f"Gabor wavelengths {self.min_wavelength:g}..{top:g} px must lie in "
               f"[2, patch_size={self.patch_size}]")
        _check(self.bandwidth > 0 and self.blur_sigma >= 0,
               "DescriptorConfig.bandwidth must be > 0 and blur_sigma >= 0")

    @property
    def dim(self) -> int:
        """F: number of features."""
        return self.scales * self.orientations + 1 + 1 + 4


def descriptor_for(patch_size: int, **overrides) -> DescriptorConfig:
    """The default descriptor for a patch size, with as many octaves (up to 3) as fit in a patch."""
    _check(patch_size >= 8, f"patch size must be >= 8 for the texture descriptor, got {patch_size}")
    base = DescriptorConfig()
    scales = max(1, min(base.scales, int(math.log2(patch_size / base.min_wavelength)) + 1))
    return dataclasses.replace(base, patch_size=patch_size, scales=scales, **overrides)


@dataclass(frozen=True)
class EmbedderConfig:
    """The texture key network (texture/key_network.py): architecture and training recipe."""

    patch_size: int = 32
    dim: int = 32                                  # D: embedding size
    widths: tuple[int, ...] = (32, 48, 64, 96)     # conv widths; stages 2.. halve the resolution
    iters: int = 4000                              # chosen on corpus val + data/ (README)
    batch_size: int = 128
    lr: float = 2e-3
    logit_scale: float = 16.0                      # s in the cosine classifier
    seed: int = 0

    def __post_init__(self):
        _check(self.patch_size >= 8 and self.dim >= 2 and bool(self.widths),
               f"bad EmbedderConfig: patch_size {self.patch_size} (>= 8), dim {self.dim} (>= 2), "
               f"widths {self.widths} (non-empty)")
        _check(self.iters >= 1 and self.batch_size >= 2,
               "EmbedderConfig.iters must be >= 1 and batch_size >= 2")

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "widths": list(self.widths)}

    @classmethod
    def from_dict(cls, d: dict) -> EmbedderConfig:
        return cls(**{**d, "widths": tuple(d["widths"])})


@dataclass(frozen=True)
class MemoryConfig(_Dict):
    """How a Reference Texture Memory is built (texture/memory.py, `memory build`)."""

    size: int = 1024                 # M entries
    patch_size: int = 32             # P
    n_patches: int = 50_000          # N sampled HR patches, reduced to M by k-means
    kmeans_iters: int = 30
    descriptor: str = "learned"      # learned (key network) | gabor
    keys: str = "coarse"             # coarse: describe each patch's GRM coarse twin | hr: the patch
    degradation: str = "bicubic"     # of the LR the coarse twins are restored from
    embedder: EmbedderConfig = field(default_factory=EmbedderConfig)
    seed: int = 0

    def __post_init__(self):
        _check(self.size >= 1, f"memory size M must be >= 1, got {self.size}")
        _check(self.size <= self.n_patches, f"memory size M={self.size} is larger than the number "
                                            f"of sampled patches ({self.n_patches})")
        _check(self.descriptor in ("learned", "gabor"),
               f"descriptor must be learned or gabor, got {self.descriptor!r}")
        _check(self.keys in ("coarse", "hr"), f"keys must be coarse or hr, got {self.keys!r}")
        _check(self.degradation in DEGRADATIONS, f"unknown degradation {self.degradation!r}")


# ---------------------------------------------------------------------------- stage 4: Patch-DiT and PGS
@dataclass(frozen=True)
class DiTConfig(_Dict):
    """Patch-DiT (diffusion/dit.py) and, derived from it, its texture prompt encoder."""

    name: str = "lite"
    patch_size: int = 32        # P: image patch side in HR pixels
    token_size: int = 4         # p: token side; P // p tokens per side
    dim: int = 128              # D
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    prompt_token_size: int = 8  # texture encoder token side: L = (P / 8)^2 = 16 tokens per reference
    top_k: int = 4              # K references per patch

    def __post_init__(self):
        _check(self.patch_size % self.token_size == 0,
               f"patch_size {self.patch_size} must be a multiple of token_size {self.token_size}")
        _check(self.dim % self.heads == 0, f"dim {self.dim} must be divisible by heads {self.heads}")


@dataclass(frozen=True)
class TextureEncoderConfig(_Dict):
    """Similarity-aware texture encoder. L = (patch_size // token_size)^2 tokens per reference."""

    patch_size: int = 32          # P, HR pixels (the memory's patch size)
    token_size: int = 8           # t: each token covers t x t pixels
    dim: int = 128                # D: token width (the DiT's width)
    max_k: int = 8                # largest K accepted (size of the rank embedding)
    sim_freqs: int = 8            # Fourier features of the similarity
    gate_scale: float = 8.0       # initial a in sigmoid(a * (s - b))
    gate_center: float = 0.5      # initial b

    def __post_init__(self):
        _check(self.patch_size % self.token_size == 0,
               f"patch_size {self.patch_size} must be a multiple of token_size {self.token_size}")
        _check(self.dim >= 1 and self.max_k >= 1 and self.sim_freqs >= 1,
               "TextureEncoderConfig.dim, max_k and sim_freqs must be >= 1")

    @property
    def tokens_per_patch(self) -> int:
        """L."""
        return (self.patch_size // self.token_size) ** 2


@dataclass(frozen=True)
class DenoiserConfig:
    """Patch-DiT + prompt encoder as one trainable module; the encoder follows from the DiT."""

    dit: DiTConfig = field(default_factory=DiTConfig)

    @property
    def encoder(self) -> TextureEncoderConfig:
        d = self.dit
        return TextureEncoderConfig(patch_size=d.patch_size, token_size=d.prompt_token_size,
                                    dim=d.dim, max_k=d.top_k)

    def to_dict(self) -> dict:
        """Flat: the encoder is fully determined by the DiT config."""
        return self.dit.to_dict()

    @classmethod
    def from_dict(cls, d: dict) -> DenoiserConfig:
        return cls(dit=DiTConfig(**d))


@dataclass(frozen=True)
class DiTTrainConfig(_Dict):
    """Recipe for training the Patch-DiT and its prompt encoder (diffusion/training.py)."""

    # 4000 on the corpus train split (on the ten shipped photos a 5000-step run had its best val
    # x0-MSE at step 3000, then overfit; 57 corpus photos give the model far more to learn from).
    iters: int = 4000
    batch_size: int = 48
    lr: float = 3e-4
    warmup: int = 200
    min_lr_ratio: float = 0.05
    ema: float = 0.999
    grad_clip: float = 1.0
    t_max: int = 400            # >= the Hard group's start T3
    prompt_dropout: float = 0.2
    val_every: int = 500
    ckpt_every: int = 250
    seed: int = 0
    degradation: str = "bicubic"  # of the LR whose GRM output the DiT learns to refine
    init: str = ""              # fine-tune from these weights (a shipped preset name or a file)

    def __post_init__(self):
        _check(self.degradation in DEGRADATIONS, f"unknown degradation {self.degradation!r}")
        _check(self.iters >= 1, f"iters must be >= 1, got {self.iters}")
        _check(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        _check(1 <= self.t_max <= T_MAX, f"t_max must be in [1, {T_MAX}], got {self.t_max}")
        _check(0 <= self.prompt_dropout <= 1,
               f"prompt_dropout must be in [0, 1], got {self.prompt_dropout}")


def check_schedule(starts, steps) -> None:
    """Starts in [1, T_MAX] and strictly increasing; steps >= 1, increasing, and <= their start."""
    starts, steps = [int(s) for s in starts], [int(n) for n in steps]
    _check(len(starts) == len(steps), f"{len(starts)} start steps but {len(steps)} step counts")
    for t, n in zip(starts, steps):
        _check(1 <= t <= T_MAX, f"start step {t} is out of range [1, {T_MAX}]")
        _check(1 <= n <= t, f"step count {n} is out of range [1, start step {t}]")
    _check(all(b > a for a, b in zip(starts, starts[1:])),
           f"start steps must be strictly increasing (T1 < T2 < T3), got {starts}")
    _check(all(b > a for a, b in zip(steps, steps[1:])),
           f"step counts must be strictly increasing (N1 < N2 < N3), got {steps}")


@dataclass(frozen=True)
class PGSConfig:
    """Patch-adaptive Group Sampling: per-group start steps and step counts, and the grouping.

    Defaults chosen by measurement with the corpus-trained lite weights on the corpus val split
    (320 px centre crops; `python scripts/sweep_pgs.py --data data/corpus --split val --crop 320`):
    among ten candidates with >= 3x fewer patch-NFE than uniform (350, 6) and PSNR no more than
    0.1 dB below it, starts (50, 200, 350), steps (1, 2, 6), 50% / 40% / 10% of patches in Simple /
    Medium / Hard had the lowest NIQE: 6.72 (uniform 6.27; the earlier default (50, 150, 350),
    chosen on the ten-photo weights, 6.83). The real preset has its own plan (PRESETS).
    """

    starts: tuple[int, int, int] = (50, 200, 350)      # T1 < T2 < T3
    steps: tuple[int, int, int] = (1, 2, 6)            # N1 < N2 < N3 denoiser calls
    uniform: tuple[int, int] | None = None             # (T, N) for every patch: the baseline
    # patches per denoiser call: 64 measured fastest with 32 (scripts/bench_cpu.py --batch-sizes,
    # 2-core CPU: 384^2 LR 13.0 s vs 19.3 s at 256, and ~150 MB less peak memory)
    batch_size: int = 64
    grouping: GroupingConfig = field(default_factory=GroupingConfig)

    def __post_init__(self):
        check_schedule(self.starts, self.steps)
        if self.uniform is not None:
            check_schedule((self.uniform[0],), (self.uniform[1],))
        _check(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")

    def plan(self) -> list[tuple[int, int]]:
        """[(T_g, N_g)] for the three groups (all equal in uniform mode)."""
        if self.uniform is not None:
            return [tuple(self.uniform)] * 3
        return list(zip(self.starts, self.steps))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# The fidelity dial: one number in [0, 1] for the trade between staying close to the coarse image
# and synthesising detail. Only the start steps move (T3 from FIDELITY_T3[0] at F = 0 down to
# FIDELITY_T3[1] at F = 1, T1 and T2 in the default's proportions 1 : 4 : 7), so the groups, the
# step counts and the patch-NFE are the same at every setting. F = 0 starts the Hard group at the
# Patch-DiT's training limit t_max = 400 (farther would be outside what it learned); the default
# plan (50, 200, 350) sits at F = 1/6.
FIDELITY_T3 = (400, 100)


def fidelity_pgs(fidelity: float, base: PGSConfig | None = None) -> PGSConfig:
    """The PGS plan of `base` (default: PGSConfig()) with the start steps set by the dial."""
    _check(0.0 <= fidelity <= 1.0, f"fidelity must be in [0, 1], got {fidelity}")
    base = PGSConfig() if base is None else base
    t3 = FIDELITY_T3[0] + (FIDELITY_T3[1] - FIDELITY_T3[0]) * fidelity
    starts = (round(t3 / 7), round(4 * t3 / 7), round(t3))
    return dataclasses.replace(base, starts=starts, uniform=None)


# ---------------------------------------------------------------------------- the presets table
@dataclass(frozen=True)
class Preset:
    """Every stage's config for one model size; weight files are named <kind>_<name>."""

    name: str
    grm: GRMConfig
    grm_train: GRMTrainConfig
    memory: MemoryConfig
    dit: DenoiserConfig
    dit_train: DiTTrainConfig
    pgs: PGSConfig


_TINY_DIT = DiTConfig(name="tiny", dim=32, depth=1, heads=2, prompt_token_size=16, top_k=2)

PRESETS: dict[str, Preset] = {
    # tiny: seconds on a CPU, for tests only (the outputs mean nothing).
    "tiny": Preset(
        "tiny", GRMConfig(name="tiny", channels=8, blocks=1, conf_channels=8),
        GRMTrainConfig(iters=20, batch_size=4, crop=32, warmup=2, val_every=10, ckpt_every=10,
                       calib_iters=5),
        MemoryConfig(size=16, n_patches=512, kmeans_iters=5,
                     embedder=EmbedderConfig(dim=8, widths=(8, 16), iters=20, batch_size=16)),
        DenoiserConfig(_TINY_DIT),
        DiTTrainConfig(iters=20, batch_size=4, warmup=2, val_every=10, ckpt_every=10),
        PGSConfig(batch_size=64)),
    # lite: the shipped weights, trainable on a 2-core CPU.
    "lite": Preset("lite", GRMConfig(), GRMTrainConfig(), MemoryConfig(), DenoiserConfig(),
                   DiTTrainConfig(), PGSConfig()),
    # real: the lite architecture fine-tuned from the lite weights on realistic LR (data.degrade's
    # second-order chain): the real-world track (`upscale --preset real`, `bench --preset real`).
    "real": Preset("real", GRMConfig(name="real"),
                   GRMTrainConfig(iters=4000, lr=2e-4, warmup=100, degradation="realistic", init="lite"),
                   MemoryConfig(size=4096, n_patches=100_000, degradation="realistic"),
                   DenoiserConfig(DiTConfig(name="real")),
                   DiTTrainConfig(iters=1500, lr=1.5e-4, warmup=100, degradation="realistic",
                                  init="lite"),
                   # The Hard group starts at 100 (fidelity 1): on realistic LR the coarse image
                   # holds less texture, and from the lite starts (Hard at 350) the Patch-DiT left
                   # part of the injected noise in as coloured speckle. Simple / Medium starts,
                   # steps and shares chosen on the corpus val split (scripts/sweep_pgs.py --preset
                   # real; README, "The real-world track").
                   PGSConfig(starts=(70, 85, 100), steps=(1, 3, 6),
                             grouping=GroupingConfig(quantiles=(0.65, 0.25)))),
    # base: a larger Patch-DiT meant for a CUDA GPU (the other stages as lite).
    "base": Preset("base", GRMConfig(name="base"), GRMTrainConfig(), MemoryConfig(),
                   DenoiserConfig(DiTConfig(name="base", dim=384, depth=8, heads=6)),
                   DiTTrainConfig(iters=30000, batch_size=128, lr=2e-4), PGSConfig()),
}


def preset(name: str) -> Preset:
    """PRESETS[name], or a one-line error listing the choices."""
    _check(name in PRESETS, f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    return PRESETS[name]

"""Frozen texture descriptor: the lite stand-in for the paper's "texture classifier".

No pretrained classifier can be installed here, so keys and queries of the Reference Texture
Memory come from a fixed, explainable descriptor (no learned weights):

* texture: the energy of a Gabor filter bank (S scales x O orientations) on the luminance. By
  Parseval, the mean squared response of a complex Gabor filter (circular convolution) equals
  the patch's power spectrum weighted by the filter's squared frequency response, so the whole
  bank is one FFT and one matmul: (N, P*P) @ (P*P, S*O). `gabor_energy_direct` is the slow
  convolution oracle used by the tests. Features are log energies with their per-patch mean
  removed (the *shape* of the spectrum: scale profile and orientation distribution, independent
  of contrast), plus the log contrast.
* intensity and colour moments: mean / std of the luminance and of two opponent-colour channels.

Robustness to the coarse-vs-HR gap: queries are GRM coarse patches (a x4 upscale, blurry above
the LR Nyquist frequency, wavelength 8 HR px). Every patch, key or query, is first low-passed by
the same Gaussian (`blur_sigma`), and the bank's finest wavelength is `min_wavelength` = 6 HR px,
a band the GRM still partly restores. The larger part of the gap is closed by the memory, not the
descriptor: by default its keys describe the *coarse twin* of each HR patch (the GRM's output
for its x4 LR, `texture.memory.coarse_twins`), so keys and queries come from the same domain.

Features are standardised with a per-feature (mean, std) fitted on the memory's own patches
(`fit_standardizer`), weighted by group, then L2-normalised: cosine = inner product.
Images are float RGB in [0, 1]; patches (N, 3, P, P); descriptors (N, F).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..config import DescriptorConfig
from ..errors import PatchScalerError

_LUMA = (0.299, 0.587, 0.114)
_EPS = 1e-6          # energy floor (luminance units^2): a flat patch has a flat log spectrum


def feature_names(cfg: DescriptorConfig) -> list[str]:
    """Names of the F features, in order (for plots and reports)."""
    tex = [f"gabor_l{cfg.min_wavelength * 2 ** s:g}_a{round(180 * o / cfg.orientations)}"
           for s in range(cfg.scales) for o in range(cfg.orientations)]
    return tex + ["log_contrast", "luma_mean", "rg_mean", "yb_mean", "rg_std", "yb_std"]


def group_weights(cfg: DescriptorConfig) -> Tensor:
    """(F,) weight of each feature: a group's weight is spread so its squared norm is weight^2."""
    n_tex = cfg.scales * cfg.orientations
    w = [cfg.texture_weight / math.sqrt(n_tex)] * n_tex
    w += [cfg.contrast_weight, cfg.intensity_weight] + [cfg.color_weight / 2] * 4
    return torch.tensor(w, dtype=torch.float32)


def gabor_bank(cfg: DescriptorConfig, device=None) -> Tensor:
    """Squared frequency responses |G|^2 of the complex Gabor bank on the P x P DFT grid.

    Returns (P * P, S * O), rows in torch.fft.fft2 order. Each band is a Gaussian in the
    frequency plane centred at 1/wavelength cycles/px along angle theta; its radial FWHM is
    `bandwidth` octaves and its angular spread matches the orientation spacing.
    """
    P = cfg.patch_size
    f = torch.fft.fftfreq(P, dtype=torch.float64)                       # cycles / px
    fy, fx = torch.meshgrid(f, f, indexing="ij")                         # (P, P)
    bands = []
    b = 2 ** cfg.bandwidth
    for s in range(cfg.scales):
        f0 = 1.0 / (cfg.min_wavelength * 2 ** s)
        sig_r = f0 * (b - 1) / (b + 1) / math.sqrt(2 * math.log(2))     # radial std from FWHM
        sig_t = f0 * math.tan(math.pi / (2 * cfg.orientations)) / math.sqrt(2 * math.log(2))
        for o in range(cfg.orientations):
            th = math.pi * o / cfg.orientations
            u = fx * math.cos(th) + fy * math.sin(th) - f0              # along the band
            v = -fx * math.sin(th) + fy * math.cos(th)                   # across the band
            g = torch.exp(-0.5 * ((u / sig_r) ** 2 + (v / sig_t) ** 2))  # |G| (P, P)
            bands.append((g ** 2).reshape(-1))
    return torch.stack(bands, 1).to(device=device, dtype=torch.float32)  # (P*P, S*O)


def _blur(y: Tensor, sigma: float) -> Tensor:
    """Circular Gaussian blur of (N, P, P) done in the frequency domain (exact, batched)."""
    if sigma == 0:
        return y
    P = y.shape[-1]
    f = torch.fft.fftfreq(P, device=y.device, dtype=y.dtype)
    g = torch.exp(-2 * (math.pi * sigma * f) ** 2)                       # (P,) Gaussian's FT
    return torch.fft.ifft2(torch.fft.fft2(y) * (g[:, None] * g[None, :])).real


def gabor_energy(luma: Tensor, cfg: DescriptorConfig) -> Tensor:
    """Mean squared Gabor response per band: (N, P, P) zero-mean luminance -> (N, S * O).

    Parseval: mean_x |(y * g)(x)|^2 = sum_k |Y_k|^2 |G_k|^2 / (P^2)^2 for circular convolution.
    """
    N, P, _ = luma.shape
    power = torch.fft.fft2(luma).abs().pow(2).reshape(N, P * P)          # (N, P*P)
    return power @ gabor_bank(cfg, luma.device) / float(P ** 4)           # (N, S*O)


def gabor_energy_direct(luma: Tensor, cfg: DescriptorConfig) -> Tensor:
    """Oracle for `gabor_energy`: build each spatial Gabor kernel (inverse DFT of G) and
    circularly convolve with it, then average |response|^2. Slow; for tests only."""
    N, P, _ = luma.shape
    G = gabor_bank(cfg, luma.device).sqrt().T.reshape(-1, P, P).to(torch.complex64)
    kernels = torch.fft.ifft2(G)                                          # (S*O, P, P) complex
    out = []
    for k in kernels:
        resp = torch.zeros(N, P, P, dtype=torch.complex64, device=luma.device)
        for dy in range(P):                                               # circular convolution
            for dx in range(P):
                resp += k[dy, dx] * torch.roll(luma, (dy, dx), (1, 2))
        out.append(resp.abs().pow(2).mean((1, 2)))
    return torch.stack(out, 1)                                            # (N, S*O)


def describe_raw(patches: Tensor, cfg: DescriptorConfig) -> Tensor:
    """Unstandardised features: (N, 3, P, P) RGB in [0, 1] -> (N, F) float32 (see feature_names)."""
    if patches.dim() != 4 or patches.shape[1] != 3:
        raise PatchScalerError(f"patches must be (N, 3, P, P), got {tuple(patches.shape)}")
    P = cfg.patch_size
    if patches.shape[-2:] != (P, P):
        raise PatchScalerError(f"descriptor is configured for {P}x{P} patches, got "
                               f"{patches.shape[-2]}x{patches.shape[-1]}")
    x = _blur(patches.float().reshape(-1, P, P), cfg.blur_sigma).reshape(patches.shape)
    r, g, b = x.unbind(1)                                                 # (N, P, P) each
    luma = _LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b
    rg, yb = r - g, 0.5 * (r + g) - b                                     # opponent colours
    mean = luma.mean((1, 2), keepdim=True)                                # (N, 1, 1)
    log_e = torch.log(gabor_energy(luma - mean, cfg) + _EPS)              # (N, S*O)
    shape = log_e - log_e.mean(1, keepdim=True)                           # contrast-free
    contrast = 0.5 * torch.log(luma.var((1, 2), unbiased=False) + _EPS)   # log std
    moments = torch.stack([contrast, mean[:, 0, 0], rg.mean((1, 2)), yb.mean((1, 2)),
                           rg.std((1, 2), unbiased=False), yb.std((1, 2), unbiased=False)], 1)
    return torch.cat([shape, moments], 1)                                 # (N, F)


def fit_standardizer(raw: Tensor) -> tuple[Tensor, Tensor]:
    """Per-feature (mean, std) of raw descriptors (N, F) -> two (F,) tensors; std floored."""
    mean = raw.mean(0)
    std = raw.std(0, unbiased=False).clamp_min(1e-3)
    return mean, std


def embed(raw: Tensor, mean: Tensor, std: Tensor, cfg: DescriptorConfig) -> Tensor:
    """Standardise, weight by group and L2-normalise: (N, F) -> (N, F) unit rows."""
    w = group_weights(cfg).to(raw.device)
    z = (raw - mean.to(raw.device)) / std.to(raw.device) * w              # (N, F)
    return torch.nn.functional.normalize(z, dim=1)


def describe(patches: Tensor, cfg: DescriptorConfig, mean: Tensor, std: Tensor,
             chunk: int = 8192) -> Tensor:
    """Unit descriptors of patches (N, 3, P, P) in [0, 1] -> (N, F), in chunks of `chunk`."""
    out = [embed(describe_raw(patches[i: i + chunk], cfg), mean, std, cfg)
           for i in range(0, len(patches), chunk)]
    if not out:
        return patches.new_zeros(0, cfg.dim)
    return torch.cat(out)

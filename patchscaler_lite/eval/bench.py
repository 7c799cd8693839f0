"""Speed / quality benchmark: every method on degraded HR photos, one row per (image, method).

Methods: bicubic; the pretrained peers read from PyPI wheels (span, srmd: bicubic-trained;
realesrgan, realsr: real-world-trained; peers/); PatchScaler's GRM alone (grm); and the diffusion
stage: pgs (grouped sampling), pgs-notexture (no texture prompt), uniform-<N> (every patch N steps
from the Hard group's start). Each method runs once, untimed, on the first photo's LR (warm-up:
the same shapes as the timed calls); then each image is timed as eval/timing.py says (wall-clock
around the method call only, CUDA-synchronised; peak memory alongside). The protocol goes into the
result (`protocol`).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace

import pandas as pd
import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..config import DEGRADATIONS, PGSConfig, fidelity_pgs
from ..data import bicubic_up, crop_to_scale, degrade, quantize8
from ..errors import PatchScalerError, WeightsError
from ..grm.model import restore
from ..grouping import GROUP_NAMES
from ..patches import PatchLayout
from ..weights import count_parameters
from .metrics import niqe, piqe, psnr, ssim
from .peers.realesrgan import load_realesrgan, realesrgan_weights_dir, upscale_x4
from .peers.realsr import load_realsr, realsr_weights_dir
from .peers.span import load_span, span_weights_dir
from .peers.srmd import load_srmd, srmd_folder
from .timing import protocol, timed

PEERS = {"realesrgan": load_realesrgan, "span": load_span, "realsr": load_realsr, "srmd": load_srmd}
PEER_DIRS = {"realesrgan": realesrgan_weights_dir, "span": span_weights_dir,
             "realsr": realsr_weights_dir, "srmd": srmd_folder}
BASE_METHODS = ("bicubic", "span", "srmd", "realesrgan", "realsr", "grm", "pgs", "pgs-notexture")
FIDELITY_METHOD = r"pgs-f(0(\.[0-9]+)?|1(\.0+)?)"      # pgs at config.fidelity_pgs(F)
FIDELITY_SWEEP = ("pgs-f0", "pgs-f0.25", "pgs-f0.5", "pgs-f0.75", "pgs-f1")


def default_methods(pipe) -> list[str]:
    """Every method: bicubic, the four peers, GRM, uniform at the Hard group's steps, PGS (+ ablation).

    A peer whose wheel is missing (or another version) is left out with one warning naming the
    install command; asked for by name (`make_runner`), it is an error instead.
    """
    peers = []
    for name in ("span", "srmd", "realesrgan", "realsr"):
        try:
            PEER_DIRS[name]()
            peers.append(name)
        except WeightsError as e:
            warnings.warn(f"bench leaves out {name}: {e}", stacklevel=2)
    return ["bicubic", *peers, "grm", f"uniform-{pipe.pgs.steps[-1]}", "pgs", "pgs-notexture"]


def check_methods(methods) -> list[str]:
    """The method names as a list; PatchScalerError (one line, the valid choices) for any other."""
    methods = list(methods)
    for m in methods:
        if m not in BASE_METHODS and not re.fullmatch(r"uniform-[1-9][0-9]*", m) \
                and not re.fullmatch(FIDELITY_METHOD, m):
            raise PatchScalerError(f"unknown method {m!r}; choose from {', '.join(BASE_METHODS)}, "
                                   "uniform-<N> (N >= 1 steps), pgs-f<F> (fidelity F in [0, 1])")
    if not methods:
        raise PatchScalerError("no method to benchmark")
    return methods


def check_degradation(kind: str) -> str:
    """`kind` if it is a known degradation, else PatchScalerError naming the choices."""
    if kind not in DEGRADATIONS:
        raise PatchScalerError(f"unknown degradation {kind!r}; choose from {', '.join(DEGRADATIONS)}")
    return kind


@dataclass
class Method:
    """A benchmarked method: call it on lr (1, 3, h, w) -> (image (1, 3, H, W), extras dict)."""

    name: str
    run: Callable
    params: int                 # learned parameters used by the call (0 for bicubic)

    def __call__(self, lr: Tensor):
        return self.run(lr)


def make_runner(name: str, pipe, seed: int = 0) -> Method:
    """The Method for a name of `check_methods` (peers are loaded here, outside any timer)."""
    check_methods([name])
    s = pipe.grm.cfg.scale
    if name == "bicubic":
        return Method(name, lambda lr: (bicubic_up(lr, s), {}), 0)
    if name == "grm":
        return Method(name, lambda lr: (restore(pipe.grm, lr)[0], {}), count_parameters(pipe.grm))
    if name in PEERS:
        model = PEERS[name]().to(pipe.device)
        bf16 = name in ("realesrgan", "realsr")           # the 16.7 M-parameter RRDBNets, on CUDA
        return Method(name, lambda lr: (upscale_x4(model, lr, bf16=bf16), {}), count_parameters(model))
    pgs, texture = pipe.pgs, name != "pgs-notexture"
    if name.startswith("uniform-"):
        pgs = replace(pgs, uniform=(pipe.pgs.starts[-1], int(name.split("-", 1)[1])))
    if name.startswith("pgs-f"):
        pgs = fidelity_pgs(float(name[len("pgs-f"):]), pipe.pgs)
    used = pipe.denoiser if texture else pipe.denoiser.dit

    def run(lr):
        out = pipe(lr, generator=torch.Generator().manual_seed(seed), pgs=pgs, texture=texture)
        return out.image, {"patch_nfe": out.total_nfe, "groups": out.groups, "out": out}
    return Method(name, run, count_parameters(pipe.grm) + count_parameters(used))


def group_pixel_mask(groups: torch.Tensor, layout: PatchLayout, g: int) -> torch.Tensor:
    """(H, W) bool: pixels whose nearest patch (by stride cell) is in group g; groups (nh, nw)."""
    s, off = layout.stride, layout.overlap // 2
    rows = ((torch.arange(layout.height) - off).div(s, rounding_mode="floor")).clamp(0, layout.nh - 1)
    cols = ((torch.arange(layout.width) - off).div(s, rounding_mode="floor")).clamp(0, layout.nw - 1)
    return groups.cpu()[rows[:, None], cols[None, :]] == g


def group_psnr(img, hr, groups, layout) -> dict[str, float]:
    """PSNR (dB, 8-bit) over the pixels of each group; NaN for an empty group."""
    err = (quantize8(img) - quantize8(hr)).square().mean(1)[0].cpu()          # (H, W)
    out = {}
    for g, name in enumerate(GROUP_NAMES):
        m = group_pixel_mask(groups[0], layout, g)
        mse = err[m].mean().item() if m.any() else float("nan")
        out[f"psnr_{name}"] = 10 * torch.log10(torch.tensor(1.0 / max(mse, 1e-12))).item() \
            if m.any() else float("nan")
    return out


def bench_protocol(pipe) -> dict:
    """The timing protocol of run_bench on this pipeline's device (written into its result)."""
    return protocol(
        pipe.device, warmup="each method once, untimed, on the first photo's LR before any timed "
                            "call (weights loaded before it)",
        batch=f"1 image per call; PGS {pipe.pgs.batch_size} patches per denoiser call; RRDB peers "
              "in LR tiles of <= 128 px",
        inside="the whole method: PatchScaler's GRM, grouping, retrieval, sampling and reassembly; "
               "a peer's forward pass and tiling")


def run_bench(pipe, photos: dict, methods, *, degradation="bicubic", seed=0, progress=True) -> dict:
    """Benchmark `methods` on {name: HR (3, H, W)}; returns {device, protocol, pgs_config, methods,
    rows}.

    methods: names of `check_methods`. Each (photo, method) is degraded with the same seed, so every
    method sees the same LR. `methods` holds the per-method means (seconds_per_mp: total seconds
    over total output megapixels).
    """
    methods, degradation = check_methods(methods), check_degradation(degradation)
    device = pipe.device
    runners = {m: make_runner(m, pipe, seed) for m in methods}
    if photos:                                            # warm-up: same shapes as the timed calls
        warm = _pair(pipe, next(iter(photos.values())), degradation, seed)[1]
        for r in runners.values():
            r(warm)
    items = [(n, m) for n in photos for m in methods]
    rows = [_bench_row(pipe, runners[m], n, photos[n], degradation, seed)
            for n, m in tqdm(items, desc="bench", disable=not progress)]
    df = pd.DataFrame(rows)
    means = df.drop(columns="image").groupby("method", sort=False).mean(numeric_only=True)
    means["seconds_per_mp"] = means["seconds"] / means["megapixels"]
    return {"device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
            "degradation": degradation, "seed": seed, "preset": pipe.grm.cfg.name,
            "protocol": bench_protocol(pipe),
            "pgs_config": _pgs_summary(pipe.pgs),
            "methods": {m: {k: _null_nan(v) for k, v in r.items()} for m, r in means.iterrows()},
            "rows": [{k: (_null_nan(v) if isinstance(v, float) else v) for k, v in r.items()}
                     for r in rows]}


def _bench_row(pipe, run: Method, name: str, photo, degradation: str, seed: int) -> dict:
    """One (image, method) row: quality, seconds, parameters, patch-NFE, peak memory (+ groups)."""
    hr, lr = _pair(pipe, photo, degradation, seed)
    img, extra, sec, mb = timed(run, lr, pipe.device)
    mp = hr.shape[-1] * hr.shape[-2] / 1e6
    row = {"image": name, "method": run.name, "psnr": psnr(img, hr), "psnr_y": psnr(img, hr, True),
           "ssim": ssim(img, hr), "ssim_y": ssim(img, hr, True), "niqe": niqe(img), "piqe": piqe(img),
           "seconds": sec, "seconds_per_mp": sec / mp, "params": run.params,
           "patch_nfe": extra.get("patch_nfe", 0), "peak_mem_mb": mb, "megapixels": mp}
    if "out" in extra:
        o = extra["out"]
        row.update(group_psnr(img, hr, o.groups, o.layout))
        row.update({f"patches_{k}": v for k, v in o.counts.items()})
    return row


def _pair(pipe, photo: Tensor, degradation: str, seed: int) -> tuple[Tensor, Tensor]:
    """(HR (1, 3, H, W) cropped to the scale, its LR): the same LR for every method of a photo."""
    s = pipe.grm.cfg.scale
    hr = crop_to_scale(photo, s)[None].to(pipe.device)
    return hr, degrade(hr, s, degradation, generator=torch.Generator().manual_seed(seed))


def _pgs_summary(pgs: PGSConfig) -> dict:
    g = pgs.grouping
    return {"thresholds": list(g.thresholds), "starts": list(pgs.starts), "steps": list(pgs.steps),
            "quantiles": None if g.quantiles is None else list(g.quantiles),
            "patch_size": g.patch_size, "overlap": g.overlap}


def _null_nan(v):
    """NaN -> None (strict JSON), else float."""
    return None if v != v else float(v)


def size_scaling(pipe, hr: Tensor, lr_sizes, methods=("pgs",), *, seed: int = 0,
                 repeats: int = 3) -> pd.DataFrame:
    """Seconds and peak memory of `methods` on square LR crops of `lr_sizes` px (the `timed`
    protocol, one warm-up call per method first). One row per (method, size), methods in the given
    order, sizes ascending.

    hr: (1, 3, H, W) at least 4 * max(lr_sizes) a side. Each (method, size) is timed `repeats`
    times, the passes interleaved (every method and size in each pass), and `seconds` is the
    fastest: on a shared machine a call is only ever slowed down, so the minimum is the stable
    estimate (`seconds_median` is kept too). Peak memory is the largest of the repeats.
    """
    s, sizes = pipe.grm.cfg.scale, sorted(lr_sizes)
    lrs = {n: degrade(hr[..., :s * n, :s * n], s).to(pipe.device) for n in sizes}
    runs = {m: make_runner(m, pipe, seed) for m in methods}
    for run in runs.values():
        run(lrs[sizes[0]])                                                        # warm-up
    got = {(m, n): [] for m in methods for n in sizes}
    for _ in range(max(1, repeats)):
        for n in sizes:
            for m, run in runs.items():
                _, extra, sec, mb = timed(run, lrs[n], pipe.device)
                got[m, n].append((sec, mb, extra.get("patch_nfe", 0)))
    rows = []
    for (m, n), calls in got.items():
        secs = sorted(c[0] for c in calls)
        rows.append({"method": m, "lr_size": n, "hr_pixels": (s * n) ** 2, "seconds": secs[0],
                     "seconds_median": secs[len(secs) // 2], "peak_mem_mb": max(c[1] for c in calls),
                     "patch_nfe": calls[0][2], "repeats": len(calls)})
    return pd.DataFrame(rows)

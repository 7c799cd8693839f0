"""Speed / quality benchmark: every method on degraded HR photos, one row per (image, method).

Each method runs once on a small warm-up input first; then each image is timed as eval/timing.py
says (wall-clock around the method call only, CUDA-synchronised; peak memory alongside).
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..config import PGSConfig
from ..data import bicubic_up, crop_to_scale, degrade, quantize8
from ..errors import PatchScalerError
from ..grm.model import restore
from ..grouping import GROUP_NAMES
from ..patches import PatchLayout
from .metrics import niqe, psnr, ssim
from .peers.realesrgan import load_realesrgan, upscale_realesrgan
from .timing import timed

BASE_METHODS = ("bicubic", "realesrgan", "grm", "pgs", "pgs-notexture")


def default_methods(pipe) -> list[str]:
    return ["bicubic", "realesrgan", "grm", f"uniform-{pipe.pgs.steps[-1]}", "pgs", "pgs-notexture"]


def make_runner(name: str, pipe, seed: int = 0):
    """A function lr (1, 3, h, w) -> (image (1, 3, H, W), extras dict) for a method name."""
    s = pipe.grm.cfg.scale
    if name == "bicubic":
        return lambda lr: (bicubic_up(lr, s), {})
    if name == "grm":
        return lambda lr: (restore(pipe.grm, lr)[0], {})
    if name == "realesrgan":
        model = load_realesrgan().to(pipe.device)
        return lambda lr: (upscale_realesrgan(model, lr), {})
    if name in ("pgs", "pgs-notexture") or name.startswith("uniform-"):
        pgs, texture = pipe.pgs, name != "pgs-notexture"
        if name.startswith("uniform-"):
            try:
                n = int(name.split("-", 1)[1])
            except ValueError:
                raise PatchScalerError(f"bad method {name!r}: use uniform-<N>") from None
            pgs = replace(pgs, uniform=(pipe.pgs.starts[-1], n))

        def run(lr):
            out = pipe(lr, generator=torch.Generator().manual_seed(seed), pgs=pgs, texture=texture)
            return out.image, {"patch_nfe": out.total_nfe, "groups": out.groups, "out": out}
        return run
    raise PatchScalerError(f"unknown method {name!r}; choose from {', '.join(BASE_METHODS)}, uniform-<N>")


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


def run_bench(pipe, photos: dict, methods, *, degradation="bicubic", seed=0, progress=True) -> dict:
    """Benchmark `methods` on {name: HR (3, H, W)}; returns {device, pgs_config, methods, rows}.

    methods: names understood by `make_runner`. Each (photo, method) is degraded with the same
    seed, so every method sees the same LR. `methods` holds the per-method means.
    """
    device = pipe.device
    runners = {m: make_runner(m, pipe, seed) for m in methods}
    warm = torch.rand(1, 3, 24, 24, generator=torch.Generator().manual_seed(1)).to(device)
    for r in runners.values():
        r(warm)
    items = [(n, m) for n in photos for m in methods]
    rows = [_bench_row(pipe, runners[m], n, m, photos[n], degradation, seed)
            for n, m in tqdm(items, desc="bench", disable=not progress)]
    df = pd.DataFrame(rows)
    means = df.drop(columns="image").groupby("method", sort=False).mean(numeric_only=True)
    means["seconds_per_mp"] = means["seconds"] / means["megapixels"]
    return {"device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
            "degradation": degradation, "seed": seed, "pgs_config": _pgs_summary(pipe.pgs),
            "methods": {m: {k: _null_nan(v) for k, v in r.items()} for m, r in means.iterrows()},
            "rows": [{k: (_null_nan(v) if isinstance(v, float) else v) for k, v in r.items()}
                     for r in rows]}


def _bench_row(pipe, run, name: str, method: str, photo, degradation: str, seed: int) -> dict:
    """One (image, method) row: quality, seconds, patch-NFE, peak memory (+ per-group PSNR)."""
    s = pipe.grm.cfg.scale
    hr = crop_to_scale(photo, s)[None].to(pipe.device)
    lr = degrade(hr, s, degradation, generator=torch.Generator().manual_seed(seed))
    img, extra, sec, mb = timed(run, lr, pipe.device)
    row = {"image": name, "method": method, "psnr": psnr(img, hr), "ssim": ssim(img, hr),
           "niqe": niqe(img), "seconds": sec, "patch_nfe": extra.get("patch_nfe", 0),
           "peak_mem_mb": mb, "megapixels": hr.shape[-1] * hr.shape[-2] / 1e6}
    if "out" in extra:
        o = extra["out"]
        row.update(group_psnr(img, hr, o.groups, o.layout))
        row.update({f"patches_{k}": v for k, v in o.counts.items()})
    return row


def _pgs_summary(pgs: PGSConfig) -> dict:
    g = pgs.grouping
    return {"thresholds": list(g.thresholds), "starts": list(pgs.starts), "steps": list(pgs.steps),
            "quantiles": None if g.quantiles is None else list(g.quantiles),
            "patch_size": g.patch_size, "overlap": g.overlap}


def _null_nan(v):
    """NaN -> None (strict JSON), else float."""
    return None if v != v else float(v)


def size_scaling(pipe, hr: Tensor, lr_sizes, methods=("pgs",), *, seed: int = 0) -> pd.DataFrame:
    """Seconds and peak memory of `methods` on square LR crops (the `timed` protocol, warm-up first).

    hr: (1, 3, H, W) at least 4 * max(lr_sizes) a side. One row per (method, size).
    """
    s, rows = pipe.grm.cfg.scale, []
    for m in methods:
        run = make_runner(m, pipe, seed)
        run(degrade(hr[..., :s * min(lr_sizes), :s * min(lr_sizes)], s).to(pipe.device))   # warm-up
        for n in lr_sizes:
            lr = degrade(hr[..., :s * n, :s * n], s).to(pipe.device)
            _, extra, sec, mb = timed(run, lr, pipe.device)
            rows.append({"method": m, "lr_size": n, "hr_pixels": (s * n) ** 2, "seconds": sec,
                         "peak_mem_mb": mb, "patch_nfe": extra.get("patch_nfe", 0)})
    return pd.DataFrame(rows)

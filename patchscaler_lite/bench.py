"""Speed / quality benchmark: every method on degraded HR photos, one row per (image, method).

Timing protocol: each method runs once on a small warm-up input first; then each image is timed
wall-clock around the method call only (degradation, metrics and I/O excluded), with
torch.cuda.synchronize() before reading the clock on CUDA. Peak memory: torch's allocator peak on
CUDA; on CPU the peak resident-set growth of the process sampled every 5 ms during the call.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import torch

from .data import bicubic_up, crop_to_scale, degrade
from .errors import PatchScalerError
from .grouping import GROUP_NAMES
from .metrics import niqe, psnr, ssim
from .patches import PatchLayout

BASE_METHODS = ("bicubic", "realesrgan", "grm", "pgs", "pgs-notexture")


def default_methods(pipe) -> list[str]:
    return ["bicubic", "realesrgan", "grm", f"uniform-{pipe.pgs.steps[-1]}", "pgs", "pgs-notexture"]


def make_runner(name: str, pipe, seed: int = 0):
    """A function lr (1, 3, h, w) -> (image (1, 3, H, W), extras dict) for a method name."""
    s = pipe.grm.cfg.scale
    if name == "bicubic":
        return lambda lr: (bicubic_up(lr, s), {})
    if name == "grm":
        from .restoration import restore

        return lambda lr: (restore(pipe.grm, lr)[0], {})
    if name == "realesrgan":
        from .realesrgan import load_realesrgan, upscale_realesrgan

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


class _PeakRSS:
    """Peak resident memory growth (MB) of this process while the context is open (CPU)."""

    def __enter__(self):
        import psutil

        self.proc = psutil.Process()
        self.base = self.peak = self.proc.memory_info().rss
        self.stop = False
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()
        return self

    def _watch(self):
        while not self.stop:
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.005)

    def __exit__(self, *exc):
        self.stop = True
        self.thread.join()
        self.mb = (self.peak - self.base) / 2**20


def timed(run, lr, device) -> tuple[torch.Tensor, dict, float, float]:
    """(image, extras, seconds, peak MB) for one call, timed as the module docstring says."""
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        img, extra = run(lr)
        torch.cuda.synchronize()
        return img, extra, time.perf_counter() - t0, torch.cuda.max_memory_allocated() / 2**20
    with _PeakRSS() as mem:
        t0 = time.perf_counter()
        img, extra = run(lr)
        sec = time.perf_counter() - t0
    return img, extra, sec, mem.mb


def group_pixel_mask(groups: torch.Tensor, layout: PatchLayout, g: int) -> torch.Tensor:
    """(H, W) bool: pixels whose nearest patch (by stride cell) is in group g; groups (nh, nw)."""
    s, off = layout.stride, layout.overlap // 2
    rows = ((torch.arange(layout.height) - off).div(s, rounding_mode="floor")).clamp(0, layout.nh - 1)
    cols = ((torch.arange(layout.width) - off).div(s, rounding_mode="floor")).clamp(0, layout.nw - 1)
    return groups.cpu()[rows[:, None], cols[None, :]] == g


def group_psnr(img, hr, groups, layout) -> dict[str, float]:
    """PSNR (dB, 8-bit) over the pixels of each group; NaN for an empty group."""
    from .data import quantize8

    err = (quantize8(img) - quantize8(hr)).square().mean(1)[0].cpu()          # (H, W)
    out = {}
    for g, name in enumerate(GROUP_NAMES):
        m = group_pixel_mask(groups[0], layout, g)
        mse = err[m].mean().item() if m.any() else float("nan")
        out[f"psnr_{name}"] = 10 * torch.log10(torch.tensor(1.0 / max(mse, 1e-12))).item() \
            if m.any() else float("nan")
    return out


def run_bench(pipe, photos: dict, methods, *, degradation="bicubic", seed=0, progress=True) -> dict:
    """Benchmark `methods` on {name: HR (3, H, W)}; returns {device, pgs_config, methods, rows}."""
    import pandas as pd
    from tqdm.auto import tqdm

    device = pipe.device
    s = pipe.grm.cfg.scale
    runners = {m: make_runner(m, pipe, seed) for m in methods}
    warm = torch.rand(1, 3, 24, 24, generator=torch.Generator().manual_seed(1)).to(device)
    for r in runners.values():
        r(warm)
    rows = []
    items = [(n, m) for n in photos for m in methods]
    for name, m in tqdm(items, desc="bench", disable=not progress):
        hr = crop_to_scale(photos[name], s)[None].to(device)
        lr = degrade(hr, s, degradation, generator=torch.Generator().manual_seed(seed))
        img, extra, sec, mb = timed(runners[m], lr, device)
        row = {"image": name, "method": m, "psnr": psnr(img, hr), "ssim": ssim(img, hr),
               "niqe": niqe(img), "seconds": sec, "patch_nfe": extra.get("patch_nfe", 0),
               "peak_mem_mb": mb, "megapixels": hr.shape[-1] * hr.shape[-2] / 1e6}
        if "out" in extra:
            o = extra["out"]
            from .patches import make_layout

            layout = make_layout(hr.shape, pipe.patch_size, pipe.overlap)
            row.update(group_psnr(img, hr, o.groups, layout))
            row.update({f"patches_{k}": v for k, v in o.counts.items()})
        rows.append(row)
    df = pd.DataFrame(rows)
    means = df.drop(columns="image").groupby("method", sort=False).mean(numeric_only=True)
    means["seconds_per_mp"] = means["seconds"] / means["megapixels"]
    return {"device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
            "degradation": degradation, "seed": seed,
            "pgs_config": {"thresholds": list(pipe.pgs.thresholds), "starts": list(pipe.pgs.starts),
                           "steps": list(pipe.pgs.steps), "quantiles": pipe.pgs.quantiles,
                           "patch_size": pipe.patch_size, "overlap": pipe.overlap},
            "methods": {m: {k: (None if v != v else float(v)) for k, v in r.items()}
                        for m, r in means.iterrows()},
            "rows": [{k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()}
                     for r in rows]}

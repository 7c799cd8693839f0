"""`bench`: every method on the photos of a folder; the means table, JSON, CSV and a Pareto plot."""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import pandas as pd

from ..eval.bench import check_degradation, check_methods, default_methods, run_bench
from ..eval.claims import paired_difference
from ..eval.timing import protocol_lines
from ..image_io import load_image
from ..viz import pareto_plot
from .files import Outputs, photos_in
from .upscale import load_pipeline

TABLE_COLUMNS = ("psnr", "psnr_y", "ssim", "ssim_y", "niqe", "piqe", "seconds", "seconds_per_mp",
                 "params", "patch_nfe", "peak_mem_mb", "psnr_hard")


def bench_files(hr_dir: Path, json_path: Path, *, split=None, methods=None, degradation="bicubic",
                pgs=None, weights=None, device="cpu", seed=0, csv=None, plot=None,
                pipe=None, crop: int | None = None, force: bool = False,
                outputs: Outputs | None = None, preset: str = "lite") -> dict:
    """Run eval.bench.run_bench on the photos of hr_dir (or one split); print the means table and
    write the JSON (+ CSV of every row, + the Pareto PNG). crop: a centre crop of at most crop x crop
    HR pixels of each photo (large photos on a CPU). Returns the bench result.
    The output paths are checked before the work and published together (files.Outputs); a
    caller that writes more (demo) passes its own `outputs`, which must plan these paths."""
    methods = check_methods(methods) if methods else None         # refused before any work
    check_degradation(degradation)
    paths = photos_in(Path(hr_dir), split)
    own = outputs is None                                   # else: the caller's, already entered
    outputs = Outputs([json_path, csv, plot], inputs=paths, force=force) if own else outputs
    pipe = load_pipeline(weights, device, pgs, preset) if pipe is None else pipe
    with outputs if own else contextlib.nullcontext(outputs) as outs:
        return _bench(pipe, paths, methods, degradation, seed, crop, outs, json_path, csv, plot)


def _bench(pipe, paths, methods, degradation, seed, crop, outs: Outputs, json_path, csv,
           plot) -> dict:
    methods = methods or default_methods(pipe)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        photos = {p.stem: _centre(load_image(p), crop) for p in paths}
    res = run_bench(pipe, photos, methods, degradation=degradation, seed=seed)
    res["crop"] = crop
    if {"pgs", "pgs-notexture"} <= set(methods):          # claim C4, paired over photos
        rows = pd.DataFrame(res["rows"])
        res["c4_texture_prompt"] = [paired_difference(rows, "pgs", "pgs-notexture", m)
                                    for m in ("psnr_hard", "psnr", "niqe")]
    print_table(res)
    outs.write_json(json_path, res)
    if csv:
        df = pd.DataFrame(res["rows"])
        outs.write(csv, lambda f: f.write(df.to_csv(index=False).encode()))
    if plot:
        pareto_plot(res, outs.stage(plot))
    return res


def _centre(im, crop: int | None):
    """The centre crop x crop pixels of (3, H, W) (the whole image if it is smaller or crop is None)."""
    if crop is None:
        return im
    t, l = max(0, (im.shape[-2] - crop) // 2), max(0, (im.shape[-1] - crop) // 2)
    return im[:, t:t + crop, l:l + crop]


def print_table(res: dict) -> None:
    """The per-method means of a bench result, one row per method."""
    table = pd.DataFrame(res["methods"]).T
    cols = [c for c in TABLE_COLUMNS if c in table]
    print(f"device: {res['device']}; preset {res.get('preset', 'lite')}; PGS {res['pgs_config']}")
    whole = {"params": lambda v: f"{v:,.0f}", "patch_nfe": lambda v: f"{v:,.0f}"}
    print(table[cols].to_string(float_format=lambda v: f"{v:.3f}", formatters=whole))
    photos = len({r["image"] for r in res["rows"]})
    print(f"{photos} photos, x4 {res['degradation']}, crop {res.get('crop')}; timing protocol:")
    if "protocol" in res:
        print(protocol_lines(res["protocol"]))
    for r in res.get("c4_texture_prompt", []):
        print(f"C4 pgs - pgs-notexture, {r['metric']}: {r['mean']:+.3f} (95% paired bootstrap over "
              f"{r['photos']} photos: {r['low']:+.3f} .. {r['high']:+.3f})")

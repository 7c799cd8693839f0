"""`make figures`: the README's figures, computed from the shipped weights and photos into docs/.

    python -m patchscaler_lite.viz.figures --bench outputs/bench_val.json -o docs

1. pipeline.png  LR -> coarse + confidence -> Qmap groups -> PatchScaler output -> HR, on a val photo
2. qmap.png      patch difficulty (1 - Qmap) against the true patch error, all val photos
3. retrieval.png coarse query patches and their top-K texture-memory entries
4. pareto.png    speed / quality of every method (needs a `bench` JSON: `make bench` writes one)

Everything is recomputed on each run (seeded, CPU by default); files are written atomically.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from ..data import crop_to_scale, degrade, load_photos
from ..eval.difficulty import patch_stats, spearman
from ..grm.model import restore
from ..image_io import ensure_dir, to_uint8, write_atomic
from ..pipeline import PatchScalerPipeline
from ..texture.memory import retrieve
from . import group_overlay, heatmap, nearest_up, pareto_plot
from .memory import plot_retrievals


def _save(fig, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    write_atomic(path, lambda f: f.write(buf.getvalue()))
    return path


def pipeline_figure(pipe: PatchScalerPipeline, hr: torch.Tensor, box, seed: int = 0):
    """Five panels on a crop box (x, y, size) of one photo hr (1, 3, H, W)."""
    lr = degrade(hr, 4)
    out = pipe(lr, generator=torch.Generator().manual_seed(seed))
    layout = out.layout
    x, y, s = box
    crop = lambda im: im[..., y:y + s, x:x + s]                       # noqa: E731
    panels = {"LR input (x4 nearest)": to_uint8(crop(nearest_up(lr, hr.shape[-2:]))),
              "GRM coarse": to_uint8(crop(out.coarse)),
              "confidence C": crop(torch.from_numpy(heatmap(out.confidence)).permute(2, 0, 1)),
              "Qmap groups": crop(torch.from_numpy(group_overlay(out.coarse[0], out.groups[0],
                                                                     layout)).permute(2, 0, 1)),
              "PatchScaler": to_uint8(crop(out.image)), "HR truth": to_uint8(crop(hr))}
    fig, axes = plt.subplots(1, len(panels), figsize=(2.7 * len(panels), 3.1))
    for ax, (name, im) in zip(axes, panels.items(), strict=True):
        ax.imshow(im.permute(1, 2, 0).numpy() if torch.is_tensor(im) else im)
        ax.set_title(name, fontsize=10)
        ax.axis("off")
    counts = ", ".join(f"{k} {v}" for k, v in out.counts.items())
    fig.suptitle(f"green Simple / amber Medium / red Hard ({counts}); patch-NFE {out.total_nfe}",
                 fontsize=10)
    return fig


def qmap_figure(pipe: PatchScalerPipeline, photos: dict):
    """Scatter of per-patch difficulty 1 - Qmap against the true MSE of the coarse patch."""
    fig, ax = plt.subplots(figsize=(5.2, 4))
    diffs, errs = [], []
    for name, hr in photos.items():
        hr = crop_to_scale(hr, 4)[None]
        coarse, conf = restore(pipe.grm, degrade(hr, 4))
        st = patch_stats(hr, coarse, conf, None, pipe.patch_size)
        d, e = st["difficulty"], st["mse"]
        ax.scatter(d, e, s=6, alpha=0.5, label=name)
        diffs.append(d)
        errs.append(e)
    rho = spearman(torch.cat(diffs), torch.cat(errs))
    ax.set_yscale("log")
    ax.set_xlabel("patch difficulty 1 - mean C (GRM's guess)")
    ax.set_ylabel("true MSE of the coarse patch")
    ax.set_title(f"Qmap vs real error, val photos: Spearman {rho:.2f}", fontsize=10)
    ax.legend(fontsize=8, markerscale=2)
    ax.grid(alpha=0.3)
    return fig


def retrieval_figure(pipe: PatchScalerPipeline, hr: torch.Tensor, corners, k: int = 4):
    """Coarse query patches at `corners` [(x, y)] of hr (1, 3, H, W) with their top-k entries."""
    coarse, _ = restore(pipe.grm, degrade(hr, 4))
    P = pipe.patch_size
    q = torch.stack([coarse[0, :, y:y + P, x:x + P] for x, y in corners])
    idx, sims = retrieve(pipe.memory, q, k)
    return plot_retrievals(q, pipe.memory.values_float(idx), sims, pipe.memory.source_of(idx),
                           [f"({x},{y})" for x, y in corners])


@torch.no_grad()
def make_figures(out: Path, bench_json: Path | None = None, bench_real: Path | None = None,
                 pipeline: bool = True) -> list[Path]:
    """The README figures into `out`: pipeline, Qmap and retrieval (unless pipeline=False), and the
    Pareto plots of a bicubic-track bench (pareto.png) and a real-world-track bench (pareto_real.png)."""
    out, written = ensure_dir(out), []
    if pipeline:
        pipe = PatchScalerPipeline.from_pretrained()
        photos = load_photos("val")
        astronaut = crop_to_scale(photos["astronaut"], 4)[None]
        written += [_save(pipeline_figure(pipe, astronaut, (128, 32, 192)), out / "pipeline.png"),
                    _save(qmap_figure(pipe, photos), out / "qmap.png"),
                    _save(retrieval_figure(pipe, crop_to_scale(photos["coffee"], 4)[None],
                                           [(96, 64), (320, 160), (448, 288)]), out / "retrieval.png")]
    for src, name in ((bench_json, "pareto.png"), (bench_real, "pareto_real.png")):
        if src is not None:
            pareto_plot(json.loads(Path(src).read_text()), out / name)
            written.append(out / name)
    return written


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Write the README figures into a folder.")
    ap.add_argument("-o", "--out", default="docs", help="output folder (default docs)")
    ap.add_argument("--bench", default=None, help="bench JSON for pareto.png (make bench)")
    ap.add_argument("--bench-real", default=None,
                    help="bench JSON of the real-world track (--degradation realistic) for pareto_real.png")
    ap.add_argument("--only-pareto", action="store_true", help="only the Pareto plots")
    args = ap.parse_args(argv)
    plt.switch_backend("Agg")                      # a script: no display needed
    for p in make_figures(Path(args.out), args.bench and Path(args.bench),
                          args.bench_real and Path(args.bench_real), pipeline=not args.only_pareto):
        print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

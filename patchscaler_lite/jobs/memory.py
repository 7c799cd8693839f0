"""`memory build` and `memory query`: a texture memory file from a photo folder; a retrieval figure."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import torch

from ..config import MemoryConfig, descriptor_for
from ..data import degrade, load_folder
from ..errors import PatchScalerError
from ..eval.retrieval import key_images, restorer, train_key_network
from ..grm.model import load_grm
from ..image_io import list_images, load_image
from ..photoset import split_names
from ..pipeline import MAX_LR_PIXELS
from ..texture.memory import TextureMemory, build_memory, retrieve
from ..texture.store import load_memory, save_memory
from ..viz.memory import plot_retrievals
from ..weights import default_weights
from .files import Outputs, check_inputs


def build_memory_file(images_dir, out: Path, cfg: MemoryConfig, *, split: str | None = None,
                      weights=None, device="cpu", embed_iters: int | None = None,
                      force: bool = False) -> TextureMemory:
    """Build a memory from the photos of a folder (or one split of the shipped photos) and save it:
    `out`, its JSON twin and (with a MANIFEST.csv beside the photos) <stem>.sources.csv.

    Keys describe each patch's GRM coarse twin (cfg.keys = 'coarse', GRM from `weights`) or the HR
    patch itself; with cfg.descriptor = 'learned' a key network is trained on those key images.
    The outputs are checked before the work and published together (files.Outputs).
    """
    images_dir, out = Path(images_dir), Path(out)
    if not images_dir.is_dir():
        raise PatchScalerError(f"{images_dir}: not a folder")
    manifest = images_dir / "MANIFEST.csv"
    paths = [out, out.with_suffix(".json")] + ([_sources_path(out)] if manifest.is_file() else [])
    with Outputs(paths, inputs=list_images([images_dir]) + [manifest], force=force) as outs:
        mem = _build(images_dir, cfg, split, weights, device, embed_iters)
        save_memory(mem, outs.stage(out, ".json"))
        write_sources(mem, images_dir, out, outs)
    return mem


def _build(images_dir: Path, cfg: MemoryConfig, split, weights, device, embed_iters) -> TextureMemory:
    names = None if split is None else set(split_names(images_dir, split))
    images = {n: im.to(device) for n, im in load_folder(images_dir, names).items()}
    small = [n for n, im in images.items() if min(im.shape[-2:]) < cfg.patch_size]
    if small:
        raise PatchScalerError(f"patch size {cfg.patch_size} is larger than image {small[0]}")
    restore = restorer("grm", weights, device) if cfg.keys == "coarse" else None
    kims = key_images(cfg.keys, images, restore, cfg.degradation)
    embedder, emb_report = train_key_network(cfg.descriptor, kims or images, cfg.patch_size,
                                             cfg.seed, embed_iters, base=cfg.embedder)
    mem = build_memory(images, cfg.size, descriptor_for(cfg.patch_size), n_patches=cfg.n_patches,
                       iters=cfg.kmeans_iters, key_images=kims, embedder=embedder,
                       generator=torch.Generator().manual_seed(cfg.seed))
    if emb_report is not None:
        mem.info["embedder_training"] = emb_report
    grm = str(weights or "shipped grm_lite") if cfg.keys == "coarse" else None
    mem.info.update(seed=cfg.seed, images=str(images_dir), split=split, keys=cfg.keys, grm_weights=grm,
                    degradation=cfg.degradation)
    return mem


def _sources_path(out: Path) -> Path:
    return out.with_suffix(".sources.csv")


def write_sources(mem: TextureMemory, images_dir: Path, out: Path, outs: Outputs) -> Path | None:
    """Beside the memory file: <stem>.sources.csv, the MANIFEST.csv rows (source, licence, author)
    of the photos its values are cut from, with their entry counts. None if there is no manifest."""
    manifest = images_dir / "MANIFEST.csv"
    if not manifest.is_file():
        return None
    rows = pd.read_csv(manifest)
    rows = rows.assign(stem=rows["file"].str.rsplit(".", n=1).str[0])
    counts = {n: int((mem.sources == i).sum()) for i, n in enumerate(mem.source_names)}
    keep = rows[rows["stem"].isin(counts)].assign(entries=lambda d: d["stem"].map(counts))
    cols = ["file", "entries", "package", "version", "path", "licence", "licence_file", "author"]
    path = _sources_path(out)
    outs.write(path, lambda f: f.write(keep[cols].to_csv(index=False).encode()))
    return path


def query_corners(H: int, W: int, P: int, xy, n: int) -> list[tuple[int, int]]:
    """Top-left corners of the query patches: the one at `xy`, or n spread over a P-grid."""
    if xy is not None:
        x, y = xy
        if not (0 <= x <= W - P and 0 <= y <= H - P):
            raise PatchScalerError(f"--xy {x},{y}: a {P}x{P} patch must fit inside the coarse "
                                   f"image ({W}x{H}); use 0 <= X <= {W - P}, 0 <= Y <= {H - P}")
        return [(x, y)]
    if H < P or W < P:
        raise PatchScalerError(f"coarse image {W}x{H} is smaller than one {P}x{P} patch")
    grid = [(x, y) for y in range(0, H - P + 1, P) for x in range(0, W - P + 1, P)]
    step = max(1, len(grid) // max(n, 1))
    return grid[step // 2::step][:n]


@torch.no_grad()
def query_figure(image: Path, out: Path, *, memory=None, weights=None, k: int = 4, xy=None,
                 n: int = 4, hr: bool = False, device="cpu", force: bool = False) -> list[tuple]:
    """Retrieve the top-k entries for coarse patches of `image` (LR, or HR degraded x4 first when
    hr=True); save the figure to `out`. Returns [((x, y), [(entry, source, sim), ...])]."""
    check_inputs([image], max_pixels=MAX_LR_PIXELS * (16 if hr else 1))
    mem = load_memory(memory or default_weights("memory", "lite"))
    P = mem.patch_size
    if not 1 <= k <= mem.size:
        raise PatchScalerError(f"--k {k} must be between 1 and the memory size M={mem.size}")
    with Outputs([out], inputs=[image], force=force) as outs:
        img = load_image(image).to(device)[None]                            # (1, 3, H, W)
        coarse, _ = load_grm(weights).to(device)(degrade(img, 4) if hr else img)   # (1, 3, 4h, 4w)
        corners = query_corners(*coarse.shape[-2:], P, xy, n)
        queries = torch.stack([coarse[0, :, y:y + P, x:x + P] for x, y in corners])   # (n, 3, P, P)
        idx, sims = retrieve(mem, queries, k)                               # (n, K)
        fig = plot_retrievals(queries.cpu(), mem.values_float(idx.cpu()), sims.cpu(),
                              mem.source_of(idx), [f"({x},{y})" for x, y in corners])
        outs.write(out, lambda f: fig.savefig(f, format="png", dpi=100))
    return [(c, [(a, mem.source_names[int(mem.sources[a])], b) for a, b in zip(i, s, strict=True)])
            for c, i, s in zip(corners, idx.tolist(), sims.tolist(), strict=True)]


def memory_config(size: int, patch_size: int, n_patches: int, descriptor: str, keys: str,
                  seed: int, degradation: str = "bicubic") -> MemoryConfig:
    """The lite MemoryConfig with the command-line overrides (validated: one-line errors)."""
    return dataclasses.replace(MemoryConfig(), size=size, patch_size=patch_size, n_patches=n_patches,
                               descriptor=descriptor, keys=keys, seed=seed, degradation=degradation)

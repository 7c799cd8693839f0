"""Claim check for stage 3: does the texture memory return the right texture for a coarse query?

`evaluate_retrieval` builds a memory from the left half of each texture photo plus the other train
photos (distractors) and queries it with coarse patches of the held-out right halves; the light
`retrieval_sweep` reuses one set of descriptors over many M and K (notebook 02). Also the small
analyses behind the notebook's figures (PCA map, spread subset, confident failures).
"""

from __future__ import annotations

import dataclasses
import time

import torch
from torch import Tensor

from ..config import EmbedderConfig, descriptor_for
from ..data import bicubic_up, crop_to_scale, load_photos
from ..errors import PatchScalerError
from ..grm.model import load_grm
from ..patches import patchify
from ..texture.key_network import train_embedder
from ..texture.kmeans import kmeans, representatives
from ..texture.memory import build_memory, coarse_twins, retrieve, search
from .difficulty import gradient_energy

TEXTURES = ("brick", "grass", "gravel")


def restorer(kind: str, weights, device):
    """LR (1, 3, h, w) -> coarse (1, 3, 4h, 4w): the GRM (default) or bicubic upsampling."""
    if kind == "bicubic":
        return lambda lr: bicubic_up(lr, 4)
    if kind != "grm":
        raise PatchScalerError(f"coarse must be grm or bicubic, got {kind!r}")
    grm = load_grm(weights).to(device)
    return lambda lr: grm(lr)[0]


def key_images(keys: str, images: dict, restore, degradation: str = "bicubic"):
    """What the memory keys describe: None for the HR patches themselves, else the coarse twins."""
    if keys == "hr":
        return None
    if keys != "coarse":
        raise PatchScalerError(f"keys must be coarse or hr, got {keys!r}")
    return coarse_twins(images, restore, degradation=degradation)


def train_key_network(kind: str, images: dict, patch_size: int, seed: int, iters: int | None = None,
                      base: EmbedderConfig | None = None):
    """(TextureEmbedder, report) trained on `images` for kind 'learned'; (None, None) for 'gabor'.
    The recipe is `base` (default EmbedderConfig()) with this patch size and seed, and `iters`
    steps where given."""
    if kind == "gabor":
        return None, None
    if kind != "learned":
        raise PatchScalerError(f"descriptor must be learned or gabor, got {kind!r}")
    cfg = dataclasses.replace(EmbedderConfig() if base is None else base, patch_size=patch_size,
                              seed=seed)
    if iters is not None:
        cfg = dataclasses.replace(cfg, iters=iters)
    return train_embedder(images, cfg)


def evaluate_retrieval(*, weights=None, coarse: str = "grm", keys: str = "coarse",
                       size: int = 1024, k: int = 4, descriptor: str = "learned",
                       patch_size: int = 32, n_patches: int = 50_000, seed: int = 0,
                       ablate: bool = False, device=None, photos: dict | None = None,
                       held_out=TEXTURES, embed_iters: int | None = None) -> dict:
    """Memory from the left half of each held-out photo + the other photos whole (distractors);
    queries: coarse patches (x4 bicubic LR -> GRM, or bicubic upsampling) of the right halves.
    photos: {name: (3, H, W)}, default the shipped train photos with the three textures held out;
    held_out=None halves every photo (a corpus: many photos, not three textures).
    keys='coarse' describes the memory halves' coarse twins made the same way as the queries.
    descriptor='learned' trains the texture embedding on the memory photos' key images only (the
    query halves are never seen), for `embed_iters` steps (default EmbedderConfig.iters).
    Returns top-1 accuracy (entry from the same photo), per texture, among textures only, top-K."""
    t0 = time.perf_counter()
    photos = load_photos("train") if photos is None else photos
    mem_imgs, halves = split_textures(photos, device, list(photos) if held_out is None else held_out)
    restore = restorer(coarse, weights, device)
    up = coarse_twins(halves, restore)                                     # {name: (3, H, W/2)}
    queries = {n: patchify(u[None], patch_size)[0] for n, u in up.items()}  # (n_q, 3, P, P) each
    kims = key_images(keys, mem_imgs, restore)
    cfg = descriptor_for(patch_size)
    embedder, emb_report = train_key_network(descriptor, kims or mem_imgs, patch_size, seed,
                                             embed_iters)
    rep = _score(mem_imgs, kims, queries, cfg, size, k, n_patches, seed, embedder)
    rep["held_out"] = sorted(halves)
    rep.update(K=k, coarse=coarse, keys=keys, weights=str(weights or "shipped grm_lite"),
               descriptor_kind=descriptor, embedder_training=emb_report, patch_size=patch_size,
               n_patches=n_patches, seed=seed,
               descriptor=cfg.to_dict() if embedder is None else embedder.cfg.to_dict(),
               seconds=round(time.perf_counter() - t0, 2))
    if ablate:                                      # Gabor descriptor variants as baselines
        no_moments = dict(contrast_weight=0.0, intensity_weight=0.0, color_weight=0.0)
        variants = [("texture_only", no_moments), ("moments_only", dict(texture_weight=0.0))]
        if embedder is not None:
            variants.insert(0, ("gabor", {}))
        for label, kw in variants:
            r = _score(mem_imgs, kims, queries, dataclasses.replace(cfg, **kw), size, k,
                       n_patches, seed)
            keep = ("top1_accuracy", "top1_accuracy_textures_only", "per_texture")
            rep[f"ablation_{label}"] = {key: r[key] for key in keep}
    return rep


def split_textures(photos: dict, device, held_out=TEXTURES) -> tuple[dict, dict]:
    """(memory images, held-out halves): the held-out photos' left halves go to the memory, their
    right halves are held out as queries; every other photo goes whole into the memory."""
    mem_imgs, halves = {}, {}
    for name, im in photos.items():
        im = crop_to_scale(im, 4)                                          # twins align exactly
        if name in held_out:
            w = im.shape[-1] // 2
            mem_imgs[name], halves[name] = im[..., :w].to(device), im[..., w:].to(device)
        else:
            mem_imgs[name] = im.to(device)
    return mem_imgs, halves


def _score(mem_imgs, key_images, queries, cfg, size, k, n_patches, seed, embedder=None) -> dict:
    """Build one memory and score the queries against it (see evaluate_retrieval). The
    `*_textures_only` numbers search only the entries cut from held-out photos; `confused_with`
    names, per query photo, the source most of its wrong top-1 entries come from, and their share;
    `top1_by_texture_quartile`: top-1 among the queries of each quartile of the coarse patch's mean
    gradient energy (pooled over all queries; the flattest quarter first)."""
    mem = build_memory(mem_imgs, size, cfg, n_patches=n_patches, key_images=key_images,
                       embedder=embedder, generator=torch.Generator().manual_seed(seed))
    names = mem.source_names
    tex_rows = torch.tensor([i for i, s in enumerate(mem.sources.tolist()) if names[s] in queries])
    hits = hits3 = hitsk = total = 0
    per, confused = {}, {}
    all_hits, energy = [], []
    t_query = time.perf_counter()
    for name, q in queries.items():
        idx, _ = retrieve(mem, q, k)                                       # (n_q, K)
        src = mem.sources[idx.cpu()]                                       # (n_q, K)
        want = names.index(name)
        h = (src[:, 0] == want)
        per[name] = round(h.float().mean().item(), 4)
        all_hits.append(h)
        energy.append(texture_energy(q))
        wrong = src[~h, 0]
        if len(wrong):                              # the photo most of its misses come from
            other = int(wrong.mode().values)
            confused[name] = {"with": names[other],
                              "share": round((wrong == other).float().mean().item(), 4)}
        hits += int(h.sum())
        hitsk += int((src == want).any(1).sum())
        total += len(q)
        i3, _ = search(mem.embed(q), mem.keys[tex_rows], 1)                # textures only
        hits3 += int((mem.sources[tex_rows[i3[:, 0].cpu()]] == want).sum())
    by_texture, counts = hits_by_texture(torch.cat(energy), torch.cat(all_hits))
    return {"top1_accuracy": round(hits / total, 4), "per_texture": per, "confused_with": confused,
            "top1_by_texture_quartile": [None if v is None else round(v, 4) for v in by_texture],
            "queries_by_texture_quartile": counts,
            "top1_accuracy_textures_only": round(hits3 / total, 4),
            "topk_accuracy": round(hitsk / total, 4), "queries": total, "M": mem.size,
            "build_seconds": mem.info["build_seconds"],
            "query_seconds": round(time.perf_counter() - t_query, 3),
            "memory_sources": {n: int((mem.sources == i).sum()) for i, n in enumerate(names)}}


def texture_energy(patches: Tensor) -> Tensor:
    """How textured each patch is: the mean gradient energy of its luma. (n, 3, P, P) -> (n,) CPU."""
    return gradient_energy(patches.float()).mean((1, 2, 3)).cpu()


def hits_by_texture(energy: Tensor, hits: Tensor, bins: int = 4) -> tuple[list, list[int]]:
    """Hit rate per quantile bin of the queries' texture_energy (n,) (bin 0 the flattest); hits
    (n,) bool. Returns (rates, counts), a rate None for an empty bin (ties at an edge go lower)."""
    energy = energy.cpu().double()
    edges = torch.quantile(energy, torch.arange(1, bins, dtype=torch.float64) / bins)
    b = torch.bucketize(energy, edges)
    counts = torch.bincount(b, minlength=bins)
    rate = torch.bincount(b, weights=hits.cpu().float(), minlength=bins) / counts.clamp_min(1)
    return ([float(r) if n else None for r, n in zip(rate.tolist(), counts.tolist())],
            counts.tolist())


def _memory_from_clusters(x: Tensor, x_sources: Tensor, size: int, iters: int,
                          generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
    """k-means of x (N, F) into `size` entries -> (unit keys (M, F), source of each entry (M,))."""
    res = kmeans(x, size, iters=iters, generator=generator)
    rep = representatives(x, res.centroids, res.assign)
    return torch.nn.functional.normalize(res.centroids, dim=1), x_sources[rep.to(x_sources.device)]


def retrieval_sweep(x: Tensor, x_sources: Tensor, queries: Tensor, query_sources: Tensor,
                    sizes, ks=(1, 4, 16), iters: int = 30, seed: int = 0) -> list[dict]:
    """A light version of `evaluate_retrieval` that reuses one set of descriptors.

    x (N, F): unit descriptors of the sampled memory patches, x_sources (N,) their photo ids;
    queries (n, F) unit descriptors of held-out patches, query_sources (n,). For each memory size
    M (k-means as in build_memory, seeded by `seed`) and each K: the fraction of queries whose
    top-1 entry comes from their own photo ("top1") and whose top-K holds one ("topk").
    Returns one dict per (M, K).
    """
    rows = []
    for m in sizes:
        keys, src = _memory_from_clusters(x, x_sources, int(m), iters,
                                          torch.Generator().manual_seed(seed))
        idx, _ = search(queries, keys, min(max(ks), len(keys)))            # (n, K_max)
        hit = src.to(idx.device)[idx] == query_sources.to(idx.device)[:, None]   # (n, K_max)
        for k in ks:
            if k <= len(keys):
                rows.append({"M": int(m), "K": int(k), "top1": float(hit[:, 0].float().mean()),
                             "topk": float(hit[:, :k].any(1).float().mean())})
    return rows


def pca_2d(x: Tensor) -> Tensor:
    """First two principal-component scores of the rows of x (M, F) -> (M, 2), float32.

    Signs are fixed so the largest-magnitude loading of each component is positive.
    """
    xc = x.double() - x.double().mean(0)
    _, _, vt = torch.linalg.svd(xc, full_matrices=False)                  # (F', F)
    v = vt[:2]
    v = v * torch.sign(v.gather(1, v.abs().argmax(1, keepdim=True)))       # sign convention
    return (xc @ v.T).float()


def spread_subset(points: Tensor, n: int) -> Tensor:
    """Farthest-point sampling: n well-spread row indices of points (M, 2), starting from the
    point nearest the centroid. Deterministic. Returns (min(n, M),) int64."""
    n = min(n, len(points))
    idx = [int((points - points.mean(0)).norm(dim=1).argmin())]
    d = (points - points[idx[0]]).norm(dim=1)
    for _ in range(n - 1):
        idx.append(int(d.argmax()))
        d = torch.minimum(d, (points - points[idx[-1]]).norm(dim=1))
    return torch.tensor(idx, dtype=torch.long)


def confident_failures(query_sources: Tensor, top_sources: Tensor, top_sims: Tensor,
                       n: int) -> Tensor:
    """Queries whose top-1 entry is from another photo, most confident (highest sim) first.

    query_sources (q,), top_sources (q,), top_sims (q,) -> up to n int64 query indices.
    """
    wrong = (top_sources != query_sources).nonzero().squeeze(1)
    order = torch.argsort(top_sims[wrong], descending=True, stable=True)
    return wrong[order[:n]]

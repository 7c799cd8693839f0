"""Seeded k-means (k-means++ init, Lloyd iterations) in torch, chunked so memory stays bounded.

Used to reduce many patch descriptors to the M entries of the texture memory. Deterministic for
a given generator; runs on the device of the data (random draws happen on CPU, then move).
Lloyd's two steps each lower the inertia sum_i |x_i - c_a(i)|^2; to keep that true in floating
point, a point only changes cluster when its exactly recomputed distance strictly improves,
and an empty cluster keeps its previous centroid.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class KMeansResult:
    """centroids (M, F); assign (N,) int64 cluster of each point; inertia: one per iteration."""

    centroids: Tensor
    assign: Tensor
    inertia: list[float]


def nearest(x: Tensor, c: Tensor, chunk: int = 4096) -> Tensor:
    """Index of the nearest centroid (squared Euclidean) of each row: x (N, F), c (M, F) -> (N,)."""
    c2 = c.pow(2).sum(1)                                                   # (M,)
    out = [(c2 - 2 * x[i:i + chunk] @ c.T).argmin(1) for i in range(0, len(x), chunk)]
    return torch.cat(out)


def kmeans_pp_init(x: Tensor, m: int, *, generator: torch.Generator | None = None) -> Tensor:
    """k-means++ seeding: m rows of x, each drawn with probability proportional to the squared
    distance to the nearest centre chosen so far. x (N, F) -> (M, F)."""
    N = x.shape[0]
    u = torch.rand(m, generator=generator, dtype=torch.float64)            # one draw per centre
    idx = torch.empty(m, dtype=torch.long)
    idx[0] = int(u[0] * N)
    d2 = (x - x[idx[0]]).pow(2).sum(1)                                      # (N,)
    for j in range(1, m):
        cum = d2.double().cumsum(0)
        total = cum[-1].item()
        if total <= 0:                                                      # all points covered
            i = int(u[j] * N)
        else:
            i = min(int(torch.searchsorted(cum, u[j].item() * total).item()), N - 1)
        idx[j] = i
        d2 = torch.minimum(d2, (x - x[i]).pow(2).sum(1))
    return x[idx.to(x.device)].clone()


def kmeans(x: Tensor, m: int, *, iters: int = 30, generator: torch.Generator | None = None,
           callback=None) -> KMeansResult:
    """Cluster x (N, F) into m groups. Stops early when no assignment changes.

    callback(i, centroids, assign, inertia) is called after each assignment step.
    """
    N = x.shape[0]
    if not 1 <= m <= N:
        raise ValueError(f"k-means needs 1 <= m <= N, got m={m}, N={N}")
    c = kmeans_pp_init(x, m, generator=generator)                          # (M, F)
    assign = nearest(x, c)
    d_cur = (x - c[assign]).pow(2).sum(1)                                   # (N,) exact
    inertia = [d_cur.sum().item()]
    for i in range(iters):
        counts = torch.bincount(assign, minlength=m)                       # (M,)
        sums = torch.zeros_like(c).index_add_(0, assign, x)                # (M, F)
        c = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None], c)
        d_cur = (x - c[assign]).pow(2).sum(1)                               # after the update
        cand = nearest(x, c)
        d_new = (x - c[cand]).pow(2).sum(1)
        move = d_new < d_cur                                                # strict improvement
        assign = torch.where(move, cand, assign)
        d_cur = torch.where(move, d_new, d_cur)
        inertia.append(d_cur.sum().item())
        if callback is not None:
            callback(i, c, assign, inertia[-1])
        if not move.any():
            break
    return KMeansResult(c, assign, inertia)


def representatives(x: Tensor, c: Tensor, assign: Tensor) -> Tensor:
    """For each centroid, the row of x nearest to it among its cluster's members; an empty
    cluster takes the nearest row overall. Returns (M,) int64 indices into x (on CPU)."""
    m = c.shape[0]
    d = (x - c[assign]).pow(2).sum(1)                                       # (N,)
    order = torch.argsort(d, stable=True)                                   # closest first
    first = torch.full((m,), len(x), dtype=torch.long, device=x.device)
    rank = torch.arange(len(x), device=x.device)
    first.scatter_reduce_(0, assign[order], rank, reduce="amin")           # best rank per cluster
    empty = first == len(x)
    rep = order[first.clamp_max(len(x) - 1)]
    if empty.any():
        rep[empty] = nearest(c[empty], x)
    return rep.cpu()

"""Benchmark the texture memory on CPU: build M entries from N patches, retrieve K for Q queries.

    python scripts/bench_memory.py                       # M=4096, N=50000, Q=1000, K=4
    python scripts/bench_memory.py --m 1024 --n 20000 --threads 1

Prints a small pandas table of seconds per stage. Keys are built from the HR train photos (no GRM
needed); queries are random train patches. Targets: build < 60 s, retrieval < 50 ms.
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
import torch

from patchscaler_lite.config import DescriptorConfig
from patchscaler_lite.data import load_photos
from patchscaler_lite.texture.gabor import describe_raw
from patchscaler_lite.texture.kmeans import kmeans
from patchscaler_lite.texture.memory import build_memory, retrieve, search
from patchscaler_lite.texture.patch_sampling import extract_patches, sample_positions


def _time(fn, repeat: int = 1):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--m", type=int, default=4096, help="memory entries M")
    ap.add_argument("--n", type=int, default=50_000, help="sampled patches N")
    ap.add_argument("--q", type=int, default=1000, help="queries")
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = DescriptorConfig()
    photos = load_photos("train")
    ims = list(photos.values())
    g = torch.Generator().manual_seed(0)
    rows = []

    pos = sample_positions([im.shape[-2:] for im in ims], args.n, cfg.patch_size, generator=g)
    t_cut, patches = _time(lambda: extract_patches(ims, pos, cfg.patch_size))
    rows.append(("sample + cut patches", args.n, t_cut))
    t_desc, raw = _time(lambda: torch.cat([describe_raw(patches[i:i + 8192], cfg)
                                           for i in range(0, args.n, 8192)]))
    rows.append(("describe", args.n, t_desc))
    x = torch.nn.functional.normalize(raw - raw.mean(0), dim=1)
    t_km, res = _time(lambda: kmeans(x, args.m, generator=torch.Generator().manual_seed(0)))
    rows.append((f"k-means ({len(res.inertia) - 1} iters)", args.m, t_km))
    t_build, mem = _time(lambda: build_memory(photos, args.m, cfg, n_patches=args.n,
                                              generator=torch.Generator().manual_seed(0)))
    rows.append(("build_memory total", args.m, t_build))

    qpos = sample_positions([im.shape[-2:] for im in ims], args.q, cfg.patch_size,
                            generator=torch.Generator().manual_seed(1))
    queries = extract_patches(ims, qpos, cfg.patch_size)
    q_emb = mem.embed(queries)
    t_embed, _ = _time(lambda: mem.embed(queries), repeat=5)
    rows.append(("embed queries", args.q, t_embed))
    t_search, _ = _time(lambda: search(q_emb, mem.keys, args.k), repeat=5)
    rows.append((f"search top-{args.k} (matmul)", args.q, t_search))
    t_ret, _ = _time(lambda: retrieve(mem, queries, args.k), repeat=5)
    rows.append((f"retrieve top-{args.k} (embed + search)", args.q, t_ret))

    df = pd.DataFrame(rows, columns=["stage", "count", "seconds"])
    print(f"M={args.m} N={args.n} queries={args.q} K={args.k} threads={torch.get_num_threads()} "
          f"device=cpu torch={torch.__version__}")
    print(df.to_string(index=False, float_format=lambda v: f"{v:.4f}"))


if __name__ == "__main__":
    main()

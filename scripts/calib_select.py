"""How the shipped confidence calibration was chosen (issue 10): compare GRM weight files that
share a body and differ in their confidence head, on selection photos only (never corpus test).

For each file: the pooled Spearman of Qmap difficulty (1 - patch mean C, 32 px patches) against the
true patch MSE of the coarse image on corpus val, `data/` val and `data/` train (no corpus weight was
trained on them), the same for the free gradient-energy heuristic, and how far C is from the
bracket's per-pixel optimum C* = min(1, eta / e^2) on `data/` val (mean |C - C*|). x4 bicubic LR,
seeded per photo as in `qmap-report`. The body runs once per photo (untiled; the heads differ only
in `to_conf`), so comparing many heads takes seconds.

    python scripts/calib_select.py runs/grm_a/grm_lite.safetensors runs/grm_b/grm_lite.safetensors

Candidates come from the joint-stage checkpoint of `make train-grm`: copy runs/grm_lite/checkpoint.pt
into a new folder DIR, then `patchscaler-lite train grm --data data/corpus -o DIR --calib-iters N
--calib-rank W` skips the finished joint stage and runs only the calibration.
"""
import sys

import pandas as pd
import torch
import torch.nn.functional as F

from patchscaler_lite.data import bicubic_up, crop_to_scale, degrade, load_folder, load_photos
from patchscaler_lite.eval.difficulty import gradient_energy, spearman
from patchscaler_lite.grm.model import confidence_optimum, load_grm
from patchscaler_lite.photoset import split_names

P = 32
models = [load_grm(p) for p in sys.argv[1:]]
body = models[0]
for p, m in zip(sys.argv[1:], models, strict=True):
    same = all(torch.equal(a, b) for (k, a), (_, b) in zip(m.state_dict().items(),
               body.state_dict().items(), strict=True) if not k.startswith("to_conf"))
    if not same:
        sys.exit(f"{p}: its body differs from {sys.argv[1]}'s; this script compares heads only")

sets = {"corpus val": load_folder("data/corpus", set(split_names("data/corpus", "val"))),
        "data/ val": load_photos("val"), "data/ train": load_photos("train")}
diff = {p: {s: [] for s in sets} for p in sys.argv[1:]}
dev = {p: [] for p in sys.argv[1:]}
mse, heur = {s: [] for s in sets}, {s: [] for s in sets}
with torch.no_grad():
    for s, photos in sets.items():
        for i, hr in enumerate(photos.values()):
            hr = crop_to_scale(hr, 4)[None]
            lr = degrade(hr, 4, generator=torch.Generator().manual_seed(i))
            f = body.head(lr - 0.5)
            f = f + body.body_out(body.body(f))
            coarse = (bicubic_up(lr, 4) + F.pixel_shuffle(body.to_rgb(f), 4)).clamp(0, 1)
            e2 = (coarse - hr).square().mean(1, keepdim=True)
            mse[s].append(F.avg_pool2d(e2, P).flatten())
            heur[s].append(F.avg_pool2d(gradient_energy(bicubic_up(lr, 4)), P).flatten())
            for p, m in zip(sys.argv[1:], models, strict=True):
                c = torch.sigmoid(F.pixel_shuffle(m.to_conf(f), 4))
                diff[p][s].append(1 - F.avg_pool2d(c, P).flatten())
                if s == "data/ val":
                    dev[p].append((c - confidence_optimum(e2, m.cfg.eta)).abs().mean().item())
rows = {p: {s: spearman(torch.cat(diff[p][s]), torch.cat(mse[s])) for s in sets}
        | {"mean |C - C*|, data/ val": sum(dev[p]) / len(dev[p])} for p in sys.argv[1:]}
rows["gradient-energy heuristic"] = {s: spearman(torch.cat(heur[s]), torch.cat(mse[s])) for s in sets}
print(pd.DataFrame(rows).round(3).to_string())

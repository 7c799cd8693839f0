"""Experiment, not adopted yet (issue 10, the Qmap on unseen photos): the confidence calibration
with a patch-ranking term added to the paper's bracket. For pairs of 32 px patches in a batch
(across crops and photos) whose true MSEs differ by more than e^0.5, a logistic loss on their
(1 - mean C) difference against the sign of the MSE difference. Starts from the shipped lite head.
Measures val only (corpus val, data/ val); never the test split.

    ITERS=1000 python scripts/calib_rank_experiment.py 0.0 1.0     # lam values; ~2 min each

Session 5 (2-core CPU): 1000 steps, lam 0 (control) -> corpus val 0.913, data/ val 0.893;
lam 1.0 -> 0.935 and 0.910 (heuristic: 0.911 and 0.774).
"""
import json
import os
import sys

import torch

import patchscaler_lite as psl
from patchscaler_lite.data import crop_to_scale, degrade, load_folder, load_photos
from patchscaler_lite.eval.difficulty import spearman
from patchscaler_lite.grm.calibration import calibrate_confidence
from patchscaler_lite.grm.model import restore
from patchscaler_lite.patches import make_layout, patch_means
from patchscaler_lite.photoset import load_photo_set, split_names


def stats(model, photos) -> float:
    """Pooled Spearman(1 - patch-mean C, true patch MSE) over 32 px patches, x4 bicubic LR."""
    d1, mse = [], []
    for hr in photos.values():
        hr = crop_to_scale(hr, 4)[None]
        co, cf = restore(model, degrade(hr, 4))
        L = make_layout(co.shape, 32, 0)
        mse.append(patch_means((co - hr).square().mean(1, keepdim=True), L).flatten())
        d1.append(1 - patch_means(cf, L).flatten())
    return round(spearman(torch.cat(d1), torch.cat(mse)), 4)


torch.set_grad_enabled(True)
train = load_photo_set("data/corpus", "train")
cval = load_folder("data/corpus", set(split_names("data/corpus", "val")))
dval = load_photos("val")
out = {}
for lam in [float(a) for a in sys.argv[1:]] or (0.0, 0.01, 0.1):
    m = psl.load_grm()
    calibrate_confidence(m, train, dict(list(dval.items())[:1]), iters=int(os.environ.get("ITERS", 300)),
                         progress=False, rank_weight=lam)
    with torch.no_grad():
        out[lam] = {"corpus_val": stats(m, cval), "data_val": stats(m, dval)}
    print(lam, out[lam], flush=True)
json.dump(out, open(f"outputs/calib_rank_{os.environ.get('ITERS', 300)}.json", "w"), indent=1)

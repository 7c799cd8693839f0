"""The paired bootstrap used for claims C4 (texture prompt) and C5: sign and interval."""

import numpy as np
import pandas as pd

from patchscaler_lite.eval.claims import paired_difference


def _rows(a, b, metric="psnr_hard"):
    return pd.DataFrame([{"image": f"p{i}", "method": m, metric: v}
                         for i, (x, y) in enumerate(zip(a, b)) for m, v in (("a", x), ("b", y))])


def test_a_clear_shift_is_found_with_an_interval_that_excludes_zero():
    rng = np.random.default_rng(0)
    b = rng.normal(25, 2, 12)                                   # photos differ a lot ...
    a = b + 0.5 + rng.normal(0, 0.05, 12)                       # ... the pairing removes that
    r = paired_difference(_rows(a, b), "a", "b", "psnr_hard")
    assert r["photos"] == 12 and abs(r["mean"] - np.mean(a - b)) < 1e-12
    assert 0.4 < r["low"] < r["mean"] < r["high"] < 0.6


def test_no_difference_gives_an_interval_around_zero_and_missing_values_are_dropped():
    rng = np.random.default_rng(1)
    b = rng.normal(25, 2, 10)
    a = b + rng.normal(0, 0.3, 10)
    a[3] = np.nan
    r = paired_difference(_rows(a, b), "a", "b", "psnr_hard")
    assert r["photos"] == 9
    assert r["low"] < 0 < r["high"]


def test_compare_plans_runs_each_plan_on_the_same_input(val_photos):
    import dataclasses

    import patchscaler_lite as psl
    from patchscaler_lite.eval.claims import compare_plans

    pipe = psl.PatchScalerPipeline.from_pretrained()
    base = psl.PGSConfig()
    hr = psl.crop_to_scale(val_photos["coffee"], 4)[:, :96, :96]
    rows = compare_plans(pipe, {"c": hr}, {"u": dataclasses.replace(base, uniform=(350, 6)),
                                           "pgs": base})
    assert list(rows.method) == ["u", "pgs"]
    n = pipe(psl.degrade(hr[None], 4)).layout.patches_per_image
    assert rows.patch_nfe.tolist()[0] == 6 * n
    assert rows.patch_nfe.tolist()[1] < 6 * n
    assert rows.psnr.between(20, 50).all()

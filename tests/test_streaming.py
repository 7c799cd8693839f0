"""The banded pipeline (streaming.py) against the whole-image pipeline: same result, bounded work."""

import numpy as np
import pytest
import torch
from PIL import Image

import patchscaler_lite as psl
from patchscaler_lite.config import GroupingConfig
from patchscaler_lite.errors import PatchScalerError
from patchscaler_lite.image_io import save_image, to_uint8
from patchscaler_lite.jobs import qmap as qmap_job
from patchscaler_lite.jobs import upscale as upscale_job
from patchscaler_lite.streaming import band_grm, bands, stream_upscale, upscale_image
from patchscaler_lite.viz import group_overlay, heatmap


@pytest.fixture(scope="module")
def pipe():
    return psl.PatchScalerPipeline.from_pretrained()


@pytest.fixture(scope="module")
def lr(val_photos):
    hr = psl.crop_to_scale(val_photos["coffee"], 4)[None, :, 40:220, 100:380]     # (1, 3, 180, 280)
    return psl.degrade(hr, 4)                                                      # odd 45 x 70


@pytest.mark.parametrize("budget,texture", [(30, True), (5, True), (10_000, False)])
def test_banded_run_equals_the_whole_image_run(pipe, lr, budget, texture):
    g = lambda: torch.Generator().manual_seed(7)  # noqa: E731
    whole = pipe(lr, generator=g(), texture=texture)
    image, stats = upscale_image(pipe, lr, generator=g(), texture=texture, patch_budget=budget)
    assert image.shape == whole.image.shape
    assert (image - whole.image).abs().max() < 1e-5
    assert torch.equal(stats.groups, whole.groups[0])
    assert (stats.qmap - whole.qmap[0]).abs().max() < 1e-6
    assert stats.counts == list(whole.counts.values())
    assert stats.total_nfe == whole.total_nfe


def test_bands_cover_every_patch_row_once_within_the_budget(pipe, lr):
    layout = psl.patches.make_layout((1, 3, 180, 280), 32, 8)               # nh 7, nw 11
    for budget in (1, 11, 30, 10_000):
        b = bands(layout, budget)
        rows = [i for i0, i1 in b for i in range(i0, i1)]
        assert rows == list(range(layout.nh))
        assert all((i1 - i0) * layout.nw <= max(budget, layout.nw) for i0, i1 in b)


def test_rows_arrive_in_order_and_once(pipe, lr):
    seen = []
    stream_upscale(pipe, lr, lambda row0, rows: seen.append((row0, rows.shape[-2])),
                   generator=torch.Generator().manual_seed(0), patch_budget=12)
    starts = [r for r, _ in seen]
    assert starts == sorted(starts) and len(seen) > 2
    assert all(a + n == b for (a, n), b in zip(seen, starts[1:]))
    assert seen[-1][0] + seen[-1][1] == 180


def test_a_batch_is_refused(pipe, lr):
    with pytest.raises(PatchScalerError, match="one image"):
        stream_upscale(pipe, torch.cat([lr, lr]), lambda *a: None)


def test_qmap_drawn_in_bands_equals_the_whole_image(pipe, lr, tmp_path, monkeypatch):
    """`qmap`'s three images, drawn band by band, are the whole-image images pixel for pixel."""
    monkeypatch.setattr(qmap_job, "PATCH_BUDGET", 12)                       # several bands
    monkeypatch.setattr(qmap_job, "OVERLAY_ROWS", 40)
    save_image(lr, tmp_path / "lr.png")
    rows = qmap_job.run_qmap([tmp_path / "lr.png"], tmp_path / "out")
    lr8 = psl.load_image(tmp_path / "lr.png")[None]
    coarse, conf = psl.restore(pipe.grm, lr8)
    grp = psl.group_patches(conf, GroupingConfig())
    want = {"coarse": to_uint8(coarse), "confidence": heatmap(conf),
            "groups": group_overlay(coarse[0], grp.groups[0], grp.layout)}
    for kind, arr in want.items():
        got = np.asarray(Image.open(tmp_path / "out" / f"lr_{kind}.png"))
        assert np.abs(got.astype(int) - arr.astype(int)).max() <= 1, kind     # float rounding
    assert rows[0]["hard"] == grp.counts["hard"]


def test_the_upscale_command_writes_the_whole_image_result(pipe, lr, tmp_path, monkeypatch):
    """`upscale` (banded, pasted into a canvas) == the whole-image pipeline, to the last level."""
    monkeypatch.setattr("patchscaler_lite.streaming.PATCH_BUDGET", 12)
    bands_seen = []
    monkeypatch.setattr("patchscaler_lite.streaming.band_grm",
                        lambda *a, _f=band_grm: bands_seen.append(a[3:]) or _f(*a))
    save_image(lr, tmp_path / "lr.png")
    upscale_job.upscale_files([tmp_path / "lr.png"], tmp_path / "out", seed=3)
    lr8 = psl.load_image(tmp_path / "lr.png")[None]
    want = to_uint8(pipe(lr8, generator=torch.Generator().manual_seed(3)).image)
    got = np.asarray(Image.open(tmp_path / "out" / "lr_x4.png"))
    assert got.shape == want.shape and np.abs(got.astype(int) - want.astype(int)).max() <= 1
    assert len(set(bands_seen)) > 2                                        # it did run in bands

"""`make demo`'s job on a small crop: every output image written, and the upscale equals the
pipeline's own output for the same seed."""

import torch

import patchscaler_lite as psl
from patchscaler_lite.jobs.demo import run_demo


def test_demo_writes_five_images_per_photo_and_the_pipeline_output(tmp_path, val_photos, capsys):
    hr = psl.crop_to_scale(val_photos["coffee"], 4)[:, :128, :128]
    assert run_demo(tmp_path, photos={"crop": hr}, bench=False) == {}
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"crop_{k}.png" for k in ("coarse", "confidence", "groups", "lr", "patchscaler")]
    assert psl.load_image(tmp_path / "crop_lr.png").shape == (3, 32, 32)
    got = psl.load_image(tmp_path / "crop_patchscaler.png")
    out = psl.PatchScalerPipeline.from_pretrained()(psl.degrade(hr[None], 4),
                                                    generator=torch.Generator().manual_seed(0))
    assert (got - out.image[0]).abs().max() <= 1 / 255 + 1e-6          # 8-bit PNG rounding
    assert "crop: 32x32 -> 128x128" in capsys.readouterr().out

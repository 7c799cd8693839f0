"""Shipped photos and degradation: shapes, ranges, determinism, and bicubic against Pillow."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from patchscaler_lite import data
from patchscaler_lite.errors import ImageError, PatchScalerError


def pil_bicubic_down(x: torch.Tensor, scale: int) -> np.ndarray:
    """Oracle: Pillow's antialiased BICUBIC resize per channel, in float mode 'F' (no rounding).

    x: (3, H, W) in [0, 1] with H, W multiples of scale -> (H / s, W / s, 3) in [0, 1].
    """
    arr = x.permute(1, 2, 0).double().numpy()
    H, W = arr.shape[:2]
    chans = [np.asarray(Image.fromarray(arr[..., c].astype(np.float32), "F")
                        .resize((W // scale, H // scale), Image.Resampling.BICUBIC))
             for c in range(3)]
    return np.clip(np.stack(chans, -1), 0, 1)


def test_load_photos_follow_splits(repo_root):
    splits = json.loads((repo_root / "data" / "splits.json").read_text())
    assert not set(splits["train"]) & set(splits["val"])
    for split in ("train", "val"):
        names = [p.name for p in data.photo_paths(split)]
        assert names == splits[split]
    assert len(data.photo_paths("all")) == len(splits["train"]) + len(splits["val"])
    with pytest.raises(PatchScalerError, match="unknown split"):
        data.photo_paths("test")


def test_val_photos_are_rgb_float_in_unit_range(val_photos):
    assert set(val_photos) == {"astronaut", "coffee", "chelsea", "flower"}
    for x in val_photos.values():
        assert x.dtype == torch.float32 and x.dim() == 3 and x.shape[0] == 3
        assert x.min() >= 0 and x.max() <= 1
        assert min(x.shape[1:]) >= 96  # big enough for NIQE and for training crops


@pytest.mark.parametrize("name", ["astronaut", "coffee"])
@pytest.mark.parametrize("scale", [2, 4])
def test_bicubic_matches_pillow(val_photos, name, scale):
    hr = data.crop_to_scale(data.quantize8(val_photos[name][:, :203, :157]), scale)
    got = data.degrade(hr, scale, "bicubic", quantize=False)[0]
    ref = pil_bicubic_down(hr, scale)
    np.testing.assert_allclose(got.permute(1, 2, 0).numpy(), ref, rtol=0, atol=1e-5)
    # The quantised LR is the oracle rounded to 8 bits (one level apart only at x.5 ties).
    got8 = data.degrade(hr, scale, "bicubic")[0].permute(1, 2, 0).numpy() * 255
    assert np.abs(got8 - np.round(ref * 255)).max() <= 1 + 1e-3


@pytest.mark.parametrize("kind", ["bicubic", "realistic"])
@pytest.mark.parametrize("H,W,scale", [(64, 48, 4), (67, 50, 4), (35, 33, 2), (4, 7, 4)])
def test_degrade_shapes_ranges_and_8bit_grid(rand_image, kind, H, W, scale):
    hr = rand_image(H * W, H, W, b=2)
    lr = data.degrade(hr, scale, kind, generator=torch.Generator().manual_seed(0))
    assert lr.shape == (2, 3, H // scale, W // scale)
    assert lr.dtype == torch.float32
    assert lr.min() >= 0 and lr.max() <= 1
    torch.testing.assert_close(lr * 255, torch.round(lr * 255), rtol=0, atol=1e-4)


def test_degrade_accepts_single_image_and_unbatched_input(rand_image):
    hr = rand_image(0, 32, 32)
    assert data.degrade(hr[0], 4).shape == (1, 3, 8, 8)


@pytest.mark.parametrize("kind", ["bicubic", "realistic"])
def test_sizes_not_divisible_are_cropped_bottom_right(rand_image, kind):
    hr = rand_image(1, 67, 50)
    cropped = data.crop_to_scale(hr, 4)
    assert cropped.shape[-2:] == (64, 48)
    assert torch.equal(cropped, hr[..., :64, :48])
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(data.degrade(hr, 4, kind, generator=g1),
                       data.degrade(cropped, 4, kind, generator=g2))


def test_realistic_is_seeded(rand_image):
    hr = rand_image(2, 64, 64, b=2)
    a = data.degrade(hr, 4, "realistic", generator=torch.Generator().manual_seed(7))
    b = data.degrade(hr, 4, "realistic", generator=torch.Generator().manual_seed(7))
    c = data.degrade(hr, 4, "realistic", generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # Random parameters are drawn per image: the two images of a batch get different chains.
    same = data.degrade(hr[:1].expand(2, -1, -1, -1), 4, "realistic",
                        generator=torch.Generator().manual_seed(7))
    assert not torch.equal(same[0], same[1])


def test_realistic_batch_equals_its_singles_with_one_generator(rand_image):
    hr = rand_image(4, 48, 48, b=3)
    batch = data.degrade(hr, 4, "realistic", generator=torch.Generator().manual_seed(11))
    g = torch.Generator().manual_seed(11)
    singles = torch.cat([data.degrade(hr[i : i + 1], 4, "realistic", generator=g)
                         for i in range(3)])
    assert torch.equal(batch, singles)


def test_bicubic_is_deterministic_and_batch_equals_singles(rand_image):
    hr = rand_image(5, 40, 40, b=3)
    batch = data.degrade(hr, 4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(batch, data.degrade(hr, 4, generator=torch.Generator().manual_seed(1)))
    singles = torch.cat([data.degrade(hr[i : i + 1], 4) for i in range(3)])
    assert torch.equal(batch, singles)


def test_realistic_degrades_more_than_bicubic(val_photos):
    """The realistic chain adds blur, noise and JPEG on top of a resize: further from bicubic-LR."""
    hr = val_photos["astronaut"][None, :, :128, :128]
    bic = data.degrade(hr, 4)
    diffs = [(data.degrade(hr, 4, "realistic", generator=torch.Generator().manual_seed(s)) - bic)
             .abs().mean().item() for s in range(3)]
    assert min(diffs) > 1 / 255


def test_degrade_does_not_modify_its_input(rand_image):
    hr = rand_image(6, 32, 32)
    before = hr.clone()
    data.degrade(hr, 4)
    data.degrade(hr, 4, "realistic", generator=torch.Generator().manual_seed(0))
    assert torch.equal(hr, before)


def test_degrade_bad_inputs():
    with pytest.raises(PatchScalerError, match="unknown degradation"):
        data.degrade(torch.rand(1, 3, 16, 16), 4, "gaussian")
    with pytest.raises(PatchScalerError, match="smaller than the scale"):
        data.degrade(torch.rand(1, 3, 3, 16), 4)
    with pytest.raises(ImageError, match="NaN"):
        data.degrade(torch.full((1, 3, 16, 16), float("nan")), 4)
    with pytest.raises(ImageError, match=r"\[0, 1\]"):
        data.degrade(torch.full((1, 3, 16, 16), 2.0), 4)


def test_bicubic_up_shape_and_range(rand_image):
    lr = rand_image(8, 5, 7, b=2)
    up = data.bicubic_up(lr, 4)
    assert up.shape == (2, 3, 20, 28)
    assert up.min() >= 0 and up.max() <= 1


def test_quantize8_is_idempotent_and_on_grid(rand_image):
    x = rand_image(9, 8, 8)
    q = data.quantize8(x)
    assert torch.equal(data.quantize8(q), q)
    assert (q - x).abs().max() <= 0.5 / 255 + 1e-7


def test_realistic_is_second_order(rand_image, monkeypatch):
    """Two rounds of blur / resize / noise / JPEG: the first to about half size, the second to 1/s."""
    sizes = []
    real_jpeg = data._jpeg

    def spy(x, quality):
        sizes.append(tuple(x.shape[-2:]))
        assert 30 <= quality <= 95
        return real_jpeg(x, quality)
    monkeypatch.setattr(data, "_jpeg", spy)
    data.degrade(rand_image(3, 128, 96, b=2), 4, "realistic", generator=torch.Generator().manual_seed(0))
    assert len(sizes) == 4
    for mid, last in (sizes[:2], sizes[2:]):
        assert last == (32, 24)
        assert 128 / 2.5 <= mid[0] <= 128 / 1.5 and 96 / 2.5 <= mid[1] <= 96 / 1.5

"""Image I/O: bad files, unusual modes, tensor validation, atomic writes, inputs left untouched."""

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from patchscaler_lite import image_io
from patchscaler_lite.errors import ImageError
from patchscaler_lite.image_io import (
    ImageConversionWarning,
    check_image,
    list_images,
    load_image,
    save_image,
    to_uint8,
)


def load_quietly_expecting_warning(path):
    with pytest.warns(ImageConversionWarning):
        return load_image(path)


def as_hwc(x: torch.Tensor) -> np.ndarray:
    return x.permute(1, 2, 0).double().numpy()


# ----------------------------------------------------------------------------- reading


def test_rgb_png_round_trip_without_warning(tmp_path, rand_uint8, sha256):
    arr = rand_uint8(0, (13, 17, 3))
    p = tmp_path / "rgb.png"
    Image.fromarray(arr).save(p)
    h = sha256(p)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ImageConversionWarning)
        x = load_image(p)
    assert x.shape == (3, 13, 17) and x.dtype == torch.float32
    np.testing.assert_array_equal(to_uint8(x), arr)
    np.testing.assert_allclose(as_hwc(x), arr / 255.0, atol=1e-7)
    assert sha256(p) == h


def test_missing_path(tmp_path):
    with pytest.raises(ImageError, match="no such file") as e:
        load_image(tmp_path / "nope.png")
    assert "nope.png" in str(e.value)


def test_directory_is_not_an_image(tmp_path):
    with pytest.raises(ImageError, match="directory"):
        load_image(tmp_path)


@pytest.mark.parametrize("content", [b"", b"hello, I am text\n" * 20])
def test_file_that_is_not_an_image(tmp_path, content, sha256):
    p = tmp_path / "fake.png"
    p.write_bytes(content)
    h = sha256(p)
    with pytest.raises(ImageError, match="not an image") as e:
        load_image(p)
    assert "fake.png" in str(e.value) and "\n" not in str(e.value)
    assert sha256(p) == h


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_png(tmp_path, rand_uint8, sha256, keep):
    full = tmp_path / "full.png"
    Image.fromarray(rand_uint8(1, (64, 64, 3))).save(full)
    raw = full.read_bytes()
    p = tmp_path / "cut.png"
    p.write_bytes(raw[: int(len(raw) * keep)])
    h = sha256(p)
    with pytest.raises(ImageError, match="truncated or corrupt") as e:
        load_image(p)
    assert "cut.png" in str(e.value)
    assert sha256(p) == h


def test_grayscale_is_replicated(tmp_path, rand_uint8, sha256):
    arr = rand_uint8(2, (9, 11))
    p = tmp_path / "gray.png"
    Image.fromarray(arr, "L").save(p)
    h = sha256(p)
    x = load_quietly_expecting_warning(p)
    assert x.shape == (3, 9, 11)
    for c in range(3):
        np.testing.assert_allclose(x[c].double().numpy(), arr / 255.0, atol=1e-7)
    assert sha256(p) == h


def test_rgba_is_composited_over_white(tmp_path, rand_uint8, sha256):
    rgb = rand_uint8(3, (8, 10, 3))
    alpha = rand_uint8(4, (8, 10))
    alpha[0, 0], alpha[0, 1] = 0, 255
    p = tmp_path / "rgba.png"
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(p)
    h = sha256(p)
    x = as_hwc(load_quietly_expecting_warning(p))
    a = alpha[..., None] / 255.0
    expected = (rgb / 255.0) * a + 1.0 * (1 - a)                   # "over" a white background
    np.testing.assert_allclose(x, expected, atol=1.01 / 255)
    np.testing.assert_allclose(x[0, 0], [1, 1, 1], atol=1e-7)      # transparent -> white
    np.testing.assert_allclose(x[0, 1], rgb[0, 1] / 255.0, atol=1e-7)
    assert sha256(p) == h


def test_palette_is_expanded(tmp_path, rand_uint8):
    palette = rand_uint8(5, (256, 3))
    idx = rand_uint8(6, (7, 9))
    im = Image.fromarray(idx, "P")
    im.putpalette(palette.reshape(-1).tolist())
    p = tmp_path / "pal.png"
    im.save(p)
    x = load_quietly_expecting_warning(p)
    np.testing.assert_allclose(as_hwc(x), palette[idx] / 255.0, atol=1e-7)


def test_palette_with_transparency_is_composited(tmp_path):
    idx = np.array([[0, 1], [1, 0]], dtype=np.uint8)
    im = Image.fromarray(idx, "P")
    im.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    p = tmp_path / "palt.png"
    im.save(p, transparency=0)                                    # index 0 fully transparent
    x = as_hwc(load_quietly_expecting_warning(p))
    np.testing.assert_allclose(x[0, 0], [1, 1, 1], atol=1e-7)
    np.testing.assert_allclose(x[0, 1], np.array([200, 100, 50]) / 255.0, atol=1e-7)


def test_16bit_grayscale_keeps_precision(tmp_path, sha256):
    arr = (np.arange(40 * 50, dtype=np.uint32).reshape(40, 50) * 31 + 7).astype(np.uint16)
    arr[0, 0], arr[0, 1], arr[0, 2] = 0, 65535, 1
    p = tmp_path / "g16.png"
    Image.fromarray(arr).save(p)
    h = sha256(p)
    x = load_quietly_expecting_warning(p)
    assert x.shape == (3, 40, 50) and x.dtype == torch.float32
    np.testing.assert_allclose(x[1].double().numpy(), arr / 65535.0, rtol=0, atol=1e-7)
    assert torch.equal(x[0], x[2])
    # Far more than 256 distinct levels survive (8-bit would collapse them).
    assert len(torch.unique(x[0])) == len(np.unique(arr)) > 256
    assert x[0, 0, 2] > 0                                          # 1/65535 is not rounded away
    assert sha256(p) == h


def test_16bit_grayscale_low_values_are_not_rescaled_as_8bit(tmp_path):
    arr = np.full((4, 4), 200, dtype=np.uint16)
    p = tmp_path / "dark16.png"
    Image.fromarray(arr).save(p)
    x = load_quietly_expecting_warning(p)
    np.testing.assert_allclose(x.numpy(), 200 / 65535.0, rtol=1e-6)


def test_la_mode_is_composited(tmp_path):
    la = np.dstack([np.full((3, 3), 100, np.uint8), np.full((3, 3), 0, np.uint8)])
    p = tmp_path / "la.png"
    Image.fromarray(la, "LA").save(p)
    x = load_quietly_expecting_warning(p)
    np.testing.assert_allclose(x.numpy(), 1.0, atol=1e-7)


def test_too_many_pixels_is_refused_before_decoding(tmp_path, rand_uint8, monkeypatch):
    p = tmp_path / "big.png"
    Image.fromarray(rand_uint8(7, (20, 20, 3))).save(p)
    monkeypatch.setattr(image_io, "MAX_PIXELS", 100)
    with pytest.raises(ImageError, match="larger than"):
        load_image(p)


def test_list_images(tmp_path, rand_uint8):
    for n in ("b.png", "a.JPG", "c.txt"):
        (tmp_path / n).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.png").write_bytes(b"x")
    assert [p.name for p in list_images([tmp_path])] == ["a.JPG", "b.png"]
    assert [p.name for p in list_images([tmp_path], recursive=True)] == ["a.JPG", "b.png", "d.png"]


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize("bad,reason", [
    (torch.full((1, 3, 4, 4), float("nan")), "NaN"),
    (torch.full((3, 4, 4), float("inf")), "NaN or infinite"),
    (torch.full((1, 3, 4, 4), 1.5), r"\[0, 1\]"),
    (torch.full((1, 3, 4, 4), -0.2), r"\[0, 1\]"),
    (torch.rand(1, 4, 4, 4), "shape"),
    (torch.rand(4, 4), "shape"),
    (torch.rand(1, 1, 3, 4, 4), "shape"),
    (torch.zeros(1, 3, 4, 4, dtype=torch.uint8), "floating"),
    (np.zeros((4, 4, 3), np.float32), "torch.Tensor"),
])
def test_check_image_rejects(bad, reason):
    with pytest.raises(ImageError, match=reason):
        check_image(bad, "img")


def test_check_image_accepts_and_batches():
    x = torch.rand(3, 5, 6)
    before = x.clone()
    out = check_image(x)
    assert out.shape == (1, 3, 5, 6)
    assert torch.equal(x, before)
    assert check_image(torch.rand(2, 3, 5, 6)).shape == (2, 3, 5, 6)


def test_nan_single_pixel_is_caught():
    x = torch.rand(2, 3, 8, 8)
    x[1, 2, 3, 4] = float("nan")
    with pytest.raises(ImageError, match="NaN"):
        check_image(x)


# ----------------------------------------------------------------------------- writing


def leftovers(folder, keep=()):
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def test_save_image_round_trip_and_no_temp_files(tmp_path, rand_image):
    x = rand_image(0, 12, 10)
    before = x.clone()
    out = save_image(x, tmp_path / "out.png")
    assert out == tmp_path / "out.png"
    assert leftovers(tmp_path) == ["out.png"]
    assert torch.equal(x, before)                                  # input tensor untouched
    np.testing.assert_array_equal(to_uint8(load_image(out)), to_uint8(x))


def test_save_uint8_array(tmp_path, rand_uint8):
    arr = rand_uint8(1, (6, 7, 3))
    before = arr.copy()
    save_image(arr, tmp_path / "a.png")
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "a.png")), arr)
    np.testing.assert_array_equal(arr, before)


def test_save_image_into_missing_directory(tmp_path, rand_image):
    target = tmp_path / "missing" / "out.png"
    with pytest.raises(ImageError, match="does not exist"):
        save_image(rand_image(0, 4, 4), target)
    assert leftovers(tmp_path) == []


def test_save_image_where_parent_is_a_file(tmp_path, rand_image):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ImageError):
        save_image(rand_image(0, 4, 4), tmp_path / "afile" / "out.png")
    assert leftovers(tmp_path) == ["afile"]


def test_save_image_into_unwritable_directory(tmp_path, rand_image):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        # root ignores permission bits; sysfs refuses new files even to root
        target_dir = ro if not os.access(ro, os.W_OK) else Path("/sys")
        with pytest.raises(ImageError, match="not writable"):
            save_image(rand_image(0, 4, 4), target_dir / "out.png")
        assert not (target_dir / "out.png").exists()
        assert leftovers(ro) == []
    finally:
        ro.chmod(0o700)


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path, rand_image, monkeypatch, sha256):
    target = tmp_path / "out.png"
    save_image(rand_image(0, 8, 8), target)
    h = sha256(target)

    def boom(self, fp, *args, **kwargs):
        fp.write(b"half an image")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        save_image(rand_image(1, 8, 8), target)
    assert sha256(target) == h                                     # the old file is intact
    assert leftovers(tmp_path) == ["out.png"]


def test_unsupported_extension_leaves_nothing(tmp_path, rand_image):
    with pytest.raises(ImageError, match="extension"):
        save_image(rand_image(0, 4, 4), tmp_path / "out.xyz")
    assert leftovers(tmp_path) == []


def test_no_overwrite(tmp_path, rand_image, sha256):
    target = tmp_path / "out.png"
    save_image(rand_image(0, 4, 4), target)
    h = sha256(target)
    with pytest.raises(ImageError, match="exists"):
        save_image(rand_image(1, 4, 4), target, overwrite=False)
    assert sha256(target) == h


@pytest.mark.parametrize("bad", [torch.full((3, 4, 4), float("nan")),
                                 np.zeros((4, 4, 3), np.float32), np.zeros((4, 4), np.uint8)])
def test_save_image_rejects_invalid_data(tmp_path, bad):
    with pytest.raises(ImageError):
        save_image(bad, tmp_path / "out.png")
    assert leftovers(tmp_path) == []


def test_to_uint8_rounds_and_rejects_batches():
    x = torch.tensor([0.0, 0.5 / 255 + 1e-4, 1.0, 254.4 / 255]).view(1, 1, 4).expand(3, 1, 4)
    np.testing.assert_array_equal(to_uint8(x)[0, :, 0], [0, 1, 255, 254])
    with pytest.raises(ImageError, match="one image"):
        to_uint8(torch.rand(2, 3, 4, 4))

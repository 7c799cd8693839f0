"""Training photos from any folder (photoset.py): uint8 in memory, exact aligned crops, and the
bad inputs of `--data`: a missing or empty folder, non-images, small photos, a split naming missing
photos."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from patchscaler_lite import data
from patchscaler_lite.cli import main
from patchscaler_lite.errors import PatchScalerError
from patchscaler_lite.photoset import MARGIN, PhotoSet, load_photo_set, sample_crops


def _png(path, h, w, seed=0):
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "photos"
    d.mkdir()
    for i, (h, w) in enumerate([(120, 160), (128, 96), (40, 40)]):
        _png(d / f"p{i}.png", h, w, seed=i)
    (d / "notes.txt").write_text("not a photo")
    (d / "splits.json").write_text(json.dumps({"train": ["p0.png", "p1.png", "p2.png"],
                                               "val": ["p1.png"]}))
    return d


def test_photos_are_kept_as_uint8_and_small_ones_skipped_with_a_count(folder):
    with pytest.warns(UserWarning) as rec:
        ps = load_photo_set(folder, "train", min_side=64)
    msgs = " | ".join(str(w.message) for w in rec)
    assert "skipping 1 photo(s) smaller than 64 px: p2" in msgs
    assert ps.names == ["p0", "p1"] and all(im.dtype == torch.uint8 for im in ps.images)
    assert ps.nbytes == 3 * (120 * 160 + 128 * 96)
    assert np.array_equal(ps.images[0].permute(1, 2, 0).numpy(), np.asarray(Image.open(folder / "p0.png")))


def test_non_images_are_skipped_with_a_warning(folder):
    with pytest.warns(UserWarning, match="skipping 2 non-image file"):
        ps = load_photo_set(folder)
    assert ps.names == ["p0", "p1", "p2"]


def test_bad_folders_and_splits_are_one_line_errors(tmp_path, folder):
    with pytest.raises(PatchScalerError, match="not a folder"):
        load_photo_set(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PatchScalerError, match="no readable images"):
        load_photo_set(tmp_path / "empty")
    with pytest.raises(PatchScalerError, match="split 'test' not in"):
        load_photo_set(folder, "test")
    (folder / "splits.json").write_text(json.dumps({"train": ["p0.png", "gone.png"]}))
    with pytest.raises(PatchScalerError, match="names 1 missing photo.*gone.png"):
        load_photo_set(folder, "train")


def test_crops_equal_crops_of_the_whole_photos_degradation(val_photos):
    """The margin makes an on-the-fly bicubic crop equal to the same pixels of the whole photo's LR
    (the photo shifted so that the crop lies on its LR grid): no border effects."""
    hr = data.crop_to_scale(val_photos["coffee"], 4)
    ps = PhotoSet.from_tensors({"coffee": hr})
    photo = ps.images[0].float() / 255
    g = torch.Generator().manual_seed(0)
    lr, hrc = sample_crops(ps, 6, 32, 4, g)
    assert lr.shape == (6, 3, 8, 8) and hrc.shape == (6, 3, 32, 32)
    for a, b in zip(lr, hrc, strict=True):                # find each HR crop in the photo (any flip)
        found = False
        for k in range(8):                                # undo each of the 8 flips/rotations
            cand = _undo(b, k)
            pos = _locate(photo, cand)
            if pos is not None:
                y, x = pos
                shifted = data.crop_to_scale(photo[:, y % 4:, x % 4:], 4)
                lr_full = data.degrade(shifted[None], 4)[0]
                ref = lr_full[:, y // 4:y // 4 + 8, x // 4:x // 4 + 8]
                assert (_undo(a, k) - ref).abs().max() <= 1 / 255 + 1e-6
                found = True
                break
        assert found
    assert MARGIN >= 2                                    # the x4 antialiased kernel reaches 2 LR px


def _undo(x, k):
    """Inverse of patches.dihedral(., k)."""
    x = x.flip(-1) if k >= 4 else x
    return torch.rot90(x, -(k % 4), dims=(-2, -1))


def _locate(photo, patch):
    """(y, x) where `patch` (3, P, P) sits in `photo` (3, H, W), or None."""
    P = patch.shape[-1]
    win = photo.unfold(1, P, 1).unfold(2, P, 1)            # (3, H-P+1, W-P+1, P, P)
    d = (win - patch[:, None, None]).abs().amax(dim=(0, 3, 4))
    hit = (d < 1e-6).nonzero()
    return None if len(hit) == 0 else tuple(hit[0].tolist())


def test_train_grm_cli_takes_a_data_folder(folder, tmp_path, capsys):
    code = main(["train", "grm", "--preset", "tiny", "--iters", "2", "--data", str(folder),
                 "-o", str(tmp_path / "run"), "--device", "cpu"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "train: 2 photos" in out.out and "skipping 1 photo(s) smaller than 64 px" in out.err
    rep = json.loads((tmp_path / "run" / "grm_tiny.report.json").read_text())
    assert rep["train_photos"] == ["p0", "p1"] and rep["val_photos"] == ["p1"]

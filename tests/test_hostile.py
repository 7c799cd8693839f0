"""Issue 13: the command line and the library under careless or hostile use.

One test per row of the issue's table (test_rowNN_...), then the output and input policies every
command that writes follows (test_policy_...). CLI tests run `main` in-process (a subprocess where
the process itself must die); tiny weights and images keep them fast.
"""

import errno
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from patchscaler_lite import atomic, image_io
from patchscaler_lite.cli import build_parser, main
from patchscaler_lite.cli import memory as memory_cli
from patchscaler_lite.cli import train as train_cli
from patchscaler_lite.config import PRESETS, GroupingConfig, PGSConfig
from patchscaler_lite.data import degrade, load_photos
from patchscaler_lite.errors import ImageError, PatchScalerError, WeightsError
from patchscaler_lite.grm.model import GlobalRestorationModule, load_grm
from patchscaler_lite.image_io import ImageConversionWarning, check_image, load_image, save_image
from patchscaler_lite.jobs import bench as bench_job
from patchscaler_lite.jobs import files
from patchscaler_lite.jobs import upscale as upscale_job
from patchscaler_lite.pipeline import MAX_LR_PIXELS, PatchScalerPipeline
from patchscaler_lite.texture.memory import build_memory
from patchscaler_lite.weights import WEIGHTS_DIR, save_weights

# ----------------------------------------------------------------------------- fixtures, helpers


@pytest.fixture(scope="module")
def lr_bytes():
    """The bytes of a real 48x40 LR PNG (x4 bicubic degradation of a crop of coffee)."""
    hr = load_photos("val")["coffee"][:, 100:260, 200:392]
    return image_io.to_uint8(degrade(hr, 4))


@pytest.fixture
def lr_png(tmp_path, lr_bytes):
    path = tmp_path / "in" / "coffee_lr.png"
    path.parent.mkdir()
    save_image(lr_bytes, path)
    return path


@pytest.fixture
def truncated_png(lr_png):
    bad = lr_png.with_name("truncated.png")
    data = lr_png.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    return bad


@pytest.fixture
def hr_dir(tmp_path):
    """Two small HR photos (64x64 crops)."""
    d = tmp_path / "hr"
    d.mkdir()
    for name in ("coffee", "chelsea"):
        save_image(load_photos("val")[name][:, :64, :64], d / f"{name}.png")
    return d


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def one_error_line(err):
    lines = [ln for ln in err.strip().split("\n") if not ln.startswith("note:")]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def tree(folder) -> list[str]:
    """Every file and folder under `folder` (hidden ones included), relative, sorted."""
    folder = Path(folder)
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def never(what):
    def fail(*args, **kwargs):
        raise AssertionError(f"{what} was reached")
    return fail


@pytest.fixture
def no_decoding(monkeypatch):
    """Decoding any image's pixels fails the test: limits must be checked on the header."""
    monkeypatch.setattr(ImageFile.ImageFile, "load", never("decoding the pixels"))


def write_png16(path, arr: np.ndarray) -> Path:
    """A 16-bit LA / RGB / RGBA PNG written by hand (filter 0 rows), the oracle for 16-bit reading."""
    h, w, c = arr.shape
    raw = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in arr)

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
    ihdr = struct.pack(">IIBBBBB", w, h, 16, {2: 4, 3: 2, 4: 6}[c], 0, 0, 0)
    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw))
                           + chunk(b"IEND", b""))
    return Path(path)


def disk_full_on_call(monkeypatch, n: int):
    """PIL saves fail with ENOSPC from the n-th call on (after writing a few bytes)."""
    calls = {"n": 0}
    real = Image.Image.save

    def save(self, fp, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] >= n:
            fp.write(b"half an image")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(self, fp, *args, **kwargs)
    monkeypatch.setattr(Image.Image, "save", save)


# ----------------------------------------------------------------------------- the 18 rows


@pytest.mark.parametrize("link", ["same", "hardlink", "symlink"])
@pytest.mark.parametrize("force", [[], ["--force"]])
def test_row01_memory_query_never_writes_over_its_input(tmp_path, lr_png, capsys, sha256, link,
                                                        force):
    before = sha256(lr_png)
    out = {"same": lr_png, "hardlink": tmp_path / "hard.png", "symlink": tmp_path / "sym.png"}[link]
    if link == "hardlink":
        os.link(lr_png, out)
    elif link == "symlink":
        out.symlink_to(lr_png)
    code, _, err = run(["memory", "query", lr_png, "-o", out, "--device", "cpu", *force], capsys)
    assert code == 2 and "input" in one_error_line(err) and str(out) in err
    assert sha256(lr_png) == before


def _row02_argv(command, target, hr_dir, lr_png, tiny_weights):
    fast_memory = ["--size", "8", "--n-patches", "64", "--patch-size", "16", "--descriptor", "gabor"]
    return {
        "qmap-report": ["qmap-report", "--hr-dir", hr_dir, "--json", target, "--patch-size", "16",
                        "--weights", tiny_weights / "grm_tiny.safetensors"],
        "memory query": ["memory", "query", lr_png, "-o", target],
        "memory build": ["memory", "build", "--images", hr_dir, "--keys", "hr", *fast_memory,
                         "-o", target],
        "memory eval": ["memory", "eval", "--json", target, "--k", "2", "--coarse", "bicubic",
                        "--keys", "hr", *fast_memory],
        "bench": ["bench", "--hr-dir", hr_dir, "--json", target, "--methods", "bicubic",
                  "--weights", tiny_weights],
    }[command] + ["--device", "cpu"]


@pytest.mark.parametrize("command", ["qmap-report", "memory query", "memory build", "memory eval",
                                     "bench"])
def test_row02_an_existing_output_needs_force(tmp_path, capsys, hr_dir, lr_png, tiny_weights,
                                              command):
    target = tmp_path / ("existing.png" if command == "memory query" else "existing.json")
    target.write_bytes(b"precious")
    code, _, err = run(_row02_argv(command, target, hr_dir, lr_png, tiny_weights), capsys)
    assert code == 2 and "--force" in one_error_line(err) and str(target) in err
    assert target.read_bytes() == b"precious"


@pytest.mark.parametrize("command", ["qmap-report", "memory query"])
def test_row02_force_replaces_it(tmp_path, capsys, hr_dir, lr_png, tiny_weights, command):
    target = tmp_path / ("existing.png" if command == "memory query" else "existing.json")
    target.write_bytes(b"precious")
    argv = _row02_argv(command, target, hr_dir, lr_png, tiny_weights) + ["--force"]
    code, _, err = run(argv, capsys)
    assert code == 0, err
    assert target.read_bytes() != b"precious" and tree(tmp_path / "hr") == ["chelsea.png", "coffee.png"]


@pytest.mark.parametrize("command", ["upscale", "qmap"])
def test_row03_a_bad_input_anywhere_means_nothing_is_written(tmp_path, lr_png, truncated_png, capsys,
                                                             tiny_weights, command):
    weights = tiny_weights if command == "upscale" else tiny_weights / "grm_tiny.safetensors"
    out = tmp_path / "out"
    code, _, err = run([command, lr_png, truncated_png, "-o", out, "--weights", weights], capsys)
    assert code == 2 and "truncated.png" in one_error_line(err)
    assert not out.exists()                                # nothing, not even the folder


def test_row03_inputs_are_all_checked_before_the_models_load(tmp_path, lr_png, truncated_png, capsys,
                                                             monkeypatch, tiny_weights):
    monkeypatch.setattr(PatchScalerPipeline, "from_pretrained", never("loading the models"))
    code, _, err = run(["upscale", lr_png, truncated_png, "-o", tmp_path / "out"], capsys)
    assert code == 2 and "truncated.png" in one_error_line(err)


@pytest.mark.parametrize("nth", [1, 2])
def test_row04_disk_full_during_qmap_is_one_line_and_leaves_nothing(tmp_path, lr_png, capsys,
                                                                    monkeypatch, tiny_grm, nth):
    out = tmp_path / "out"
    disk_full_on_call(monkeypatch, nth)
    code, _, err = run(["qmap", lr_png, "-o", out, "--weights", tiny_grm], capsys)
    line = one_error_line(err)
    assert code == 2 and "No space left on device" in line and str(out) in line
    assert not out.exists()


def test_row04_disk_full_during_upscale_into_an_existing_folder(tmp_path, lr_png, capsys, monkeypatch,
                                                                tiny_weights):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    disk_full_on_call(monkeypatch, 1)
    code, _, err = run(["upscale", lr_png, "-o", out, "--weights", tiny_weights], capsys)
    assert code == 2 and "No space left on device" in one_error_line(err)
    assert tree(out) == ["mine.txt"]


def test_row04_permission_denied_is_one_line(tmp_path, lr_png, capsys, monkeypatch, tiny_grm):
    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
    monkeypatch.setattr(Image.Image, "save", denied)
    out = tmp_path / "out"
    code, _, err = run(["qmap", lr_png, "-o", out, "--weights", tiny_grm], capsys)
    assert code == 2 and "Permission denied" in one_error_line(err) and str(out) in err
    assert not out.exists()


@pytest.mark.parametrize("seed", ["99999999999999999999", "-1", "2.5", str(2**63)])
@pytest.mark.parametrize("command", ["upscale", "bench", "qmap-report", "memory build"])
def test_row05_seed_is_range_checked_when_parsing(tmp_path, lr_png, capsys, monkeypatch, command, seed):
    monkeypatch.setattr(PatchScalerPipeline, "from_pretrained", never("loading the models"))
    argv = {"upscale": ["upscale", lr_png, "-o", tmp_path / "out"],
            "bench": ["bench", "--hr-dir", tmp_path, "--json", tmp_path / "b.json"],
            "qmap-report": ["qmap-report", "--hr-dir", tmp_path, "--json", tmp_path / "r.json"],
            "memory build": ["memory", "build", "--images", tmp_path, "-o", tmp_path / "m.st"]}[command]
    code, _, err = run(argv + ["--seed", seed], capsys)
    assert code == 2 and "--seed" in one_error_line(err)
    assert not (tmp_path / "out").exists()


def test_row05_largest_seed_is_accepted():
    args = build_parser().parse_args(["upscale", "x.png", "-o", "o", "--seed", str(2**63 - 1)])
    assert args.seed == 2**63 - 1
    torch.Generator().manual_seed(args.seed)


@pytest.mark.parametrize("what", ["grm", "dit"])
def test_row06_train_output_that_is_a_file(tmp_path, capsys, monkeypatch, what):
    monkeypatch.setattr(train_cli, "load_photo_set", never("loading the photos"))
    existing = tmp_path / "existing_file.png"
    existing.write_bytes(b"precious")
    code, _, err = run(["train", what, "--preset", "tiny", "-o", existing], capsys)
    assert code == 2 and "not a folder" in one_error_line(err) and str(existing) in err
    assert existing.read_bytes() == b"precious"


def test_row06_train_refuses_finished_weights_without_force(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(train_cli, "load_photo_set", never("loading the photos"))
    (tmp_path / "grm_tiny.safetensors").write_bytes(b"trained")
    code, _, err = run(["train", "grm", "--preset", "tiny", "-o", tmp_path], capsys)
    assert code == 2 and "--force" in one_error_line(err)


@pytest.mark.parametrize("opt", [["--iters", "-1"], ["--iters", "0"], ["--iters", "x"],
                                 ["--calib-iters", "-1"], ["--calib-rank", "-0.5"],
                                 ["--calib-rank", "nan"], ["--calib-rank", "inf"]])
def test_row07_train_counts_are_checked_when_parsing(tmp_path, capsys, monkeypatch, opt):
    monkeypatch.setattr(train_cli, "load_photo_set", never("the training set-up"))
    what = "grm" if opt[0].startswith("--calib") else "dit"
    code, _, err = run(["train", what, "--preset", "tiny", *opt, "-o", tmp_path / "out"], capsys)
    assert code == 2 and opt[0] in one_error_line(err)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("opt", [["memory", "eval", "--json", "r.json", "--k", "0"],
                                 ["memory", "query", "x.png", "-o", "q.png", "--k", "-2"],
                                 ["memory", "query", "x.png", "-o", "q.png", "--n", "0"],
                                 ["memory", "build", "--images", ".", "-o", "m", "--size", "0"],
                                 ["memory", "build", "--images", ".", "-o", "m", "--n-patches", "-5"],
                                 ["memory", "build", "--images", ".", "-o", "m", "--embed-iters", "0"],
                                 ["memory", "eval", "--json", "r.json", "--embed-iters", "0"],
                                 ["upscale", "x.png", "-o", "o", "--max-pixels", "0"]])
def test_row07_counts_everywhere_are_positive_when_parsing(capsys, opt):
    code, _, err = run(opt, capsys)
    assert code == 2 and opt[-2] in one_error_line(err)


def _bilevel_png(path, w, h) -> Path:
    """A w x h 1-bit PNG: a few KB on disk, a huge image once decoded."""
    Image.new("1", (w, h)).save(path)
    return path


@pytest.mark.parametrize("command", ["qmap", "upscale"])
def test_row08_pixel_limit_is_checked_on_the_header(tmp_path, capsys, monkeypatch, no_decoding,
                                                    tiny_weights, command):
    big = _bilevel_png(tmp_path / "big.png", 2100, 2000)              # 4.2 MP > 4 MP
    monkeypatch.setattr(PatchScalerPipeline, "from_pretrained", never("loading the models"))
    code, _, err = run([command, big, "-o", tmp_path / "out"], capsys)
    line = one_error_line(err)
    assert code == 2 and str(big) in line and "--max-pixels" in line and f"{MAX_LR_PIXELS:,}" in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["qmap", "upscale"])
def test_row08_the_limit_is_the_pipelines_and_can_be_raised(tmp_path, lr_png, capsys, tiny_weights,
                                                            command):
    assert build_parser().parse_args([command, "x", "-o", "o"]).max_pixels == MAX_LR_PIXELS
    weights = tiny_weights if command == "upscale" else tiny_weights / "grm_tiny.safetensors"
    argv = [command, lr_png, "-o", tmp_path / "out", "--weights", weights]
    code, _, err = run(argv + ["--max-pixels", "1000"], capsys)               # 48 x 40 = 1920
    assert code == 2 and "1,920" in one_error_line(err) and "1,000" in err
    code, _, err = run(argv + ["--max-pixels", "1920"], capsys)
    assert code == 0, err


def test_row09_a_huge_png_is_refused_before_decoding_and_named(tmp_path, capsys, monkeypatch,
                                                               no_decoding):
    big = _bilevel_png(tmp_path / "huge.png", 8000, 8000)
    assert big.stat().st_size < 200_000
    monkeypatch.setattr(PatchScalerPipeline, "from_pretrained", never("loading the models"))
    code, _, err = run(["upscale", big, "-o", tmp_path / "out"], capsys)
    line = one_error_line(err)
    assert code == 2 and str(big) in line and "8000x8000" in line


def test_row10_a_concurrent_run_is_never_silently_replaced(tmp_path, lr_png, capsys, monkeypatch,
                                                           tiny_weights):
    out = tmp_path / "out"
    target = out / "coffee_lr_x4.png"
    real = upscale_job.stream_upscale

    def other_run_finishes_first(*args, **kwargs):
        res = real(*args, **kwargs)
        target.write_bytes(b"the other run's output")
        return res
    monkeypatch.setattr(upscale_job, "stream_upscale", other_run_finishes_first)
    code, _, err = run(["upscale", lr_png, "-o", out, "--weights", tiny_weights], capsys)
    line = one_error_line(err)
    assert code == 2 and str(target) in line and "another run" in line
    assert target.read_bytes() == b"the other run's output"
    assert tree(out) == ["coffee_lr_x4.png"]


def test_row10_two_processes_at_once_one_wins_one_refuses(tmp_path):
    script = textwrap.dedent("""
        import sys, time
        from pathlib import Path
        from patchscaler_lite.jobs.files import Outputs
        target, me, other = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
        with Outputs([target]) as outs:
            (target.parent / f"ready_{me}").touch()
            while not (target.parent / f"ready_{other}").exists():   # both have checked
                time.sleep(0.05)
            outs.write(target, lambda f: f.write(me.encode()))
    """)
    target = tmp_path / "out" / "x.txt"
    target.parent.mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", script, str(target), me, other], text=True,
                              stderr=subprocess.PIPE) for me, other in (("a", "b"), ("b", "a"))]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes[0] == 0 and codes[1] != 0, results
    loser = [err for code, err in results if code != 0][0]
    assert str(target) in loser and "another run" in loser
    assert target.read_text() in ("a", "b") and tree(target.parent) == ["ready_a", "ready_b", "x.txt"]


def test_row11_16bit_rgb_png_keeps_16bit_precision(tmp_path):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 65536, (21, 17, 3)).astype(np.uint16)
    arr[0, 0] = (0, 1, 65535)
    x = load_image(write_png16(tmp_path / "rgb16.png", arr))
    assert x.dtype == torch.float32 and x.shape == (3, 21, 17)
    np.testing.assert_allclose(x.permute(1, 2, 0).double().numpy(), arr / 65535.0, rtol=0, atol=1e-7)
    assert len(torch.unique(x)) > 256 and x[1, 0, 0] > 0


def test_row11_16bit_rgba_png_is_composited_at_16bit(tmp_path):
    arr = np.random.default_rng(1).integers(0, 65536, (9, 8, 4)).astype(np.uint16)
    with pytest.warns(ImageConversionWarning, match="alpha"):
        x = load_image(write_png16(tmp_path / "rgba16.png", arr))
    a = arr[..., 3:] / 65535.0
    want = arr[..., :3] / 65535.0 * a + (1 - a)
    np.testing.assert_allclose(x.permute(1, 2, 0).double().numpy(), want, rtol=0, atol=1e-6)


def test_row11_16bit_png_with_filters_matches_opencv(tmp_path):
    cv2 = pytest.importorskip("cv2")
    arr = np.random.default_rng(2).integers(0, 65536, (33, 29, 3)).astype(np.uint16)
    arr[:, :9] = np.arange(9, dtype=np.uint16)[None, :, None] * 7000      # smooth: filtered rows
    cv2.imwrite(str(tmp_path / "cv.png"), arr[..., ::-1])
    x = load_image(tmp_path / "cv.png")
    np.testing.assert_allclose(x.permute(1, 2, 0).double().numpy(), arr / 65535.0, rtol=0, atol=1e-7)


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_row11_16bit_rgb_tiff_keeps_16bit_precision(tmp_path, compression):
    tifffile = pytest.importorskip("tifffile")
    arr = np.random.default_rng(3).integers(0, 65536, (19, 23, 3)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "t.tif", arr, compression=compression, photometric="rgb")
    x = load_image(tmp_path / "t.tif")
    np.testing.assert_allclose(x.permute(1, 2, 0).double().numpy(), arr / 65535.0, rtol=0, atol=1e-7)


def test_row11_16bit_that_cannot_be_kept_says_so(tmp_path):
    la = np.dstack([np.full((4, 5), 1000, np.uint16), np.full((4, 5), 65535, np.uint16)])
    with pytest.warns(ImageConversionWarning, match="reduced to 8 bits"):
        x = load_image(write_png16(tmp_path / "la16.png", la))            # gray + alpha, 16-bit
    assert x.shape == (3, 4, 5)


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_row11_exif_orientation_is_applied_with_a_note(tmp_path, suffix):
    stored = np.zeros((16, 32, 3), np.uint8)
    stored[:8] = 255                                     # top half white, as stored
    stored[:, :4] = 128                                  # a grey band on the left
    im = Image.fromarray(stored)
    exif = im.getexif()
    exif[0x0112] = 6                                     # "rotate 90 CW to display"
    path = tmp_path / f"rotated{suffix}"
    im.save(path, exif=exif, **({"quality": 100} if suffix == ".jpg" else {}))
    with pytest.warns(ImageConversionWarning, match="EXIF orientation"):
        x = load_image(path)
    want = np.rot90(stored, k=-1) / 255.0                # oracle: numpy's clockwise quarter turn
    assert x.shape == (3, 32, 16)
    np.testing.assert_allclose(x.permute(1, 2, 0).double().numpy(), want, atol=0.06)


def test_row11_animated_gif_first_frame_with_a_note(tmp_path, capsys, tiny_grm):
    frames = [Image.new("RGB", (20, 16), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    with pytest.warns(ImageConversionWarning, match="3 frames"):
        x = load_image(path)
    assert x[0].mean() > 0.9 and x[1:].mean() < 0.1       # the first frame, red
    code, _, err = run(["qmap", path, "-o", tmp_path / "out", "--weights", tiny_grm], capsys)
    assert code == 0 and any(ln.startswith("note: ") and "3 frames" in ln for ln in err.split("\n"))


@pytest.fixture
def mixed_weights(tmp_path, tiny_weights):
    """The shipped lite GRM and memory beside a tiny Patch-DiT (no dit_lite)."""
    d = tmp_path / "mixed"
    d.mkdir()
    for name in ("grm_lite.safetensors", "memory_lite.safetensors"):
        (d / name).symlink_to(WEIGHTS_DIR / name)
    shutil.copy(tiny_weights / "dit_tiny.safetensors", d)
    return d


def test_row12_a_folder_mixing_presets_is_refused(mixed_weights, tmp_path, lr_png, capsys):
    with pytest.raises(PatchScalerError, match="dit_lite.*dit_tiny"):
        PatchScalerPipeline.from_pretrained(mixed_weights)
    code, _, err = run(["upscale", lr_png, "-o", tmp_path / "out", "--weights", mixed_weights], capsys)
    assert code == 2 and "dit_lite" in one_error_line(err)
    assert not (tmp_path / "out").exists()


def test_row12_a_folder_of_one_other_preset_is_used_with_a_note(tiny_weights, tmp_path, lr_png,
                                                                capsys):
    code, _, err = run(["upscale", lr_png, "-o", tmp_path / "out", "--weights", tiny_weights], capsys)
    assert code == 0, err
    assert any(ln.startswith("note: ") and "tiny" in ln for ln in err.split("\n")), err


def test_row13_weights_with_nan_name_the_file(tmp_path, lr_png, capsys):
    m = GlobalRestorationModule(PRESETS["tiny"].grm)
    state = m.state_dict()
    next(v for v in state.values() if v.is_floating_point()).view(-1)[0] = float("nan")
    bad = save_weights(tmp_path / "nan.safetensors", state, "grm", m.cfg.to_dict())
    with pytest.raises(WeightsError, match="NaN"):
        load_grm(bad)
    code, _, err = run(["qmap", lr_png, "-o", tmp_path / "out", "--weights", bad], capsys)
    line = one_error_line(err)
    assert code == 2 and str(bad) in line and "NaN" in line and "to_uint8" not in line


def test_row13_weights_option_given_a_file_says_so(tmp_path, lr_png, capsys, tiny_grm):
    code, _, err = run(["upscale", lr_png, "-o", tmp_path / "out", "--weights", tiny_grm], capsys)
    line = one_error_line(err)
    assert code == 2 and str(tiny_grm) in line and "is a file" in line and "folder" in line


def test_row13_weights_file_option_given_a_folder_says_so(tmp_path, lr_png, capsys, tiny_weights):
    code, _, err = run(["qmap", lr_png, "-o", tmp_path / "out", "--weights", tiny_weights], capsys)
    line = one_error_line(err)
    assert code == 2 and str(tiny_weights) in line and "is a folder" in line


def test_row13_symlink_loop_as_input_says_so(tmp_path, capsys, tiny_grm):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.symlink_to(b)
    b.symlink_to(a)
    code, _, err = run(["qmap", a, "-o", tmp_path / "out", "--weights", tiny_grm], capsys)
    assert code == 2 and "symbolic link loop" in one_error_line(err) and str(a) in err
    with pytest.raises(ImageError, match="symbolic link loop"):
        load_image(a)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_row14_other_float_dtypes_become_float32(dtype):
    x = torch.rand(1, 3, 8, 8)
    out = check_image(x.to(dtype))
    assert out.dtype == torch.float32 and torch.equal(out, x.to(dtype).float())
    with pytest.raises(ImageError, match=r"\[0, 1\]"):
        check_image((x + 2).to(dtype))


@pytest.mark.parametrize("shape", [(1, 3, 0, 64), (0, 3, 8, 8), (3, 8, 0)])
def test_row14_empty_tensors_are_an_image_error(shape):
    with pytest.raises(ImageError, match="empty"):
        check_image(torch.zeros(shape))


@pytest.fixture(scope="module")
def tiny_pipe(tiny_models):
    grm, den = tiny_models()
    photos = {k: v[:, :96, :96] for k, v in list(load_photos("train").items())[:2]}
    mem = build_memory(photos, 8, n_patches=64, iters=3, generator=torch.Generator().manual_seed(0))
    grouping = GroupingConfig(patch_size=den.cfg.dit.patch_size, overlap=8)
    return PatchScalerPipeline(grm, den, mem, pgs=PGSConfig(starts=(50, 100, 200), steps=(1, 2, 3),
                                                            grouping=grouping))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_row14_the_pipeline_takes_other_float_dtypes(tiny_pipe, dtype):
    lr = torch.rand(1, 3, 12, 12, generator=torch.Generator().manual_seed(0)).to(dtype)
    want = tiny_pipe(lr.float(), generator=torch.Generator().manual_seed(1)).image
    got = tiny_pipe(lr, generator=torch.Generator().manual_seed(1)).image
    assert got.dtype == torch.float32 and torch.equal(got, want)
    with pytest.raises(ImageError, match="empty"):
        tiny_pipe(torch.zeros(1, 3, 0, 64))


def test_row15_bench_creates_a_missing_json_folder_before_the_work(tmp_path, capsys, tiny_weights):
    hr_dir = tmp_path / "hr"                       # NIQE needs more than 64 x 64 pixels
    hr_dir.mkdir()
    save_image(load_photos("val")["coffee"][:, :96, :128], hr_dir / "coffee.png")
    target = tmp_path / "new" / "sub" / "b.json"
    code, _, err = run(["bench", "--hr-dir", hr_dir, "--json", target, "--methods", "bicubic",
                        "--weights", tiny_weights, "--device", "cpu"], capsys)
    assert code == 0, err
    assert json.loads(target.read_text())["methods"].keys() == {"bicubic"}


def test_row15_a_failed_bench_removes_the_folders_it_made(tmp_path, capsys, hr_dir, monkeypatch,
                                                          tiny_weights):

    def fails(*args, **kwargs):
        raise PatchScalerError("the work failed")
    monkeypatch.setattr(bench_job, "run_bench", fails)
    code, _, err = run(["bench", "--hr-dir", hr_dir, "--json", tmp_path / "new" / "sub" / "b.json",
                        "--weights", tiny_weights], capsys)
    assert code == 2 and "the work failed" in one_error_line(err)
    assert not (tmp_path / "new").exists()


def test_row15_an_impossible_output_folder_is_refused_before_the_work(tmp_path, capsys, hr_dir,
                                                                      monkeypatch):
    monkeypatch.setattr(bench_job, "load_pipeline", never("loading the models"))
    (tmp_path / "afile").write_text("x")
    code, _, err = run(["bench", "--hr-dir", hr_dir, "--json", tmp_path / "afile" / "b.json"], capsys)
    assert code == 2 and "afile" in one_error_line(err) and "not a folder" in err


def test_row15_memory_eval_k_is_checked_before_the_work(capsys, monkeypatch):
    monkeypatch.setattr(memory_cli, "evaluate_retrieval", never("the retrieval test"))
    code, _, err = run(["memory", "eval", "--json", "/tmp/never.json", "--k", "0"], capsys)
    assert code == 2 and "--k" in one_error_line(err)


@pytest.mark.parametrize("command", ["upscale", "qmap"])
def test_row16_a_failed_run_leaves_no_empty_folder(tmp_path, truncated_png, capsys, tiny_weights,
                                                   command):
    weights = tiny_weights if command == "upscale" else tiny_weights / "grm_tiny.safetensors"
    out = tmp_path / "new" / "out"
    code, _, _ = run([command, truncated_png, "-o", out, "--weights", weights], capsys)
    assert code == 2 and not (tmp_path / "new").exists()


def test_row16_kill_9_during_a_save_leaves_no_file_and_the_next_run_sweeps(tmp_path, lr_png,
                                                                           tiny_grm, capsys):
    out = tmp_path / "out"
    script = textwrap.dedent("""
        import os, signal, sys
        from PIL import Image
        from patchscaler_lite.cli import main
        def killed(self, fp, *args, **kwargs):
            fp.write(b"half an image")
            os.kill(os.getpid(), signal.SIGKILL)
        Image.Image.save = killed
        main(sys.argv[1:])
    """)
    r = subprocess.run([sys.executable, "-c", script, "qmap", str(lr_png), "-o", str(out),
                        "--weights", str(tiny_grm)], capture_output=True, timeout=300)
    assert r.returncode == -signal.SIGKILL
    assert not [p for p in tree(out) if not p.startswith(".")]       # nothing at a final name
    code, _, err = run(["qmap", lr_png, "-o", out, "--weights", tiny_grm], capsys)
    assert code == 0, err
    assert tree(out) == [f"coffee_lr_{k}.png" for k in ("coarse", "confidence", "groups")]


def test_row17_qmap_report_patch_larger_than_the_photos(tmp_path, hr_dir, capsys, tiny_grm):
    target = tmp_path / "r.json"
    code, _, err = run(["qmap-report", "--hr-dir", hr_dir, "--json", target, "--patch-size", "10000",
                        "--weights", tiny_grm], capsys)
    assert code == 2 and "--patch-size" in one_error_line(err)
    assert not target.exists()


def _strict_json(path):
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")
    return json.loads(Path(path).read_text(), parse_constant=refuse)


def test_row17_qmap_report_json_is_strict_nan_becomes_null_with_a_note(tmp_path, hr_dir, capsys,
                                                                       tiny_grm):
    target = tmp_path / "r.json"                    # one patch per photo: per-photo Spearman NaN
    code, _, err = run(["qmap-report", "--hr-dir", hr_dir, "--json", target, "--patch-size", "64",
                        "--weights", tiny_grm], capsys)
    assert code == 0, err
    rep = _strict_json(target)
    assert all(r["spearman"] is None for r in rep["images"])
    assert any(ln.startswith("note: ") and "null" in ln and str(target) in ln for ln in err.split("\n"))


def test_row18_notes_are_on_their_own_lines(tmp_path, capsys, tiny_weights):
    gray = tmp_path / "gray.png"
    Image.fromarray((np.random.default_rng(0).random((16, 20)) * 255).astype(np.uint8), "L").save(gray)
    code, _, err = run(["upscale", gray, "-o", tmp_path / "out", "--weights", tiny_weights], capsys)
    assert code == 0, err
    notes = [ln for ln in err.split("\n") if "note:" in ln]
    assert notes and all(ln.startswith("note: ") for ln in notes), err
    assert any("grayscale" in ln for ln in notes)


# ----------------------------------------------------------------------------- output policy


def test_policy_force_never_writes_over_an_input(tmp_path, lr_png, capsys, tiny_grm, sha256):
    # `qmap a.png a_coarse.png -o .`: a_coarse.png is both an input and an output
    second = lr_png.with_name("coffee_lr_coarse.png")
    shutil.copy(lr_png, second)
    before = sha256(second)
    code, _, err = run(["qmap", lr_png, second, "-o", lr_png.parent, "--weights", tiny_grm, "--force"],
                       capsys)
    assert code == 2 and "input" in one_error_line(err)
    assert sha256(second) == before and tree(lr_png.parent) == ["coffee_lr.png", "coffee_lr_coarse.png"]


def test_policy_a_failed_forced_run_keeps_the_old_files(tmp_path, lr_png, capsys, monkeypatch,
                                                        tiny_grm):
    out = tmp_path / "out"
    assert run(["qmap", lr_png, "-o", out, "--weights", tiny_grm], capsys)[0] == 0
    before = {p: (out / p).read_bytes() for p in tree(out)}
    disk_full_on_call(monkeypatch, 3)                    # the third PNG fails
    code, _, _ = run(["qmap", lr_png, "-o", out, "--weights", tiny_grm, "--force"], capsys)
    assert code == 2 and {p: (out / p).read_bytes() for p in tree(out)} == before


def test_policy_interrupt_cleans_up(tmp_path, lr_png, capsys, monkeypatch, tiny_weights):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(upscale_job, "stream_upscale", interrupted)
    code, _, err = run(["upscale", lr_png, "-o", tmp_path / "out", "--weights", tiny_weights], capsys)
    assert code == 130 and "interrupted" in err and not (tmp_path / "out").exists()


def test_policy_output_folder_that_is_a_file(tmp_path, lr_png, capsys, tiny_grm):
    (tmp_path / "out").write_text("x")
    code, _, err = run(["qmap", lr_png, "-o", tmp_path / "out", "--weights", tiny_grm], capsys)
    assert code == 2 and "not a folder" in one_error_line(err)
    assert (tmp_path / "out").read_text() == "x"


def test_policy_existing_output_that_is_a_folder(tmp_path, lr_png, capsys):
    (tmp_path / "q.png").mkdir()
    code, _, err = run(["memory", "query", lr_png, "-o", tmp_path / "q.png", "--force"], capsys)
    assert code == 2 and "folder" in one_error_line(err)


def test_policy_stale_partials_of_dead_runs_are_swept_live_ones_kept(tmp_path):
    target = tmp_path / "x.png"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = atomic.partial_path(target, pid=int(dead))
    live = atomic.partial_path(target, pid=os.getppid())
    for p in (stale, live):
        p.write_bytes(b"half")
    with files.Outputs([target]) as outs:
        outs.write(target, lambda f: f.write(b"whole"))
    assert not stale.exists() and live.exists() and target.read_bytes() == b"whole"


def test_policy_write_atomic_exclusive_refuses_a_file_that_appeared(tmp_path):
    target = tmp_path / "x.txt"

    def slow_writer(f):
        target.write_text("other")                     # another run publishes meanwhile
        f.write(b"mine")
    with pytest.raises(ImageError, match="another run"):
        atomic.write_atomic(target, slow_writer, exclusive=True)
    assert target.read_text() == "other" and tree(tmp_path) == ["x.txt"]


def test_policy_json_is_strict(tmp_path, recwarn):
    data = {"a": float("nan"), "b": [1.0, float("inf"), np.float32("nan")], "c": np.float64(0.5),
            "d": np.int64(3), "e": (1, 2)}
    with pytest.warns(UserWarning, match="3 values"):
        text = atomic.json_bytes(data, "r.json")
    assert json.loads(text, parse_constant=lambda c: pytest.fail(c)) == {
        "a": None, "b": [1.0, None, None], "c": 0.5, "d": 3, "e": [1, 2]}


def test_policy_a_library_writer_that_fills_the_disk_names_the_output(tmp_path):
    target = tmp_path / "new" / "m.safetensors"

    def save_like_a_library(path):                      # writes path and its JSON twin itself
        path.with_suffix(".json").write_text("{}")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    with pytest.raises(PatchScalerError, match=r"m\.safetensors: cannot write \(No space left"):
        with files.Outputs([target, target.with_suffix(".json")]) as outs:
            save_like_a_library(outs.stage(target, ".json"))
    assert tree(tmp_path) == []


def test_policy_only_what_the_run_made_is_removed(tmp_path, lr_png, truncated_png, capsys, tiny_grm):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("keep")
    code, _, _ = run(["qmap", lr_png, truncated_png, "-o", out / "a" / "b", "--weights", tiny_grm],
                     capsys)
    assert code == 2 and tree(out) == ["old.txt"]


def test_policy_inputs_and_outputs_in_the_same_folder_with_force(tmp_path, lr_png, capsys, tiny_grm,
                                                                 sha256):
    before = sha256(lr_png)
    code, _, err = run(["qmap", lr_png, "-o", lr_png.parent, "--weights", tiny_grm], capsys)
    assert code == 0, err
    assert sha256(lr_png) == before
    assert run(["qmap", lr_png, "-o", lr_png.parent, "--weights", tiny_grm, "--force"], capsys)[0] == 0


# ----------------------------------------------------------------------------- input policy


def test_policy_unreadable_input_says_permission_denied(tmp_path, lr_png, capsys, monkeypatch,
                                                        tiny_grm):
    real_open = Image.open

    def denied(fp, *args, **kwargs):
        if Path(fp).name == lr_png.name:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(fp))
        return real_open(fp, *args, **kwargs)
    monkeypatch.setattr(Image, "open", denied)
    code, _, err = run(["qmap", lr_png, "-o", tmp_path / "out", "--weights", tiny_grm], capsys)
    assert code == 2 and "Permission denied" in one_error_line(err) and str(lr_png) in err


def test_policy_broken_symlink_input(tmp_path, capsys, tiny_grm):
    link = tmp_path / "link.png"
    link.symlink_to(tmp_path / "gone.png")
    code, _, err = run(["qmap", link, "-o", tmp_path / "out", "--weights", tiny_grm], capsys)
    assert code == 2 and "broken symbolic link" in one_error_line(err)


def test_policy_probe_reads_the_header_only(tmp_path, no_decoding):
    info = image_io.probe_image(_bilevel_png(tmp_path / "b.png", 300, 200))
    assert (info.width, info.height, info.frames) == (300, 200, 1)


@pytest.mark.parametrize("what", ["grm", "dit"])
def test_row07_train_init_weights_are_checked_before_any_work(tmp_path, capsys, monkeypatch, what):
    monkeypatch.setattr(train_cli, "load_photo_set", never("the training set-up"))
    missing = tmp_path / "gone.safetensors"
    code, _, err = run(["train", what, "--preset", "tiny", "--init", missing, "-o", tmp_path / "out"],
                       capsys)
    assert code == 2 and str(missing) in one_error_line(err) and "not found" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("cmd", [["upscale", "x.png", "-o", "o"], ["qmap", "x.png", "-o", "o"],
                                 ["bench", "--data", "d", "--json", "b.json"]])
def test_row05_unknown_preset_is_refused_when_parsing(capsys, cmd):
    code, _, err = run([*cmd, "--preset", "huge"], capsys)
    line = one_error_line(err)
    assert code == 2 and "'huge'" in line and "lite" in line and "real" in line

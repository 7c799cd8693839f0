"""The command line, end to end, in-process (plus one real subprocess)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from patchscaler_lite.cli import build_parser, main
from patchscaler_lite.cli.common import pgs_from_args
from patchscaler_lite.config import fidelity_pgs
from patchscaler_lite.data import degrade, load_photos
from patchscaler_lite.image_io import save_image
from patchscaler_lite.weights import save_weights


@pytest.fixture(scope="module")
def lr_png(tmp_path_factory):
    """A real 48x40 LR photo (x4 bicubic degradation of a crop of coffee)."""
    hr = load_photos("val")["coffee"][:, 100:260, 200:392]
    path = tmp_path_factory.mktemp("in") / "coffee_lr.png"
    save_image(degrade(hr, 4), path)
    return path


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def one_error_line(err):
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith("note:")]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_qmap_writes_three_images_and_leaves_the_input_alone(tmp_path, lr_png, capsys, tiny_grm):
    before = lr_png.read_bytes()
    code, out, _ = run(["qmap", lr_png, "-o", tmp_path, "--weights", tiny_grm, "--device", "cpu"], capsys)
    assert code == 0 and "simple" in out
    for kind in ("coarse", "confidence", "groups"):
        im = Image.open(tmp_path / f"coffee_lr_{kind}.png")
        assert im.size == (192, 160) and im.mode == "RGB"
    assert lr_png.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]     # no temp files left


def test_qmap_with_the_shipped_weights(tmp_path, lr_png, capsys):
    code, out, _ = run(["qmap", lr_png, "-o", tmp_path, "--quantiles", "0.5,0.3"], capsys)
    assert code == 0
    counts = [int(w) for w in out.split() if w.isdigit()]
    # the pipeline's grouping: 32 px patches overlapping by 8 (stride 24) in 192x160 -> 8 x 7 = 56
    # patches: 50% / 30% / 20% = 28 / round(16.8) / the rest
    assert counts[-3:] == [28, 17, 11]


def test_existing_outputs_need_force(tmp_path, lr_png, capsys, tiny_grm):
    args = ["qmap", lr_png, "-o", tmp_path, "--weights", tiny_grm]
    assert run(args, capsys)[0] == 0
    code, _, err = run(args, capsys)
    assert code == 2 and "--force" in one_error_line(err)
    assert run(args + ["--force"], capsys)[0] == 0


@pytest.mark.parametrize("make,needle", [
    (lambda d: d / "missing.png", "no such file"),
    (lambda d: (d / "notes.png").write_text("hello") and d / "notes.png", "not an image"),
])
def test_bad_input_files(tmp_path, capsys, tiny_grm, make, needle):
    path = make(tmp_path)
    code, _, err = run(["qmap", path, "-o", tmp_path / "out", "--weights", tiny_grm], capsys)
    assert code == 2 and needle in one_error_line(err)


def test_truncated_png(tmp_path, lr_png, capsys, tiny_grm):
    data = lr_png.read_bytes()
    bad = tmp_path / "cut.png"
    bad.write_bytes(data[: len(data) // 2])
    code, _, err = run(["qmap", bad, "-o", tmp_path / "out", "--weights", tiny_grm], capsys)
    assert code == 2 and "truncated or corrupt" in one_error_line(err)
    assert not (tmp_path / "out" / "cut_coarse.png").exists()


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16"])
def test_unusual_png_modes_are_converted_with_a_note(tmp_path, capsys, tiny_grm, mode):
    rgb = (np.random.default_rng(0).random((24, 20, 3)) * 255).astype(np.uint8)
    im = Image.fromarray(rgb)
    if mode == "I;16":
        im = Image.fromarray(rgb[..., 0].astype(np.uint16) * 257)
    else:
        im = im.convert(mode)
    path = tmp_path / f"in_{mode.replace(';', '')}.png"
    im.save(path)
    code, _, err = run(["qmap", path, "-o", tmp_path / "out", "--weights", tiny_grm], capsys)
    assert code == 0 and "note:" in err
    assert Image.open(tmp_path / "out" / f"{path.stem}_coarse.png").size == (80, 96)


@pytest.mark.parametrize("opt", [["--thresholds", "0.3,0.6"], ["--thresholds", "0.6,0"],
                                 ["--thresholds", "0.5"], ["--quantiles", "0.8,0.5"],
                                 ["--device", "tpu"], ["--patch-size", "0"]])
def test_nonsensical_options(tmp_path, lr_png, capsys, tiny_grm, opt):
    code, _, err = run(["qmap", lr_png, "-o", tmp_path, "--weights", tiny_grm, *opt], capsys)
    assert code == 2
    one_error_line(err)
    assert not any(tmp_path.iterdir())


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without CUDA")
def test_cuda_requested_without_cuda(tmp_path, lr_png, capsys, tiny_grm):
    code, _, err = run(["qmap", lr_png, "-o", tmp_path, "--weights", tiny_grm, "--device", "cuda"], capsys)
    assert code == 2 and "CUDA is not available" in one_error_line(err)


def test_missing_corrupt_and_mismatched_weights(tmp_path, lr_png, capsys, tiny_grm):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 100)
    other = tmp_path / "dit.safetensors"
    save_weights(other, {"w": torch.zeros(2)}, "dit", {"dim": 8})
    for w, needle in [(tmp_path / "none.safetensors", "not found"), (bad, "bad.safetensors"),
                      (other, "expected 'grm'")]:
        code, _, err = run(["qmap", lr_png, "-o", tmp_path / "o", "--weights", w], capsys)
        assert code == 2 and needle in one_error_line(err), err


def test_unwritable_output(lr_png, capsys, tiny_grm):
    code, _, err = run(["qmap", lr_png, "-o", "/sys/patchscaler_out", "--weights", tiny_grm], capsys)
    assert code == 2
    one_error_line(err)


def test_qmap_report_json(tmp_path, capsys, tiny_grm):
    hr_dir = tmp_path / "hr"
    hr_dir.mkdir()
    for name in ("coffee", "chelsea"):
        save_image(load_photos("val")[name][:, :128, :160], hr_dir / f"{name}.png")
    code, out, _ = run(["qmap-report", "--hr-dir", hr_dir, "--json", tmp_path / "r.json",
                        "--weights", tiny_grm, "--patch-size", "16"], capsys)
    assert code == 0 and "spearman" in out
    rep = json.loads((tmp_path / "r.json").read_text())
    assert -1 <= rep["spearman"] <= 1 and -1 <= rep["spearman_heuristic"] <= 1
    assert set(rep["psnr"]) == {"bicubic", "grm"} and len(rep["images"]) == 2
    assert rep["patches"] == 2 * (128 // 16) * (160 // 16)


@pytest.mark.parametrize("opt", [["--steps", "3,2,1"], ["--starts", "100,200,2000"],
                                 ["--uniform", "5"], ["--starts", "300,200,100"]])
def test_upscale_rejects_bad_schedules(tmp_path, lr_png, capsys, opt):
    code, _, err = run(["upscale", lr_png, "-o", tmp_path, *opt], capsys)
    assert code == 2
    one_error_line(err)
    assert not any(tmp_path.iterdir())


def test_module_entry_point_exits_nonzero_with_one_line():
    r = subprocess.run([sys.executable, "-m", "patchscaler_lite", "qmap", "/no/such.png", "-o", "/tmp/x"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip() == "error: /no/such.png: no such file"
    assert not Path("/tmp/x/such_coarse.png").exists()


def test_upscale_end_to_end(tmp_path, lr_png, capsys, tiny_weights):
    args = ["upscale", lr_png, "-o", tmp_path, "--weights", tiny_weights, "--seed", "1"]
    code, _, err = run(args, capsys)
    assert code == 0, err
    out = tmp_path / "coffee_lr_x4.png"
    assert Image.open(out).size == (192, 160)
    first = out.read_bytes()
    code, _, err = run(args, capsys)
    assert code == 2 and "--force" in one_error_line(err)
    assert run(args + ["--force"], capsys)[0] == 0
    assert out.read_bytes() == first                     # same seed, same device: same file


def test_bench_end_to_end(tmp_path, capsys, tiny_weights):
    hr_dir = tmp_path / "hr"
    hr_dir.mkdir()
    for name in ("coffee", "chelsea"):
        save_image(load_photos("val")[name][:, :96, :128], hr_dir / f"{name}.png")
    code, out, err = run(["bench", "--hr-dir", hr_dir, "--json", tmp_path / "b.json",
                          "--csv", tmp_path / "b.csv", "--plot", tmp_path / "b.png",
                          "--methods", "bicubic,grm,uniform-3,pgs,pgs-notexture",
                          "--weights", tiny_weights, "--device", "cpu"], capsys)
    assert code == 0, err
    rep = json.loads((tmp_path / "b.json").read_text())
    assert rep["device"] == "cpu" and set(rep["pgs_config"]) >= {"thresholds", "starts", "steps"}
    assert set(rep["methods"]) == {"bicubic", "grm", "uniform-3", "pgs", "pgs-notexture"}
    for m in rep["methods"].values():
        assert {"psnr", "ssim", "niqe", "seconds", "patch_nfe"} <= set(m)
    assert len(rep["rows"]) == 10
    uni = [r for r in rep["rows"] if r["method"] == "uniform-3"]
    assert all(r["patch_nfe"] == 3 * (r["patches_simple"] + r["patches_medium"] + r["patches_hard"])
               for r in uni)
    assert rep["methods"]["bicubic"]["patch_nfe"] == 0
    assert Image.open(tmp_path / "b.png").size[0] > 100
    assert (tmp_path / "b.csv").read_text().count("\n") == 11


@pytest.mark.parametrize("value", ["1.5", "-0.1", "nan", "half"])
def test_fidelity_outside_the_unit_interval_is_refused_when_parsing(tmp_path, lr_png, capsys, value):
    code, _, err = run(["upscale", lr_png, "-o", tmp_path / "o", "--fidelity", value], capsys)
    assert code == 2 and "--fidelity" in err and not (tmp_path / "o").exists()


def test_fidelity_excludes_explicit_starts(tmp_path, lr_png, capsys):
    code, _, err = run(["upscale", lr_png, "-o", tmp_path / "o", "--fidelity", "0.5",
                        "--starts", "10,20,30"], capsys)
    assert code == 2 and "--fidelity" in one_error_line(err) and not (tmp_path / "o").exists()


def test_fidelity_sets_the_plan_the_pipeline_runs():
    args = build_parser().parse_args(["upscale", "x.png", "-o", "o", "--fidelity", "0.75",
                                      "--steps", "1,3,5"])
    pgs = pgs_from_args(args)
    assert pgs.starts == fidelity_pgs(0.75).starts and pgs.steps == (1, 3, 5)

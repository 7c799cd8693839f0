"""Metrics vs scikit-image on real photos; NIQE offline; deep metrics fail with a clear error."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from patchscaler_lite import data
from patchscaler_lite.errors import ImageError, PatchScalerError
from patchscaler_lite.eval import metrics
from patchscaler_lite.image_io import to_uint8


def bicubic_pair(photo: torch.Tensor, scale: int = 4):
    """(sr, hr): a real photo and its bicubic x4 reconstruction, both (1, 3, H, W) in [0, 1]."""
    hr = data.crop_to_scale(photo[None], scale)
    return data.bicubic_up(data.degrade(hr, scale), scale), hr


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea"])
def test_psnr_matches_skimage(val_photos, name):
    sr, hr = bicubic_pair(val_photos[name])
    ref = peak_signal_noise_ratio(to_uint8(hr), to_uint8(sr), data_range=255)
    assert 20 < ref < 40                                            # a plausible bicubic PSNR
    assert metrics.psnr(sr, hr) == pytest.approx(ref, abs=1e-3)


def test_psnr_y_matches_bt601_luma_oracle(val_photos):
    """Y of YCbCr (BT.601, 16..235), as in the SR literature, computed here with numpy."""
    sr, hr = bicubic_pair(val_photos["flower"])

    def luma(x):
        u8 = to_uint8(x).astype(np.float64)
        return 16.0 + u8 @ np.array([65.481, 128.553, 24.966]) / 255.0

    ref = peak_signal_noise_ratio(luma(hr), luma(sr), data_range=255)
    assert metrics.psnr(sr, hr, y_channel=True) == pytest.approx(ref, abs=0.02)


@pytest.mark.parametrize("name", ["astronaut", "coffee"])
def test_ssim_matches_skimage(val_photos, name):
    # pyiqa's SSIM runs float64 convolutions (~1 s per 256 px image on CPU): use a 160 px crop.
    sr, hr = bicubic_pair(val_photos[name][:, 100:260, 100:260])
    ref = structural_similarity(to_uint8(hr), to_uint8(sr), gaussian_weights=True, sigma=1.5,
                                use_sample_covariance=False, data_range=255, channel_axis=-1)
    assert 0.3 < ref < 0.99
    assert metrics.ssim(sr, hr) == pytest.approx(ref, abs=2e-3)


def test_ssim_y_matches_skimage_on_bt601_luma(val_photos):
    sr, hr = bicubic_pair(val_photos["coffee"][:, 100:260, 100:260])

    def luma(x):
        return 16.0 + to_uint8(x).astype(np.float64) @ np.array([65.481, 128.553, 24.966]) / 255.0

    ref = structural_similarity(luma(hr), luma(sr), gaussian_weights=True, sigma=1.5,
                                use_sample_covariance=False, data_range=255)
    assert 0.3 < ref < 0.99
    assert metrics.ssim(sr, hr, y_channel=True) == pytest.approx(ref, abs=2e-3)   # measured 1.5e-3


def test_piqe_penalises_noise_and_blur(val_photos):
    hr = val_photos["coffee"][None, :, 100:260, 100:260]
    noisy = (hr + 0.08 * torch.randn(hr.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    blurred = bicubic_pair(hr[0])[0]
    clean = metrics.piqe(hr)
    assert 5 < clean < 50                                           # measured 24.6
    assert metrics.piqe(noisy) > clean + 10 and metrics.piqe(blurred) > clean + 10


def test_batch_metric_is_mean_of_singles(val_photos):
    sr, hr = bicubic_pair(val_photos["astronaut"])
    sr2, hr2 = sr[..., :256, :256], hr[..., :256, :256]
    sr3, hr3 = sr[..., 256:, 256:], hr[..., 256:, 256:]
    batch = metrics.psnr(torch.cat([sr2, sr3]), torch.cat([hr2, hr3]))
    assert batch == pytest.approx((metrics.psnr(sr2, hr2) + metrics.psnr(sr3, hr3)) / 2, abs=1e-4)


def test_niqe_offline_on_a_shipped_photo(astronaut):
    sharp = metrics.niqe(astronaut)
    assert sharp == pytest.approx(3.06, abs=0.05)                   # pyiqa with its own file
    blurred = data.bicubic_up(data.degrade(astronaut, 4), 4)
    assert metrics.niqe(blurred) > sharp + 1.0                      # blur looks less natural


def test_metric_errors(val_photos):
    x = val_photos["astronaut"][None, :, :64, :64]
    with pytest.raises(PatchScalerError, match="unknown metric"):
        metrics.score("psnr2", x, x)
    with pytest.raises(PatchScalerError, match="unknown metric"):
        metrics.get_metric("psnr2")
    with pytest.raises(PatchScalerError, match="needs a reference"):
        metrics.score("psnr", x)
    with pytest.raises(PatchScalerError, match="differ in shape"):
        metrics.psnr(x, x[..., :32])
    with pytest.raises(ImageError, match="NaN"):
        metrics.psnr(torch.full_like(x, float("nan")), x)


def test_every_offline_metric_is_registered():
    assert set(metrics.OFFLINE_METRICS) <= set(metrics.METRICS)
    assert metrics.NIQE_PARAMS.is_file()


DEEP_METRIC_SCRIPT = """
import json, sys
from patchscaler_lite.eval import metrics
try:
    metrics.get_metric("lpips")
except metrics.MetricWeightsError as e:
    print(json.dumps({"error": str(e)}))
    sys.exit(0)
print(json.dumps({"error": None}))
"""


OFFLINE_SCRIPT = """
import json, torch
from patchscaler_lite.eval import metrics
x = torch.rand(1, 3, 96, 96, generator=torch.Generator().manual_seed(0))
y = (x + 0.05).clamp(0, 1)
print(json.dumps({m: metrics.score(m, x, y if metrics.METRICS[m][2] else None).item()
                  for m in metrics.OFFLINE_METRICS}))
"""


def test_offline_metrics_need_no_download(tmp_path):
    """Every metric of OFFLINE_METRICS (the bench's columns) runs with an empty TORCH_HOME."""
    torch_home = tmp_path / "torch_home"
    torch_home.mkdir()
    env = {**os.environ, "TORCH_HOME": str(torch_home), "HF_HUB_OFFLINE": "1",
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", OFFLINE_SCRIPT], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    scores = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(scores) == {"psnr", "psnry", "ssim", "ssimy", "niqe", "piqe"}
    assert all(np.isfinite(v) for v in scores.values())
    assert not any(p.is_file() for p in torch_home.rglob("*"))     # nothing was downloaded


def test_deep_metric_without_weights_names_the_file(tmp_path):
    """TORCH_HOME is read when pyiqa is imported, so this runs in a fresh interpreter."""
    torch_home = tmp_path / "torch_home"
    torch_home.mkdir()
    env = {**os.environ, "TORCH_HOME": str(torch_home), "HF_HUB_OFFLINE": "1",
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", DEEP_METRIC_SCRIPT], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    msg = json.loads(proc.stdout.strip().splitlines()[-1])["error"]
    assert msg is not None, "lpips loaded without weight files?"
    assert "lpips" in msg and "\n" not in msg
    assert any(ext in msg for ext in (".pth", ".pt", ".ckpt", ".safetensors")), msg
    assert str(torch_home) in msg                                   # says where to put it


"""Pin what the shipped weights produce (diffusers' `expected_slice` habit): a silent change in the
numbers of the GRM or of the whole pipeline fails CI. The expected values were measured with the
shipped lite weights on CPU in float32; update them only together with the weights."""

import pytest
import torch

import patchscaler_lite as psl
from patchscaler_lite.eval.metrics import psnr

EXPECTED_SLICE = [  # out.image[0, :, 60:63, 60:63] of a 32x32 LR crop of `coffee`, seed 0
    0.9673537015914917, 0.9651306867599487, 0.9731975197792053, 0.968541145324707,
    0.9640589952468872, 0.9703493118286133, 0.965976357460022, 0.9660602807998657,
    0.9757331609725952, 0.9524633288383484, 0.9450330138206482, 0.9384438991546631,
    0.9539985656738281, 0.9477494955062866, 0.9405981302261353, 0.9515127539634705,
    0.9518102407455444, 0.9504308700561523, 0.9392164349555969, 0.9223809838294983,
    0.8938108086585999, 0.9446397423744202, 0.9315168261528015, 0.9037424325942993,
    0.945448637008667, 0.9424008131027222, 0.9217624664306641]


@pytest.fixture(scope="module")
def coffee(val_photos):
    return psl.crop_to_scale(val_photos["coffee"], 4)[None]              # (1, 3, 400, 600)


def test_shipped_grm_gain_on_coffee_is_pinned(coffee):
    lr = psl.degrade(coffee, 4)
    coarse, conf = psl.restore(psl.load_grm(), lr)
    gain = psnr(coarse, coffee) - psnr(psl.bicubic_up(lr, 4), coffee)
    assert gain == pytest.approx(26.83479 - 25.88734, abs=2e-3)          # +0.947 dB
    assert conf.mean().item() == pytest.approx(0.748018, abs=1e-4)


def test_shipped_pipeline_output_slice_is_pinned(coffee):
    hr = coffee[..., 64:192, 128:256]
    out = psl.PatchScalerPipeline.from_pretrained()(psl.degrade(hr, 4),
                                                    generator=torch.Generator().manual_seed(0))
    assert out.counts == {"simple": 12, "medium": 10, "hard": 3} and out.total_nfe == 50
    got = out.image[0, :, 60:63, 60:63].flatten()
    torch.testing.assert_close(got, torch.tensor(EXPECTED_SLICE), atol=1e-4, rtol=0)

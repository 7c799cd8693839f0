"""The numbers the notebooks print beside their figures: 03's plan explorer shows grid.evaluate's
result, 04's size readout says when it extrapolates, and bench.size_scaling keeps the fastest of
interleaved repeats (so repeated runs on a shared machine agree)."""

import matplotlib.pyplot as plt
import pandas as pd
import pytest
import torch

from patchscaler_lite.eval import bench
from patchscaler_lite.patches import make_layout
from patchscaler_lite.viz import sampling as vs


def test_plan_view_shows_the_evaluated_numbers():
    result = {"patch_nfe": 80.0, "seconds": 0.9, "psnr": 27.5, "niqe": 7.1}
    sweep = pd.DataFrame({"patch_nfe": [25, 100], "niqe": [8.0, 6.5], "kind": ["uniform", "pgs"]})
    groups = torch.tensor([[[0, 0, 1, 2, 2]] * 5])
    fig = vs.plan_view(torch.rand(1, 3, 128, 128), groups, make_layout((1, 3, 128, 128), 32, 8),
                       result, sweep)
    text = " ".join(ax.get_title() for ax in fig.axes)
    plt.close(fig)
    for shown in ("patch-NFE 80", "0.90 s", "PSNR 27.50 dB", "NIQE 7.10", "10/5/10"):
        assert shown in text


SCALING = pd.DataFrame([{"method": m, "lr_size": n, "hr_pixels": (4 * n) ** 2} for m in ("grm", "pgs")
                        for n in (16, 32, 48, 64)])
FITS = {"grm": (2e-6, 0.01), "pgs": (2.5e-5, 0.05)}


def test_scaling_readout_inside_the_measured_sizes():
    text = vs.scaling_readout(SCALING, FITS, 0.03)
    assert "EXTRAPOLATED" not in text and "inside the measured range 0.004-0.066 MP" in text
    assert text.index("grm:") < text.index("pgs:")
    assert "pgs: about 0.80 s for a 0.03 MP output" in text


@pytest.mark.parametrize("mp, ratio", [(1.0, "15x"), (10.0, "153x")])
def test_scaling_readout_says_extrapolated_beyond_them(mp, ratio):
    text = vs.scaling_readout(SCALING, FITS, mp, note="cpu")
    assert text.startswith(f"EXTRAPOLATED {ratio} beyond the largest measured size (0.066 MP)")
    assert text.endswith("(cpu)")
    assert "EXTRAPOLATED below" in vs.scaling_readout(SCALING, FITS, 0.001)


class _Cfg:
    scale = 4


class _Grm:
    cfg = _Cfg()


class _Pipe:
    grm, device = _Grm(), torch.device("cpu")


def test_size_scaling_keeps_the_fastest_of_interleaved_repeats(monkeypatch):
    order = []
    # one slowdown per pass (3 sizes x 2 methods): pass 1 slow, pass 2 fast, pass 3 in between
    pass_factor = iter([f for f in (3.0, 1.0, 2.0) for _ in range(2 * 3)])

    def fake_runner(name, pipe, seed=0):
        def run(lr):
            return lr, {"patch_nfe": lr.shape[-1]}
        run.method = name
        return run

    def fake_timed(run, lr, device):
        order.append((run.method, lr.shape[-1]))
        n = lr.shape[-1]
        factor = {"grm": 1e-3, "pgs": 1e-2}[run.method]
        return lr, {"patch_nfe": n}, factor * n * n * next(pass_factor), float(n)

    monkeypatch.setattr(bench, "make_runner", fake_runner)
    monkeypatch.setattr(bench, "timed", fake_timed)
    df = bench.size_scaling(_Pipe(), torch.rand(1, 3, 64, 64), [16, 8, 12], methods=("grm", "pgs"))
    assert order[:6] == [("grm", 8), ("pgs", 8), ("grm", 12), ("pgs", 12), ("grm", 16), ("pgs", 16)]
    assert len(order) == 3 * 6
    assert df[["method", "lr_size"]].values.tolist() == [["grm", 8], ["grm", 12], ["grm", 16],
                                                          ["pgs", 8], ["pgs", 12], ["pgs", 16]]
    assert df.seconds.tolist() == pytest.approx([1e-3 * n * n for n in (8, 12, 16)] +
                                                [1e-2 * n * n for n in (8, 12, 16)])
    assert df.seconds_median.tolist() == pytest.approx((2 * df.seconds).tolist())
    assert (df.repeats == 3).all() and df.hr_pixels.tolist()[:3] == [32 ** 2, 48 ** 2, 64 ** 2]

"""Every figure the notebooks show fits a notebook cell (<= 9 in at 100 dpi), has no text under
8 pt and no overlapping labels (viz.readable), on small synthetic inputs shaped like the real ones,
including the awkward cases a slider can reach (8 orientations, a few patches of P = 64, K = 12)."""

import dataclasses

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.text import Text

from patchscaler_lite import viz
from patchscaler_lite.config import descriptor_for
from patchscaler_lite.eval.trajectory import Trajectory
from patchscaler_lite.patches import make_layout
from patchscaler_lite.viz import memory as vm
from patchscaler_lite.viz import qmap as vq
from patchscaler_lite.viz import sampling as vs
from patchscaler_lite.viz.readable import readability_problems

G = torch.Generator().manual_seed(0)


def rand(*shape):
    return torch.rand(*shape, generator=G)


def sweep_frame(n=60):
    """A claims.sweep-like table: plans with patch-NFE, seconds, PSNR, NIQE, kind, n_settings."""
    rng = np.random.default_rng(0)
    nfe = rng.integers(25, 400, n)
    return pd.DataFrame({"patch_nfe": nfe, "seconds": 0.3 + 0.004 * nfe, "psnr": 28 - 0.002 * nfe,
                         "psnr_hard": 24 + rng.normal(0, 0.2, n),
                         "niqe": 9 - 0.004 * nfe + rng.normal(0, .2, n),
                         "kind": ["uniform" if i % 10 == 0 else "pgs" for i in range(n)],
                         "n_settings": [1 + i % 3 for i in range(n)],
                         **{f"{a}{g}": 100 for a in "TN" for g in (1, 2, 3)}})


def bench_means():
    names = ["bicubic", "grm", "uniform-6", "pgs", "pgs-notexture", "realesrgan"]
    return pd.DataFrame({"seconds": [0.003, 0.2, 4.4, 1.53, 1.49, 3.6],
                         "psnr": [27.8, 29.6, 28.8, 29.19, 29.2, 26.2],
                         "niqe": [7.9, 6.3, 4.52, 4.70, 4.72, 4.68],
                         "psnr_hard": [22.1, 23.4, 23.0, 23.1, 23.1, 21.0],
                         "psnr_simple": [33.0, 35.1, 34.0, 34.8, 34.8, 31.0]}, index=names)


def trajectory_of(N, n=6, P=32):
    return Trajectory(ts=list(np.linspace(350, 0, N + 1).astype(int)), start=rand(n, 3, P, P) * 2 - 1,
                      x0_hat=rand(N, n, 3, P, P) * 2 - 1, x=rand(N, n, 3, P, P) * 2 - 1,
                      coarse=rand(n, 3, P, P) * 2 - 1, truth=rand(n, 3, P, P) * 2 - 1,
                      groups=torch.tensor([0, 2] * (n // 2)), qmap=rand(n),
                      interior=torch.ones(n, dtype=bool))


def steps_frames(T=350, steps=(1, 2, 4, 6, 8)):
    curves = pd.DataFrame([{"T": T, "N": N, "niqe": 8 - N / 4, **{f"psnr_{g}": 30 - N / 10 for g in
                           ("simple", "medium", "hard")}, **{f"conv_{g}": 30 + 3 * N for g in
                           ("simple", "medium", "hard")}} for N in steps])
    only = pd.DataFrame([{"group": g, "N": N, "niqe": 8 - N / 5} for g in ("simple", "medium", "hard")
                         for N in steps])
    return curves, only


def scaling_frame():
    rows = [{"method": m, "lr_size": n, "hr_pixels": (4 * n) ** 2, "seconds": k * n * n / 500 + 0.05,
             "peak_mem_mb": n / 2, "patch_nfe": 0} for m, k in (("grm", 0.1), ("pgs", 1.0))
            for n in (16, 32, 48, 64)]
    return pd.DataFrame(rows)


def query_args(K):
    return (rand(3, 128, 128), 40, 24, rand(3, 32, 32), rand(K, 3, 32, 32), rand(K),
            ["budgie-backgrounds_Apollo"] * K)


def layout_of(H, P=32, overlap=8):
    return make_layout((1, 3, H, H), P, overlap)


def tracks_frame() -> pd.DataFrame:
    keys = [(t, p, m) for t in ("bicubic", "realistic") for p in ("lite", "real")
            for m in ("bicubic", "grm", "pgs")]
    return pd.DataFrame([{"track": t, "preset": p, "method": m, "psnr": 26 + k / 4, "niqe": 7 - k / 5}
                         for k, (t, p, m) in enumerate(keys)])


FIGURES = {
    # notebook 00
    "zoom_grid": lambda: viz.zoom_grid({"LR": rand(1, 3, 32, 32), **{k: rand(1, 3, 128, 128) for k in
                                        ("bicubic", "Real-ESRGAN", "GRM (coarse)", "PatchScaler",
                                         "HR (truth)")}}, 32, 40, 64),
    # asked for more columns than a cell holds: capped, not shrunk by the browser
    "zoom_grid_cols6": lambda: viz.zoom_grid({k: rand(1, 3, 96, 96) for k in "abcdef"}, 0, 0, 64, cols=6),
    "stage_seconds": lambda: viz.stage_seconds({"grm": 0.3, "grouping": 0.01, "retrieval": 0.1,
                                                "sampling": 1.4, "reassembly": 0.01}),
    # notebook 01
    "plot_bracket": lambda: vq.plot_bracket(1e-3 * torch.tensor([.01, .3, 1, 3, 10, 100, 1000.]), 1e-3,
                                            torch.tensor([1, 1, 1, .33, .1, .01, .001])),
    "plot_grm_maps": lambda: vq.plot_grm_maps(rand(1, 3, 48, 48), rand(1, 3, 192, 192),
                                              rand(1, 1, 192, 192), rand(1, 3, 192, 192)),
    "plot_qmap": lambda: vq.plot_qmap(rand(1, 3, 192, 192), rand(8, 8), layout_of(192, overlap=8)),
    "plot_qmap_many": lambda: vq.plot_qmap(rand(1, 3, 288, 288), rand(12, 12), layout_of(288)),
    "plot_grouping": lambda: vq.plot_grouping(rand(1, 3, 192, 192), rand(8, 8), torch.randint(0, 3, (8, 8)),
                                              layout_of(192), (1, 2, 6), (0.7, 0.5)),
    "plot_calibration": lambda: vq.plot_calibration(rand(400), rand(400) ** 4, rand(400) ** 3 / 100, 10),
    "plot_calibration_P64": lambda: vq.plot_calibration(rand(36), rand(36), 0.002 + rand(36) / 1000, 20),
    # notebook 02
    **{f"gabor_bank_O{o}_l{lam}_b{b}": (lambda o=o, lam=lam, b=b: vm.plot_gabor_bank(dataclasses.replace(
        descriptor_for(32), orientations=o, min_wavelength=lam, bandwidth=b)))
       for o, lam, b in ((2, 2.0, 0.5), (4, 2.0, 1.0), (8, 2.0, 2.0), (8, 8.0, 1.0))},
    "plot_inertia": lambda: vm.plot_inertia([310.2, 250.1, 240.7, 238.9, 238.2, 238.0]),
    "plot_key_map": lambda: vm.plot_key_map(torch.nn.functional.normalize(rand(48, 20), dim=1),
                                            rand(48, 3, 32, 32), torch.arange(48) % 9,
                                            [f"photo_{i}" for i in range(9)], n_thumbs=30),
    "plot_query_K1": lambda: vm.plot_query(*query_args(1)),
    "plot_query_K6": lambda: vm.plot_query(*query_args(6)),
    "plot_query_K12": lambda: vm.plot_query(*query_args(12)),
    "plot_sweep": lambda: vm.plot_sweep([{"M": m, "K": k, "top1": 0.5, "topk": 0.5 + k / 40}
                                         for m in (16, 64, 256, 1024) for k in (1, 2, 4, 8, 16)]),
    "plot_retrievals": lambda: vm.plot_retrievals(rand(4, 3, 32, 32), rand(4, 3, 3, 32, 32), rand(4, 3),
                                                  [["lomiri-wallpapers_Sunset"] * 3] * 4,
                                                  ["brick", "grass", "gravel", "grass"]),
    # notebook 03
    "steps_curves": lambda: vs.steps_curves(*steps_frames(), 350),
    "trajectory_N4": lambda: vs.trajectory_figure(trajectory_of(4), {"Simple #3": 0, "Hard #0": 1}),
    "trajectory_N8": lambda: vs.trajectory_figure(trajectory_of(8), {"Simple #12": 0, "Hard #10": 1}),
    "plan_view": lambda: vs.plan_view(rand(1, 3, 128, 128), torch.randint(0, 3, (1, 5, 5)), layout_of(128),
                                      {"patch_nfe": 80, "seconds": 0.9, "psnr": 27.5, "niqe": 7.1},
                                      sweep_frame()),
    "pareto_figure": lambda: vs.pareto_figure(sweep_frame(), "niqe", sweep_frame().iloc[3], 150.0,
                                              title="best plan within budget: "
                                                    "((100, 1), (200, 2), (350, 4))"),
    "groups_fronts": lambda: vs.groups_fronts(sweep_frame()),
    # notebook 04
    **{f"bench_scatter_{m}": (lambda m=m: vs.bench_scatter(bench_means(), (m,), note="device cpu (2 "
       "threads); batch 1 image, 16 patches per denoiser call; one warm-up call first; wall-clock "
       "around the method only (degradation, metrics and I/O excluded)")) for m in
       ("psnr", "niqe", "psnr_hard", "psnr_simple")},
    "texture_bars": lambda: vs.texture_bars(pd.DataFrame({"gain_psnr": [.1, -.2, .05, .0],
                                                          "gain_psnr_hard": [.2, -.1, .1, .3],
                                                          "gain_niqe": [-.3, .2, .1, .0]},
                                                         index=["astronaut", "coffee", "chelsea", "flower"])),
    "tracks_bars": lambda: vs.tracks_bars(tracks_frame(), title="FAST MODE (small crops): a smoke "
                                          "test, too noisy to read anything into"),
    "scaling_figure": lambda: vs.scaling_figure(scaling_frame(), {"grm": (1e-7, 0.05), "pgs": (1e-6, 0.1)},
                                                note="device cpu (2 threads); one warm-up call first"),
}


@pytest.mark.parametrize("name", FIGURES)
def test_figure_is_readable_in_a_notebook_cell(name):
    fig = FIGURES[name]()
    try:
        assert readability_problems(fig) == []
    finally:
        plt.close(fig)


def test_the_check_catches_a_wide_figure_small_text_and_overlaps():
    fig, (a, b) = plt.subplots(1, 2, figsize=(14, 3))
    a.set_title("tiny", fontsize=5)
    a.annotate("over the spine", (0.95, 0.5), xycoords="axes fraction", fontsize=9)
    fig.suptitle("a long figure title", y=0.8)
    b.text(0.5, 0.5, "one", fontsize=12)
    b.text(0.5, 0.5, "two", fontsize=12)
    problems = readability_problems(fig)
    plt.close(fig)
    assert any("wide" in p for p in problems)
    assert any("'tiny': 5 pt" in p for p in problems)
    assert any("crosses its panel's frame" in p for p in problems)
    assert any("'a long figure title' lies over a panel" in p for p in problems)
    assert any("'one' overlaps 'two'" in p for p in problems)


def test_the_check_passes_a_plain_figure():
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot([1, 2, 3], [1, 4, 9], label="x^2")
    ax.set(title="squares", xlabel="x", ylabel="y")
    ax.legend()
    fig.tight_layout()
    assert readability_problems(fig) == []
    assert all(isinstance(t, Text) for t in fig.findobj(Text))
    plt.close(fig)

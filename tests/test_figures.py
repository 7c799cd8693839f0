"""The README figures (viz/figures.py) have the panels and titles they promise, computed from the
shipped weights on small crops; pareto_plot writes a PNG atomically."""

import json

import matplotlib.pyplot as plt
import pytest
import torch

import patchscaler_lite as psl
from patchscaler_lite.viz import figures, pareto_plot


@pytest.fixture(scope="module")
def pipe():
    return psl.PatchScalerPipeline.from_pretrained()


@pytest.fixture(scope="module")
def crops(val_photos):
    return {n: psl.crop_to_scale(im, 4)[:, :128, :128] for n, im in list(val_photos.items())[:2]}


def test_pipeline_figure_has_six_titled_panels(pipe, crops):
    hr = next(iter(crops.values()))[None]
    fig = figures.pipeline_figure(pipe, hr, (16, 16, 64))
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["LR input (x4 nearest)", "GRM coarse", "confidence C", "Qmap groups",
                      "PatchScaler", "HR truth"]
    assert all(ax.images and ax.images[0].get_array().shape[:2] == (64, 64) for ax in fig.axes)
    assert "patch-NFE" in fig._suptitle.get_text()
    plt.close(fig)


def test_qmap_figure_scatters_every_patch_of_every_photo(pipe, crops):
    fig = figures.qmap_figure(pipe, crops)
    (ax,) = fig.axes
    assert ax.get_title().startswith("Qmap vs real error, val photos: Spearman")
    assert ax.get_yscale() == "log"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(crops)
    assert sum(len(c.get_offsets()) for c in ax.collections) == len(crops) * (128 // 32) ** 2
    plt.close(fig)


def test_retrieval_figure_has_a_query_and_k_entries_per_row(pipe, crops):
    hr = next(iter(crops.values()))[None]
    fig = figures.retrieval_figure(pipe, hr, [(0, 0), (64, 32)], k=3)
    titles = [ax.get_title() for ax in fig.axes]
    assert len(titles) == 2 * 4
    assert titles[0] == "query (0,0)" and titles[4] == "query (64,32)"
    assert all("sim" in t for i, t in enumerate(titles) if i % 4)
    plt.close(fig)


def test_pareto_plot_writes_a_png(tmp_path):
    bench = {"device": "cpu", "degradation": "bicubic", "rows": [{"image": "a"}],
             "methods": {"bicubic": {"seconds": 0.01, "psnr": 27.0, "niqe": 7.5},
                         "pgs": {"seconds": 1.5, "psnr": 28.0, "niqe": 4.1}}}
    pareto_plot(json.loads(json.dumps(bench)), tmp_path / "p.png")
    data = (tmp_path / "p.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and not list(tmp_path.glob(".*"))


def test_the_figures_script_writes_the_three_figures(tmp_path, monkeypatch, crops, pipe):
    monkeypatch.setattr(figures, "load_photos", lambda split: {
        "astronaut": torch.rand(3, 300, 300, generator=torch.Generator().manual_seed(0)),
        "coffee": torch.rand(3, 500, 500, generator=torch.Generator().manual_seed(1))})
    written = figures.make_figures(tmp_path)
    assert [p.name for p in written] == ["pipeline.png", "qmap.png", "retrieval.png"]
    assert all(p.stat().st_size > 1000 for p in written)

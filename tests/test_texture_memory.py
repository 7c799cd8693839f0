"""Texture memory: descriptor (vs a convolution oracle), k-means, exact retrieval, save/load, CLI errors."""

from __future__ import annotations

import argparse
import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image

from patchscaler_lite.config import DescriptorConfig
from patchscaler_lite.data import bicubic_up, load_photos
from patchscaler_lite.errors import PatchScalerError, WeightsError
from patchscaler_lite.patches import dihedral, patchify
from patchscaler_lite.texture.gabor import (
    describe,
    describe_raw,
    feature_names,
    fit_standardizer,
    gabor_energy,
    gabor_energy_direct,
)
from patchscaler_lite.texture.kmeans import kmeans, representatives
from patchscaler_lite.texture.memory import build_memory, coarse_twins, retrieve, search
from patchscaler_lite.texture.patch_sampling import extract_patches, sample_positions
from patchscaler_lite.texture.store import load_memory, save_memory
from patchscaler_lite.weights import default_weights

CFG = DescriptorConfig(patch_size=16, scales=2, orientations=4, min_wavelength=4.0)


def _images(seed=0, n=3, size=40):
    g = torch.Generator().manual_seed(seed)
    ims = {}
    for i in range(n):
        yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
        stripes = 0.5 + 0.4 * torch.sin(2 * torch.pi * (xx * (i + 1) / 8 + yy * i / 10))
        noise = 0.1 * torch.rand(3, size, size, generator=g)
        ims[f"img{i}"] = (stripes * torch.tensor([1.0, 0.6 + 0.2 * i, 0.3])[:, None, None]
                          + noise).clamp(0, 1)
    return ims


def _mem(seed=0, size=12, n_patches=200, cfg=CFG):
    return build_memory(_images(), size, cfg, n_patches=n_patches, iters=10,
                        generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- descriptor
def test_gabor_energy_equals_convolution_oracle():
    y = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(1))
    y = y - y.mean((1, 2), keepdim=True)
    torch.testing.assert_close(gabor_energy(y, CFG), gabor_energy_direct(y, CFG), rtol=1e-4, atol=1e-8)


def test_descriptor_shapes_unit_norm_and_batch_equals_singles():
    p = torch.rand(5, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    raw = describe_raw(p, CFG)
    assert raw.shape == (5, CFG.dim) == (5, len(feature_names(CFG)))
    mean, std = fit_standardizer(raw)
    d = describe(p, CFG, mean, std)
    torch.testing.assert_close(d.norm(dim=1), torch.ones(5))
    singles = torch.cat([describe(p[i:i + 1], CFG, mean, std) for i in range(5)])
    torch.testing.assert_close(d, singles, rtol=1e-5, atol=1e-6)


def test_descriptor_texture_part_is_contrast_free_and_sees_orientation():
    xx = torch.arange(16.0)[None, :].expand(16, 16)
    vert = (0.5 + 0.3 * torch.sin(2 * torch.pi * xx / 4)).expand(3, 16, 16)[None]
    n_tex = CFG.scales * CFG.orientations
    tex = 0.5 + 0.9 * (torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0)) - 0.5)
    tex = tex.expand(1, 3, 16, 16)                                  # every band has energy >> eps
    low = 0.5 + 0.5 * (tex - 0.5)
    a, b = describe_raw(tex, CFG)[0, :n_tex], describe_raw(low, CFG)[0, :n_tex]
    torch.testing.assert_close(a, b, rtol=0, atol=0.03)             # halving contrast: same shape
    a = describe_raw(vert, CFG)[0, :n_tex]
    horiz = vert.transpose(-1, -2)
    assert (describe_raw(horiz, CFG)[0, :n_tex] - a).abs().max() > 1.0


def test_descriptor_rejects_wrong_patch_size():
    with pytest.raises(PatchScalerError, match="16x16"):
        describe_raw(torch.rand(2, 3, 8, 8), CFG)


# ---------------------------------------------------------------- sampling
def test_extract_patches_matches_slicing_and_dihedral():
    ims = list(_images().values())
    pos = sample_positions([im.shape[-2:] for im in ims], 30, 16, generator=torch.Generator().manual_seed(3))
    got = extract_patches(ims, pos, 16)
    for row, (s, y, x, d) in zip(got, pos.tolist()):
        torch.testing.assert_close(row, dihedral(ims[s][:, y:y + 16, x:x + 16], d))
    assert len({dihedral(torch.arange(4.0).reshape(2, 2), d).flatten().tolist().__str__()
                for d in range(8)}) == 8


# ---------------------------------------------------------------- k-means
def test_kmeans_seeded_identical_and_inertia_never_increases():
    x = torch.nn.functional.normalize(torch.randn(400, 6, generator=torch.Generator().manual_seed(4)), dim=1)
    a = kmeans(x, 16, iters=50, generator=torch.Generator().manual_seed(7))
    b = kmeans(x, 16, iters=50, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a.centroids, b.centroids) and torch.equal(a.assign, b.assign)
    h = np.array(a.inertia)
    assert len(h) > 2 and np.all(np.diff(h) <= 1e-6 * h[0])
    # oracle: at convergence each point sits with its nearest centroid, each centroid is its mean
    d = torch.cdist(x, a.centroids)
    assert torch.equal(d.argmin(1), a.assign)
    for j in a.assign.unique():
        torch.testing.assert_close(a.centroids[j], x[a.assign == j].mean(0), rtol=1e-5, atol=1e-6)


def test_representative_is_the_nearest_member():
    x = torch.randn(100, 3, generator=torch.Generator().manual_seed(5))
    r = kmeans(x, 5, generator=torch.Generator().manual_seed(0))
    rep = representatives(x, r.centroids, r.assign)
    for j in range(5):
        members = (r.assign == j).nonzero().squeeze(1)
        best = members[(x[members] - r.centroids[j]).pow(2).sum(1).argmin()]
        assert rep[j] == best


def test_seeded_builds_give_identical_memories():
    a, b = _mem(seed=3), _mem(seed=3)
    assert torch.equal(a.keys, b.keys) and torch.equal(a.values, b.values)
    assert not torch.equal(a.keys, _mem(seed=4).keys)


# ---------------------------------------------------------------- retrieval
@pytest.mark.parametrize("chunk", [1, 5, 64])
def test_search_equals_brute_force(chunk):
    g = torch.Generator().manual_seed(6)
    keys = torch.nn.functional.normalize(torch.randn(37, 8, generator=g), dim=1)
    q = torch.nn.functional.normalize(torch.randn(11, 8, generator=g), dim=1)
    idx, sims = search(q, keys, 4, chunk=chunk)
    brute = q @ keys.T
    order = torch.argsort(brute, dim=1, descending=True)[:, :4]          # independent oracle
    assert torch.equal(idx, order)
    torch.testing.assert_close(sims, brute.gather(1, order))


def test_retrieve_shapes_and_self_retrieval():
    mem = _mem()
    values = mem.values_float(torch.arange(mem.size))                       # entries' own patches
    idx, sims = retrieve(mem, values, 3)
    assert idx.shape == sims.shape == (mem.size, 3)
    assert (sims[:, :-1] >= sims[:, 1:]).all()
    brute = mem.embed(values) @ mem.keys.T
    torch.testing.assert_close(sims, brute.topk(3, dim=1).values)
    assert mem.values_float(idx).shape == (mem.size, 3, 3, 16, 16)


def test_retrieval_in_chunks_equals_all_at_once():
    """The shipped learned memory on real coarse patches: chunking changes no index."""
    mem = load_memory(default_weights("memory", "lite"))
    y0, _ = patchify(load_photos("val")["chelsea"][None, :, :128, :192], mem.patch_size, 8)
    whole = retrieve(mem, y0, 4, chunk=len(y0))
    for chunk in (1, 7, 128):
        ids, sims = retrieve(mem, y0, 4, chunk=chunk)
        assert torch.equal(ids, whole[0])
        assert (sims - whole[1]).abs().max() < 1e-5
    empty = retrieve(mem, y0[:0], 4)
    assert empty[0].shape == (0, 4) and empty[1].shape == (0, 4)
    with pytest.raises(PatchScalerError, match="chunk"):
        retrieve(mem, y0, 4, chunk=0)


def test_coarse_twins_align_with_the_hr_images():
    from patchscaler_lite.data import bicubic_up
    from patchscaler_lite.texture.memory import coarse_twins

    ims = {"a": torch.rand(3, 42, 37, generator=torch.Generator().manual_seed(0))}
    twin = coarse_twins(ims, lambda lr: bicubic_up(lr, 4))["a"]
    assert twin.shape == (3, 40, 36)
    mem = build_memory(ims, 4, CFG, n_patches=50, key_images={"a": twin},
                       generator=torch.Generator().manual_seed(0))
    for (_s, y, x, d), v in zip(mem.positions.tolist(), mem.values, strict=True):
        assert y + 16 <= 40 and x + 16 <= 36                               # inside the twin
        hr = dihedral(ims["a"][:, y:y + 16, x:x + 16], d)
        assert torch.equal(v, (hr * 255 + 0.5).to(torch.uint8))           # value = HR patch


def test_bad_sizes():
    with pytest.raises(PatchScalerError, match="larger than the number of sampled"):
        _mem(size=500, n_patches=100)
    with pytest.raises(PatchScalerError, match="larger than image"):
        build_memory({"small": torch.rand(3, 10, 40)}, 4, CFG, n_patches=50)
    with pytest.raises(PatchScalerError, match="no images"):
        build_memory({}, 4, CFG)
    mem = _mem()
    with pytest.raises(PatchScalerError, match="k=13"):
        retrieve(mem, torch.rand(2, 3, 16, 16), 13)


# ---------------------------------------------------------------- save / load
def test_save_load_roundtrip_and_mismatch(tmp_path):
    mem = _mem()
    path = save_memory(mem, tmp_path / "m.safetensors")
    meta = json.loads((tmp_path / "m.json").read_text())
    assert meta["size"] == mem.size and meta["patch_size"] == 16 and meta["sources"] == mem.source_names
    back = load_memory(path, patch_size=16, descriptor=CFG)
    for f in ("keys", "values", "sources", "positions", "mean", "std"):
        assert torch.equal(getattr(back, f), getattr(mem, f))
    with pytest.raises(WeightsError, match="patch size 16"):
        load_memory(path, patch_size=32)
    with pytest.raises(WeightsError, match="orientations=4 in the file"):
        load_memory(path, descriptor=dataclasses.replace(CFG, orientations=6))


def test_corrupt_memory_files(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file at all")
    with pytest.raises(WeightsError, match="not a readable memory file"):
        load_memory(bad)
    path = save_memory(_mem(), tmp_path / "m.safetensors")
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(path.read_bytes()[:-500])
    with pytest.raises(WeightsError):
        load_memory(cut)
    with pytest.raises(WeightsError, match="not found"):
        load_memory(tmp_path / "missing.safetensors")


# ---------------------------------------------------------------- CLI handlers
def _parse(argv):
    from patchscaler_lite.cli import memory as memory_cli

    ap = argparse.ArgumentParser()
    memory_cli.add_parser(ap.add_subparsers(dest="command", required=True))
    return memory_cli, ap.parse_args(argv)


def _write_pngs(folder, n=3, size=40):
    folder.mkdir(exist_ok=True)
    for name, im in _images(n=n, size=size).items():
        arr = (im.permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        Image.fromarray(arr).save(folder / f"{name}.png")


def _tiny_grm(path):
    from patchscaler_lite.config import PRESETS
    from patchscaler_lite.grm.model import GlobalRestorationModule
    from patchscaler_lite.weights import save_weights

    torch.manual_seed(0)
    cfg = PRESETS["tiny"].grm
    return save_weights(path, GlobalRestorationModule(cfg).state_dict(), "grm", cfg.to_dict())


def test_cli_build_query_and_load(tmp_path):
    _write_pngs(tmp_path / "imgs")
    (tmp_path / "imgs" / "notes.txt").write_text("not an image")
    (tmp_path / "imgs" / "broken.png").write_bytes(b"truncated")
    grm = _tiny_grm(tmp_path / "grm.safetensors")
    out = tmp_path / "m.safetensors"
    cli, args = _parse(["memory", "build", "--images", str(tmp_path / "imgs"), "--size", "8",
                        "--patch-size", "16", "--n-patches", "100", "--device", "cpu",
                        "--embed-iters", "5", "--weights", str(grm), "-o", str(out)])
    with pytest.warns(UserWarning, match="non-image"):
        assert cli.run(args) == 0
    mem = load_memory(out, patch_size=16)
    assert mem.size == 8 and sorted(mem.source_names) == ["img0", "img1", "img2"]
    png = tmp_path / "q.png"
    cli, args = _parse(["memory", "query", str(tmp_path / "imgs" / "img0.png"), "--memory", str(out),
                        "--weights", str(grm), "--k", "3", "--device", "cpu", "-o", str(png)])
    assert cli.run(args) == 0 and png.stat().st_size > 0
    cli, args = _parse(["memory", "query", str(tmp_path / "imgs" / "img0.png"), "--memory", str(out),
                        "--weights", str(grm), "--k", "9", "--device", "cpu", "-o", str(png)])
    with pytest.raises(PatchScalerError, match="--k 9"):
        cli.run(args)


def test_build_trains_the_key_network_of_the_memory_config(tmp_path):
    """MemoryConfig.embedder is the recipe of the key network (the tiny preset's small one)."""
    from patchscaler_lite.config import PRESETS
    from patchscaler_lite.jobs.memory import build_memory_file

    _write_pngs(tmp_path / "imgs")
    cfg = dataclasses.replace(PRESETS["tiny"].memory, size=4, patch_size=16, n_patches=100,
                              keys="hr")
    mem = build_memory_file(tmp_path / "imgs", tmp_path / "m.safetensors", cfg)
    assert mem.embedder.cfg.widths == cfg.embedder.widths == (8, 16)
    assert mem.embedder.cfg.patch_size == 16 and mem.info["embedder_training"]["iters"] == 20


@pytest.mark.parametrize("setup, argv_extra, match", [
    ("empty", [], "no readable images"),
    ("ok", ["--patch-size", "64"], "larger than image"),
    ("ok", ["--size", "1000", "--n-patches", "100"], "larger than the number"),
])
def test_cli_build_errors(tmp_path, setup, argv_extra, match):
    (tmp_path / "imgs").mkdir()
    if setup == "ok":
        _write_pngs(tmp_path / "imgs")
    argv = ["memory", "build", "--images", str(tmp_path / "imgs"), "--size", "8", "--patch-size", "16",
            "--n-patches", "100", "--device", "cpu", "--keys", "hr",
            "-o", str(tmp_path / "m.safetensors")] + argv_extra
    cli, args = _parse(argv)
    with pytest.raises(PatchScalerError, match=match):
        cli.run(args)


def test_a_memory_file_with_nan_is_refused_naming_it(tmp_path):
    mem = _mem()
    mem.keys[3, 0] = float("nan")
    save_memory(mem, tmp_path / "m.safetensors")
    with pytest.raises(WeightsError, match=r"m\.safetensors: tensor keys holds NaN"):
        load_memory(tmp_path / "m.safetensors")


def test_coarse_twins_of_realistic_lr_are_seeded_per_photo(rand_image):
    ims = {"a": rand_image(0, 64, 64)[0], "b": rand_image(1, 64, 64)[0]}
    up = lambda lr: bicubic_up(lr, 4)                                  # noqa: E731
    one = coarse_twins(ims, up, degradation="realistic", seed=3)
    assert all(torch.equal(one[n], t) for n, t in
               coarse_twins(ims, up, degradation="realistic", seed=3).items())
    assert not torch.equal(one["a"], coarse_twins(ims, up, degradation="realistic", seed=4)["a"])
    assert not torch.equal(one["a"], coarse_twins(ims, up)["a"])        # bicubic by default
    # Photo i draws its chain from seed + i: photo b alone with seed 4 is photo b of the pair.
    assert torch.equal(one["b"], coarse_twins({"b": ims["b"]}, up, degradation="realistic",
                                              seed=4)["b"])

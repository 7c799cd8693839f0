"""Learned texture embedding: shapes, training separates textures, storage inside the memory."""

from __future__ import annotations

import argparse
import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image

from patchscaler_lite.config import DescriptorConfig, EmbedderConfig
from patchscaler_lite.errors import PatchScalerError, WeightsError
from patchscaler_lite.texture.key_network import TextureEmbedder, train_embedder
from patchscaler_lite.texture.memory import build_memory, retrieve, search
from patchscaler_lite.texture.patch_sampling import extract_patches, sample_positions
from patchscaler_lite.texture.store import load_memory, save_memory

P = 16
CFG = DescriptorConfig(patch_size=P, scales=2, orientations=4, min_wavelength=4.0)
ECFG = EmbedderConfig(patch_size=P, dim=8, widths=(8, 16), iters=60, batch_size=32)


def _textures(size=48, seed=0):
    """Two photos that differ only in texture: vertical stripes vs isotropic noise, same mean."""
    g = torch.Generator().manual_seed(seed)
    xx = torch.arange(size).float().expand(size, size)
    stripes = 0.5 + 0.3 * torch.sin(2 * torch.pi * xx / 5)
    noise = 0.5 + 0.3 * (2 * torch.rand(size, size, generator=g) - 1)
    return {"stripes": stripes.expand(3, -1, -1).clone(), "noise": noise.expand(3, -1, -1).clone()}


@pytest.fixture(scope="module")
def trained():
    return train_embedder(_textures(), ECFG, progress=False)


def test_embedder_shapes_unit_norm_and_bad_input():
    m = TextureEmbedder(ECFG).eval()
    z = m.embed(torch.rand(5, 3, P, P))
    assert z.shape == (5, 8)
    torch.testing.assert_close(z.norm(dim=1), torch.ones(5))
    with pytest.raises(PatchScalerError, match=r"\(N, 3, 16, 16\)"):
        m(torch.rand(2, 3, 12, 12))
    with pytest.raises(PatchScalerError, match="at least 2 photos"):
        train_embedder({"one": torch.rand(3, 32, 32)}, ECFG, progress=False)
    with pytest.raises(PatchScalerError):
        EmbedderConfig(dim=1)


def test_training_is_seeded_and_separates_unseen_patches(trained):
    model, report = trained
    again, _ = train_embedder(_textures(), ECFG, progress=False)
    x = torch.rand(4, 3, P, P)
    assert torch.equal(model.embed(x), again.embed(x))
    assert report["final_loss"] < 0.5 and report["iters"] == ECFG.iters
    # held-out photos of the same two textures (another noise seed, shifted stripes)
    test = _textures(seed=1)
    test["stripes"] = test["stripes"].roll(2, -1)
    g = torch.Generator().manual_seed(3)
    pos = sample_positions([(48, 48)] * 2, 64, P, generator=g)
    z = model.embed(extract_patches(list(test.values()), pos, P))          # (64, D)
    labels = pos[:, 0]
    c = torch.stack([z[labels == i].mean(0) for i in range(2)])            # class means
    pred = (z @ c.T).argmax(1)
    assert (pred == labels).float().mean() >= 0.95


def test_memory_with_embedder_roundtrip_and_exact_retrieval(trained, tmp_path):
    model, _ = trained
    ims = _textures()
    mem = build_memory(ims, 6, CFG, n_patches=200, iters=10, embedder=model,
                       generator=torch.Generator().manual_seed(0))
    assert mem.descriptor_kind == "learned" and mem.keys.shape == (6, 8)
    q = torch.rand(7, 3, P, P)
    idx, sims = retrieve(mem, q, 3)
    bi, bs = search(model.embed(q), mem.keys, 3)                            # brute force
    scores = model.embed(q) @ mem.keys.T
    torch.testing.assert_close(sims, scores.gather(1, idx))
    assert torch.equal(idx, bi)
    path = save_memory(mem, tmp_path / "m.safetensors")
    back = load_memory(path, patch_size=P, descriptor_kind="learned")
    assert back.descriptor_kind == "learned"
    assert torch.equal(back.embed(q), mem.embed(q))
    assert torch.equal(retrieve(back, q, 3)[0], idx)
    with pytest.raises(WeightsError, match="learned descriptor, gabor requested"):
        load_memory(path, descriptor_kind="gabor")


def test_corrupt_embedder_weights(trained, tmp_path):
    import json

    from safetensors.torch import load_file, save_file

    model, _ = trained
    mem = build_memory(_textures(), 4, CFG, n_patches=100, iters=5, embedder=model,
                       generator=torch.Generator().manual_seed(0))
    path = save_memory(mem, tmp_path / "m.safetensors")
    t = load_file(path)
    t.pop("embedder.proj.weight")
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    save_file(t, tmp_path / "bad.safetensors", metadata=meta)
    with pytest.raises(WeightsError, match="texture embedder weights do not match"):
        load_memory(tmp_path / "bad.safetensors")
    m2 = json.loads(meta["meta"])
    m2["embedder"]["dim"] = 12
    save_file(load_file(path), tmp_path / "bad2.safetensors",
              metadata={**meta, "meta": json.dumps(m2)})
    with pytest.raises(WeightsError):
        load_memory(tmp_path / "bad2.safetensors")


def test_embedder_patch_size_must_match_the_memory(trained):
    model, _ = trained
    with pytest.raises(PatchScalerError, match="embedder is for 16x16"):
        build_memory(_textures(), 4, dataclasses.replace(CFG, patch_size=32), n_patches=50,
                     embedder=model)


def _memory_cli(folder, size=48):
    """(memory CLI module, its parser) with the two `_textures` photos written as PNGs to folder."""
    from patchscaler_lite.cli import memory as memory_cli

    folder.mkdir()
    for name, im in _textures(size=size).items():
        Image.fromarray((im.permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(
            folder / f"{name}.png")
    ap = argparse.ArgumentParser()
    memory_cli.add_parser(ap.add_subparsers(dest="command", required=True))
    return memory_cli, ap


def test_cli_build_learned_memory(tmp_path):
    memory_cli, ap = _memory_cli(tmp_path / "imgs")
    out = tmp_path / "m.safetensors"
    args = ap.parse_args(["memory", "build", "--images", str(tmp_path / "imgs"), "--size", "4",
                          "--patch-size", "16", "--n-patches", "100", "--keys", "hr",
                          "--embed-iters", "5", "--device", "cpu", "-o", str(out)])
    assert memory_cli.run(args) == 0
    mem = load_memory(out, descriptor_kind="learned")
    assert mem.size == 4 and mem.info["embedder_training"]["iters"] == 5


def test_cli_eval_trains_the_key_network_for_embed_iters(tmp_path):
    """`memory eval --embed-iters N` reaches the key network (the retrieval sweep of README)."""
    memory_cli, ap = _memory_cli(tmp_path / "imgs", size=64)
    out = tmp_path / "r.json"
    args = ap.parse_args(["memory", "eval", "--data", str(tmp_path / "imgs"), "--coarse", "bicubic",
                          "--size", "4", "--patch-size", "16", "--n-patches", "100",
                          "--embed-iters", "7", "--device", "cpu", "--json", str(out)])
    assert memory_cli.run(args) == 0
    rep = json.loads(out.read_text())
    assert rep["embedder_training"]["iters"] == 7 and rep["descriptor"]["iters"] == 7
    assert sorted(rep["held_out"]) == ["noise", "stripes"]


def _stripes_and_red():
    """Two 192 px test photos: vertical grey stripes, and a red one with faint horizontal stripes."""
    xx = torch.arange(192).float().expand(192, 192)
    vertical = (0.5 + 0.3 * torch.sin(2 * torch.pi * xx / 16)).expand(3, -1, -1)
    red = torch.tensor([0.8, 0.2, 0.2])[:, None, None] * (0.9 + 0.1 * vertical[:1].transpose(1, 2))
    return vertical, red


def test_retrieval_report_names_the_photo_a_miss_comes_from():
    """Two photos with the same texture are each other's distractors: `confused_with` says so."""
    from patchscaler_lite.eval.retrieval import evaluate_retrieval

    vertical, red = _stripes_and_red()
    photos = {"stripes": vertical.clone(), "stripes_twin": vertical.clone(), "red": red}
    rep = evaluate_retrieval(coarse="bicubic", keys="coarse", size=12, k=1, descriptor="gabor",
                             patch_size=32, n_patches=400, photos=photos, held_out=None)
    assert rep["per_texture"]["red"] == 1 and "red" not in rep["confused_with"]
    assert rep["confused_with"]["stripes_twin"]["with"] == "stripes"
    assert rep["per_texture"]["stripes"] < 1 and rep["confused_with"]["stripes"]["with"] == "stripes_twin"
    for name, c in rep["confused_with"].items():
        assert rep["per_texture"][name] < 1 and 0 < c["share"] <= 1 and c["with"] != name
    assert set(rep["confused_with"]) == {n for n, v in rep["per_texture"].items() if v < 1}


def test_retrieval_report_splits_top1_by_how_textured_the_query_is():
    """Two identical flat grey photos cannot be told apart, two distinct textures can: the misses
    land in the flattest quarter of the queries, the most textured quarter is all hits, and the
    quarters add up to the overall top-1."""
    from patchscaler_lite.eval.retrieval import evaluate_retrieval

    vertical, red = _stripes_and_red()
    grey = torch.full((3, 192, 192), 0.5)
    photos = {"stripes": vertical.clone(), "red": red, "grey": grey, "grey_twin": grey.clone()}
    rep = evaluate_retrieval(coarse="bicubic", keys="coarse", size=12, k=1, descriptor="gabor",
                             patch_size=32, n_patches=400, photos=photos, held_out=None)
    acc, n = rep["top1_by_texture_quartile"], rep["queries_by_texture_quartile"]
    assert sum(n) == rep["queries"] and len(acc) == len(n) == 4
    assert acc[0] < 1 and acc[-1] == 1
    assert all((a is None) == (c == 0) for a, c in zip(acc, n))
    overall = sum(a * c for a, c in zip(acc, n) if c) / sum(n)
    assert abs(overall - rep["top1_accuracy"]) < 1e-3


def test_hits_by_texture_matches_pandas_quartiles():
    """The per-quartile hit rates equal pandas' qcut + groupby on the same energies."""
    import pandas as pd

    from patchscaler_lite.eval.retrieval import hits_by_texture

    g = torch.Generator().manual_seed(0)
    energy = torch.rand(203, generator=g, dtype=torch.float64)
    hits = torch.rand(203, generator=g) < energy.float()          # more textured, more hits
    rates, counts = hits_by_texture(energy, hits)
    df = pd.DataFrame({"q": pd.qcut(energy.numpy(), 4, labels=False), "hit": hits.numpy()})
    want = df.groupby("q").hit.agg(["mean", "size"])
    assert counts == want["size"].tolist()
    assert rates == pytest.approx(want["mean"].tolist())
    assert rates[0] < rates[-1]
    rates, counts = hits_by_texture(torch.zeros(8), torch.ones(8, dtype=torch.bool))   # all tied
    assert counts == [8, 0, 0, 0] and rates == [1.0, None, None, None]

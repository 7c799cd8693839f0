"""Patch-DiT training on a tiny preset: the loss falls, a resumed run equals an uninterrupted one,
and prompt dropout takes the exact path of the --no-texture ablation."""

import dataclasses

import pytest
import torch

from patchscaler_lite.cli import main
from patchscaler_lite.cli import train as train_cli
from patchscaler_lite.config import PRESETS, descriptor_for
from patchscaler_lite.diffusion import training as dit_training
from patchscaler_lite.diffusion.denoiser import Denoiser
from patchscaler_lite.diffusion.training import train_dit
from patchscaler_lite.errors import PatchScalerError
from patchscaler_lite.grm.model import GlobalRestorationModule
from patchscaler_lite.texture.memory import build_memory
from patchscaler_lite.trainer import TrainState
from patchscaler_lite.weights import load_state

CFG = PRESETS["tiny"].dit


@pytest.fixture(autouse=True)
def small_val_batch(monkeypatch):
    monkeypatch.setattr(dit_training, "VAL_BATCH", 16)   # validation dominates a tiny run's time


@pytest.fixture(scope="module")
def setup(train_photos, val_photos):
    """(grm, memory, train crops, val crops): tiny GRM, a Gabor-keyed memory of the train crops."""
    torch.manual_seed(0)                               # tests may seed globally; the library never does
    grm = GlobalRestorationModule(PRESETS["tiny"].grm).eval()
    crop = lambda d, n: {k: v[:, :128, :128] for k, v in list(d.items())[:n]}   # noqa: E731
    train, val = crop(train_photos, 4), crop(val_photos, 2)
    mem = build_memory(train, 16, descriptor_for(32), n_patches=256, iters=3,
                       generator=torch.Generator().manual_seed(0))
    return grm, mem, train, val


def _train(setup, out, iters, resume=True, val_every=10):
    grm, mem, train, val = setup
    tc = dataclasses.replace(PRESETS["tiny"].dit_train, iters=iters, batch_size=8, lr=3e-3,
                             warmup=2, val_every=val_every, ckpt_every=10)
    return train_dit(CFG, tc, grm, mem, train, val, out, resume=resume, progress=False)


def test_a_tiny_run_lowers_the_training_loss(setup, tmp_path):
    rep = _train(setup, tmp_path, 40, val_every=1)
    loss = [h["loss"] for h in rep["history"]]
    assert len(loss) == 40
    assert sum(loss[-10:]) < sum(loss[:10])
    assert (tmp_path / "dit_tiny.safetensors").is_file()


def test_resume_reproduces_an_uninterrupted_run(setup, tmp_path, monkeypatch):
    _train(setup, tmp_path / "a", 20)
    save = TrainState.save

    def crash_after_step_10(self):
        save(self)
        if self.step == 10:
            raise KeyboardInterrupt                         # killed right after the checkpoint
    monkeypatch.setattr(TrainState, "save", crash_after_step_10)
    with pytest.raises(KeyboardInterrupt):
        _train(setup, tmp_path / "b", 20)
    monkeypatch.setattr(TrainState, "save", save)
    _train(setup, tmp_path / "b", 20)                       # resumed from step 10
    a, _ = load_state(tmp_path / "a" / "dit_tiny.safetensors", "dit")
    b, _ = load_state(tmp_path / "b" / "dit_tiny.safetensors", "dit")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6)


def test_training_leaves_the_global_rng_alone(setup, tmp_path):
    before = torch.random.get_rng_state()
    _train(setup, tmp_path, 2)
    assert torch.equal(before, torch.random.get_rng_state())


def test_prompt_dropout_and_no_texture_are_one_path():
    g = torch.Generator().manual_seed(0)
    den = Denoiser(CFG).eval()
    with torch.no_grad():
        for p in den.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    M, P, K = 5, CFG.dit.patch_size, CFG.dit.top_k
    x, y = torch.randn(M, 3, P, P, generator=g), torch.randn(M, 3, P, P, generator=g)
    t = torch.randint(1, 400, (M,), generator=g)
    refs, sims = torch.rand(M, K, 3, P, P, generator=g), torch.rand(M, K, generator=g)
    dropped = den(x, t, y, refs, sims, keep=torch.zeros(M, dtype=torch.bool))
    torch.testing.assert_close(dropped, den(x, t, y, None, None), rtol=0, atol=0)
    kept = den(x, t, y, refs, sims, keep=torch.ones(M, dtype=torch.bool))
    torch.testing.assert_close(kept, den(x, t, y, refs, sims), rtol=0, atol=0)
    assert (kept - dropped).abs().max() > 1e-4             # the prompt does reach the output


def test_the_training_lr_can_be_realistic_and_is_reproducible(setup):
    """coarse_pairs with the realistic degradation: different from bicubic, same on a re-run."""
    grm, _, train, _ = setup
    bic = dit_training.coarse_pairs(grm, train, "cpu")
    real = dit_training.coarse_pairs(grm, train, "cpu", "realistic", seed=3)
    again = dit_training.coarse_pairs(grm, train, "cpu", "realistic", seed=3)
    for (n, h, c), (_, h2, r), (_, _, r2) in zip(bic, real, again):
        assert torch.equal(h, h2) and torch.equal(r, r2)
        assert not torch.equal(c, r), n
    with pytest.raises(PatchScalerError, match="unknown degradation"):
        dataclasses.replace(PRESETS["tiny"].dit_train, degradation="jpeg")


def test_train_dit_takes_the_degradation_option(tmp_path, capsys, monkeypatch):
    """`train dit --degradation` reaches the DiT's recipe (it used to be dropped) and is checked."""
    seen = []

    def fake_train_dit(cfg, tc, *args, **kwargs):
        seen.append(tc)
        return {"seconds": 0.0, "final": {}}
    monkeypatch.setattr(train_cli, "train_dit", fake_train_dit)
    assert main(["train", "dit", "--preset", "tiny", "--degradation", "realistic", "--iters", "1",
                 "-o", str(tmp_path / "run")]) == 0
    assert seen[0].degradation == "realistic"
    code = main(["train", "dit", "--preset", "tiny", "--degradation", "jpeg", "-o", str(tmp_path)])
    assert code == 2 and "--degradation" in capsys.readouterr().err

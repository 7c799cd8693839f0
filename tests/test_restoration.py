"""GRM: shapes and ranges, the confidence loss against its closed form, and tiny training runs."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from patchscaler_lite import data
from patchscaler_lite.config import PRESETS, GRMTrainConfig
from patchscaler_lite.errors import PatchScalerError
from patchscaler_lite.grm import pairs, training
from patchscaler_lite.grm.model import (
    GlobalRestorationModule,
    confidence_loss,
    confidence_optimum,
    load_grm,
)
from patchscaler_lite.patches import dihedral
from patchscaler_lite.trainer import lr_at
from patchscaler_lite.weights import count_parameters

TINY = PRESETS["tiny"].grm


def tiny_grm(seed: int = 0, **changes) -> GlobalRestorationModule:
    torch.manual_seed(seed)
    return GlobalRestorationModule(dataclasses.replace(TINY, **changes))


def perturb(model: GlobalRestorationModule, seed: int) -> None:
    """Move every weight off its initial value (the RGB head starts at zero)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))


@pytest.mark.parametrize("scale", [2, 4])
def test_grm_shapes_and_ranges(rand_image, scale):
    model = tiny_grm(scale=scale).eval()
    perturb(model, 1)
    lr = rand_image(0, 9, 13, b=2)
    with torch.no_grad():
        coarse, conf = model(lr)
    assert coarse.shape == (2, 3, 9 * scale, 13 * scale)
    assert conf.shape == (2, 1, 9 * scale, 13 * scale)
    assert coarse.min() >= 0 and coarse.max() <= 1                 # clamped at eval
    assert conf.min() > 0 and conf.max() < 1                       # a sigmoid
    assert torch.isfinite(coarse).all() and torch.isfinite(conf).all()


def test_grm_training_mode_is_not_clamped(rand_image):
    model = tiny_grm().train()
    with torch.no_grad():
        model.to_rgb.bias.fill_(0.8)                               # push the residual up
    coarse, _ = model(rand_image(0, 8, 8))
    assert coarse.max() > 1


def test_fresh_grm_is_plain_bicubic(rand_image):
    """The RGB head starts at zero, so an untrained GRM returns the bicubic baseline."""
    lr = rand_image(2, 8, 10)
    with torch.no_grad():
        coarse, _ = tiny_grm().eval()(lr)
    ref = torch.nn.functional.interpolate(lr, scale_factor=4, mode="bicubic",
                                          align_corners=False).clamp(0, 1)
    torch.testing.assert_close(coarse, ref, rtol=0, atol=1e-6)


def test_grm_batch_equals_its_singles(rand_image):
    model = tiny_grm().eval()
    perturb(model, 2)
    lr = rand_image(3, 8, 8, b=3)
    with torch.no_grad():
        coarse, conf = model(lr)
        singles = [model(lr[i : i + 1]) for i in range(3)]
    torch.testing.assert_close(coarse, torch.cat([c for c, _ in singles]), rtol=0, atol=1e-5)
    torch.testing.assert_close(conf, torch.cat([k for _, k in singles]), rtol=0, atol=1e-5)


def test_tiny_preset_is_tiny():
    assert count_parameters(GlobalRestorationModule(TINY)) < 20_000


@pytest.mark.parametrize("bad", [{"scale": 3}, {"channels": 2}, {"blocks": 0}, {"lam": -1.0},
                                 {"eta": 0.0}])
def test_grm_config_validation(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        dataclasses.replace(TINY, **bad)


def test_confidence_loss_matches_numpy_formula():
    g = torch.Generator().manual_seed(0)
    y, x = torch.rand(2, 3, 5, 4, generator=g), torch.rand(2, 3, 5, 4, generator=g)
    c = torch.rand(2, 1, 5, 4, generator=g) * 0.98 + 0.01
    lam, eta = 0.3, 0.02
    yn, xn, cn = (t.double().numpy() for t in (y, x, c))
    e2 = ((yn - xn) ** 2).mean(1, keepdims=True)
    ref = np.abs(yn - xn).mean() + lam * (cn * e2 - eta * np.log(cn)).mean()
    assert confidence_loss(y, x, c, lam, eta).item() == pytest.approx(ref, rel=1e-5)


def test_confidence_minimiser_matches_closed_form():
    """Minimise the loss over C numerically (errors fixed); compare with min(1, eta / e^2)."""
    eta, lam = 1e-4, 0.05
    e = torch.tensor([0.0, 1e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.1, 0.3, 0.7, 1.0], dtype=torch.float64)
    n = e.numel()
    x = torch.full((1, 3, 1, n), 0.5, dtype=torch.float64)
    signs = torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64).view(1, 3, 1, 1)
    y = x + signs * e.view(1, 1, 1, n)                             # per-pixel e^2 = e**2
    log_c = torch.zeros((1, 1, 1, n), dtype=torch.float64, requires_grad=True)
    for lr, steps in ((0.3, 300), (0.03, 200), (0.003, 200)):      # projected Adam on log C <= 0
        opt = torch.optim.Adam([log_c], lr=lr)
        for _ in range(steps):
            opt.zero_grad()
            # Rescaled so the curvature at the optimum is 1 in log C; the |y - x| term is constant.
            loss = confidence_loss(y, x, log_c.exp(), lam, eta) * n / (lam * eta)
            loss.backward()
            opt.step()
            with torch.no_grad():
                log_c.clamp_(max=0.0)
    numeric = log_c.detach().exp().flatten()
    closed = confidence_optimum(e**2, eta)
    torch.testing.assert_close(numeric, closed, rtol=1e-4, atol=1e-6)
    assert closed[0] == 1 and closed[-1] == pytest.approx(eta)


def test_confidence_optimum_is_monotone_and_bounded():
    e2 = torch.logspace(-8, 0, 50)
    c = confidence_optimum(e2, 1e-4)
    assert (c > 0).all() and (c <= 1).all()
    assert (c[1:] <= c[:-1]).all()
    torch.testing.assert_close(c[e2 >= 1e-4], 1e-4 / e2[e2 >= 1e-4])


@pytest.fixture(scope="module")
def crops(train_photos):
    """A fixed batch of real HR crops (4, 3, 64, 64) and their bicubic LR (4, 3, 16, 16)."""
    hr = torch.stack([train_photos["camera"][:, :64, :64],
                      train_photos["rocket"][:, 100:164, 100:164],
                      train_photos["brick"][:, :64, :64],
                      train_photos["china"][:, 200:264, 200:264]])
    return hr, data.degrade(hr, 4)


def test_tiny_training_lowers_the_loss(crops):
    hr, lr = crops
    model = tiny_grm().train()
    opt = torch.optim.Adam(model.parameters(), 5e-3)
    losses = []
    for _ in range(80):
        coarse, conf = model(lr)
        loss = confidence_loss(coarse, hr, conf, TINY.lam, TINY.eta)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.95 * losses[0], losses[::10]
    with torch.no_grad():
        coarse, _ = model.eval()(lr)
    bicubic = data.bicubic_up(lr, 4)
    assert (coarse - hr).abs().mean() < (bicubic - hr).abs().mean()  # beats its starting point


@pytest.fixture(scope="module")
def small_sets(train_photos, val_photos):
    train = {k: v[:, :96, :96] for k, v in list(train_photos.items())[:4]}
    val = {k: v[:, :64, :64] for k, v in list(val_photos.items())[:2]}
    return train, val


def test_train_grm_writes_loadable_weights_and_report(tmp_path, small_sets):
    tc = PRESETS["tiny"].grm_train
    report = training.train_grm(TINY, tc, *small_sets, tmp_path, progress=False, command="test")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["checkpoint.pt", "grm_tiny.json", "grm_tiny.report.json",
                     "grm_tiny.safetensors"]
    assert [h["step"] for h in report["history"]] == [10, 20]
    assert report["final_val_psnr"] > 25 and np.isfinite(report["gain_db"])
    assert json.loads((tmp_path / "grm_tiny.report.json").read_text())["command"] == "test"
    model = load_grm(tmp_path / "grm_tiny.safetensors", expect=TINY)
    assert not model.training
    # The saved network is the EMA; its validation PSNR is what the report says.
    val_pairs = pairs.make_pairs(list(small_sets[1].values()), 4, tc.degradation)
    assert pairs.evaluate(model, val_pairs, "cpu")["grm"] == pytest.approx(
        report["history"][-1]["val_psnr"], abs=1e-3)


def test_interrupted_training_resumes_to_the_same_weights(tmp_path, small_sets, monkeypatch):
    cfg = TINY
    tc = GRMTrainConfig(iters=12, batch_size=2, crop=32, warmup=2, val_every=4, ckpt_every=4,
                        degradation="realistic")
    full = training.train_grm(cfg, tc, *small_sets, tmp_path / "a", progress=False)

    real_evaluate = training.evaluate

    calls = []

    def crash_at_step_8(model, val_pairs, device):
        calls.append(1)
        if len(calls) == 2:                                        # the evaluation at step 8
            raise KeyboardInterrupt
        return real_evaluate(model, val_pairs, device)

    monkeypatch.setattr(training, "evaluate", crash_at_step_8)
    with pytest.raises(KeyboardInterrupt):
        training.train_grm(cfg, tc, *small_sets, tmp_path / "b", progress=False)
    assert torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)["step"] == 4
    monkeypatch.setattr(training, "evaluate", real_evaluate)
    resumed = training.train_grm(cfg, tc, *small_sets, tmp_path / "b", progress=False)

    from safetensors.torch import load_file
    wa = load_file(tmp_path / "a" / "grm_tiny.safetensors")
    wb = load_file(tmp_path / "b" / "grm_tiny.safetensors")
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=1e-6, msg=k)
    assert [h["loss"] for h in resumed["history"]] == pytest.approx(
        [h["loss"] for h in full["history"]], abs=1e-6)


def test_lr_schedule_warms_up_then_decays():
    tc = GRMTrainConfig(iters=100, warmup=10, lr=1e-3, min_lr_ratio=0.01)
    lrs = [lr_at(s, tc) for s in range(100)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(lrs[9:-1], lrs[10:], strict=True))
    assert lrs[-1] >= 1e-5 and lrs[-1] < 1e-4


def test_dihedral_covers_the_eight_symmetries():
    x = torch.arange(9.0).view(1, 3, 3)
    outs = {tuple(dihedral(x, k).flatten().tolist()) for k in range(8)}
    assert len(outs) == 8


def test_the_receptive_radius_bounds_an_impulse_response(rand_image):
    """Oracle: change one LR pixel and see how far the outputs move; never beyond the radius."""
    model = tiny_grm().eval()
    perturb(model, 3)
    lr = rand_image(5, 24, 24)
    bumped = lr.clone()
    bumped[..., 12, 12] = 1 - bumped[..., 12, 12]
    s, R = model.cfg.scale, model.receptive_radius
    with torch.no_grad():
        diff = sum((a - b).abs().sum(1)[0] for a, b in zip(model(lr), model(bumped)))  # (sh, sw)
    rows, cols = (diff > 0).nonzero().unbind(1)
    reach = max((rows // s - 12).abs().max(), (cols // s - 12).abs().max()).item()
    assert 1 <= reach <= R
    assert R == 1 + 2 * TINY.blocks + 1 + 2                  # head, blocks, body_out, conf head


def test_tiled_restore_equals_whole_image(rand_image):
    """The halo covers the receptive field, so tiles change nothing (odd sizes, a batch)."""
    from patchscaler_lite.grm.model import restore

    model = tiny_grm().eval()
    perturb(model, 3)
    lr = rand_image(4, 37, 51, b=2)
    whole = restore(model, lr, tile=None)
    for tile in (5, 16, 36):
        tiled = restore(model, lr, tile=tile)
        for w, t in zip(whole, tiled, strict=True):
            assert t.shape == w.shape
            assert (t - w).abs().max() < 1e-5


def test_tiled_restore_equals_whole_on_a_real_photo(val_photos):
    """The shipped GRM on the widest val photo (flower), tiles of several sizes."""
    from patchscaler_lite.grm.model import load_grm, restore

    model = load_grm()
    lr = data.degrade(data.crop_to_scale(val_photos["flower"], 4)[None], 4)[..., :96, :]
    whole = restore(model, lr, tile=None)
    for tile in (48, 100):
        tiled = restore(model, lr, tile=tile)
        for w, t in zip(whole, tiled, strict=True):
            assert (t - w).abs().max() < 1e-5


def test_resuming_a_longer_run_is_refused(tmp_path, small_sets):
    tc = GRMTrainConfig(iters=4, batch_size=2, crop=32, warmup=1, val_every=4, ckpt_every=4,
                        calib_iters=0)
    training.train_grm(TINY, tc, *small_sets, tmp_path, progress=False)
    shorter = dataclasses.replace(tc, iters=2)
    with pytest.raises(PatchScalerError, match="at step 4, beyond the 2 iterations"):
        training.train_grm(TINY, shorter, *small_sets, tmp_path, progress=False)
    training.train_grm(TINY, shorter, *small_sets, tmp_path, progress=False, resume=False)


def test_fine_tuning_starts_from_the_given_weights(tmp_path, small_sets):
    """`init`: a run starts from another run's weights (here under another preset name) instead of
    the seeded random ones; at a vanishing learning rate it ends where that run ended."""
    from safetensors.torch import load_file

    base = GRMTrainConfig(iters=8, batch_size=2, crop=32, warmup=2, val_every=4, ckpt_every=4,
                          calib_iters=0)
    training.train_grm(TINY, base, *small_sets, tmp_path / "a", progress=False)
    src = tmp_path / "a" / "grm_tiny.safetensors"
    still = dataclasses.replace(base, iters=2, lr=1e-12, init=str(src))
    ft = dataclasses.replace(TINY, name="ft")
    training.train_grm(ft, still, *small_sets, tmp_path / "b", progress=False)
    fresh = dataclasses.replace(still, init="")
    training.train_grm(ft, fresh, *small_sets, tmp_path / "c", progress=False)
    wa, wb, wc = (load_file(p) for p in (src, tmp_path / "b" / "grm_ft.safetensors",
                                         tmp_path / "c" / "grm_ft.safetensors"))
    for k in wa:
        torch.testing.assert_close(wb[k], wa[k], rtol=0, atol=1e-6, msg=k)
    assert any(not torch.allclose(wc[k], wa[k], atol=1e-4) for k in wa)


def test_fine_tuning_refuses_another_architecture(tmp_path, small_sets):
    from patchscaler_lite.errors import WeightsError

    base = GRMTrainConfig(iters=2, batch_size=2, crop=32, warmup=1, val_every=2, ckpt_every=2,
                          calib_iters=0)
    training.train_grm(TINY, base, *small_sets, tmp_path / "a", progress=False)
    wider = dataclasses.replace(TINY, name="wide", channels=TINY.channels * 2)
    src = tmp_path / "a" / "grm_tiny.safetensors"
    with pytest.raises(WeightsError, match="channels") as info:
        training.train_grm(wider, dataclasses.replace(base, init=str(src)), *small_sets,
                           tmp_path / "b", progress=False)
    assert str(src) in str(info.value) and "\n" not in str(info.value)


def test_the_real_preset_fine_tunes_lite_on_realistic_lr():
    real, lite = PRESETS["real"], PRESETS["lite"]
    assert dataclasses.replace(real.grm, name="lite") == lite.grm          # same architecture
    assert real.grm_train.init == real.dit_train.init == "lite"
    assert {real.grm_train.degradation, real.dit_train.degradation,
            real.memory.degradation} == {"realistic"}


# ---------------------------------------------------------------------------- the ranking term
def _rank_oracle(conf, err2, patch, margin):
    """patch_rank_loss written as an explicit double loop over patch pairs (numpy, float64)."""
    c, e = conf[:, 0].double().numpy(), err2[:, 0].double().numpy()
    d, m = [], []
    for b in range(c.shape[0]):
        for y in range(0, c.shape[1], patch):
            for x in range(0, c.shape[2], patch):
                d.append(1 - c[b, y:y + patch, x:x + patch].mean())
                m.append(np.log(e[b, y:y + patch, x:x + patch].mean() + 1e-8))
    # -log P(harder ranked harder), P(i harder than j) = d_i / (d_i + d_j)  (Bradley-Terry)
    terms = [-np.log((d[i] if m[i] > m[j] else d[j]) / (d[i] + d[j]))
             for i in range(len(d)) for j in range(len(d)) if abs(m[i] - m[j]) > margin]
    return float(np.mean(terms)) if terms else 0.0


def test_patch_rank_loss_matches_a_pairwise_loop():
    from patchscaler_lite.grm.calibration import patch_rank_loss

    g = torch.Generator().manual_seed(3)
    conf = torch.rand(2, 1, 16, 24, generator=g)
    err2 = torch.rand(2, 1, 16, 24, generator=g) ** 6                    # log MSEs spread widely
    for margin in (0.5, 0.1):
        got = patch_rank_loss(conf, err2, patch=8, margin=margin)
        assert got.item() == pytest.approx(_rank_oracle(conf, err2, 8, margin), rel=1e-5)


def test_patch_rank_loss_rewards_the_right_order_and_pushes_towards_it():
    """Low when the patch with the larger error has the lower confidence, high when reversed, and
    its gradient lowers the confidence of the harder patch."""
    from patchscaler_lite.grm.calibration import patch_rank_loss

    err2 = torch.cat([torch.full((1, 1, 8, 8), 1e-5), torch.full((1, 1, 8, 8), 1e-2)], -1)
    right = torch.cat([torch.full((1, 1, 8, 8), 0.99), torch.full((1, 1, 8, 8), 0.2)], -1)
    wrong = right.flip(-1).clone().requires_grad_(True)
    # difficulties 0.01 and 0.8: -log(0.8 / 0.81) = 0.0124 in the right order, -log(0.01 / 0.81) reversed
    assert patch_rank_loss(right, err2, patch=8).item() == pytest.approx(np.log(0.81 / 0.8), rel=1e-4)
    assert patch_rank_loss(wrong, err2, patch=8).item() == pytest.approx(np.log(81), rel=1e-4)
    patch_rank_loss(wrong, err2, patch=8).backward()
    assert (wrong.grad[..., 8:] > 0).all() and (wrong.grad[..., :8] < 0).all()


def test_patch_rank_loss_is_zero_without_a_qualifying_pair():
    from patchscaler_lite.grm.calibration import patch_rank_loss

    conf = torch.rand(1, 1, 16, 16, requires_grad=True)
    loss = patch_rank_loss(conf, torch.full((1, 1, 16, 16), 3e-3), patch=8)   # equal errors
    assert loss.item() == 0.0
    loss.backward()                                                           # still differentiable
    assert (conf.grad == 0).all()


def test_calibration_with_the_ranking_term_changes_only_the_confidence_head(tmp_path, small_sets):
    from safetensors.torch import load_file

    base = GRMTrainConfig(iters=4, batch_size=2, crop=32, warmup=1, val_every=4, ckpt_every=4,
                          calib_iters=3, calib_rank=0.0)
    plain = training.train_grm(TINY, base, *small_sets, tmp_path / "a", progress=False)
    ranked = training.train_grm(TINY, dataclasses.replace(base, calib_rank=1.0), *small_sets,
                                tmp_path / "b", progress=False)
    assert plain["confidence_calibration"]["rank_weight"] == 0.0
    assert ranked["confidence_calibration"]["rank_weight"] == 1.0
    assert ranked["train_config"]["calib_rank"] == 1.0
    wa, wb = (load_file(tmp_path / d / "grm_tiny.safetensors") for d in "ab")
    for k in wa:
        if k.startswith("to_conf"):
            continue
        assert torch.equal(wa[k], wb[k]), k                                   # body and RGB head
    assert any(not torch.equal(wa[k], wb[k]) for k in wa if k.startswith("to_conf"))


def test_negative_rank_weight_is_refused():
    with pytest.raises(PatchScalerError, match="calib_rank must be >= 0"):
        GRMTrainConfig(calib_rank=-0.1)

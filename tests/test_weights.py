"""Weight files: round trip, and every kind of bad file gives a WeightsError naming the file."""

import contextlib
import dataclasses
import json
import os

import pytest
import torch
from safetensors.torch import save_file

from patchscaler_lite.config import PRESETS
from patchscaler_lite.errors import WeightsError
from patchscaler_lite.grm.model import GlobalRestorationModule, load_grm
from patchscaler_lite.weights import load_state, read_metadata, save_weights

TINY = PRESETS["tiny"].grm


@pytest.fixture
def saved(tmp_path):
    """(path, model): a tiny GRM with non-trivial weights, saved with config and report."""
    torch.manual_seed(0)
    model = GlobalRestorationModule(TINY).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    path = save_weights(tmp_path / "w" / "grm_tiny.safetensors", model.state_dict(), "grm",
                        TINY.to_dict(), report={"note": "test"})
    return path, model


@contextlib.contextmanager
def raises_naming(path, match=None):
    """Expect a WeightsError whose one-line message names `path` (and matches `match`)."""
    with pytest.raises(WeightsError, match=match) as info:
        yield info
    msg = str(info.value)
    assert str(path) in msg, msg
    assert "\n" not in msg, msg


def test_round_trip(saved, rand_image):
    path, model = saved
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "grm_tiny.json", "grm_tiny.report.json", "grm_tiny.safetensors"]   # no .partial left
    side = json.loads(path.with_suffix(".json").read_text())
    assert side == {"kind": "grm", "config": TINY.to_dict()}
    assert json.loads(path.with_suffix(".report.json").read_text()) == {"note": "test"}
    kind, cfg = read_metadata(path)
    assert kind == "grm" and cfg == TINY.to_dict()
    state, _ = load_state(path, "grm", TINY.to_dict())
    own = model.state_dict()
    assert state.keys() == own.keys()
    for k in own:
        assert torch.equal(state[k], own[k]), k
    loaded = load_grm(path, expect=TINY)
    assert loaded.cfg == TINY and not loaded.training
    lr = rand_image(0, 6, 7)
    with torch.no_grad():
        for a, b in zip(model(lr), loaded(lr), strict=True):
            assert torch.equal(a, b)


def test_missing_file(tmp_path):
    p = tmp_path / "nope.safetensors"
    with raises_naming(p, "not found"):
        load_grm(p)
    with raises_naming(p, "not found"):
        read_metadata(p)


@pytest.mark.parametrize("content", [b"", b"\0" * 100, os.urandom(4096),
                                     b"\x08\0\0\0\0\0\0\0{\"a\": 1}"])
def test_corrupt_file(tmp_path, content):
    p = tmp_path / "bad.safetensors"
    p.write_bytes(content)
    with raises_naming(p):
        load_grm(p)


@pytest.mark.parametrize("keep", [0.5, 0.99, 0.05])
def test_truncated_file(saved, keep):
    path, _ = saved
    raw = path.read_bytes()
    cut = path.with_name("cut.safetensors")
    cut.write_bytes(raw[: int(len(raw) * keep)])
    with raises_naming(cut):
        load_grm(cut)


def test_wrong_kind(saved):
    path, _ = saved
    with raises_naming(path, "'grm'.*expected 'dit'"):
        load_state(path, "dit")


@pytest.mark.parametrize("field,value", [("channels", 16), ("blocks", 2), ("scale", 2),
                                         ("eta", 3e-3)])
def test_mismatched_config(saved, field, value):
    path, _ = saved
    with raises_naming(path, f"config mismatch: {field}"):
        load_grm(path, expect=dataclasses.replace(TINY, **{field: value}))


def test_name_alone_is_not_a_mismatch(saved):
    path, _ = saved
    load_grm(path, expect=dataclasses.replace(TINY, name="renamed"))


def test_file_without_our_metadata(tmp_path):
    p = tmp_path / "plain.safetensors"
    save_file({"a": torch.zeros(2)}, str(p))
    with raises_naming(p, "metadata"):
        load_grm(p)


@pytest.mark.parametrize("config", ["{not json", "[1, 2]", "null"])
def test_unreadable_config_metadata(tmp_path, config):
    p = tmp_path / "badcfg.safetensors"
    save_file({"a": torch.zeros(2)}, str(p), metadata={"kind": "grm", "config": config})
    with raises_naming(p, "config"):
        load_grm(p)
    with raises_naming(p, "config"):
        load_grm(p, expect=TINY)


def test_invalid_config_values_in_file(tmp_path):
    p = tmp_path / "scale3.safetensors"
    bad = {**TINY.to_dict(), "scale": 3}
    save_file({"a": torch.zeros(2)}, str(p), metadata={"kind": "grm", "config": json.dumps(bad)})
    with raises_naming(p, "invalid GRM config"):
        load_grm(p)


def test_tensors_that_do_not_fit_the_model(saved, tmp_path):
    path, model = saved
    # The file claims a wider network than its tensors hold.
    lying = save_weights(tmp_path / "lying.safetensors", model.state_dict(), "grm",
                         {**TINY.to_dict(), "channels": 16})
    with raises_naming(lying, "shape"):
        load_grm(lying)
    state = dict(model.state_dict())
    state.pop("head.bias")
    state["extra"] = torch.zeros(1)
    partial = save_weights(tmp_path / "partial.safetensors", state, "grm", TINY.to_dict())
    with raises_naming(partial, "missing"):
        load_grm(partial)


def test_save_overwrites_in_place(saved):
    path, model = saved
    with torch.no_grad():
        model.head.bias.add_(1.0)
    save_weights(path, model.state_dict(), "grm", TINY.to_dict())
    state, _ = load_state(path, "grm")
    assert torch.equal(state["head.bias"], model.head.bias)
    assert not any(p.name.endswith((".partial", ".tmp")) for p in path.parent.iterdir())


def test_initial_weights_by_preset_name_or_file(saved):
    from patchscaler_lite.weights import default_weights, resolve_init

    assert resolve_init("lite", "grm") == default_weights("grm", "lite")
    path, _ = saved
    assert resolve_init(str(path), "grm") == path
    with raises_naming("nowhere.safetensors", match="not found"):
        resolve_init("nowhere.safetensors", "grm")

"""Qmap and grouping on hand-made confidence maps; threshold and quantile validation."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from patchscaler_lite.config import GroupingConfig
from patchscaler_lite.errors import PatchScalerError
from patchscaler_lite.grouping import (
    GROUP_NAMES,
    group_patches,
    groups_from_quantiles,
    groups_from_thresholds,
    qmap,
)

SIMPLE, MEDIUM, HARD = 0, 1, 2


def blocks(values, P: int) -> torch.Tensor:
    """Confidence map (1, 1, rows * P, cols * P) made of constant P x P blocks."""
    v = torch.tensor(values, dtype=torch.float32)
    return v.repeat_interleave(P, 0).repeat_interleave(P, 1)[None, None]


def cfg(P: int, *, thresholds=(0.6, 0.3), quantiles=None, overlap: int = 0) -> GroupingConfig:
    """GroupingConfig for P x P patches; by thresholds unless quantiles are given, no overlap."""
    return GroupingConfig(patch_size=P, overlap=overlap, quantiles=quantiles, thresholds=thresholds)


def test_qmap_of_constant_blocks_is_the_block_values():
    vals = [[0.9, 0.5, 0.125], [0.75, 0.25, 0.0625]]
    q, layout = qmap(blocks(vals, 4), 4)
    assert (layout.nh, layout.nw) == (2, 3)
    torch.testing.assert_close(q, torch.tensor([vals]))


def test_qmap_averages_valid_pixels_only():
    """5 x 6 map, P = 4: edge patches average only the pixels inside the image."""
    conf = torch.arange(30, dtype=torch.float32).view(1, 1, 5, 6) / 30
    q, layout = qmap(conf, 4)
    c = conf[0, 0].numpy()
    ref = [[c[:4, :4].mean(), c[:4, 4:].mean()], [c[4:, :4].mean(), c[4:, 4:].mean()]]
    np.testing.assert_allclose(q[0].numpy(), ref, rtol=1e-6)


def test_thresholds_hand_made_map():
    # gamma1 = 0.75, gamma2 = 0.25 (exact in binary, so the boundaries are tested exactly)
    vals = [[0.9, 0.75, 0.5], [0.25, 0.1, 0.76]]
    g = group_patches(blocks(vals, 2), cfg(2, thresholds=(0.75, 0.25)))
    # q == gamma1 is Medium, q == gamma2 is Hard
    expected = [[SIMPLE, MEDIUM, MEDIUM], [HARD, HARD, SIMPLE]]
    assert g.groups.tolist() == [expected]
    assert g.groups.dtype == torch.long
    assert g.counts == {"simple": 2, "medium": 2, "hard": 2}
    assert tuple(g.counts) == GROUP_NAMES


def test_thresholds_on_batched_qmap():
    q = torch.tensor([[[0.95, 0.05]], [[0.5, 0.7]]])               # (B=2, 1, 2)
    ids = groups_from_thresholds(q, (0.6, 0.3))
    assert ids.tolist() == [[[SIMPLE, HARD]], [[MEDIUM, SIMPLE]]]


@pytest.mark.parametrize("th", [(0.3, 0.6), (0.5, 0.5), (1.2, 0.3), (1.0, 0.3), (0.6, 0.0),
                                (0.6, -0.1), (0.6, 0.3, 0.1), (0.6,)])
def test_bad_thresholds_raise(th):
    with pytest.raises(ValueError, match="threshold"):
        groups_from_thresholds(torch.rand(1, 2, 2), th)
    with pytest.raises(ValueError, match="threshold"):
        group_patches(torch.rand(1, 1, 8, 8), cfg(4, thresholds=th))
    with pytest.raises(ValueError, match="threshold"):
        GroupingConfig(thresholds=th)


def test_unordered_thresholds_message_names_both():
    with pytest.raises(ValueError, match="gamma1 > gamma2") as e:
        groups_from_thresholds(torch.rand(1, 2, 2), (0.3, 0.6))
    assert "0.3" in str(e.value) and "0.6" in str(e.value)


def test_quantiles_hand_made_map():
    vals = [[0.1, 0.9, 0.3, 0.7, 0.5], [0.2, 0.8, 0.4, 0.6, 0.05]]  # 10 distinct values
    g = group_patches(blocks(vals, 2), cfg(2, quantiles=(0.2, 0.3)))
    # top 2 (0.9, 0.8) Simple, next 3 (0.7, 0.6, 0.5) Medium, other 5 Hard
    expected = [[HARD, SIMPLE, HARD, MEDIUM, MEDIUM], [HARD, SIMPLE, HARD, MEDIUM, HARD]]
    assert g.groups.tolist() == [expected]
    assert g.counts == {"simple": 2, "medium": 3, "hard": 5}


def test_quantiles_win_over_thresholds():
    conf = blocks([[0.9, 0.8, 0.7, 0.6]], 2)
    g = group_patches(conf, cfg(2, thresholds=(0.95, 0.85), quantiles=(0.5, 0.5)))
    assert g.groups.tolist() == [[[SIMPLE, SIMPLE, MEDIUM, MEDIUM]]]


def test_quantile_ties_are_broken_by_position():
    q = torch.full((1, 2, 3), 0.5)
    ids = groups_from_quantiles(q, (1 / 3, 1 / 3))
    assert ids.tolist() == [[[SIMPLE, SIMPLE, MEDIUM], [MEDIUM, HARD, HARD]]]


@st.composite
def qmaps_and_fractions(draw):
    B, nh, nw = draw(st.integers(1, 3)), draw(st.integers(1, 6)), draw(st.integers(1, 6))
    vals = draw(st.lists(st.floats(0, 1, width=32), min_size=B * nh * nw, max_size=B * nh * nw))
    f1 = draw(st.floats(0, 1))
    f2 = draw(st.floats(0, 1 - f1))
    return torch.tensor(vals, dtype=torch.float32).view(B, nh, nw), (f1, f2)


@given(qmaps_and_fractions())
def test_quantile_groups_have_the_right_sizes_and_order(case):
    q, (f1, f2) = case
    ids = groups_from_quantiles(q, (f1, f2))
    n = q[0].numel()
    n1 = round(f1 * n)
    n2 = min(n - n1, round(f2 * n))
    for qi, gi in zip(q, ids, strict=True):
        counts = [(gi == k).sum().item() for k in range(3)]
        assert counts == [n1, n2, n - n1 - n2]
        # Every Simple patch is at least as confident as every Medium one, and Medium as Hard.
        groups = [qi[gi == k] for k in range(3)]
        for hi, lo in ((0, 1), (1, 2), (0, 2)):
            if len(groups[hi]) and len(groups[lo]):
                assert groups[hi].min() >= groups[lo].max()


@pytest.mark.parametrize("qs", [(0.7, 0.5), (-0.1, 0.5), (1.5, 0.0), (0.5, 1.2), (0.5,)])
def test_bad_quantiles_raise(qs):
    with pytest.raises(ValueError, match="quantiles"):
        groups_from_quantiles(torch.rand(1, 2, 2), qs)
    with pytest.raises(ValueError, match="quantiles"):
        GroupingConfig(quantiles=qs)


def test_confidence_shape_is_checked():
    with pytest.raises(PatchScalerError, match=r"\(B, 1, H, W\)"):
        qmap(torch.rand(1, 3, 8, 8), 4)
    with pytest.raises(PatchScalerError, match=r"\(B, 1, H, W\)"):
        qmap(torch.rand(8, 8), 4)


def test_grouping_with_overlap_and_odd_sizes():
    conf = torch.rand(2, 1, 37, 23, generator=torch.Generator().manual_seed(0))
    g = group_patches(conf, cfg(8, overlap=2))
    assert g.qmap.shape == g.groups.shape == (2, g.layout.nh, g.layout.nw)
    assert sum(g.counts.values()) == g.groups.numel()


def test_grouping_config_defaults_are_valid():
    cfg = GroupingConfig()
    assert cfg.thresholds[0] > cfg.thresholds[1]
    with pytest.raises(ValueError, match="patch_size"):
        GroupingConfig(patch_size=0)

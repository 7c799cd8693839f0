"""End-to-end pipeline on tiny, seeded, in-memory models (CPU)."""

import pytest
import torch

from patchscaler_lite.config import PRESETS, GroupingConfig, PGSConfig
from patchscaler_lite.data import crop_to_scale, degrade, load_photos
from patchscaler_lite.diffusion.denoiser import Denoiser
from patchscaler_lite.errors import PatchScalerError
from patchscaler_lite.grm.model import GlobalRestorationModule
from patchscaler_lite.grouping import assign_groups
from patchscaler_lite.pipeline import PatchScalerPipeline
from patchscaler_lite.texture.memory import build_memory


@pytest.fixture(scope="module")
def photo():
    hr = crop_to_scale(load_photos("val")["astronaut"][:, 128:320, 160:352], 4)[None]   # (1,3,192,192)
    return hr, degrade(hr, 4)


@pytest.fixture(scope="module")
def pipe(tiny_models):
    grm, den = tiny_models()
    photos = {k: v[:, :160, :160] for k, v in list(load_photos("train").items())[:3]}
    mem = build_memory(photos, 16, n_patches=256, iters=5, generator=torch.Generator().manual_seed(0))
    grouping = GroupingConfig(patch_size=den.cfg.dit.patch_size, overlap=8, quantiles=(0.4, 0.3))
    pgs = PGSConfig(starts=(50, 100, 200), steps=(1, 2, 3), batch_size=16, grouping=grouping)
    return PatchScalerPipeline(grm, den, mem, pgs=pgs)


def test_output_fields_and_exact_nfe(pipe, photo):
    _, lr = photo
    out = pipe(lr, generator=torch.Generator().manual_seed(0))
    assert out.image.shape == (1, 3, 192, 192) and out.coarse.shape == out.image.shape
    assert out.confidence.shape == (1, 1, 192, 192)
    assert 0 <= out.image.min() and out.image.max() <= 1
    n = out.groups.numel()
    assert sum(out.counts.values()) == n
    assert out.patch_nfe == {k: c * s for (k, c), s in zip(out.counts.items(), (1, 2, 3))}
    assert set(out.seconds) == {"grm", "grouping", "retrieval", "sampling", "reassembly"}


def test_same_seed_same_output_and_other_seed_differs(pipe, photo):
    _, lr = photo
    a = pipe(lr, generator=torch.Generator().manual_seed(3)).image
    b = pipe(lr, generator=torch.Generator().manual_seed(3)).image
    c = pipe(lr, generator=torch.Generator().manual_seed(4)).image
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_a_batch_equals_its_singles(pipe, photo):
    _, lr = photo
    lr2 = torch.cat([lr, lr.flip(-1)])
    gens = [torch.Generator().manual_seed(5), torch.Generator().manual_seed(6)]
    batch = pipe(lr2, generator=gens).image
    one = pipe(lr2[:1], generator=torch.Generator().manual_seed(5)).image
    two = pipe(lr2[1:], generator=torch.Generator().manual_seed(6)).image
    assert torch.allclose(batch, torch.cat([one, two]), atol=1e-5)


def seam_ratio(img, stride, overlap):
    """Mean |horizontal + vertical gradient| on the columns/rows where patches meet (the overlap
    zones, or the cut for overlap 0) over the mean elsewhere. (H, W) -> float; 1 = no seams."""
    def one(x):
        g = (x[:, 1:] - x[:, :-1]).abs()                      # g[:, j]: between j and j + 1
        zone = set()
        for k in range(1, x.shape[1] // stride + 1):
            start = k * stride
            zone |= set(range(start - 1, start + max(overlap, 1)))
        cols = [j for j in range(g.shape[1]) if j in zone]
        rest = [j for j in range(g.shape[1]) if j not in zone]
        return g[:, cols].mean() / g[:, rest].mean()
    return float((one(img) + one(img.T)) / 2)


def test_no_seams_across_patch_borders():
    """Shipped weights, real photo: gradients where overlapping patches meet stay within 10% of the
    interior's (the blending hides the seams)."""
    pipe = PatchScalerPipeline.from_pretrained()
    hr = crop_to_scale(load_photos("val")["coffee"][:, 40:280, 100:340], 4)[None]
    out = pipe(degrade(hr, 4), generator=torch.Generator().manual_seed(0))
    r = seam_ratio(out.image[0].mean(0), pipe.patch_size - pipe.overlap, pipe.overlap)
    assert abs(r - 1) < 0.10, r


def test_seam_metric_sees_a_naive_paste():
    """The metric is not blind: patches pasted without overlap, each a little brighter or darker
    than its neighbour (as independent patch restorations can be), fail it clearly."""
    from patchscaler_lite.patches import patchify, unpatchify

    hr = load_photos("val")["coffee"][None, :, :192, :192]
    patches, layout = patchify(hr, 32, 0)
    offsets = 0.03 * torch.randn(len(patches), generator=torch.Generator().manual_seed(0))
    img = unpatchify((patches + offsets[:, None, None, None]).clamp(0, 1), layout)[0].mean(0)
    assert seam_ratio(img, 32, 0) > 1.2
    assert abs(seam_ratio(hr[0].mean(0), 32, 0) - 1) < 0.10      # the photo itself has no seams


def test_no_texture_path_and_uniform_mode(pipe, photo):
    _, lr = photo
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    tex = pipe(lr, generator=g()).image
    notex = pipe(lr, generator=g(), texture=False).image
    assert not torch.equal(tex, notex)
    uni = pipe(lr, generator=g(), pgs=PGSConfig(uniform=(200, 3)))
    assert uni.total_nfe == 3 * uni.groups.numel()


def test_bad_inputs(pipe):
    with pytest.raises(PatchScalerError):
        pipe(torch.full((1, 3, 16, 16), float("nan")))
    with pytest.raises(PatchScalerError):
        pipe(torch.rand(1, 3, 16, 16) * 3)
    with pytest.raises(PatchScalerError):
        pipe(torch.rand(2, 3, 16, 16), generator=[torch.Generator()])


def test_tiny_image_smaller_than_a_patch(pipe):
    out = pipe(torch.rand(1, 3, 5, 7), generator=torch.Generator().manual_seed(0))
    assert out.image.shape == (1, 3, 20, 28)


def test_an_image_too_large_is_refused_with_the_limit_named(pipe):
    from patchscaler_lite.pipeline import MAX_LR_PIXELS

    side = int(MAX_LR_PIXELS ** 0.5) + 1
    with pytest.raises(PatchScalerError, match="4,000,000"):
        pipe(torch.zeros(1, 3, side, side))


def test_mismatched_weights_are_refused(tmp_path):
    from patchscaler_lite.diffusion.denoiser import load_denoiser
    from patchscaler_lite.errors import WeightsError
    from patchscaler_lite.texture.store import save_memory
    from patchscaler_lite.weights import save_weights

    den = Denoiser(PRESETS["tiny"].dit)
    save_weights(tmp_path / "dit_x.safetensors", den.state_dict(), "dit", den.cfg.to_dict())
    with pytest.raises(WeightsError, match="dim=32 in the file, 128 requested"):
        load_denoiser(tmp_path / "dit_x.safetensors", expect=PRESETS["lite"].dit)
    # a folder whose memory was built for 16 px patches cannot serve a 32 px Patch-DiT
    grm = GlobalRestorationModule(PRESETS["tiny"].grm)
    save_weights(tmp_path / "grm_x.safetensors", grm.state_dict(), "grm", grm.cfg.to_dict())
    from patchscaler_lite.config import descriptor_for

    photos = {k: v[:, :64, :64] for k, v in list(load_photos("train").items())[:2]}
    mem = build_memory(photos, 4, descriptor_for(16), n_patches=32, iters=2,
                       generator=torch.Generator().manual_seed(0))
    save_memory(mem, tmp_path / "memory_x.safetensors")
    with pytest.raises(WeightsError, match="patch"):
        PatchScalerPipeline.from_pretrained(tmp_path, preset="x")


def test_a_supplied_qmap_decides_the_grouping(pipe, photo):
    """The analyses' hook: any difficulty map, plugged in as the Qmap, sets the groups."""
    _, lr = photo
    own = pipe(lr, generator=torch.Generator().manual_seed(0))
    flipped = 1 - own.qmap                                   # the easiest patches become the hardest
    out = pipe(lr, generator=torch.Generator().manual_seed(0), qmap=flipped)
    assert torch.equal(out.qmap, flipped)
    assert torch.equal(out.groups, assign_groups(flipped, pipe.pgs.grouping))
    assert not torch.equal(out.groups, own.groups)
    with pytest.raises(PatchScalerError, match="patch layout"):
        pipe(lr, qmap=own.qmap[:, :-1])


def test_the_texture_prompt_is_encoded_once_per_patch_batch(pipe, photo):
    """Prompt encoding and the prompt's cross-attention K/V run once per batch, not per step."""
    _, lr = photo
    enc_calls, kv_calls, steps = [], [], []
    h1 = pipe.denoiser.encoder.register_forward_hook(lambda *a: enc_calls.append(1))
    h2 = pipe.denoiser.dit.blocks[0].cross.kv.register_forward_hook(lambda *a: kv_calls.append(1))
    try:
        out = pipe(lr, generator=torch.Generator().manual_seed(0), callback=steps.append)
    finally:
        h1.remove()
        h2.remove()
    b = pipe.pgs.batch_size
    batches = sum(-(-n // b) for n in out.counts.values())
    assert len(enc_calls) == len(kv_calls) == batches
    assert len(steps) > batches                     # several steps per batch shared one encoding


def test_from_pretrained_given_a_file_says_it_wants_the_folder(tmp_path):
    f = tmp_path / "grm_lite.safetensors"
    f.write_bytes(b"x")
    with pytest.raises(PatchScalerError, match="is a file; from_pretrained takes the folder"):
        PatchScalerPipeline.from_pretrained(f)

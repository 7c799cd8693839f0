import torch

from patchscaler_lite.config import PRESETS
from patchscaler_lite.diffusion.dit import PatchDiT


def _inputs(m=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    cfg = PRESETS["tiny"].dit.dit
    P = cfg.patch_size
    x = torch.randn(m, 3, P, P, generator=g)
    y0 = torch.rand(m, 3, P, P, generator=g) * 2 - 1
    t = torch.randint(1, 400, (m,), generator=g)
    prompt = torch.randn(m, cfg.top_k * (P // cfg.prompt_token_size) ** 2, cfg.dim, generator=g)
    return cfg, x, t, y0, prompt


def test_fresh_model_returns_the_coarse_patch():
    cfg, x, t, y0, prompt = _inputs()
    model = PatchDiT(cfg)
    assert torch.equal(model(x, t, y0, prompt), y0)


def _perturbed(cfg):
    torch.manual_seed(1)
    model = PatchDiT(cfg)
    with torch.no_grad():                       # leave the zero init so outputs depend on inputs
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def test_shapes_prompt_matters_and_batch_equals_singles():
    cfg, x, t, y0, prompt = _inputs()
    model = _perturbed(cfg)
    out = model(x, t, y0, prompt)
    assert out.shape == y0.shape
    assert not torch.allclose(out, model(x, t, y0, None))          # the prompt is used
    singles = torch.cat([model(x[i:i + 1], t[i:i + 1], y0[i:i + 1], prompt[i:i + 1]) for i in range(3)])
    assert torch.allclose(out, singles, atol=1e-5)


def test_tokens_round_trip():
    cfg, x, *_ = _inputs()
    model = PatchDiT(cfg)
    assert torch.equal(model.untokens(model.tokens(x)), x)

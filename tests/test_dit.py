import torch
import torch.nn.functional as F

from patchscaler_lite.config import PRESETS
from patchscaler_lite.diffusion.dit import PatchDiT, modulate, timestep_embedding


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


def _reference_forward(model, x, t, y0, prompt):
    """The DiT computed the plain way, everything at every call (the oracle for the cached path):
    one embedding of the concatenated channels, the prompt's keys and values projected inside
    each block's cross-attention."""
    def attend(att, q_in, ctx):
        M, N, D = q_in.shape
        h = att.heads
        q = att.q(q_in).reshape(M, N, h, D // h).transpose(1, 2)
        k, v = att.kv(ctx).reshape(M, ctx.shape[1], 2, h, D // h).permute(2, 0, 3, 1, 4)
        return att.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(M, N, D))

    h = model.embed(model.tokens(torch.cat([x, y0], 1))) + model.pos
    c = model.t_mlp(timestep_embedding(t, model.cfg.dim))
    for b in model.blocks:
        sh1, sc1, g1, sh2, sc2, g2 = b.ada(c).chunk(6, dim=1)
        n1 = modulate(b.norm1(h), sh1, sc1)
        h = h + g1[:, None] * attend(b.attn, n1, n1)
        h = h + b.cross_gate * attend(b.cross, b.norm_x(h), prompt)
        h = h + g2[:, None] * b.mlp(modulate(b.norm2(h), sh2, sc2))
    sh, sc = model.ada_out(c).chunk(2, dim=1)
    return y0 + model.untokens(model.out(modulate(model.norm_out(h), sh, sc)))


def test_a_condition_computed_once_serves_every_step():
    """condition() once, step() at several timesteps == the plain forward at each of them."""
    cfg, x, t, y0, prompt = _inputs(m=4)
    model = _perturbed(cfg)
    with torch.no_grad():
        for b in model.blocks:
            b.cross_gate.add_(0.5)                          # make the cross-attention count
        cond = model.condition(y0, prompt)
        for step in range(3):
            tt = torch.full((4,), 300 - 100 * step)
            xs = x * (1 - 0.3 * step)
            want = _reference_forward(model, xs, tt, y0, prompt)
            assert (model.step(xs, tt, cond) - want).abs().max() < 1e-5
            assert (model(xs, tt, y0, prompt) - want).abs().max() < 1e-5

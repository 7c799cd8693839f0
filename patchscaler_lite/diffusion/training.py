"""Training Patch-DiT (+ the similarity-aware texture encoder) on HR / coarse patch pairs.

Data: every train photo is degraded (x4, the recipe's degradation) and restored once by the frozen
GRM (its coarse twin, texture.memory.coarse_twins); training pairs are co-located random P x P crops
of (HR, coarse) with the same flip/rotation. Each pair gets
its texture prompt from the Reference Texture Memory, *excluding entries cut from the same photo*:
otherwise the memory would hand the model the very HR patch it must produce, a leak that never
happens at test time (val photos are not in the memory).

Objective: x0-prediction, MSE in the [-1, 1] signal space, t ~ U{1..t_max} with t_max the largest
group start the sampler will use. The prompt is dropped (zero tokens, `Denoiser.prompt`) for a
fraction of samples: the exact computation of the --no-texture ablation, so one set of weights
serves both.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from ..config import DenoiserConfig, DiTTrainConfig
from ..data import crop_to_scale
from ..grm.model import restore
from ..patches import dihedral
from ..texture.memory import TextureMemory, coarse_twins, retrieve
from ..trainer import TrainState, lr_at
from ..weights import count_parameters, init_from, resolve_init, save_weights
from .denoiser import Denoiser
from .schedule import alpha_bar, q_sample, to_signal

VAL_BATCH = 128          # patches of the fixed validation batch
VAL_TIMESTEPS = (100, 250, 400)


@torch.no_grad()
def coarse_pairs(grm, images: dict[str, Tensor], device, degradation: str = "bicubic",
                 seed: int = 0) -> list[tuple[str, Tensor, Tensor]]:
    """[(name, hr (3, H, W), coarse (3, H, W))] from the frozen GRM on x4 LR made by `degradation`
    (data.degrade; photo i's random degradation drawn with seed + i, so it is reproducible)."""
    s = grm.cfg.scale
    twins = coarse_twins({n: hr.to(device) for n, hr in images.items()}, partial(restore, grm), s,
                         degradation, seed)
    return [(n, crop_to_scale(hr, s).to(device), twins[n]) for n, hr in images.items()]


def sample_patch_pairs(pairs, n: int, P: int, g: torch.Generator):
    """Random co-located crops: (hr (n, 3, P, P), coarse (n, 3, P, P), photo index (n,))."""
    areas = torch.tensor([float(h.shape[-1] * h.shape[-2]) for _, h, _ in pairs])
    idx = torch.multinomial(areas, n, replacement=True, generator=g)
    hrs, cos = [], []
    for i in idx.tolist():
        _, hr, co = pairs[i]
        y = int(torch.randint(hr.shape[-2] - P + 1, (), generator=g))
        x = int(torch.randint(hr.shape[-1] - P + 1, (), generator=g))
        k = int(torch.randint(8, (), generator=g))
        hrs.append(dihedral(hr[:, y:y + P, x:x + P], k))
        cos.append(dihedral(co[:, y:y + P, x:x + P], k))
    return torch.stack(hrs), torch.stack(cos), idx


def prompt_refs(memory: TextureMemory, coarse: Tensor, exclude: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """(values (n, k, 3, P, P), sims (n, k)) for coarse patches, never from source ids `exclude`."""
    ids, sims = retrieve(memory, coarse, k, exclude=exclude)
    return memory.values_float(ids), sims


def _source_ids(pairs, memory: TextureMemory) -> Tensor:
    """Memory source index of each training photo (-1 if the memory does not know it)."""
    lookup = {n: i for i, n in enumerate(memory.source_names)}
    return torch.tensor([lookup.get(Path(n).stem, lookup.get(n, -1)) for n, _, _ in pairs])


def dit_loss(model: Denoiser, hr, coarse, refs, sims, t_max: int, dropout: float, abar,
             g: torch.Generator) -> Tensor:
    """x0-MSE at a random t for one batch; the prompt is dropped for a `dropout` fraction."""
    n = len(hr)
    x0, y0 = to_signal(hr), to_signal(coarse)
    t = torch.randint(1, t_max + 1, (n,), generator=g).to(hr.device)
    eps = torch.randn(x0.shape, generator=g).to(hr.device)
    keep = (torch.rand(n, generator=g) >= dropout).to(hr.device)
    x_t = q_sample(x0, t, eps, abar)
    x0_hat = model(x_t, t, y0, refs, sims, keep=keep)
    return F.mse_loss(x0_hat.float(), x0)


def train_dit(cfg: DenoiserConfig, tc: DiTTrainConfig, grm, memory: TextureMemory, train_images,
              val_images, out_dir, *, device="cpu", resume=True, progress=True, command="") -> dict:
    """Train Denoiser (Patch-DiT + prompt encoder); write out_dir/dit_<name>.safetensors (EMA).

    train_images / val_images: {name: (3, H, W) in [0, 1]}; grm: the frozen GRM making the coarse
    patches; memory: the texture memory the prompts come from. Returns the training report.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(tc.seed)
    grm = grm.to(device).eval()
    pairs = coarse_pairs(grm, train_images, device, tc.degradation, tc.seed)
    val = _val_batch(coarse_pairs(grm, val_images, device, tc.degradation, tc.seed + 10_000),
                     memory, cfg)
    init = None if not tc.init else (
        lambda m: init_from(m, resolve_init(tc.init, "dit"), "dit", cfg.to_dict()))
    st = TrainState(lambda: Denoiser(cfg), tc.lr, g, device, out_dir / "checkpoint.pt", resume,
                    tc.iters, seed=tc.seed, init=init)
    _train_loop(st, cfg, tc, pairs, _source_ids(pairs, memory), memory, val, device, progress)
    report = {"command": command, "device": str(device), "seconds": round(st.seconds(), 1),
              "torch": torch.__version__, "threads": torch.get_num_threads(),
              "parameters": count_parameters(st.model),
              "train_photos": sorted(train_images), "val_photos": sorted(val_images),
              "train_config": tc.to_dict(), "memory": memory.info,
              "final": st.history[-1], "history": st.history}
    save_weights(out_dir / f"dit_{cfg.dit.name}.safetensors", st.ema.state_dict(), "dit",
                 cfg.to_dict(), report)
    return report


def _val_batch(val_pairs, memory: TextureMemory, cfg: DenoiserConfig) -> tuple:
    """A fixed validation batch (hr, coarse, refs, sims): the same patches at every validation."""
    hr, co, _ = sample_patch_pairs(val_pairs, VAL_BATCH, cfg.dit.patch_size,
                                   torch.Generator().manual_seed(999))
    refs, sims = prompt_refs(memory, co, torch.full((VAL_BATCH,), -2), cfg.dit.top_k)
    return hr, co, refs, sims


def _train_loop(st: TrainState, cfg, tc, pairs, src_ids, memory, val, device, progress) -> None:
    """Steps st.step .. tc.iters: sample, retrieve (own photo excluded), x0-MSE, AdamW, EMA."""
    abar = alpha_bar().to(device)
    P, K = cfg.dit.patch_size, cfg.dit.top_k
    cuda = str(device).startswith("cuda")
    bar = tqdm(total=tc.iters, initial=st.step, desc="train dit", disable=not progress)
    while st.step < tc.iters:
        hr, co, idx = sample_patch_pairs(pairs, tc.batch_size, P, st.g)
        refs, sims = prompt_refs(memory, co, src_ids[idx], K)
        st.set_lr(lr_at(st.step, tc))
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            loss = dit_loss(st.model, hr, co, refs, sims, tc.t_max, tc.prompt_dropout, abar, st.g)
        step = st.optimizer_step(loss, tc.grad_clip, tc.ema)
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}")
        if step % tc.val_every == 0 or step == tc.iters:
            v = validate(st.ema, *val, abar)
            st.history.append({"step": step, "loss": loss.item(), **v, "seconds": st.seconds()})
            bar.write(f"step {step}: loss {loss.item():.4f}  val x0-MSE " +
                      "  ".join(f"{k} {x:.5f}" for k, x in v.items()))
        if step % tc.ckpt_every == 0 or step == tc.iters:
            st.save()
    bar.close()


@torch.no_grad()
def validate(model: Denoiser, hr, co, refs, sims, abar) -> dict[str, float]:
    """x0-MSE on a fixed val batch at t = 100, 250, 400 (same noise every time), with and without
    the texture prompt: the training-time view of claims C2 and C4."""
    g = torch.Generator().manual_seed(0)
    x0, y0 = to_signal(hr), to_signal(co)
    eps = torch.randn(x0.shape, generator=g).to(x0)
    out = {"coarse": F.mse_loss(y0, x0).item()}
    for t in VAL_TIMESTEPS:
        tt = torch.full((len(x0),), t, device=x0.device)
        x_t = q_sample(x0, tt, eps, abar)
        out[f"t{t}"] = F.mse_loss(model(x_t, tt, y0, refs, sims).float(), x0).item()
        out[f"t{t}_notex"] = F.mse_loss(model(x_t, tt, y0, None, None).float(), x0).item()
    return out

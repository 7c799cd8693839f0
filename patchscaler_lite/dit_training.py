"""Training Patch-DiT (+ the similarity-aware texture encoder) on HR / coarse patch pairs.

Data: every train photo is degraded (x4 bicubic) and restored once by the frozen GRM; training
pairs are co-located random P x P crops of (HR, coarse) with the same flip/rotation. Each pair gets
its texture prompt from the Reference Texture Memory, *excluding entries cut from the same photo*:
otherwise the memory would hand the model the very HR patch it must produce, a leak that never
happens at test time (val photos are not in the memory).

Objective: x0-prediction, MSE in the [-1, 1] signal space, t ~ U{1..t_max} with t_max the largest
group start the sampler will use. The prompt is dropped for a fraction of samples, so the same
weights also serve the --no-texture ablation.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from .data import crop_to_scale, degrade
from .denoiser import Denoiser, DenoiserConfig
from .restoration import restore
from .schedule import alpha_bar, q_sample, to_signal
from .texture_memory import TextureMemory
from .training import TrainState, dihedral, lr_at
from .weights import save_weights


@dataclass(frozen=True)
class DiTTrainConfig:
    # 3000: a 5000-step lite run had its best val x0-MSE (t=100) at step 3000, then overfit.
    iters: int = 3000
    batch_size: int = 48
    lr: float = 3e-4
    warmup: int = 200
    min_lr_ratio: float = 0.05
    ema: float = 0.999
    grad_clip: float = 1.0
    t_max: int = 400            # >= the Hard group's start T3
    prompt_dropout: float = 0.2
    val_every: int = 500
    ckpt_every: int = 250
    seed: int = 0

    def __post_init__(self):
        if not 1 <= self.t_max <= 1000:
            raise ValueError(f"t_max must be in [1, 1000], got {self.t_max}")
        if not 0 <= self.prompt_dropout <= 1:
            raise ValueError(f"prompt_dropout must be in [0, 1], got {self.prompt_dropout}")


DIT_TRAIN_PRESETS = {
    "tiny": DiTTrainConfig(iters=20, batch_size=4, warmup=2, val_every=10, ckpt_every=10),
    "lite": DiTTrainConfig(),
    "base": DiTTrainConfig(iters=30000, batch_size=128, lr=2e-4),
}


@torch.no_grad()
def make_pairs(grm, images: dict[str, Tensor], device) -> list[tuple[str, Tensor, Tensor]]:
    """[(name, hr (3, H, W), coarse (3, H, W))] from the frozen GRM on x4 bicubic LR."""
    out = []
    for name, hr in images.items():
        hr = crop_to_scale(hr, grm.cfg.scale)[None].to(device)
        coarse, _ = restore(grm, degrade(hr, grm.cfg.scale))
        out.append((name, hr[0], coarse[0]))
    return out


def sample_batch(pairs, n: int, P: int, g: torch.Generator):
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


def retrieve_excluding(memory: TextureMemory, coarse: Tensor, exclude: Tensor, k: int):
    """Top-k entries for coarse patches (n, 3, P, P), never from memory source id `exclude` (n,)."""
    q = memory.embed(coarse)                                             # (n, F)
    s = q @ memory.keys.to(q).T                                          # (n, M)
    s = s.masked_fill(memory.sources.to(q.device)[None] == exclude[:, None], float("-inf"))
    sims, ids = s.topk(k, dim=1)                                         # (n, k)
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
    """Train Denoiser (Patch-DiT + texture encoder); write out_dir/dit_<name>.safetensors (EMA)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = out_dir / "checkpoint.pt"
    g = torch.Generator().manual_seed(tc.seed)
    torch.manual_seed(tc.seed)
    grm = grm.to(device).eval()
    pairs = make_pairs(grm, train_images, device)
    val_pairs = make_pairs(grm, val_images, device)
    src_ids = _source_ids(pairs, memory)
    abar = alpha_bar().to(device)
    P, K = cfg.dit.patch_size, cfg.dit.top_k
    gv = torch.Generator().manual_seed(999)                    # a fixed validation batch
    v_hr, v_co, _ = sample_batch(val_pairs, 128, P, gv)
    v_refs, v_sims = retrieve_excluding(memory, v_co, torch.full((128,), -2), K)

    st = TrainState(lambda: Denoiser(cfg), tc.lr, g, device, ckpt_path, resume, tc.iters)
    model, ema, opt, history, t0 = st.model, st.ema, st.opt, st.history, st.t0
    step = st.step
    cuda = str(device).startswith("cuda")
    bar = tqdm(total=tc.iters, initial=step, desc="train dit", disable=not progress)
    while step < tc.iters:
        hr, co, idx = sample_batch(pairs, tc.batch_size, P, g)
        refs, sims = retrieve_excluding(memory, co, src_ids[idx], K)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, tc)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            loss = dit_loss(model, hr, co, refs, sims, tc.t_max, tc.prompt_dropout, abar, g)
        step = st.optimizer_step(loss, tc.grad_clip, tc.ema)
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}")
        if step % tc.val_every == 0 or step == tc.iters:
            v = validate(ema, v_hr, v_co, v_refs, v_sims, abar)
            history.append({"step": step, "loss": loss.item(), **v, "seconds": time.time() - t0})
            bar.write(f"step {step}: loss {loss.item():.4f}  val x0-MSE " +
                      "  ".join(f"{k} {x:.5f}" for k, x in v.items()))
        if step % tc.ckpt_every == 0 or step == tc.iters:
            st.save()
    bar.close()
    report = {"command": command, "device": str(device), "seconds": round(time.time() - t0, 1),
              "torch": torch.__version__, "threads": torch.get_num_threads(),
              "parameters": sum(p.numel() for p in model.parameters()),
              "train_photos": sorted(train_images), "val_photos": sorted(val_images),
              "train_config": dataclasses.asdict(tc), "memory": memory.info,
              "final": history[-1], "history": history}
    save_weights(out_dir / f"dit_{cfg.dit.name}.safetensors", ema.state_dict(), "dit",
                 cfg.to_dict(), report)
    return report


@torch.no_grad()
def validate(model: Denoiser, hr, co, refs, sims, abar) -> dict[str, float]:
    """x0-MSE on a fixed val batch at t = 100, 250, 400 (same noise every time), with and without
    the texture prompt: the training-time view of claims C2 and C4."""
    g = torch.Generator().manual_seed(0)
    x0, y0 = to_signal(hr), to_signal(co)
    eps = torch.randn(x0.shape, generator=g).to(x0)
    out = {"coarse": F.mse_loss(y0, x0).item()}
    for t in (100, 250, 400):
        tt = torch.full((len(x0),), t, device=x0.device)
        x_t = q_sample(x0, tt, eps, abar)
        out[f"t{t}"] = F.mse_loss(model(x_t, tt, y0, refs, sims).float(), x0).item()
        out[f"t{t}_notex"] = F.mse_loss(model(x_t, tt, y0, None, None).float(), x0).item()
    return out

"""Training the GRM: random aligned crops, dihedral augmentation, AdamW + cosine, EMA, resume.

LR images are synthesised once per photo (the bicubic kernel is symmetric, so flipping or rotating
an aligned HR/LR crop pair gives exactly the pair of the flipped photo); crops are then cut at
LR-grid-aligned positions. Everything random comes from one seeded torch.Generator whose state is
checkpointed, so an interrupted run resumes to the same result.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .config import GRMConfig, GRMTrainConfig
from .data import bicubic_up, crop_to_scale, degrade
from .restoration import GlobalRestorationModule, confidence_loss, count_parameters
from .weights import save_weights


def make_pairs(images: list[Tensor], scale: int, degradation: str, generator=None,
               variants: int = 1) -> list[tuple[Tensor, Tensor]]:
    """[(hr (3, H, W), lr (3, H/s, W/s))]; `variants` degraded copies per photo (realistic only)."""
    pairs = []
    for hr in images:
        hr = crop_to_scale(hr, scale)
        n = variants if degradation == "realistic" else 1
        for _ in range(n):
            pairs.append((hr, degrade(hr, scale, degradation, generator=generator)[0]))
    return pairs


def dihedral(x: Tensor, k: int) -> Tensor:
    """One of the 8 flips/rotations of (..., H, W): rotate by k % 4 quarter turns, flip if k >= 4."""
    x = torch.rot90(x, k % 4, dims=(-2, -1))
    return x.flip(-1) if k >= 4 else x


def sample_batch(pairs, batch: int, crop: int, scale: int, g: torch.Generator):
    """Random aligned crops: (lr (B, 3, c/s, c/s), hr (B, 3, c, c)); photos drawn by area."""
    areas = torch.tensor([float(hr.shape[-1] * hr.shape[-2]) for hr, _ in pairs])
    idx = torch.multinomial(areas, batch, replacement=True, generator=g)
    c = crop // scale
    lrs, hrs = [], []
    for i in idx.tolist():
        hr, lr = pairs[i]
        y = int(torch.randint(lr.shape[-2] - c + 1, (), generator=g))
        x = int(torch.randint(lr.shape[-1] - c + 1, (), generator=g))
        k = int(torch.randint(8, (), generator=g))
        lrs.append(dihedral(lr[:, y : y + c, x : x + c], k))
        hrs.append(dihedral(hr[:, y * scale : (y + c) * scale, x * scale : (x + c) * scale], k))
    return torch.stack(lrs), torch.stack(hrs)


def lr_at(step: int, tc: GRMTrainConfig) -> float:
    """Linear warm-up, then cosine decay to lr * min_lr_ratio."""
    if step < tc.warmup:
        return tc.lr * (step + 1) / tc.warmup
    t = (step - tc.warmup) / max(1, tc.iters - tc.warmup)
    return tc.lr * (tc.min_lr_ratio + (1 - tc.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


@torch.no_grad()
def evaluate(model: torch.nn.Module, pairs, device) -> dict[str, float]:
    """Mean PSNR (RGB, dB, 8-bit quantised) of the model and of bicubic over full images."""
    from .metrics import psnr

    was = model.training
    model.eval()
    out = {"grm": 0.0, "bicubic": 0.0}
    for hr, lr in pairs:
        lr, hr = lr[None].to(device), hr[None].to(device)
        coarse, _ = model(lr)
        out["grm"] += psnr(coarse, hr) / len(pairs)
        out["bicubic"] += psnr(bicubic_up(lr, model.cfg.scale), hr) / len(pairs)
    model.train(was)
    return out


class TrainState:
    """Model, EMA copy, AdamW and the run's generator/step/history, with atomic checkpoints.

    Shared by the GRM and Patch-DiT loops; `resume` continues exactly where a checkpoint stopped.
    """

    def __init__(self, make_model, lr: float, g: torch.Generator, device, ckpt_path: Path,
                 resume: bool, iters: int | None = None):
        self.model = make_model().to(device)
        self.ema = make_model().to(device).eval()
        self.ema.load_state_dict(self.model.state_dict())
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=lr, betas=(0.9, 0.99), weight_decay=0.0)
        self.g, self.path = g, ckpt_path
        self.step, self.history, elapsed = 0, [], 0.0
        if resume and ckpt_path.exists():
            ck = torch.load(ckpt_path, map_location=device, weights_only=False)
            self.model.load_state_dict(ck["model"])
            self.ema.load_state_dict(ck["ema"])
            self.opt.load_state_dict(ck["opt"])
            g.set_state(ck["generator"])
            self.step, self.history, elapsed = ck["step"], ck["history"], ck["elapsed"]
            if iters is not None and self.step > iters:
                from .errors import PatchScalerError
                raise PatchScalerError(f"{ckpt_path} is at step {self.step}, beyond the {iters} "
                                       f"iterations asked for: pass --no-resume or another output folder")
        self.t0 = time.time() - elapsed

    def optimizer_step(self, loss, grad_clip: float, ema_decay: float) -> int:
        """Backward, clip, AdamW step, EMA update; returns the new step count."""
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), grad_clip)
        self.opt.step()
        self.update_ema(ema_decay)
        self.step += 1
        return self.step

    @torch.no_grad()
    def update_ema(self, decay: float) -> None:
        d = min(decay, (1 + self.step) / (10 + self.step))         # short warm-up of the EMA
        for pe, pm in zip(self.ema.parameters(), self.model.parameters()):
            pe.lerp_(pm, 1 - d)

    def save(self) -> None:
        tmp = self.path.with_name(self.path.name + ".partial")
        torch.save({"model": self.model.state_dict(), "ema": self.ema.state_dict(),
                    "opt": self.opt.state_dict(), "generator": self.g.get_state(),
                    "step": self.step, "history": self.history,
                    "elapsed": time.time() - self.t0}, tmp)
        tmp.replace(self.path)


def train_grm(cfg: GRMConfig, tc: GRMTrainConfig, train_images, val_images, out_dir, *,
              device="cpu", resume: bool = True, progress: bool = True, command: str = "") -> dict:
    """Train a GRM; write out_dir/grm_<preset>.safetensors (EMA weights) + config + report.

    train_images / val_images: dicts {name: (3, H, W) in [0, 1]}. Returns the report dict.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = out_dir / "checkpoint.pt"
    g = torch.Generator().manual_seed(tc.seed)
    torch.manual_seed(tc.seed)                      # weight init
    train_pairs = make_pairs(list(train_images.values()), cfg.scale, tc.degradation, g, variants=4)
    val_pairs = make_pairs(list(val_images.values()), cfg.scale, tc.degradation,
                           torch.Generator().manual_seed(12345))
    st = TrainState(lambda: GlobalRestorationModule(cfg), tc.lr, g, device, ckpt_path, resume,
                    tc.iters)
    model, ema, opt, history, t0 = st.model, st.ema, st.opt, st.history, st.t0
    step = st.step
    bar = tqdm(total=tc.iters, initial=step, desc="train grm", disable=not progress)
    while step < tc.iters:
        lr_img, hr_img = sample_batch(train_pairs, tc.batch_size, tc.crop, cfg.scale, g)
        lr_img, hr_img = lr_img.to(device), hr_img.to(device)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, tc)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=str(device).startswith("cuda")):
            coarse, conf = model(lr_img)
        loss = confidence_loss(coarse.float(), hr_img, conf.float(), cfg.lam, cfg.eta)
        step = st.optimizer_step(loss, tc.grad_clip, tc.ema)
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}")
        if step % tc.val_every == 0 or step == tc.iters:
            v = evaluate(ema, val_pairs, device)
            history.append({"step": step, "loss": loss.item(), "val_psnr": v["grm"],
                            "val_psnr_bicubic": v["bicubic"], "seconds": time.time() - t0})
            bar.write(f"step {step}: loss {loss.item():.4f}  val PSNR {v['grm']:.2f} dB "
                      f"(bicubic {v['bicubic']:.2f})")
        if step % tc.ckpt_every == 0 or step == tc.iters:
            st.save()
    bar.close()
    calibration = None
    if tc.calib_iters > 0:
        from .calibration import calibrate_confidence

        calibration = calibrate_confidence(ema, train_images, val_images, iters=tc.calib_iters,
                                           batch_size=tc.batch_size, crop=tc.crop, lr=tc.calib_lr,
                                           seed=tc.seed, device=device, progress=progress)
    final = history[-1]
    report = {
        "command": command, "device": str(device), "seconds": round(time.time() - t0, 1),
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "parameters": count_parameters(model),
        "train_photos": sorted(train_images), "val_photos": sorted(val_images),
        "train_config": dataclasses.asdict(tc),
        "final_val_psnr": round(final["val_psnr"], 3),
        "final_val_psnr_bicubic": round(final["val_psnr_bicubic"], 3),
        "gain_db": round(final["val_psnr"] - final["val_psnr_bicubic"], 3),
        "confidence_calibration": calibration,
        "history": history,
    }
    save_weights(out_dir / f"grm_{cfg.name}.safetensors", ema.state_dict(), "grm", cfg.to_dict(), report)
    return report

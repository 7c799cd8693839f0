"""What the GRM and Patch-DiT training loops share: the LR schedule and the training state.

`TrainState` holds the model, its EMA copy, AdamW and the run's generator / step / history, writes
atomic checkpoints and resumes exactly where one stopped. Weight initialisation is seeded inside
`torch.random.fork_rng`, so training never changes the caller's global RNG.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from .errors import PatchScalerError


def lr_at(step: int, tc) -> float:
    """Linear warm-up over tc.warmup steps, then cosine decay to tc.lr * tc.min_lr_ratio at tc.iters."""
    if step < tc.warmup:
        return tc.lr * (step + 1) / tc.warmup
    t = (step - tc.warmup) / max(1, tc.iters - tc.warmup)
    return tc.lr * (tc.min_lr_ratio + (1 - tc.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def seeded_init(make_model, seed: int, n: int = 1) -> list[torch.nn.Module]:
    """n calls of make_model(), initialised from `seed`; the caller's global RNG is left untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return [make_model() for _ in range(n)]


class TrainState:
    """Model, EMA copy, AdamW and the run's generator/step/history, with atomic checkpoints."""

    def __init__(self, make_model, lr: float, g: torch.Generator, device, ckpt_path: Path,
                 resume: bool, iters: int | None = None, seed: int = 0, init=None):
        """init: None, or a callable filling a fresh model from weights (fine-tuning); a resumed
        checkpoint replaces it."""
        model, ema = seeded_init(make_model, seed, 2)
        if init is not None:
            init(model)
        self.model, self.ema = model.to(device), ema.to(device).eval()
        self.ema.load_state_dict(self.model.state_dict())
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=lr, betas=(0.9, 0.99), weight_decay=0.0)
        self.g, self.path = g, Path(ckpt_path)
        self.step, self.history, elapsed = 0, [], 0.0
        if resume and self.path.exists():
            elapsed = self._load(device, iters)
        self.t0 = time.time() - elapsed

    def _load(self, device, iters: int | None) -> float:
        ck = torch.load(self.path, map_location=device, weights_only=False)
        self.model.load_state_dict(ck["model"])
        self.ema.load_state_dict(ck["ema"])
        self.opt.load_state_dict(ck["opt"])
        self.g.set_state(ck["generator"])
        self.step, self.history = ck["step"], ck["history"]
        if iters is not None and self.step > iters:
            raise PatchScalerError(f"{self.path} is at step {self.step}, beyond the {iters} "
                                   f"iterations asked for: pass --no-resume or another output folder")
        return ck["elapsed"]

    def set_lr(self, lr: float) -> None:
        for group in self.opt.param_groups:
            group["lr"] = lr

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

    def seconds(self) -> float:
        return time.time() - self.t0

    def save(self) -> None:
        tmp = self.path.with_name(self.path.name + ".partial")
        torch.save({"model": self.model.state_dict(), "ema": self.ema.state_dict(),
                    "opt": self.opt.state_dict(), "generator": self.g.get_state(),
                    "step": self.step, "history": self.history,
                    "elapsed": time.time() - self.t0}, tmp)
        tmp.replace(self.path)

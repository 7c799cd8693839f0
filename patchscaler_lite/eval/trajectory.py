"""Claim C2 up close: every step of one uniform (T, N) run, watched through the sampler callback."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pandas as pd
import torch
from torch import Tensor

from ..data import degrade
from ..diffusion.schedule import alpha_bar, from_signal, shortcut_start, timesteps_for, to_signal
from ..patches import interior_mask, patchify


@dataclass
class Trajectory:
    """Every step of one uniform (T, N) run on one image. Tensors CPU, patches in [-1, 1]."""

    ts: list[int]          # t_0 = T > ... > t_N = 0
    start: Tensor          # (n, 3, P, P) x_T, the shortcut start (Eq. 6)
    x0_hat: Tensor         # (N, n, 3, P, P) the model's clean estimate at each call
    x: Tensor              # (N, n, 3, P, P) the state after each DDIM step
    coarse: Tensor         # (n, 3, P, P) y0
    truth: Tensor          # (n, 3, P, P) HR patches
    groups: Tensor         # (n,) default group ids
    qmap: Tensor           # (n,)
    interior: Tensor       # (n,) bool: the patch lies inside the image (no replicate padding)

    def ranked(self, group: int) -> list[int]:
        """Interior patches of a group, most confident first for Simple, least first otherwise."""
        order = self.qmap.argsort(descending=group == 0).tolist()
        return [i for i in order if self.groups[i] == group and self.interior[i]]


def trajectory(pipe, hr: Tensor, T: int, N: int, *, seed: int = 0) -> Trajectory:
    """Watch a uniform (T, N) run through the sampler callback. hr: (1, 3, H, W) in [0, 1]."""
    lr = degrade(hr, pipe.grm.cfg.scale).to(pipe.device)
    steps = {}

    def watch(info):
        steps.setdefault(info.step, []).append(info)

    out = pipe(lr, generator=torch.Generator().manual_seed(seed),
               pgs=replace(pipe.pgs, uniform=(T, N)), callback=watch)
    n, P = out.layout.patches_per_image, pipe.patch_size
    x0s = torch.empty(N, n, 3, P, P)                                        # (S, n, 3, P, P)
    xs = torch.empty_like(x0s)
    for step, infos in steps.items():
        for info in infos:
            x0s[step, info.idx.cpu()] = info.x0_hat.float().cpu()
            xs[step, info.idx.cpu()] = info.x_next.float().cpu()
    y0 = to_signal(patchify(out.coarse.cpu(), P, out.layout.overlap)[0])
    return Trajectory(timesteps_for(T, N), shortcut_start(y0, T, out.noise, alpha_bar()), x0s, xs,
                      y0, to_signal(patchify(hr.cpu(), P, out.layout.overlap)[0]),
                      out.groups.flatten().cpu(), out.qmap.flatten().cpu(),
                      interior_mask(out.layout).flatten())


def trajectory_stats(tr: Trajectory, i: int) -> pd.DataFrame:
    """Per step of patch i (step 0: the coarse y0; step k: the k-th call, made at t): PSNR (dB)
    of the estimate to the HR patch and to the final x0,
    and how much x0_hat moved since the previous call (RMS, [0, 1] units)."""
    est = from_signal(torch.cat([tr.coarse[i][None], tr.x0_hat[:, i]]))          # (S + 1, 3, P, P)
    truth, final = from_signal(tr.truth[i]), est[-1]

    def db(a, b):
        return (-10 * torch.log10((a - b).square().mean((1, 2, 3)).clamp_min(1e-12))).tolist()
    move = [float("nan")] + (est[1:] - est[:-1]).square().mean((1, 2, 3)).sqrt().tolist()
    return pd.DataFrame({"step": range(len(est)), "t": [tr.ts[0]] + tr.ts[:-1],
                         "psnr_truth": db(est, truth), "psnr_final": db(est, final), "move": move})

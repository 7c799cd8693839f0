"""Training the GRM: random aligned crops of the train photos (photoset.sample_crops: uint8 photos,
degraded on the fly, flips/rotations), AdamW + cosine, EMA, resume; then
the confidence calibration stage (grm/calibration.py). Everything random comes from one seeded
torch.Generator whose state is checkpointed, so an interrupted run resumes to the same result.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..config import GRMConfig, GRMTrainConfig
from ..photoset import PhotoSet, sample_crops
from ..trainer import TrainState, lr_at
from ..weights import count_parameters, init_from, resolve_init, save_weights
from .calibration import calibrate_confidence
from .model import GlobalRestorationModule, confidence_loss
from .pairs import evaluate, make_pairs


def train_grm(cfg: GRMConfig, tc: GRMTrainConfig, train: PhotoSet | dict, val_images, out_dir, *,
              device="cpu", resume: bool = True, progress: bool = True, command: str = "") -> dict:
    """Train a GRM; write out_dir/grm_<preset>.safetensors (EMA weights) + config + report.

    train: a PhotoSet (or {name: (3, H, W) in [0, 1]}); val_images: {name: (3, H, W)}, whole photos
    degraded once (seed 12345). Returns the report dict.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    train = train if isinstance(train, PhotoSet) else PhotoSet.from_tensors(train)
    g = torch.Generator().manual_seed(tc.seed)
    val_pairs = make_pairs(list(val_images.values()), cfg.scale, tc.degradation,
                           torch.Generator().manual_seed(12345))
    init = None if not tc.init else (
        lambda m: init_from(m, resolve_init(tc.init, "grm"), "grm", cfg.to_dict()))
    st = TrainState(lambda: GlobalRestorationModule(cfg), tc.lr, g, device, out_dir / "checkpoint.pt",
                    resume, tc.iters, seed=tc.seed, init=init)
    _joint_stage(st, cfg, tc, train, val_pairs, device, progress)
    calibration = None
    if tc.calib_iters > 0:
        calibration = calibrate_confidence(st.ema, train, val_images, iters=tc.calib_iters,
                                           batch_size=tc.batch_size, crop=tc.crop, lr=tc.calib_lr,
                                           seed=tc.seed, device=device, progress=progress,
                                           degradation=tc.degradation, rank_weight=tc.calib_rank)
    final = st.history[-1]
    report = {
        "command": command, "device": str(device), "seconds": round(st.seconds(), 1),
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "parameters": count_parameters(st.model),
        "train_photos": sorted(train.names), "train_megapixels": round(train.megapixels, 2),
        "val_photos": sorted(val_images),
        "train_config": dataclasses.asdict(tc),
        "final_val_psnr": round(final["val_psnr"], 3),
        "final_val_psnr_bicubic": round(final["val_psnr_bicubic"], 3),
        "gain_db": round(final["val_psnr"] - final["val_psnr_bicubic"], 3),
        "confidence_calibration": calibration, "history": st.history,
    }
    save_weights(out_dir / f"grm_{cfg.name}.safetensors", st.ema.state_dict(), "grm", cfg.to_dict(), report)
    return report


def _joint_stage(st: TrainState, cfg: GRMConfig, tc: GRMTrainConfig, train: PhotoSet, val_pairs,
                 device, progress: bool) -> None:
    """Stage 1: body and both heads on the confidence loss, until tc.iters (resumes from st.step)."""
    cuda = str(device).startswith("cuda")
    bar = tqdm(total=tc.iters, initial=st.step, desc="train grm", disable=not progress)
    while st.step < tc.iters:
        lr_img, hr_img = (t.to(device) for t in sample_crops(train, tc.batch_size, tc.crop, cfg.scale,
                                                             st.g, degradation=tc.degradation))
        st.set_lr(lr_at(st.step, tc))
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            coarse, conf = st.model(lr_img)
        loss = confidence_loss(coarse.float(), hr_img, conf.float(), cfg.lam, cfg.eta)
        step = st.optimizer_step(loss, tc.grad_clip, tc.ema)
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}")
        if step % tc.val_every == 0 or step == tc.iters:
            v = evaluate(st.ema, val_pairs, device)
            st.history.append({"step": step, "loss": loss.item(), "val_psnr": v["grm"],
                               "val_psnr_bicubic": v["bicubic"], "seconds": st.seconds()})
            bar.write(f"step {step}: loss {loss.item():.4f}  val PSNR {v['grm']:.2f} dB "
                      f"(bicubic {v['bicubic']:.2f})")
        if step % tc.ckpt_every == 0 or step == tc.iters:
            st.save()
    bar.close()

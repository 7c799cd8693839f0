"""PatchScalerPipeline: GRM -> Qmap groups -> texture prompts -> PGS with Patch-DiT -> blended HR.

    pipe = PatchScalerPipeline.from_pretrained()          # shipped lite weights, CPU, float32
    pipe.to("cuda")                                      # optional; bf16 autocast on CUDA
    out = pipe(lr, generator=torch.Generator().manual_seed(0))
    out.image                                            # (B, 3, 4h, 4w) in [0, 1]

Patches overlap by `pgs.grouping.overlap` HR pixels and are blended with a raised-cosine window, so
no seams show. The noise of image b is drawn on the CPU from generator[b] (or the single generator, image
after image), then moved to the device: CPU and CUDA runs start from the same noise, and with a list
of generators a batch equals its singles.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import torch
from torch import Tensor

from .config import PRESETS, PGSConfig
from .diffusion.denoiser import Denoiser, load_denoiser
from .diffusion.sampling import sample_patches
from .diffusion.schedule import from_signal, to_signal
from .errors import PatchScalerError
from .grm.model import GlobalRestorationModule, load_grm, restore
from .grouping import GROUP_NAMES, assign_groups
from .image_io import check_image
from .patches import PatchLayout, patch_means, patchify, unpatchify
from .texture.memory import TextureMemory, retrieve
from .texture.store import load_memory
from .weights import WEIGHTS_DIR

# The whole-image call holds every patch at once, so it refuses LR inputs above this (the x4 output
# would be 64 MP). streaming.py has no such limit (memory is set by its band); the command line
# uses this number as its default safety limit on time, raised with --max-pixels.
MAX_LR_PIXELS = 4_000_000


def _find(folder: Path, kind: str, preset: str) -> Path:
    """folder/<kind>_<preset>.safetensors; or, in a folder of one other preset only (grm_tiny,
    dit_tiny, memory_tiny), that preset's file. A folder mixing presets is refused: a missing
    dit_lite beside grm_lite never silently becomes dit_tiny."""
    p = folder / f"{kind}_{preset}.safetensors"
    if p.is_file():
        return p
    found = sorted(folder.glob(f"{kind}_*.safetensors"))
    presets = sorted({q.stem.split("_", 1)[1] for k in ("grm", "dit", "memory")
                      for q in folder.glob(f"{k}_*.safetensors")})
    if len(found) == 1 and len(presets) == 1:
        return found[0]
    names = ", ".join(q.name for q in found) or f"no {kind}_* file"
    mixed = f"; the folder mixes presets {', '.join(presets)}" if len(presets) > 1 else ""
    raise PatchScalerError(f"{folder}: no {p.name} (found {names}{mixed})")


@dataclass
class PipelineOutput:
    """Everything the pipeline computed. Images (B, C, H, W) in [0, 1]; maps (B, nh, nw).

    layout: where the N = B * nh * nw patches lie; noise: (N, 3, P, P), the standard normal the
    shortcut starts were drawn from (CPU), so analyses never re-derive it.
    """

    image: Tensor
    coarse: Tensor
    confidence: Tensor
    qmap: Tensor
    groups: Tensor
    counts: dict[str, int]
    patch_nfe: dict[str, int]
    layout: PatchLayout
    noise: Tensor
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def total_nfe(self) -> int:
        return sum(self.patch_nfe.values())


class PatchScalerPipeline:
    """The whole method, composed from its stages; every intermediate is returned."""

    def __init__(self, grm: GlobalRestorationModule, denoiser: Denoiser, memory: TextureMemory,
                 pgs: PGSConfig | None = None):
        P = denoiser.cfg.dit.patch_size
        if memory.patch_size != P:
            raise PatchScalerError(f"memory patch size {memory.patch_size} != Patch-DiT patch size {P}")
        self.grm, self.denoiser, self.memory = grm.eval(), denoiser.eval(), memory
        self.patch_size = P
        self.pgs = self._checked(pgs or PGSConfig())
        self.device = torch.device("cpu")

    def _checked(self, pgs: PGSConfig) -> PGSConfig:
        if pgs.grouping.patch_size != self.patch_size:
            raise PatchScalerError(f"grouping patch size {pgs.grouping.patch_size} != Patch-DiT patch "
                                   f"size {self.patch_size}")
        return pgs

    @property
    def overlap(self) -> int:
        return self.pgs.grouping.overlap

    @classmethod
    def from_pretrained(cls, path=None, preset: str = "lite", **kwargs) -> PatchScalerPipeline:
        """Load grm_<preset>, dit_<preset>, memory_<preset> from a folder (default: shipped), with
        the preset's default PGS plan unless `pgs=` is given."""
        d = Path(path) if path is not None else WEIGHTS_DIR
        if d.is_file():
            raise PatchScalerError(f"{d}: is a file; from_pretrained takes the folder holding the "
                                   f"grm_*, dit_* and memory_*.safetensors files")
        if not d.is_dir():
            raise PatchScalerError(f"{d}: weights folder not found")
        if kwargs.get("pgs") is None and preset in PRESETS:
            kwargs["pgs"] = PRESETS[preset].pgs                   # the preset's default plan
        grm = load_grm(_find(d, "grm", preset))
        den = load_denoiser(_find(d, "dit", preset))
        mem = load_memory(_find(d, "memory", preset), patch_size=den.cfg.dit.patch_size)
        return cls(grm, den, mem, **kwargs)

    def to(self, device) -> PatchScalerPipeline:
        self.device = torch.device(device)
        self.grm.to(self.device)
        self.denoiser.to(self.device)
        return self

    def _noise(self, counts: list[int], generator) -> Tensor:
        """(sum counts, 3, P, P) standard normal drawn on the CPU, image by image."""
        P = self.patch_size
        gens = generator if isinstance(generator, (list, tuple)) else [generator] * len(counts)
        if len(gens) != len(counts):
            raise PatchScalerError(f"{len(gens)} generators for a batch of {len(counts)} images")
        return torch.cat([torch.randn((n, 3, P, P), generator=g) for n, g in zip(counts, gens)])

    @torch.no_grad()
    def __call__(self, lr: Tensor, *, generator=None, callback=None, pgs: PGSConfig | None = None,
                 texture: bool = True, qmap: Tensor | None = None, progress=None) -> PipelineOutput:
        """lr: (B, 3, h, w) or (3, h, w) in [0, 1] on the pipeline's device -> PipelineOutput.

        callback(StepInfo) after every denoiser call; texture=False: no texture prompt (ablation).
        qmap: (B, nh, nw), higher = easier, replaces the GRM's patch confidence in the grouping
        (analyses that plug in another difficulty map; the layout is `pgs.grouping`'s).
        """
        lr = check_image(lr, "lr").to(self.device)
        if lr.shape[-1] * lr.shape[-2] > MAX_LR_PIXELS:
            raise PatchScalerError(f"input {lr.shape[-1]}x{lr.shape[-2]} exceeds the limit of "
                                   f"{MAX_LR_PIXELS:,} LR pixels of the whole-image call; "
                                   f"streaming.stream_upscale takes any size")
        pgs = self._checked(pgs or self.pgs)
        clock = _Clock(self.device)
        coarse, conf = restore(self.grm, lr)                             # (B,3,H,W), (B,1,H,W)
        clock.lap("grm")
        y0, layout = patchify(coarse, self.patch_size, pgs.grouping.overlap)   # (N, 3, P, P)
        q = patch_means(conf, layout) if qmap is None else _checked_qmap(qmap, layout)  # (B,nh,nw)
        groups = assign_groups(q, pgs.grouping)
        clock.lap("grouping")
        condition = self._conditioner(y0, texture)
        clock.lap("retrieval")
        noise = self._noise([layout.patches_per_image] * lr.shape[0], generator)
        x0, stats = sample_patches(condition, to_signal(y0), groups.flatten(), pgs, noise.to(y0),
                                   callback=callback, progress=progress)
        clock.lap("sampling")
        image = from_signal(unpatchify(x0, layout))
        clock.lap("reassembly")
        return PipelineOutput(
            image=image, coarse=coarse, confidence=conf, qmap=q, groups=groups,
            counts=dict(zip(GROUP_NAMES, stats.patches)),
            patch_nfe=dict(zip(GROUP_NAMES, stats.patch_nfe)), layout=layout, noise=noise,
            seconds=clock.seconds)

    def _conditioner(self, y0: Tensor, texture: bool):
        """condition(y, idx) -> denoise(x_t, t) for the sampler: each patch batch's texture prompt
        (or none) is gathered, encoded and projected once, then reused at every step."""
        ids = sims = None
        if texture:
            ids, sims = retrieve(self.memory, y0, self.denoiser.cfg.dit.top_k)   # (N, K)
        autocast = partial(torch.autocast, "cuda", dtype=torch.bfloat16,
                           enabled=self.device.type == "cuda")

        def condition(y: Tensor, idx: Tensor):
            r = self.memory.values_float(ids[idx]) if texture else None   # (M, K, 3, P, P)
            with autocast():
                cond = self.denoiser.condition(y, r, sims[idx] if texture else None)

            def denoise(x_t: Tensor, t: Tensor) -> Tensor:
                with autocast():
                    return self.denoiser.step(x_t, t, cond)
            return denoise
        return condition


def _checked_qmap(qmap: Tensor, layout) -> Tensor:
    want = (layout.batch, layout.nh, layout.nw)
    if tuple(qmap.shape) != want:
        raise PatchScalerError(f"qmap of shape {tuple(qmap.shape)}, the patch layout needs {want}")
    return qmap.float()


class _Clock:
    """Seconds per stage; synchronises CUDA before each reading."""

    def __init__(self, device: torch.device):
        self.device, self.seconds, self.t0 = device, {}, time.perf_counter()

    def lap(self, name: str) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        self.seconds[name] = time.perf_counter() - self.t0
        self.t0 = time.perf_counter()

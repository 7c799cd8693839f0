"""docs/real_world.png: one crop of a real phone JPEG, x4 by bicubic, the lite and real presets and
RealSR, side by side (README, "The real-world track").

    python scripts/real_world_figure.py PHOTO.jpg --box X,Y,SIZE -o docs/real_world.png

The crop is taken from the JPEG as it is (no synthetic degradation): the point is what each method
does with real sensor noise and JPEG blocks. Also writes the four x4 crops as PNGs beside the
figure's path when --keep is given, to look at them at full size.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from patchscaler_lite.data import bicubic_up  # noqa: E402
from patchscaler_lite.eval.peers.realesrgan import upscale_x4  # noqa: E402
from patchscaler_lite.eval.peers.realsr import load_realsr  # noqa: E402
from patchscaler_lite.image_io import load_image, save_image  # noqa: E402
from patchscaler_lite.pipeline import PatchScalerPipeline  # noqa: E402
from patchscaler_lite.streaming import upscale_image  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("photo")
    ap.add_argument("--box", required=True, help="X,Y,SIZE of the LR crop")
    ap.add_argument("-o", "--out", required=True)
    ap.add_argument("--keep", action="store_true", help="also save the four x4 crops as PNGs")
    args = ap.parse_args()
    x, y, n = (int(v) for v in args.box.split(","))
    lr = load_image(args.photo)[None, :, y:y + n, x:x + n]
    torch.manual_seed(0)
    panels = {"bicubic": bicubic_up(lr, 4)}
    for preset in ("lite", "real"):
        pipe = PatchScalerPipeline.from_pretrained(preset=preset)
        img, stats = upscale_image(pipe, lr, generator=torch.Generator().manual_seed(0))
        panels[f"PatchScaler {preset} (patch-NFE {sum(stats.patch_nfe)})"] = img
    panels["RealSR DF2K (peer)"] = upscale_x4(load_realsr(), lr)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 4.9))
    for ax, (title, img) in zip(axes, panels.items(), strict=True):
        ax.imshow(img[0].clamp(0, 1).permute(1, 2, 0).numpy())
        ax.set_title(title, fontsize=11)
        ax.axis("off")
    fig.suptitle(f"{Path(args.photo).name}, LR crop {n}x{n} at ({x},{y}), x4: a real phone JPEG, "
                 "no synthetic degradation", fontsize=11)
    fig.tight_layout()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    if args.keep:
        for i, img in enumerate(panels.values()):
            save_image(img[0], out.with_name(f"{out.stem}_{i}.png"))
    print(f"-> {out}")


if __name__ == "__main__":
    main()

"""Recreate data/photos/ from the photographs that ship inside PyPI wheels.

Run from the repo root with the dev extras installed (scikit-image, matplotlib, scikit-learn):
    python scripts/make_data.py
Each entry: (our name, package, file inside it, crop box (left, top, right, bottom) or None).
Grayscale sources stay grayscale PNGs; load_image() replicates them to RGB.
"""

import importlib.util
import json
from pathlib import Path

from PIL import Image

PHOTOS = [
    # name,            package,      file inside the package's data folder,  crop box
    ("brick",          "skimage",    "data/brick.png",                      None),
    ("grass",          "skimage",    "data/grass.png",                      None),
    ("gravel",         "skimage",    "data/gravel.png",                     None),
    ("camera",         "skimage",    "data/camera.png",                     None),
    ("rocket",         "skimage",    "data/rocket.jpg",                     None),
    ("motorcycle",     "skimage",    "data/motorcycle_left.png",            (0, 0, 640, 500)),
    ("hubble",         "skimage",    "data/hubble_deep_field.jpg",          (244, 180, 756, 692)),
    ("retina",         "skimage",    "data/retina.jpg",                     (450, 450, 962, 962)),
    ("china",          "sklearn",    "datasets/images/china.jpg",           None),
    ("grace_hopper",   "matplotlib", "mpl-data/sample_data/grace_hopper.jpg", None),
    ("astronaut",      "skimage",    "data/astronaut.png",                  None),
    ("coffee",         "skimage",    "data/coffee.png",                     None),
    ("chelsea",        "skimage",    "data/chelsea.png",                    None),
    ("flower",         "sklearn",    "datasets/images/flower.jpg",          None),
]
VAL = ["astronaut", "coffee", "chelsea", "flower"]


def package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    return Path(next(iter(spec.submodule_search_locations)))


def main() -> None:
    out = Path("data/photos")
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, pkg, rel, box in PHOTOS:
        src = package_dir(pkg) / rel
        im = Image.open(src)
        im = im.convert("L") if im.mode in ("L", "LA", "I;16", "P") and name in (
            "brick", "grass", "gravel", "camera") else im.convert("RGB")
        size0 = im.size
        if box is not None:
            im = im.crop(box)
        im.save(out / f"{name}.png", optimize=True)
        rows.append((name, pkg, rel, size0, box, im.size, im.mode))
        print(f"{name:13s} {pkg}/{rel} {size0} -> {im.size} {im.mode}")
    train = [r[0] for r in rows if r[0] not in VAL]
    Path("data/splits.json").write_text(json.dumps({"train": [f"{n}.png" for n in train],
                                                    "val": [f"{n}.png" for n in VAL]}, indent=2) + "\n")


if __name__ == "__main__":
    main()

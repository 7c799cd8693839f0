"""The README's library example runs as printed (on a small real photo instead of photo.png)."""

import re

from patchscaler_lite.data import degrade, load_photos
from patchscaler_lite.image_io import save_image


def test_the_library_example_runs(repo_root, tmp_path, monkeypatch):
    text = (repo_root / "README.md").read_text()
    block = re.search(r"## The library in a few lines\s+```python\n(.*?)```", text, re.S).group(1)
    save_image(degrade(load_photos("val")["coffee"][:, 100:228, 200:328], 4), tmp_path / "photo.png")
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(compile(block, "README.md", "exec"), scope)                     # noqa: S102
    assert scope["out"].image.shape == scope["out_real"].image.shape == (1, 3, 128, 128)
    assert scope["real"].grm.cfg.name == "real"
    assert (scope["image"] - scope["out"].image).abs().max() < 1e-5
    assert sum(scope["grouping"].counts.values()) == scope["grouping"].groups.numel()

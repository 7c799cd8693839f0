"""The corpus builder, offline: pinned list, split rules, and fake archives for every failure mode.

No network: a fake downloader hands out a tiny .deb (built with `dpkg-deb --build`) and a tiny
wheel (a zip) made in tmp_path; the CLI runs in-process through cli_data.add_parser / run.
"""

import argparse
import csv
import errno
import io
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from patchscaler_lite.cli import data as cli_data
from patchscaler_lite.corpus import apt, build, fetch, prepare, splits
from patchscaler_lite.corpus.sources import parse_source, read_sources
from patchscaler_lite.errors import PatchScalerError

needs_dpkg = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb (Debian-family)")
HEADER = "source\tpath\tlicence\tauthor\tnote\n"


def _photo(seed: int, size=(160, 120), blur=False) -> Image.Image:
    """A textured RGB test photo (seeded); `blur` makes it soft (x8 smaller, bicubic back up)."""
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    if blur:
        img = img.resize((size[0] // 8, size[1] // 8), Image.BICUBIC).resize(size, Image.BICUBIC)
    return img


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    img.save(buf := io.BytesIO(), format=fmt, **kw)
    return buf.getvalue()


def _make_deb(root: Path, name: str, version: str, files: dict) -> Path:
    """A real (tiny) .deb holding `files` {path: bytes} and a copyright file."""
    tree = root / f"{name}-tree"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: t <t@example.org>\n"
        "Description: test photos\n")
    for path, data in {**files, f"usr/share/doc/{name}/copyright": b"Files: *\nLicense: GPL-2+\n"}.items():
        (tree / path).parent.mkdir(parents=True, exist_ok=True)
        (tree / path).write_bytes(data)
    deb = root / f"{name}_{version}_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(tree), str(deb)],
                   check=True, capture_output=True)
    return deb


class FakeDownloader:
    """downloader(archive, dest): copy a prepared file into dest; None for unknown (gone) sources."""

    tools = ()

    def __init__(self, files: dict, truncate=()):
        self.files, self.truncate, self.calls = files, set(truncate), []

    def __call__(self, archive, dest):
        self.calls.append(archive.key)
        if (src := self.files.get(archive.key)) is None:
            return None
        data = src.read_bytes()
        (dest / src.name).write_bytes(data[: len(data) // 2] if archive.key in self.truncate else data)
        return dest / src.name


@pytest.fixture
def world(tmp_path):
    """A fake pinned list: 3 photos in a .deb (one EXIF-rotated, one soft), 1 in a wheel, 1 gone."""
    (arch := tmp_path / "archives").mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6                                                  # shown rotated 90 degrees
    rotated = _encode(_photo(1), "JPEG", quality=95, exif=exif.tobytes())
    deb = _make_deb(arch, "fake-walls", "1.0-1", {
        "usr/share/bg/a.jpg": rotated, "usr/share/bg/b.png": _encode(_photo(2), "PNG"),
        "usr/share/bg/soft.png": _encode(_photo(3, blur=True), "PNG")})
    with zipfile.ZipFile(whl := arch / "fake_data-1.0-py3-none-any.whl", "w") as z:
        z.writestr("fakedata/images/c.png", _encode(_photo(4), "PNG"))
        z.writestr("fake_data-1.0.dist-info/METADATA", "License: MIT\n")
    (tsv := tmp_path / "sources.tsv").write_text(HEADER + "".join(
        f"{src}\t{path}\t{lic}\tAn Author\t\n" for src, path, lic in [
            ("deb:fake-walls=1.0-1", "usr/share/bg/a.jpg", "GPL-2+"),
            ("deb:fake-walls=1.0-1", "usr/share/bg/b.png", "CC-BY-SA-4.0"),
            ("deb:fake-walls=1.0-1", "usr/share/bg/soft.png", "CC0-1.0"),
            ("pypi:fake-data==1.0", "fakedata/images/c.png", "MIT"),
            ("deb:gone-pkg=9.9-1", "usr/share/x.jpg", "GFDL")]))
    return {"tsv": tsv, "files": {"deb:fake-walls=1.0-1": deb, "pypi:fake-data==1.0": whl},
            "out": tmp_path / "corpus"}


def cli(argv, monkeypatch=None, downloader=None) -> int:
    """Run `data fetch ...` through a fresh parser and cli_data.run (a fake downloader if given)."""
    parser = argparse.ArgumentParser()
    cli_data.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["data", "fetch", *map(str, argv)])
    if downloader is not None:
        monkeypatch.setattr(build, "SystemDownloader", lambda cache: downloader)
    return cli_data.run(args)


def _manifest(out: Path) -> list[dict]:
    with open(out / "MANIFEST.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_shipped_sources_parse():
    photos = read_sources()
    assert len(photos) == len({p.name for p in photos}) == 101
    assert {p.archive.kind for p in photos} == {"deb", "pypi"}
    assert sum(p.path.endswith(".jxl") for p in photos) == 4
    names = " ".join(p.path for p in photos)
    assert all(bad not in names for bad in ("lena", "monalisa", "58060", "rocks2"))  # OFFLINE.md
    assert "plasma-workspace-wallpapers_BytheWater.png" in {p.name for p in photos}  # generic stem


def test_parse_source_and_bad_lines(tmp_path):
    a = parse_source("deb:plasma-workspace-wallpapers=4:5.27.5-2")
    assert (a.kind, a.name, a.version) == ("deb", "plasma-workspace-wallpapers", "4:5.27.5-2")
    assert parse_source("pypi:mvtb-data==1.6.1").key == "pypi:mvtb-data==1.6.1"
    with pytest.raises(PatchScalerError, match="expected deb:NAME=VERSION"):
        parse_source("apt:foo")
    (bad := tmp_path / "s.tsv").write_text(HEADER + "deb:a=1\tx/a.jpg\tCC0-1.0\ndeb:a=1\ty/a.jpg\tCC0-1.0\n")
    with pytest.raises(PatchScalerError, match="both be saved as a_a.png"):
        read_sources(bad)


def test_committed_split_regenerates():
    assert splits.make_splits(read_sources()) == json.loads(splits.default_splits_path().read_text())


def test_split_rules():
    photos = read_sources()
    split_of = splits.load_splits()
    assert sorted(split_of) == sorted(p.name for p in photos)           # every photo exactly once
    for group in splits.SAME_SCENE:                                     # pairs and views together
        assert len({split_of[n] for n in group}) == 1, group
    kept = [p for p in photos if p.name not in splits.MEASURED_SOFT]
    assert all(split_of[n] == "train" for n in splits.MEASURED_SOFT)
    for pkg in {p.archive.name for p in kept}:                           # big packages in every split
        got = [split_of[p.name] for p in kept if p.archive.name == pkg]
        assert len(got) < 3 or set(got) == {"train", "val", "test"}, pkg
    n = {s: sum(split_of[p.name] == s for p in kept) for s in splits.SPLITS}
    assert 0.6 <= n["train"] / len(kept) <= 0.75 and 0.12 <= n["test"] / len(kept) <= 0.2


@needs_dpkg
def test_build_skips_gone_source_and_writes_everything(world, monkeypatch):
    fake, out = FakeDownloader(world["files"]), world["out"]
    with pytest.warns(UserWarning, match="gone-pkg=9.9-1 is gone"):
        assert cli(["-o", out, "--sources", world["tsv"]], monkeypatch, fake) == 0
    rows = {r["file"]: r for r in _manifest(out)}
    assert set(rows) == {"fake-walls_a.png", "fake-walls_b.png", "soft/fake-walls_soft.png",
                         "fake-data_c.png"}
    a, soft = rows["fake-walls_a.png"], rows["soft/fake-walls_soft.png"]
    assert [a[k] for k in ("width", "height", "source_width", "source_height")] == ["60", "80", "120", "160"]
    assert soft["kept"] == "false" and soft["reason"].startswith("soft:")  # EXIF 6 applied above
    built = json.loads((out / "splits.json").read_text())
    assert sorted(sum(built.values(), [])) == ["fake-data_c.png", "fake-walls_a.png", "fake-walls_b.png"]
    assert (out / "licenses" / "fake-walls.copyright").read_text().startswith("Files: *")
    licences = (out / "LICENSES.md").read_text()
    assert "## GPL-2+" in licences and "## CC-BY-SA-4.0" in licences and "fake-walls_b.png" in licences
    for r in rows.values():                                           # the recorded hashes are true
        assert fetch.sha256_file(out / r["file"]) == r["png_sha256"]
    assert not list(out.rglob("*.partial")) and not list(out.rglob(".*.tmp"))


@needs_dpkg
@pytest.mark.filterwarnings("ignore:.*is gone")
def test_corrupt_download_is_deleted_and_reported(world, monkeypatch):
    fake, out = FakeDownloader(world["files"], truncate={"deb:fake-walls=1.0-1"}), world["out"]
    with pytest.warns(UserWarning, match="fake-walls=1.0-1 is corrupt .*dpkg-deb.*re-run"):
        cli(["-o", out, "--sources", world["tsv"]], monkeypatch, fake)
    assert fake.calls.count("deb:fake-walls=1.0-1") == 2                  # retried once
    assert not list((out / ".cache" / "archives").glob("*.deb"))         # bad file removed
    assert "deb:fake-walls=1.0-1" not in json.loads((out / ".cache" / "archives.json").read_text())
    assert [r["file"] for r in _manifest(out)] == ["fake-data_c.png"]    # the rest is built
    fake.truncate.clear()                                                # a re-run downloads again
    cli(["-o", out, "--sources", world["tsv"]], monkeypatch, fake)
    assert len(_manifest(out)) == 4


@needs_dpkg
@pytest.mark.filterwarnings("ignore:.*is gone")
def test_damaged_cached_archive_is_downloaded_again(world, monkeypatch):
    fake, out = FakeDownloader(world["files"]), world["out"]
    cli(["-o", out, "--sources", world["tsv"], "--no-prepare"], monkeypatch, fake)
    whl = next((out / ".cache" / "archives").glob("*.whl"))
    whl.write_bytes(whl.read_bytes()[:100])
    with pytest.warns(UserWarning, match="is damaged"):
        cli(["-o", out, "--sources", world["tsv"]], monkeypatch, fake)
    assert fake.calls.count("pypi:fake-data==1.0") == 2
    assert "fake-data_c.png" in {r["file"] for r in _manifest(out)}


@needs_dpkg
@pytest.mark.filterwarnings("ignore:.*is gone")
def test_disk_full_is_one_line_and_leaves_nothing(world, monkeypatch):
    fake, out = FakeDownloader(world["files"]), world["out"]
    cli(["-o", out, "--sources", world["tsv"], "--only", "2"], monkeypatch, fake)

    def full_disk(self, fp, format=None, **kw):                          # writes a bit, then fails
        fp.write(b"\x89PNG half")                                        # into write_atomic's file
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", full_disk)
    with pytest.raises(PatchScalerError) as e:
        cli(["-o", out, "--sources", world["tsv"], "--only", "3"], monkeypatch, fake)
    assert "\n" not in str(e.value) and "disk is full" in str(e.value)
    assert not list(out.rglob("*.partial")) and not list(out.rglob(".*.tmp"))
    assert not list(out.rglob("fake-walls_soft.png"))
    assert [r["file"] for r in _manifest(out)] == ["fake-walls_a.png", "fake-walls_b.png"]


@needs_dpkg
@pytest.mark.filterwarnings("ignore:.*is gone")
def test_interrupted_run_resumes_without_redoing_work(world, monkeypatch):
    fake, out = FakeDownloader(world["files"]), world["out"]
    real_prepare, prepared = build.prepare, []

    def interrupt_second(data, name, *a):
        if len(prepared) == 1:
            raise KeyboardInterrupt
        prepared.append(name)
        return real_prepare(data, name, *a)

    monkeypatch.setattr(build, "prepare", interrupt_second)
    with pytest.raises(KeyboardInterrupt):
        cli(["-o", out, "--sources", world["tsv"]], monkeypatch, fake)
    assert (out / "fake-walls_a.png").is_file() and not (out / "MANIFEST.csv").exists()
    calls, prepared[:] = len(fake.calls), []
    monkeypatch.setattr(build, "prepare",
                        lambda data, name, *a: prepared.append(name) or real_prepare(data, name, *a))
    with pytest.warns(UserWarning, match="gone"):
        cli(["-o", out, "--sources", world["tsv"]], monkeypatch, fake)
    assert "usr/share/bg/a.jpg" not in prepared and len(prepared) == 3   # finished photo skipped
    assert fake.calls[calls:] == ["deb:gone-pkg=9.9-1"]                  # cached archives re-used
    first, prepared[:] = _manifest(out), []
    cli(["-o", out, "--sources", world["tsv"]], monkeypatch, fake)      # a third run: nothing to do
    assert prepared == [] and _manifest(out) == first


def test_missing_tool_is_one_clear_line(tmp_path, monkeypatch):
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name: None if name == "apt-get" else real_which(name))
    with pytest.raises(PatchScalerError) as e:
        cli(["-o", tmp_path / "c", "--only", "1"])
    assert "`apt-get` not found" in str(e.value) and "Debian" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(SystemExit):                                      # --only must be positive
        cli(["--only", "0"])


def test_private_apt_config_uses_the_machines_mirror(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                                          # a relative cache folder
    etc = tmp_path / "etc"
    (etc / "sources.list.d").mkdir(parents=True)
    (etc / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\nComponents: main\n"
        "Signed-By: /k.gpg\n\nTypes: deb\nURIs: http://mirror.example/debian-security\n")
    assert apt.system_mirror(etc) == ("http://mirror.example/debian", "/k.gpg")
    conf = apt.write_apt_config(Path("apt"), *apt.system_mirror(etc)).read_text()
    for key in ("sourcelist", "sourceparts", "State::Lists", "Dir::Cache", "State::status"):
        assert f'{key} "{tmp_path.resolve()}/apt' in conf                # absolute paths only
    lines = (tmp_path / "apt" / "sources.list").read_text().splitlines()
    assert lines == [f"deb [signed-by=/k.gpg] http://mirror.example/debian {s} main" for s in apt.SUITES]


def test_sharpness_orders_sharp_above_blurred():
    sharp, soft = _photo(0, (256, 256)), _photo(0, (256, 256), blur=True)
    assert prepare.sharpness_db(sharp) < 25 < 45 < prepare.sharpness_db(soft)
    scores = [prepare.sharpness_db(sharp.filter(ImageFilter.GaussianBlur(r))) for r in (0.5, 1, 2, 4)]
    assert scores == sorted(scores)                                      # more blur, higher score
    skimage_metrics = pytest.importorskip("skimage.metrics")              # oracle for the PSNR itself
    rt = sharp.resize((128, 128), Image.BICUBIC).resize((256, 256), Image.BICUBIC)
    ref = skimage_metrics.peak_signal_noise_ratio(np.asarray(sharp), np.asarray(rt), data_range=255)
    assert prepare.sharpness_db(sharp) == pytest.approx(ref, abs=1e-9)


def test_decode_modes_to_rgb8():
    grey16 = Image.fromarray(np.full((8, 10), 65535, dtype=np.uint16))
    img = prepare.decode(_encode(grey16, "PNG"), "g.png")
    assert img.mode == "RGB" and np.asarray(img).min() == 255            # scaled, not clipped
    rgba = Image.new("RGBA", (10, 8), (10, 20, 30, 128))
    assert prepare.decode(_encode(rgba, "PNG"), "a.png").getpixel((0, 0)) == (10, 20, 30)
    assert prepare.downscale2(Image.new("RGB", (11, 7))).size == (5, 3)


def test_jxl_without_plugin_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pillow_jxl", None)                  # import fails
    with pytest.raises(PatchScalerError, match=r"pip install \.\[corpus\]"):
        prepare.decode(b"\xff\x0a", "photo.jxl")

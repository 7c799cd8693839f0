"""The fixed train / val / test split of the corpus, by photo: `splits.json` in this package.

`make_splits` generated the committed file once from sources.tsv (a test checks that it still does):
  * photos of one scene form one group and land in one split (SAME_SCENE: a stereo pair, two shots
    of one place, mosaic tiles of one aerial view), so no split sees a near-copy of another's photo;
  * the photos the build sets aside as soft (MEASURED_SOFT: the 18 prepared photos scoring above
    build.SOFT_DB = 42 dB, measured 2026-12-01) are not counted and go to train, where they are
    unused unless the threshold is loosened; so the quotas below hold for the photos actually kept;
  * each source package is a stratum: val and test each get round(15 %) of its kept photos, at
    least one, so every package with >= 3 kept photos is in every split; packages with fewer are
    pooled into one stratum. About 70 / 15 / 15 by count overall;
  * within a stratum the groups are taken in a fixed pseudo-random order (sha256 of the group's
    names: the same on every machine, no RNG state), filling test, then val, up to their quotas.
Nothing here looks at the pixels: `test` is never used to choose anything.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path

from ..errors import PatchScalerError
from .sources import Photo

SPLITS = ("train", "val", "test")
HELD_OUT = {"test": 0.15, "val": 0.15}                 # the rest is train; test is filled first
MIN_STRATUM = 3                                         # smaller packages are pooled
SAME_SCENE = (
    ("mvtb-data_walls-l.png", "mvtb-data_walls-r.png"),                 # stereo pair
    ("mvtb-data_eiffel-1.png", "mvtb-data_eiffel-2.png"),               # the Eiffel tower twice
    ("mvtb-data_castle.png", "mvtb-data_castle2.png"),                  # one castle sign twice
    ("mvtb-data_building2-1.png", "mvtb-data_building2-2.png",          # one facade, three shots
     "mvtb-data_building2-3.png"),
    ("mvtb-data_aerialphoto.png", "mvtb-data_aerial-08.png",            # overlapping tiles of one
     "mvtb-data_aerial-09.png", "mvtb-data_aerial-10.png"),             # airport
)

MEASURED_SOFT = frozenset({
    "plasma-workspace-wallpapers_DarkestHour.png",
    "plasma-workspace-wallpapers_Kite.png",
    "mate-backgrounds_FreshFlower.png",
    "mate-backgrounds_Garden.png",
    "mate-backgrounds_RainDrops.png",
    "mate-backgrounds_Storm.png",
    "mate-backgrounds_YellowFlower.png",
    "lomiri-wallpapers-16.04_greentock_by_Peter_Nerlich.png",
    "lomiri-wallpapers-16.04_Wine_by_Jakkub_Mede.png",
    "lxqt-themes_Valendas.png",
    "lxqt-themes_appleflower.png",
    "lxqt-themes_beam.png",
    "lxqt-themes_cloud.png",
    "lxqt-themes_graphite.png",
    "budgie-backgrounds_canyon-wren.png",
    "budgie-backgrounds_extreme-desert-hike.png",
    "budgie-backgrounds_saturnian-profile.png",
    "gnome-backgrounds_SeaSunset.png",
})


def scene_groups(names: list[str]) -> list[tuple[str, ...]]:
    """Partition `names` into SAME_SCENE groups (restricted to `names`) and singletons, in order."""
    group_of = {n: g for g in SAME_SCENE for n in g}
    out, seen = [], set()
    for n in names:
        if n in seen:
            continue
        g = tuple(m for m in group_of.get(n, (n,)) if m in names) or (n,)
        seen.update(g)
        out.append(g)
    return out


def _order_key(group: tuple[str, ...]) -> str:
    """A fixed shuffle: sha256 of the group's names."""
    return hashlib.sha256("|".join(group).encode()).hexdigest()


def _split_stratum(names: list[str]) -> dict[str, str]:
    """{name: split} for one stratum: fill test then val up to round(15 %) (at least 1) each."""
    quota = {s: max(1, round(f * len(names))) for s, f in HELD_OUT.items()}
    count = dict.fromkeys(HELD_OUT, 0)
    assigned = {}
    for g in sorted(scene_groups(names), key=_order_key):
        split = next((s for s in HELD_OUT if count[s] + len(g) <= quota[s]), "train")
        count[split] = count.get(split, 0) + len(g)
        assigned.update(dict.fromkeys(g, split))
    return assigned


def make_splits(photos: list[Photo], soft=MEASURED_SOFT) -> dict[str, list[str]]:
    """{"train": [...], "val": [...], "test": [...]}: output names in sources.tsv order.

    `soft` names are left out of the quotas and put in train.
    """
    strata: dict[str, list[str]] = {}
    for p in photos:
        if p.name not in soft:
            strata.setdefault(p.archive.name, []).append(p.name)
    pooled = [n for names in strata.values() if len(names) < MIN_STRATUM for n in names]
    strata = {k: v for k, v in strata.items() if len(v) >= MIN_STRATUM}
    if pooled:
        strata["(small packages)"] = pooled
    assigned = {}
    for names in strata.values():
        assigned.update(_split_stratum(names))
    return {s: [p.name for p in photos if assigned.get(p.name, "train") == s] for s in SPLITS}


def default_splits_path() -> Path:
    return Path(str(resources.files(__package__) / "splits.json"))


def load_splits(path: Path | str | None = None) -> dict[str, str]:
    """{photo name: split} from the committed splits.json (or `path`)."""
    path = Path(path) if path is not None else default_splits_path()
    try:
        splits = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise PatchScalerError(f"cannot read the split file {path}: {e}") from None
    return {n: s for s in SPLITS for n in splits.get(s, [])}


def write_splits(path: Path, splits: dict[str, list[str]]) -> None:
    """Write {"train", "val", "test"} lists as indented JSON (the committed file's format)."""
    path.write_text(json.dumps({s: splits.get(s, []) for s in SPLITS}, indent=2) + "\n")

"""Summary tables of a built corpus (pandas), from MANIFEST.csv rows."""

from __future__ import annotations

import pandas as pd

from .splits import SPLITS


def _frame(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["package", "split", "kept", "megapixels", "width", "height"])
    df["megapixels"] = df["megapixels"].astype(float)
    df["kept"] = df["kept"].astype(str) == "true"
    return df


def package_table(rows: list[dict]) -> pd.DataFrame:
    """Per source package: kept photos per split, photos set aside as soft, kept megapixels."""
    df = _frame(rows)
    kept = df[df["kept"]]
    t = pd.crosstab(kept["package"], kept["split"]).reindex(columns=list(SPLITS), fill_value=0)
    t = t.reindex(sorted(set(df["package"])), fill_value=0)
    t["soft (dropped)"] = df[~df["kept"]].groupby("package").size().reindex(t.index, fill_value=0)
    t["MP kept"] = kept.groupby("package")["megapixels"].sum().reindex(t.index, fill_value=0.0).round(1)
    t.loc["total"] = t.sum(numeric_only=True)
    return t.astype({c: int for c in t.columns if c != "MP kept"})


def split_table(rows: list[dict]) -> pd.DataFrame:
    """Per split: kept photos, megapixels, and the shortest and median short side (px)."""
    df = _frame(rows)
    df = df[df["kept"]].assign(short=lambda d: d[["width", "height"]].astype(int).min(axis=1))
    g = df.groupby("split")
    t = pd.DataFrame({"photos": g.size(), "megapixels": g["megapixels"].sum().round(1),
                      "min short side": g["short"].min(), "median short side": g["short"].median()})
    return t.reindex([s for s in SPLITS if s in t.index])

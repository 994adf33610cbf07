"""Dataset summary and statistics. Everything is computed from the ratings given, so features built from a
training set never count test ratings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from .dataset import Dataset


def summary(ds: "Dataset") -> dict[str, Any]:
    r = ds.ratings
    n_users, n_items = ds.n_users, ds.n_items
    out: dict[str, Any] = {
        "name": ds.name,
        "n_ratings": int(len(r)),
        "n_users": n_users,
        "n_items": n_items,
        "density": float(len(r) / (n_users * n_items)) if n_users and n_items else 0.0,
        "rating_scale": ds.rating_scale.to_dict() if ds.rating_scale else None,
        "rating_mean": float(r["rating"].mean()) if len(r) else None,
        "rating_std": float(r["rating"].std()) if len(r) > 1 else None,
        "n_items_with_metadata": 0 if ds.items is None else int(len(ds.items)),
        "n_users_with_metadata": 0 if ds.users is None else int(len(ds.users)),
        "n_genres": len(ds.genres),
    }
    ts = pd.to_numeric(r["timestamp"], errors="coerce").dropna() if len(r) else pd.Series(dtype=float)
    if len(ts):
        out["first_rating"] = pd.to_datetime(int(ts.min()), unit="s", utc=True).isoformat()
        out["last_rating"] = pd.to_datetime(int(ts.max()), unit="s", utc=True).isoformat()
    return out


def rating_distribution(ratings: pd.DataFrame) -> pd.Series:
    """Number of ratings at each rating value, sorted by value."""
    return ratings["rating"].value_counts().sort_index().rename("count")


def popularity(ratings: pd.DataFrame, item_ids=None) -> pd.Series:
    """Number of ratings per item in ``ratings`` (0 for ``item_ids`` never rated there)."""
    counts = ratings.groupby("item_id").size().rename("popularity")
    if item_ids is not None:
        counts = counts.reindex(pd.Index(item_ids, name="item_id"), fill_value=0)
    return counts.astype("int64")


def user_activity(ratings: pd.DataFrame) -> pd.Series:
    """Number of ratings per user."""
    return ratings.groupby("user_id").size().rename("n_ratings").astype("int64")


def release_year_histogram(items: pd.DataFrame, bins: int = 50) -> pd.DataFrame:
    """Histogram of known release years: columns ``left``, ``right``, ``count`` (missing years are left out)."""
    years = items["release_year"].dropna().to_numpy(dtype="float64") if "release_year" in items else np.empty(0)
    if years.size == 0:
        return pd.DataFrame({"left": [], "right": [], "count": []})
    counts, edges = np.histogram(years, bins=bins)
    return pd.DataFrame({"left": edges[:-1], "right": edges[1:], "count": counts})


def item_stats(ratings: pd.DataFrame) -> pd.DataFrame:
    """Per item: number of ratings and mean rating."""
    g = ratings.groupby("item_id")["rating"]
    return pd.DataFrame({"popularity": g.size(), "mean_rating": g.mean()})

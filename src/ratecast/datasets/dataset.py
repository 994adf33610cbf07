"""The ``Dataset`` type (ratings + item/user metadata) and ``IdIndex`` (raw id <-> contiguous index)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from .scale import RatingScale

RATING_COLUMNS = ["user_id", "item_id", "rating", "timestamp"]


class IdIndex:
    """Vocabulary mapping raw ids to contiguous indices ``1..n``; index 0 is reserved for unknown ids."""

    UNKNOWN = 0

    def __init__(self, ids) -> None:
        values = pd.Index(pd.unique(np.asarray(ids)))
        if values.hasnans:
            raise ValueError("ids must not contain missing values")
        self._ids = values  # position p holds the raw id of index p + 1

    @property
    def ids(self) -> np.ndarray:
        """Raw ids in index order (index i+1 holds ``ids[i]``)."""
        return self._ids.to_numpy()

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def size(self) -> int:
        """Rows an embedding table needs: the ids plus the reserved unknown row."""
        return len(self._ids) + 1

    def __contains__(self, raw_id) -> bool:
        return raw_id in self._ids

    def index(self, raw_ids) -> np.ndarray:
        """Contiguous indices of ``raw_ids`` (0 where unknown), as int32."""
        arr = np.asarray(raw_ids)
        if arr.ndim == 0:
            arr = arr.reshape(1)
        pos = self._ids.get_indexer(arr) if len(arr) else np.empty(0, dtype="int64")
        return (pos + 1).astype("int32")

    def raw(self, indices) -> np.ndarray:
        """Raw ids of contiguous ``indices`` (all must be >= 1)."""
        idx = np.asarray(indices, dtype="int64")
        if np.any(idx < 1) or np.any(idx > len(self)):
            raise IndexError(f"indices must be in 1..{len(self)}, got {idx[(idx < 1) | (idx > len(self))][:5]}")
        return self.ids[idx - 1]

    def to_list(self) -> list:
        return [v.item() if hasattr(v, "item") else v for v in self.ids]

    def __repr__(self) -> str:
        return f"IdIndex(n={len(self)})"


@dataclass
class Dataset:
    """Ratings plus the metadata that goes with them.

    ``ratings`` has columns user_id, item_id, rating, timestamp (raw ids, timestamp may be missing);
    ``items`` is indexed by item_id, ``users`` by user_id (or None when the source has no user table).
    """

    ratings: pd.DataFrame
    items: pd.DataFrame | None = None
    users: pd.DataFrame | None = None
    name: str = "ratings"
    rating_scale: RatingScale | None = None
    genres: list[str] = field(default_factory=list)
    source: str | None = None

    def __post_init__(self) -> None:
        missing = [c for c in RATING_COLUMNS[:3] if c not in self.ratings.columns]
        if missing:
            raise ValueError(f"Dataset.ratings must have columns {RATING_COLUMNS[:3]}, missing {missing}")
        if "timestamp" not in self.ratings.columns:
            self.ratings = self.ratings.assign(timestamp=pd.NA)
        if self.rating_scale is None and len(self.ratings):
            self.rating_scale = RatingScale.infer(self.ratings["rating"])

    # --- vocabularies -------------------------------------------------------------------------------
    @property
    def user_index(self) -> IdIndex:
        """Users in the ratings, then users only known from metadata."""
        ids = self.ratings["user_id"].to_numpy()
        if self.users is not None:
            ids = np.concatenate([ids, self.users.index.to_numpy()])
        return IdIndex(ids)

    @property
    def item_index(self) -> IdIndex:
        ids = self.ratings["item_id"].to_numpy()
        if self.items is not None:
            ids = np.concatenate([ids, self.items.index.to_numpy()])
        return IdIndex(ids)

    # --- sizes --------------------------------------------------------------------------------------
    @property
    def n_ratings(self) -> int:
        return len(self.ratings)

    @property
    def n_users(self) -> int:
        return int(self.ratings["user_id"].nunique())

    @property
    def n_items(self) -> int:
        return int(self.ratings["item_id"].nunique())

    def with_ratings(self, ratings: pd.DataFrame, name: str | None = None) -> "Dataset":
        """The same metadata and scale over another set of ratings (e.g. a split)."""
        return replace(self, ratings=ratings.reset_index(drop=True), name=name or self.name)

    def titles(self, item_ids) -> np.ndarray:
        """Titles of ``item_ids`` (None where unknown or when there is no item table)."""
        ids = np.asarray(item_ids)
        if self.items is None or "title" not in self.items.columns:
            return np.full(len(ids), None, dtype=object)
        return self.items["title"].reindex(ids).to_numpy(dtype=object)

    def summary(self) -> dict[str, Any]:
        """Counts, density and rating scale."""
        from .stats import summary

        return summary(self)

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, ratings={self.n_ratings}, users={self.n_users}, items={self.n_items}, "
            f"scale={self.rating_scale})"
        )

"""Metadata features for the hybrid model: encoders fitted on the training set only (so popularity never counts a
test rating), stored as plain numbers so they save as JSON and reload without pickle."""

from __future__ import annotations

import math
from numbers import Real
from typing import Any, Mapping

import numpy as np
import pandas as pd

from .datasets.dataset import Dataset, IdIndex
from .errors import DataError


class QuantileScaler:
    """Maps values to [0, 1] by their rank among the fitted values (as sklearn's uniform QuantileTransformer)."""

    def __init__(self, quantiles: np.ndarray | None = None):
        self.quantiles = None if quantiles is None else np.asarray(quantiles, dtype="float64")

    def fit(self, values, n_quantiles: int = 1000) -> "QuantileScaler":
        v = np.asarray(values, dtype="float64")
        v = v[np.isfinite(v)]
        if v.size == 0:
            v = np.zeros(1)
        self.quantiles = np.quantile(v, np.linspace(0, 1, min(n_quantiles, v.size)))
        return self

    def transform(self, values) -> np.ndarray:
        q = self.quantiles
        x = np.asarray(values, dtype="float64")
        if q.size == 1 or q[0] == q[-1]:
            return np.full(x.shape, 0.5)
        refs = np.linspace(0, 1, q.size)
        # average of forward and backward interpolation handles repeated quantiles (ties) symmetrically
        out = 0.5 * (np.interp(x, q, refs) - np.interp(-x, -q[::-1], -refs[::-1]))
        return np.clip(out, 0, 1)


class FeatureEncoder:
    """Turns item and user metadata into float matrices, one row per index (row 0 = unknown)."""

    def __init__(self, item_features=("popularity", "release_year", "genres"),
                 user_features=("age", "gender", "occupation")):
        self.item_features = tuple(item_features)
        self.user_features = tuple(user_features)

    # --- fitting ----------------------------------------------------------------------------------------
    def missing(self, train: Dataset) -> list[tuple[str, str, str]]:
        """The listed features the training data's metadata lacks: (argument, feature, what it needs)."""
        items, users = train.items, train.users
        missing = []
        for name in self.item_features:
            if name == "release_year" and (items is None or "release_year" not in items.columns):
                missing.append(("item_features", name, "an item table with a release_year column or titles ending "
                                "in (YEAR)"))
            elif name == "genres" and (items is None or not [g for g in train.genres if g in items.columns]):
                missing.append(("item_features", name, "an item table with genre columns"))
        for name in self.user_features:
            if users is None or name not in users.columns:
                missing.append(("user_features", name, f"a user table with a {name!r} column"))
        return missing

    def available_only(self, train: Dataset) -> "FeatureEncoder":
        """An encoder of the listed features that ``train`` has (for models that use metadata where it exists)."""
        gone = {(arg, name) for arg, name, _ in self.missing(train)}
        return FeatureEncoder([n for n in self.item_features if ("item_features", n) not in gone],
                              [n for n in self.user_features if ("user_features", n) not in gone])

    def check_available(self, train: Dataset) -> None:
        """Every listed feature must exist in the training data's metadata; otherwise say which and how to fix it."""
        missing = self.missing(train)
        if missing:
            arg, name, needs = missing[0]
            names = {a: [n for a2, n, _ in missing if a2 == a] for a, _, _ in missing}
            listed = "; ".join(f"{a}={v}" for a, v in names.items())
            raise DataError(
                f"the model uses {arg} {name!r}, which needs {needs}, but the training data "
                f"{train.name!r} has none (missing: {listed}); give the metadata (load_ratings(items=..., "
                f"users=...) or --items/--users) or leave those features out (e.g. {arg}=[])")

    def fit(self, train: Dataset) -> "FeatureEncoder":
        self.check_available(train)
        r = train.ratings
        self.state_: dict[str, Any] = {}
        items, users = train.items, train.users
        if "popularity" in self.item_features:
            pop = r.groupby("item_id").size()
            # fitted over rating rows (a popular item weighs by its ratings), as in the classic hybrid model
            self.state_["popularity"] = QuantileScaler().fit(pop.reindex(r["item_id"]).to_numpy()).quantiles.tolist()
            self._popularity = pop
        if "release_year" in self.item_features and items is not None and "release_year" in items:
            years = pd.to_numeric(items["release_year"], errors="coerce").astype("float64")
            row_years = years.reindex(r["item_id"]).to_numpy()
            median = float(np.nanmedian(row_years)) if np.isfinite(row_years).any() else 0.0
            self.state_["release_year"] = {
                "quantiles": QuantileScaler().fit(row_years).quantiles.tolist(), "fill": median}
        if "genres" in self.item_features and train.genres and items is not None:
            self.state_["genres"] = [g for g in train.genres if g in items.columns]
        if users is not None:
            train_users = users.reindex(pd.unique(r["user_id"]))
            if "age" in self.user_features and "age" in users:
                ages = pd.to_numeric(train_users["age"], errors="coerce").to_numpy(dtype="float64")
                fill = float(np.nanmedian(ages)) if np.isfinite(ages).any() else 0.0
                self.state_["age"] = {"quantiles": QuantileScaler().fit(ages).quantiles.tolist(), "fill": fill}
            for col in ("gender", "occupation"):
                if col in self.user_features and col in users:
                    self.state_[col] = sorted(map(str, train_users[col].dropna().unique()))
        return self

    # --- transforming -----------------------------------------------------------------------------------
    @property
    def item_dim(self) -> int:
        s = self.state_
        return int("popularity" in s) + int("release_year" in s) + len(s.get("genres", []))

    @property
    def user_dim(self) -> int:
        s = self.state_
        return int("age" in s) + len(s.get("gender", [])) + len(s.get("occupation", []))

    def item_feature_names(self) -> list[str]:
        s = self.state_
        return [n for n in ("popularity", "release_year") if n in s] + [f"genre:{g}" for g in s.get("genres", [])]

    def user_feature_names(self) -> list[str]:
        s = self.state_
        return (["age"] if "age" in s else []) + [f"gender:{g}" for g in s.get("gender", [])] + [
            f"occupation:{o}" for o in s.get("occupation", [])]

    def transform_items(self, items: pd.DataFrame | None, ids, popularity: pd.Series | None = None) -> np.ndarray:
        """Feature rows for ``ids`` from the ``items`` metadata; unknown values get the fitted fill values."""
        s, n = self.state_, len(ids)
        cols = []
        meta = items.reindex(ids) if items is not None else pd.DataFrame(index=pd.Index(ids))
        if "popularity" in s:
            pop = (popularity if popularity is not None else self._popularity).reindex(ids).fillna(0)
            cols.append(QuantileScaler(s["popularity"]).transform(pop.to_numpy())[:, None])
        if "release_year" in s:
            y = pd.to_numeric(meta.get("release_year", pd.Series(index=meta.index, dtype=float)), errors="coerce")
            y = y.astype("float64").fillna(s["release_year"]["fill"]).to_numpy()
            cols.append(QuantileScaler(s["release_year"]["quantiles"]).transform(y)[:, None])
        if s.get("genres"):
            g = meta.reindex(columns=s["genres"]).fillna(0).to_numpy(dtype="float64")
            cols.append(g)
        return np.hstack(cols).astype("float32") if cols else np.zeros((n, 0), "float32")

    def transform_users(self, users: pd.DataFrame | None, ids) -> np.ndarray:
        s, n = self.state_, len(ids)
        meta = users.reindex(ids) if users is not None else pd.DataFrame(index=pd.Index(ids))
        cols = []
        if "age" in s:
            a = pd.to_numeric(meta.get("age", pd.Series(index=meta.index, dtype=float)), errors="coerce")
            a = a.astype("float64").fillna(s["age"]["fill"]).to_numpy()
            cols.append(QuantileScaler(s["age"]["quantiles"]).transform(a)[:, None])
        for col in ("gender", "occupation"):
            if s.get(col):
                values = meta.get(col, pd.Series(index=meta.index, dtype=object)).astype("object")
                values = values.map(lambda v: None if pd.isna(v) else str(v)).to_numpy()
                cols.append((values[:, None] == np.array(s[col], dtype=object)[None, :]).astype("float64"))
        return np.hstack(cols).astype("float32") if cols else np.zeros((n, 0), "float32")

    # --- one new user or item from a mapping (cold start), validated -----------------------------------------
    def user_row(self, demographics: Mapping[str, Any]) -> np.ndarray:
        """Feature row (1, width) of a new user from e.g. ``{"age": 31, "gender": "F", "occupation": "writer"}``;
        keys left out get the fitted fill values. Unknown keys and values are refused."""
        s = self.state_
        allowed = [k for k in ("age", "gender", "occupation") if k in s]
        values = _mapping("demographics", demographics, allowed)
        for key, value in values.items():
            if key == "age":
                _number("demographics", key, value, minimum=0)
            elif value not in s[key]:
                raise ValueError(f"demographics[{key!r}] must be one of {s[key]}, got {value!r}")
        return self.transform_users(pd.DataFrame([values], index=[None]), [None])

    def item_row(self, metadata: Mapping[str, Any]) -> np.ndarray:
        """Feature row (1, width) of a new item from e.g. ``{"release_year": 1998, "Sci-Fi": 1, "popularity": 0}``;
        keys left out get the fitted fill values. Unknown keys and values are refused."""
        s = self.state_
        genres = list(s.get("genres", []))
        allowed = [k for k in ("popularity", "release_year") if k in s] + genres
        values = _mapping("metadata", metadata, allowed)
        for key, value in values.items():
            if key in genres:
                if value not in (0, 1) or isinstance(value, str):
                    raise ValueError(f"metadata[{key!r}] must be 0 or 1 (a genre flag), got {value!r}")
            else:
                _number("metadata", key, value, minimum=0)
        meta = pd.DataFrame([{k: float(v) for k, v in values.items()}], index=["new"])
        pop = pd.Series({"new": float(values.get("popularity", 0))})
        return self.transform_items(meta, ["new"], popularity=pop)

    def tables(self, train: Dataset, item_index: IdIndex, user_index: IdIndex) -> tuple[np.ndarray, np.ndarray]:
        """Feature tables aligned with the indices: row 0 (unknown) holds the fill values."""
        it = self.transform_items(train.items, item_index.ids)
        ut = self.transform_users(train.users, user_index.ids)
        it = np.vstack([self.transform_items(None, [None]) if it.shape[1] else np.zeros((1, 0), "float32"), it])
        ut = np.vstack([self.transform_users(None, [None]) if ut.shape[1] else np.zeros((1, 0), "float32"), ut])
        return it.astype("float32"), ut.astype("float32")

    def to_dict(self) -> dict[str, Any]:
        return {"item_features": list(self.item_features), "user_features": list(self.user_features),
                "state": self.state_}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FeatureEncoder":
        enc = cls(d["item_features"], d["user_features"])
        if not isinstance(d["state"], dict):
            raise ValueError(f"encoder state must be an object, got {type(d['state']).__name__}")
        enc.state_ = d["state"]
        enc._popularity = pd.Series(dtype="int64")  # new items give their popularity explicitly
        return enc


def _mapping(name: str, value: Any, allowed: list[str]) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{name} must be a mapping such as {{{allowed[0]!r}: ...}}, got {value!r}" if allowed else
                         f"{name} must be a mapping, got {value!r}")
    unknown = [k for k in value if k not in allowed]
    if unknown:
        raise ValueError(f"{name}: unknown key(s) {unknown}; this model uses {allowed}")
    return dict(value)


def _number(name: str, key: str, value: Any, minimum: float) -> None:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or value < minimum:
        raise ValueError(f"{name}[{key!r}] must be a finite number >= {minimum:g}, got {value!r}")


def day_numbers(timestamps) -> np.ndarray:
    """Days since 1970-01-01 (UTC) as int32, -1 where a timestamp is missing. Numbers are seconds since the epoch
    (MovieLens' convention); datetimes are taken as they are."""
    ts = pd.Series(timestamps)
    if len(ts) == 0:
        return np.zeros(0, "int32")
    if pd.api.types.is_datetime64_any_dtype(ts.dtype):
        days = (ts.dt.tz_localize(None) if getattr(ts.dt, "tz", None) is not None else ts).to_numpy(
            "datetime64[D]").astype("int64")
        missing = ts.isna().to_numpy()
    else:
        seconds = pd.to_numeric(ts, errors="coerce").to_numpy("float64", na_value=np.nan)
        missing = ~np.isfinite(seconds)
        days = np.floor(np.where(missing, 0, seconds) / 86400.0).astype("int64")
    days = np.where(missing | (days < 0) | (days > np.iinfo("int32").max), -1, days)
    return days.astype("int32")

"""The ``Dataset`` type (ratings + item/user metadata) and ``IdIndex`` (raw id <-> contiguous index)."""

from __future__ import annotations

import warnings

from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError
from .scale import RatingScale
from .validate import check_duplicates_option, check_unique_key, plain_value, resolve_duplicates

RATING_COLUMNS = ["user_id", "item_id", "rating", "timestamp"]


class IdIndex:
    """Vocabulary mapping raw ids to contiguous indices ``1..n``; index 0 is reserved for unknown ids.

    Ids keep their type: ``5`` and ``"5"`` are different ids, and looking up a value of another type gives 0.
    """

    UNKNOWN = 0

    def __init__(self, ids) -> None:
        values = _as_index(ids)
        missing = np.asarray(values.isna())
        if missing.any():
            pos = int(np.flatnonzero(missing)[0])
            raise DataError(f"ids must not contain missing values (None or NaN), got {plain_value(values[pos])!r} "
                            f"at position {pos}")
        flags = _bool_mask(values)
        if flags.any():
            pos = int(np.flatnonzero(flags)[0])
            raise DataError(f"ids must be integers or labels, got {plain_value(values[pos])!r} at position {pos}")
        self._ids = values.unique()  # position p holds the raw id of index p + 1

    #: (first ids, ids added by :meth:`extended`) of an extended index, else None: lookups search the first ids'
    #: table (built once) and then the few added ones, so an index grown one id at a time builds no table of all
    _parts: tuple[pd.Index, pd.Index] | None = None

    def extended(self, new_ids) -> "IdIndex":
        """A new index: these ids, then ``new_ids`` (distinct, none of them known) at the next indices. Only the new
        ids are checked, so adding a few ids to a large vocabulary costs no pass over it in Python; the new index
        looks ids up in this one's first ids and its (few) added ones, and joins them only when all are asked for."""
        new = IdIndex(new_ids)
        if len(new) != len(_as_index(new_ids)) or (self._positions(new._ids.to_numpy()) >= 0).any():
            raise ValueError("extended: the new ids must be distinct and not known already")
        out = IdIndex.__new__(IdIndex)
        base, added = self._parts or (self._ids, None)
        out._parts = (base, new._ids if added is None else _joined(added, new._ids))
        out._base_kind = self._base_kind if self._parts else self.kind
        out._base_value_kinds = self._base_value_kinds if self._parts else self.value_kinds
        return out

    @cached_property
    def _ids(self) -> pd.Index:
        """Every id in index order (set when the index is built; joined on first use for an extended one)."""
        return _joined(*self._parts)

    def _positions(self, values: np.ndarray) -> np.ndarray:
        """Positions of ``values`` among the ids (-1 where unknown)."""
        if self._parts is None:
            return _positions_in(self._ids, values)
        base, added = self._parts
        pos = _positions_in(base, values)
        missing = np.flatnonzero(pos < 0)
        if len(missing):
            found = _positions_in(added, np.asarray(values)[missing])
            pos[missing] = np.where(found >= 0, found + len(base), -1)
        return pos

    @property
    def ids(self) -> np.ndarray:
        """Raw ids in index order (index i+1 holds ``ids[i]``)."""
        return self._ids.to_numpy()

    @property
    def dtype(self):
        """The dtype the ids are held in (what :attr:`ids` holds), found without joining an extended index."""
        if self._parts is None or "_ids" in vars(self):
            return self._ids.dtype
        base, added = self._parts
        return base.dtype if base.dtype == added.dtype else np.dtype(object)  # as _joined joins them

    def __len__(self) -> int:
        return len(self._ids) if self._parts is None else len(self._parts[0]) + len(self._parts[1])

    @property
    def size(self) -> int:
        """Rows an embedding table needs: the ids plus the reserved unknown row."""
        return len(self) + 1

    def __contains__(self, raw_id) -> bool:
        one = np.empty(1, dtype=object)
        one[0] = raw_id
        return bool(self.index(one)[0])

    def index(self, raw_ids) -> np.ndarray:
        """Contiguous indices of ``raw_ids`` (0 where unknown) as int32, shaped like ``raw_ids`` (1-D for one id)."""
        arr = _as_array(raw_ids)
        shape = arr.shape if arr.ndim else (1,)
        flat = arr.reshape(-1)
        if len(flat) == 0:
            return np.zeros(shape, dtype="int32")
        try:
            pos = self._positions(flat)
        except (TypeError, ValueError):  # unhashable values: look them up one by one
            pos = np.array([self._position(v) for v in flat], dtype="int64")
        out = pos + 1
        if flat.dtype == object or flat.dtype == bool:
            out[_bool_mask(pd.Index(flat, dtype=object))] = self.UNKNOWN  # True is not the id 1
        return out.astype("int32").reshape(shape)

    @cached_property
    def value_kinds(self) -> frozenset[str]:
        """The kinds of the ids as numpy names them: "i" or "u" integers, "f" other numbers, "O" anything else."""
        if self._parts is not None:
            return self._base_value_kinds | _value_kinds(self._parts[1])
        return _value_kinds(self._ids)

    @cached_property
    def kind(self) -> str | None:
        """"integer" or "text" when every id is of that kind, else None."""
        if self._parts is not None:
            added = _kind(self._parts[1])
            return self._base_kind if added == self._base_kind else None
        return _kind(self._ids)

    def lookup(self, raw_ids, name: str, stacklevel: int = 2) -> np.ndarray:
        """:meth:`index` of ``raw_ids``, with a warning (at ``stacklevel`` from the caller) when an unknown id names
        a known one once converted (text ``"5"`` against the integer id ``5``, or the reverse): ids keep their type.
        ``name`` is the argument the ids came in."""
        found = self.index(raw_ids)
        other = self.other_kind(raw_ids, found)
        if other is not None:
            given, known = other
            warnings.warn(f"{name}: {given!r} is unknown, but {known!r} is a known id (ids keep their type: 5 and "
                          f"'5' differ); convert the ids to the model's", UserWarning, stacklevel=stacklevel + 1)
        return found

    def other_kind(self, raw_ids, indices) -> tuple[object, object] | None:
        """The first unknown id in ``raw_ids`` (looked up as ``indices``) that names a known id once converted to
        the other kind (text ``"5"`` for the integer id ``5``, or the reverse), with that known id; else None."""
        kind = self.kind
        if kind is None:
            return None
        flat = _as_array(raw_ids).reshape(-1)
        for value in flat[np.asarray(indices).reshape(-1) == self.UNKNOWN][:1000]:
            value = plain_value(value)
            converted = None
            if kind == "integer" and isinstance(value, str) and value.lstrip("-").isdigit() and \
                    str(int(value)) == value:  # written as that integer is ("5"; not "005" or "+5", other ids)
                converted = int(value)
            elif kind == "text" and isinstance(value, int) and not isinstance(value, bool):
                converted = str(value)
            if converted is not None and converted in self:
                return value, converted
        return None

    def _position(self, value) -> int:
        try:
            return int(self._ids.get_indexer([value])[0])
        except (TypeError, ValueError):
            return -1

    def raw(self, indices) -> np.ndarray:
        """Raw ids of contiguous ``indices`` (all must be >= 1)."""
        idx = np.asarray(indices, dtype="int64")
        if np.any(idx < 1) or np.any(idx > len(self)):
            raise IndexError(f"indices must be in 1..{len(self)}, got {idx[(idx < 1) | (idx > len(self))][:5]}")
        if self._parts is None or "_ids" in self.__dict__:
            return self.ids[idx - 1]
        base, added = self._parts
        out = np.empty(idx.shape, dtype=base.dtype if base.dtype == added.dtype else object)
        first = idx <= len(base)
        out[first] = base.to_numpy()[idx[first] - 1].astype(out.dtype)  # mixed: plain Python values, as in ids
        out[~first] = added.to_numpy()[idx[~first] - 1 - len(base)].astype(out.dtype)
        return out

    def to_list(self) -> list:
        """Raw ids in index order, as plain Python values."""
        return [v.item() if hasattr(v, "item") else v for v in self.ids]

    def __repr__(self) -> str:
        return f"IdIndex(n={len(self)})"


def _positions_in(ids: pd.Index, values) -> np.ndarray:
    """``ids.get_indexer(values)`` (a new array), without a pass over numeric ids to compare them with values of
    several kinds: only the numbers among the values are looked up there (an id of another kind is unknown)."""
    values = np.asarray(values)
    if ids.dtype.kind not in "iuf" or values.dtype != object:
        return np.array(ids.get_indexer(values))
    numeric = np.fromiter((isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
                           for v in values), bool, len(values))
    pos = np.full(len(values), -1, np.intp)
    if numeric.any():
        pos[numeric] = ids.get_indexer(np.array(values[numeric].tolist()))
    return pos


def _joined(first: pd.Index, then: pd.Index) -> pd.Index:
    """Two indexes of ids one after the other; ids of another kind make it mixed: every id kept as it is."""
    if first.dtype == then.dtype:
        return pd.Index(np.concatenate([first.to_numpy(), then.to_numpy()]), dtype=first.dtype)
    return pd.Index(np.concatenate([first.to_numpy().astype(object), then.to_numpy().astype(object)]), dtype=object)


def _value_kinds(ids: pd.Index) -> frozenset[str]:
    from numbers import Integral

    if not isinstance(ids.dtype, np.dtype) and pd.api.types.is_string_dtype(ids.dtype):  # text, kept as such
        return frozenset("O")
    values = ids.to_numpy()
    if values.dtype.kind != "O":
        return frozenset(values.dtype.kind)
    return frozenset("i" if isinstance(v, Integral) and not isinstance(v, bool) else "f" if isinstance(v, float)
                     else "O" for v in values)


def _kind(ids: pd.Index) -> str | None:
    return {"integer": "integer", "string": "text"}.get(pd.api.types.infer_dtype(ids, skipna=False))


def _as_index(ids) -> pd.Index:
    """``ids`` as a pandas Index that keeps each value's type (a list of ints and strings stays mixed)."""
    if isinstance(ids, pd.Index):
        return ids
    if isinstance(ids, (np.ndarray, pd.Series)):
        return pd.Index(ids)
    if isinstance(ids, (str, bytes)) or not hasattr(ids, "__iter__"):
        ids = [ids]
    return pd.Index(list(ids))


def _as_array(values) -> np.ndarray:
    """Lookup values as an array; a list of mixed types becomes an object array rather than all strings."""
    if isinstance(values, (pd.Series, pd.Index)):
        return values.to_numpy()
    if isinstance(values, np.ndarray):
        return values
    if isinstance(values, (list, tuple)):
        try:
            arr = np.asarray(values)
        except ValueError:  # ragged nesting: one object per element
            arr = np.empty(len(values), dtype=object)
            for i, v in enumerate(values):
                arr[i] = v
            return arr
        if arr.dtype.kind in "US":  # numpy text drops trailing NULs and turns numbers into text
            arr = np.asarray(values, dtype=object)
        return arr
    out = np.empty((), dtype=object)
    out[()] = values
    return out


def _bool_mask(values: pd.Index) -> np.ndarray:
    """Which values are booleans."""
    if pd.api.types.is_bool_dtype(values):
        return np.ones(len(values), dtype=bool)
    if values.dtype != object:
        return np.zeros(len(values), dtype=bool)
    return np.fromiter((isinstance(v, (bool, np.bool_)) for v in values), dtype=bool, count=len(values))


@dataclass
class Dataset:
    """Ratings plus the metadata that goes with them.

    ``ratings`` has columns user_id, item_id, rating, timestamp (raw ids, timestamp may be missing);
    ``items`` is indexed by item_id, ``users`` by user_id (or None when the source has no user table).
    ``duplicates``: a (user, item) pair rated on several rows is an error (``"error"``), or is kept once with its
    latest rating (``"last"``) or the mean of its ratings (``"mean"``: such ratings may lie between scale steps).
    """

    ratings: pd.DataFrame
    items: pd.DataFrame | None = None
    users: pd.DataFrame | None = None
    name: str = "ratings"
    rating_scale: RatingScale | None = None
    genres: list[str] = field(default_factory=list)
    source: str | None = None
    duplicates: str = "error"

    def __post_init__(self) -> None:
        if not isinstance(self.ratings, pd.DataFrame):
            raise TypeError(f"Dataset.ratings must be a pandas DataFrame, got {type(self.ratings).__name__}")
        for name in ("items", "users"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, pd.DataFrame):
                raise TypeError(f"Dataset.{name} must be a pandas DataFrame or None, got {type(value).__name__}")
            if value is not None and not value.index.is_unique:  # one row of metadata per id
                check_unique_key(pd.Series(value.index), what=f"{name[:-1]}_id", path=None, unit="row",
                                 detail=f" in the index of Dataset.{name}")
        missing = [c for c in RATING_COLUMNS[:3] if c not in self.ratings.columns]
        if missing:
            raise ValueError(f"Dataset.ratings must have columns {RATING_COLUMNS[:3]}, missing {missing}")
        if "timestamp" not in self.ratings.columns:
            self.ratings = self.ratings.assign(timestamp=pd.NA)
        check_duplicates_option(self.duplicates)
        if isinstance(self.rating_scale, (tuple, list)):
            self.rating_scale = RatingScale(*self.rating_scale)
        if self.rating_scale is not None and not isinstance(self.rating_scale, RatingScale):
            raise TypeError("Dataset.rating_scale must be a RatingScale, (minimum, maximum[, step]) or None, got "
                            f"{self.rating_scale!r}")
        if self.rating_scale is None and len(self.ratings):
            ratings = pd.to_numeric(self.ratings["rating"], errors="coerce").to_numpy(dtype="float64")
            finite = ratings[np.isfinite(ratings)]
            if len(finite):  # non-numbers are reported by check_ratings, where they are used
                self.rating_scale = RatingScale.infer(finite)
        self.ratings = resolve_duplicates(self.ratings, self.duplicates)  # after inference: means are no scale step

    def check_ratings(self, role: str) -> None:
        """Raise :class:`~ratecast.errors.DataError` naming ``role`` (e.g. 'train') unless every rating is a finite
        number on the rating scale, no id is missing, and no (user, item) pair is rated twice."""
        r = self.ratings

        def fail(mask, what: str) -> None:
            row = int(np.flatnonzero(np.asarray(mask, dtype=bool))[0])
            value = lambda col: plain_value(r[col].iloc[row])  # per column: a row of mixed columns would be floats
            raise DataError(f"{role}: row {row} (user_id={value('user_id')!r}, "
                            f"item_id={value('item_id')!r}): {what}, got {value('rating')!r}")

        for col in ("user_id", "item_id"):
            miss = r[col].isna().to_numpy()
            if miss.any():
                row = int(np.flatnonzero(miss)[0])
                raise DataError(f"{role}: row {row}: {col} is missing")
        values = r["rating"]
        flags = (values.map(lambda v: isinstance(v, (bool, np.bool_))).to_numpy(dtype=bool) if values.dtype == object
                 else np.full(len(values), pd.api.types.is_bool_dtype(values)))
        if flags.any():
            fail(flags, "rating must be a number")
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64")
        bad = ~np.isfinite(numbers)
        if bad.any():
            fail(bad, "rating must be a finite number")
        scale = self.rating_scale
        if scale is not None:
            off = self.off_scale(numbers, scale)
            if off.any():
                fail(off, f"rating must lie on the scale {scale.minimum:g}..{scale.maximum:g} (step {scale.step:g})")
        dup = r.duplicated(["user_id", "item_id"]).to_numpy()
        if dup.any():
            fail(dup, "this (user, item) pair is rated twice; each pair may be rated once (or build the Dataset "
                      "with duplicates='last' or 'mean')")

    def off_scale(self, ratings, scale: RatingScale | None = None) -> np.ndarray:
        """Which ``ratings`` lie off ``scale`` (default: this dataset's): outside its bounds, or between its steps
        unless the ratings are means of re-ratings (``duplicates="mean"``), which may lie there."""
        scale = scale or self.rating_scale
        r = np.asarray(ratings, dtype="float64")
        if scale is None:
            return ~np.isfinite(r)
        if self.duplicates == "mean":
            with np.errstate(invalid="ignore"):
                return ~((r >= scale.minimum - 1e-9) & (r <= scale.maximum + 1e-9))
        return ~scale.on_scale(r)

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


def id_from_text(index: "IdIndex", value: str) -> Any:
    """The model's id that an id written as text (command line, URL) stands for, found as it was stored: the text itself, else the
    integer written that way (``7``, ``-3``, ``99999999999999999999999``; not ``007`` or ``+7``) among integer ids,
    else the number among number ids (``2.5``). An id known in none of these forms is returned as text (unknown)."""
    kinds = index.value_kinds
    candidates: list[Any] = [value]
    if kinds & {"i", "u"}:
        try:
            number = int(value)
        except ValueError:
            pass
        else:
            if str(number) == value:
                candidates.append(number)
    if "f" in kinds:
        try:
            candidates.append(float(value))
        except ValueError:
            pass
    for candidate in candidates:
        if candidate in index:
            return candidate
    return value

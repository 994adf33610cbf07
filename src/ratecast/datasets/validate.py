"""Validating parsed tables: ratings (ids, ratings, timestamps, duplicates) and headerless metadata tables."""

from __future__ import annotations

import warnings
from typing import Callable, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import DataError, argument
from .scale import RatingScale

#: what to do with a (user, item) pair rated more than once: refuse it, keep its latest rating, or keep their mean
DUPLICATES = ("error", "last", "mean")

_INTEGER = r"[+-]?\d+"
_CANONICAL_INTEGER = r"0|-?[1-9]\d*"  # how str(int) writes an integer: no sign but '-', no leading zeros, no spaces
_TIMESTAMP = "timestamp must be a number (seconds since 1970) or a date"


def plain_value(value):
    """numpy scalars as plain Python values, so messages read ``6`` rather than ``np.int64(6)``."""
    return value.item() if isinstance(value, np.generic) else value


_plain = plain_value


Fail = Callable[..., None]


def _failer(df: pd.DataFrame, path: str, first_line: int) -> Fail:
    """``fail(mask, what, column)``: raise a DataError at the first row of ``mask``, quoting ``df[column]`` there."""

    def fail(mask, what: str, column: str | None = None) -> None:
        row = int(np.flatnonzero(np.asarray(mask, dtype=bool))[0])
        value = "" if column is None else f", got {_plain(df[column].iloc[row])!r}"
        raise DataError(f"{what}{value}", path=path, line=first_line + row)

    return fail


def _is_bool(s: pd.Series) -> np.ndarray:
    """Which values are booleans (a bool column, or Python/numpy bools in an object column)."""
    if pd.api.types.is_bool_dtype(s):
        return np.ones(len(s), dtype=bool)
    if s.dtype == object:
        return s.map(lambda v: isinstance(v, (bool, np.bool_))).to_numpy(dtype=bool)
    return np.zeros(len(s), dtype=bool)


def _ratings(s: pd.Series, fail: Fail) -> pd.Series:
    """Ratings as float64 (float32 ones as they are): numbers only (no booleans, text or infinities)."""
    flags = _is_bool(s)
    if flags.any():
        fail(flags, "rating must be a number", "rating")
    if not pd.api.types.is_numeric_dtype(s):
        num = pd.to_numeric(s, errors="coerce")
        bad = num.isna().to_numpy()
        if bad.any():
            fail(bad, "rating must be a number", "rating")
        s = num
    if s.dtype != "float32":  # float32 ratings are exact as float64 too: checked as they are, and kept compact
        s = s.astype("float64")
    inf = ~np.isfinite(s.to_numpy())
    if inf.any():
        fail(inf, "rating must be finite", "rating")
    return s


def _ids(s: pd.Series, col: str, fail: Fail, codes: Codes | None = None) -> pd.Series:
    """Integer ids (whole floats and other integer widths become int64) or text labels.

    A text column whose values are mostly integers but not all is rejected: the odd values are typos, not labels.
    """
    if isinstance(s.dtype, pd.CategoricalDtype):
        s = s.astype(s.cat.categories.dtype)
    flags = _is_bool(s)
    if flags.any():
        fail(flags, f"{col} must be an integer or a label", col)
    if pd.api.types.is_float_dtype(s):
        v = s.to_numpy(dtype="float64")
        bad = ~np.isfinite(v) | (v != np.floor(v)) | (np.abs(v) >= 2.0**63)
        if bad.any():
            fail(bad, f"{col} must be an integer or a label", col)
        return s.astype("int64")
    if pd.api.types.is_integer_dtype(s):
        if s.dtype == "int64" or (s.dtype.kind == "u" and len(s) and int(s.max()) > np.iinfo("int64").max):
            return s
        return s.astype("int64")
    if not (pd.api.types.is_object_dtype(s) or pd.api.types.is_string_dtype(s)):
        fail(np.ones(len(s), dtype=bool), f"{col} must be an integer or a label", col)
    if codes is not None:  # the same test on each distinct value, weighted by how often it occurs
        is_int_value = _integer_text(codes.uniques)
        if is_int_value.all():
            return s
        n_int = int(np.bincount(codes.codes[codes.codes >= 0], minlength=len(is_int_value))[is_int_value].sum())
        if 2 * n_int > len(s):
            fail(~is_int_value[codes.codes], f"{col} mixes integers and text", col)
        return s
    is_int = _integer_text(s)
    if 2 * is_int.sum() > len(s) and not is_int.all():
        fail(~is_int, f"{col} mixes integers and text", col)
    return s


def _integer_text(values) -> np.ndarray:
    """Which values are written as integers (``[+-]digits``, surrounding spaces allowed)."""
    return pd.Series(values).astype(str).str.strip().str.fullmatch(_INTEGER).to_numpy(dtype=bool)


class Codes(NamedTuple):
    """A column as ``uniques[codes]``: ``codes`` (-1 where missing) into its distinct values ``uniques``."""

    codes: np.ndarray
    uniques: pd.Index


def text_codes(s: pd.Series) -> Codes | None:
    """:class:`Codes` of a text column (pandas ``str`` dtype), found by hashing; None for other columns, whose
    checks look at every value (an object column may hold ``1`` and ``True``, which hash alike)."""
    if not isinstance(s.dtype, pd.StringDtype):
        return None
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    return Codes(np.asarray(codes), pd.Index(uniques))


def text_ids(s: pd.Series) -> pd.Series:
    """Ids read as text from a delimited file: int64 when every value is written the way Python writes an integer
    (``7``, ``-3``) and fits int64; otherwise the text as written, so that ``7`` and ``007`` (or ``+7``, `` 7``,
    ``7.0``) stay different ids. Missing values stay missing (they are reported by :func:`validate_ratings`)."""
    if len(s) == 0 or not (pd.api.types.is_object_dtype(s) or pd.api.types.is_string_dtype(s)):
        return s
    if s.isna().any() or (s.dtype == object and not s.map(lambda v: isinstance(v, str)).all()):
        return s
    if not bool(s.str.fullmatch(_CANONICAL_INTEGER).all()):
        return s
    num = _int64(s)
    if num is None:  # beyond int64: keep the text
        return s
    return pd.Series(num, index=s.index, name=s.name)


def _int64(s: pd.Series) -> np.ndarray | None:
    """Text written as integers (``[+-]digits``) as int64, or None if one does not fit int64."""
    if isinstance(s.dtype, pd.StringDtype) and s.dtype.storage == "pyarrow":
        try:
            return pc.cast(pa.array(s.array), pa.int64()).to_numpy()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass  # a sign arrow does not read, or beyond int64: pandas decides
    num = pd.to_numeric(s, errors="coerce")
    return num.to_numpy() if num.dtype == "int64" else None


def _timestamps(ts: pd.Series, fail: Fail) -> pd.Series:
    """Timestamps as seconds since 1970, from numbers, dates (text) or datetimes."""
    if pd.api.types.is_datetime64_any_dtype(ts):
        utc = ts.dt.tz_localize("UTC") if ts.dt.tz is None else ts.dt.tz_convert("UTC")
        return (utc - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    flags = _is_bool(ts)
    if flags.any():
        fail(flags, _TIMESTAMP, "timestamp")
    if not pd.api.types.is_numeric_dtype(ts):
        num = pd.to_numeric(ts, errors="coerce")
        not_num = num.isna().to_numpy()
        if not_num.any():
            if 2 * not_num.sum() < len(ts):  # mostly numbers: the others are wrong
                fail(not_num, _TIMESTAMP, "timestamp")
            dates = _parse_dates(ts)
            not_date = dates.isna().to_numpy()
            if not_date.any():
                # the kind most values have decides which values are wrong; on a tie, the first value's kind
                n_num, n_date = int((~not_num).sum()), int((~not_date).sum())
                numbers = n_num > n_date or (n_num == n_date and not not_num[0])
                fail(not_num if numbers else not_date, _TIMESTAMP, "timestamp")
            return (dates - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
        ts = num
    if pd.api.types.is_integer_dtype(ts):
        return ts
    inf = ~np.isfinite(ts.to_numpy(dtype="float64"))
    if inf.any():
        fail(inf, "timestamp must be finite", "timestamp")
    return ts


def _parse_dates(ts: pd.Series) -> pd.Series:
    """Dates as UTC datetimes (NaT where a value is no date); values in another format than the first are parsed
    one by one, unless none of the first hundred of them is a date."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        dates = pd.to_datetime(ts, errors="coerce", utc=True)
        retry = dates.isna().to_numpy()
        if retry.any() and pd.to_datetime(ts[retry][:100], errors="coerce", utc=True, format="mixed").notna().any():
            dates = dates.copy()
            dates[retry] = pd.to_datetime(ts[retry], errors="coerce", utc=True, format="mixed")
    return dates


def blank_values(column: pd.Series) -> np.ndarray:
    """Where ``column`` holds no value: missing, or (in a text column) only spaces."""
    miss = column.isna().to_numpy()
    if not pd.api.types.is_numeric_dtype(column):
        miss = miss | (column.astype(str).str.strip() == "").to_numpy()
    return miss


def check_duplicates_option(duplicates) -> str:
    """``duplicates`` if it is one of :data:`DUPLICATES`; else :class:`DataError` naming the option and its values."""
    if not isinstance(duplicates, str) or duplicates not in DUPLICATES:
        raise DataError(f"{argument('duplicates')} must be one of {', '.join(map(repr, DUPLICATES))}, "
                        f"got {duplicates!r}")
    return duplicates


def resolve_duplicates(df: pd.DataFrame, duplicates: str) -> pd.DataFrame:
    """``df`` with each (user_id, item_id) pair once: ``"last"`` keeps the pair's latest row (by timestamp where the
    rows have one, file order breaking ties; else the last in file order), ``"mean"`` keeps that row with the mean of
    the pair's ratings (not rounded to the scale). Rows keep their order; ``df`` itself is returned when no pair
    repeats. ``"error"`` returns ``df`` unchanged (the caller reports repeats)."""
    if check_duplicates_option(duplicates) == "error" or len(df) < 2:
        return df
    keys = ["user_id", "item_id"]
    if not df.duplicated(keys).any():
        return df
    order = np.arange(len(df))
    if "timestamp" in df.columns and bool(df["timestamp"].notna().any()):
        ts = pd.to_numeric(df["timestamp"], errors="coerce").to_numpy(dtype="float64")
        order = np.argsort(ts, kind="stable")  # equal timestamps stay in file order
    latest = ~df.iloc[order].duplicated(keys, keep="last").to_numpy()
    kept = np.sort(order[latest])
    out = df.iloc[kept]
    if duplicates == "mean":
        rating = pd.to_numeric(df["rating"], errors="coerce").astype("float64")  # non-numbers: reported where used
        mean = rating.groupby([df["user_id"], df["item_id"]], sort=False, dropna=False).transform("mean").to_numpy()
        out = out.assign(rating=mean[kept])
    return out.reset_index(drop=True)


def validate_ratings(
    df: pd.DataFrame,
    *,
    path: str,
    rating_scale: RatingScale | None = None,
    first_line: int = 1,
    require_timestamp: bool = False,
    id_codes: dict[str, Codes] | None = None,
    columns: dict[str, str] | None = None,
    duplicates: str = "error",
) -> tuple[pd.DataFrame, RatingScale]:
    """Check a (user_id, item_id, rating[, timestamp]) frame; return it with numeric ratings and its scale.

    Row ``i`` is reported as line ``first_line + i``. Raises :class:`DataError` naming file, line, constraint, value.
    A timestamp column is either empty or filled on every row. ``id_codes`` may give the id columns' :class:`Codes`
    when the reader already has them (dictionary-encoded columns); text id columns are encoded here otherwise, so
    that their checks look at each distinct id once. Ratings come back as float32 when that holds every rating
    exactly (any scale in halves, quarters or whole numbers), else as float64. ``columns`` maps a role to the
    column's name in the file, for messages (default: the role's name). A (user, item) pair rated on several rows
    is an error unless ``duplicates`` is ``"last"`` or ``"mean"`` (see :func:`resolve_duplicates`).
    """
    check_duplicates_option(duplicates)
    fail = _failer(df, path, first_line)
    if len(df) == 0:
        raise DataError("no ratings: the table has no rows", path=path)
    codes = dict(id_codes or {})
    for col in ("user_id", "item_id"):
        if col not in codes:
            found = text_codes(df[col])
            if found is not None:
                codes[col] = found
    blank = _all_missing(df)
    if blank is not None and blank.any():
        fail(blank, "blank line where a rating row was expected")
    has_ts = "timestamp" in df.columns and bool(df["timestamp"].notna().any())
    for col in ("user_id", "item_id", "rating") + (("timestamp",) if has_ts else ()):
        if col in codes:
            miss = _blank_codes(codes[col])
        else:
            miss = df[col].isna().to_numpy() if col == "rating" else blank_values(df[col])
        if miss.any():
            fail(miss, f"missing value in column {(columns or {}).get(col, col)!r} (short row or empty field)")
    if not has_ts and require_timestamp:
        raise DataError("column 'timestamp' is required", path=path)
    ratings = _ratings(df["rating"], fail)
    out = df.assign(
        user_id=_ids(df["user_id"], "user_id", fail, codes.get("user_id")),
        item_id=_ids(df["item_id"], "item_id", fail, codes.get("item_id")),
        rating=ratings,
    )
    if has_ts:
        out = out.assign(timestamp=_timestamps(df["timestamp"], fail))
    values = ratings.to_numpy()
    distinct = pd.unique(values)  # a handful of values: the scale is inferred and checked on them
    if rating_scale is None:
        _refuse_outliers(values, distinct, path, first_line)
        try:
            rating_scale = RatingScale.infer(distinct)
        except ValueError as exc:
            raise DataError(str(exc), path=path) from None
    elif not rating_scale.on_scale(distinct).all():
        off = ~rating_scale.on_scale(values)
        if off.any():
            fail(
                off,
                f"rating outside the declared scale {rating_scale.minimum:g}..{rating_scale.maximum:g} "
                f"(step {rating_scale.step:g})",
                "rating",
            )
    if duplicates == "error":
        _check_unique_pairs(out, path, first_line, codes)
    else:
        out = resolve_duplicates(out, duplicates)
        values = out["rating"].to_numpy()
    if values.dtype != "float32":
        single = values.astype("float32")
        if np.array_equal(single, values):
            out = out.assign(rating=single)
    return out.reset_index(drop=True), rating_scale


OUTLIER_MIN_RATINGS = 100


def outlier_ratings(values: np.ndarray) -> np.ndarray | None:
    """Which ratings lie far from the others, or None if none does. The core of the ratings is what remains without
    the ``k`` lowest and ``k`` highest (``k`` = 5, or 0.1% of the ratings when that is more); a rating is an outlier
    when it lies further from the core than the core's width or its largest magnitude, whichever is more (one typo of
    40 among 1-5 stars; not a 0 among 1-5 stars, nor a few 1s among 4s). Fewer than :data:`OUTLIER_MIN_RATINGS`
    ratings are not judged: too few to tell a typo from the scale's rarely used end."""
    n = len(values)
    k = max(5, -(-n // 1000))
    if n < OUTLIER_MIN_RATINGS:
        return None
    counts = pd.Series(values).value_counts(sort=False)
    order = np.argsort(counts.index.to_numpy(dtype="float64"))
    distinct = counts.index.to_numpy(dtype="float64")[order]
    cumulative = np.cumsum(counts.to_numpy()[order])
    lo = distinct[np.searchsorted(cumulative, k + 1)]  # the (k+1)-th lowest rating
    hi = distinct[np.searchsorted(cumulative, n - k)]  # the (k+1)-th highest
    reach = max(hi - lo, abs(lo), abs(hi)) or 1.0
    far = (distinct < lo - reach) | (distinct > hi + reach)
    if not far.any():
        return None
    return np.isin(values, distinct[far])


def _refuse_outliers(values: np.ndarray, distinct: np.ndarray, path: str, first_line: int) -> None:
    """Before a scale is inferred from ``values``: a :class:`DataError` naming the lines of ratings that lie far
    from the others (:func:`outlier_ratings`), which would stretch the inferred scale."""
    if len(distinct) < 2:
        return
    far = outlier_ratings(values)
    if far is None:
        return
    rows = np.flatnonzero(far)
    shown = ", ".join(f"{float(values[r]):g} (line {first_line + int(r)})" for r in rows[:5])
    rest = values[~far]
    more = f" and {len(rows) - 5} more" if len(rows) > 5 else ""
    raise DataError(
        f"{'rating' if len(rows) == 1 else 'ratings'} {shown}{more} far outside the other ratings "
        f"({float(rest.min()):g}..{float(rest.max()):g}) would stretch the inferred rating scale to "
        f"{float(values.min()):g}..{float(values.max()):g}: correct {'it' if len(rows) == 1 else 'them'} (a typo?), "
        f"or declare the scale with {argument('rating_scale')} (MIN,MAX[,STEP])",
        path=path, line=first_line + int(rows[0]))


def _all_missing(df: pd.DataFrame) -> np.ndarray | None:
    """Which rows are missing in every column (None when some column has no missing value at all)."""
    blank = None
    for col in df.columns:
        miss = df[col].isna().to_numpy()
        if not miss.any():
            return None
        blank = miss if blank is None else blank & miss
    return blank


def _blank_codes(codes: Codes) -> np.ndarray:
    """Which rows of an encoded text column are missing or only whitespace."""
    blank = _blank_text(codes.uniques)
    miss = codes.codes < 0
    if blank.any():
        miss = miss | blank[np.maximum(codes.codes, 0)] & (codes.codes >= 0)
    return miss


def _blank_text(values) -> np.ndarray:
    return (pd.Series(values).astype(str).str.strip() == "").to_numpy(dtype=bool)


def _pair_part(s: pd.Series, codes: Codes | None) -> tuple[np.ndarray, int, int] | None:
    """One id column as (int64 values, their minimum, how many values the range spans): integer ids as they are,
    other ids by their position among the distinct ids; None for values that cannot be hashed."""
    if codes is not None:
        return codes.codes, 0, len(codes.uniques)
    if pd.api.types.is_integer_dtype(s) and s.dtype.kind in "iu":
        v = s.to_numpy()
        lo, hi = int(v.min()), int(v.max())
        if hi - lo < 2**62 and hi <= np.iinfo("int64").max:
            return v.astype("int64", copy=False), lo, hi - lo + 1
    try:
        found, uniques = pd.factorize(s)
    except TypeError:  # unhashable values
        return None
    return found, 0, len(uniques)


def _check_unique_pairs(df: pd.DataFrame, path: str, first_line: int, codes: dict[str, Codes] | None = None) -> None:
    """Raise :class:`DataError` naming the first row whose (user, item) pair another row has too, and their lines."""
    codes = codes or {}
    users, items = _pair_part(df["user_id"], codes.get("user_id")), _pair_part(df["item_id"], codes.get("item_id"))
    if users is not None and items is not None and len(df) > 1:
        u, i = users[0], items[0]
        if bool(((u[1:] > u[:-1]) | ((u[1:] == u[:-1]) & (i[1:] > i[:-1]))).all()):
            return  # sorted by user then item, as MovieLens files are: no pair twice
    if users is None or items is None or users[2] * items[2] >= 2**63:
        dup = df.duplicated(["user_id", "item_id"], keep=False).to_numpy()
        if not dup.any():
            return
        rows = np.flatnonzero(dup)
        first = rows[0]
        key = (_plain(df["user_id"].iloc[first]), _plain(df["item_id"].iloc[first]))
        same = rows[(df["user_id"].iloc[rows] == key[0]).to_numpy() & (df["item_id"].iloc[rows] == key[1]).to_numpy()]
    else:
        pair = users[0].astype("int64")  # (user - min) * span of items + (item - min): one int64 per pair
        pair -= users[1]
        pair *= items[2]
        pair += items[0]
        pair -= items[1]
        ordered = np.sort(pair)
        repeated = ordered[1:][ordered[1:] == ordered[:-1]]
        del ordered
        if not len(repeated):
            return
        first = int(np.argmax(np.isin(pair, repeated)))
        same = np.flatnonzero(pair == pair[first])
        key = (_plain(df["user_id"].iloc[first]), _plain(df["item_id"].iloc[first]))
    lines = ", ".join(str(first_line + int(r)) for r in same[:5])
    raise DataError(
        f"duplicate rating for (user_id={key[0]!r}, item_id={key[1]!r}) on lines {lines}: "
        f"each (user, item) pair may be rated once; to keep re-ratings set {argument('duplicates')} to 'last' "
        "(the latest rating) or 'mean' (their mean)",
        path=path,
        line=first_line + int(first),
    )


def check_table(
    df: pd.DataFrame,
    *,
    path: str,
    key: str,
    first_line: int = 1,
    required: tuple[str, ...] = (),
    integers: tuple[str, ...] = (),
    genre_flags: tuple[str, ...] = (),
) -> None:
    """Check a headerless metadata table (e.g. MovieLens ``u.item``): a unique integer ``key``, no empty
    ``required`` field (a short row), whole numbers in ``integers`` and 0/1 in ``genre_flags``."""
    fail = _failer(df, path, first_line)
    miss = df[key].isna().to_numpy()
    if miss.any():
        fail(miss, f"missing value in column {key!r}")
    if required:
        short = df[list(required)].isna().to_numpy()
        rows = short.any(axis=1)
        if rows.any():
            row = int(np.flatnonzero(rows)[0])
            col = required[int(np.flatnonzero(short[row])[0])]
            raise DataError(f"short row: expected {len(df.columns)} fields, column {col!r} is empty", path=path,
                            line=first_line + row)
    for col in (key,) + integers:
        if pd.api.types.is_integer_dtype(df[col]):
            continue
        text = df[col].astype(str).str.strip()
        bad = ~text.str.fullmatch(_INTEGER).to_numpy(dtype=bool) & df[col].notna().to_numpy()
        if bad.any():
            fail(bad, f"{col} must be an integer", col)
    for col in genre_flags:
        bad = ~pd.to_numeric(df[col], errors="coerce").isin([0, 1]).to_numpy()
        if bad.any():
            fail(bad, f"genre flag {col!r} must be 0 or 1", col)
    check_unique_key(df[key], what=key, path=path, first_line=first_line)


def check_unique_key(column: pd.Series, *, what: str, path: str | None, first_line: int = 1, unit: str = "line",
                     detail: str = "") -> None:
    """Raise :class:`DataError` if a value of the key ``column`` repeats: the value as the column holds it (``356``,
    ``'abc'``) and the first few of its ``unit``s (row ``i`` is ``first_line + i``); ``detail`` follows the value."""
    dup = column.duplicated(keep=False).to_numpy()
    if not dup.any():
        return
    value = column.iloc[int(np.flatnonzero(dup)[0])]
    rows = np.flatnonzero((column == value).to_numpy())
    shown = ", ".join(str(first_line + int(r)) for r in rows[:5]) + (", ..." if len(rows) > 5 else "")
    raise DataError(f"duplicate {what} {plain_value(value)!r}{detail} on {unit}s {shown}", path=path,
                    line=first_line + int(rows[1]) if unit == "line" else None)

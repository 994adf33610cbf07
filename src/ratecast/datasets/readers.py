"""Reading and validating rating and metadata tables (CSV, TSV, ``::``-separated, Parquet)."""

from __future__ import annotations

import codecs
import csv
import io
import numbers
import os
import re
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from ..errors import DataError, MissingFileError
from .dataset import Dataset
from .scale import RatingScale

_YEAR_IN_TITLE = re.compile(r"\((\d{4})(?:[-–]\d{0,4})?\)\s*$")
_INTEGER = r"[+-]?\d+"
_RATINGS_FILE = "a ratings file (CSV, TSV or Parquet)"
_ENCODING_HINT = "pass the file's encoding, e.g. encoding='utf-8' or encoding='latin-1'"
_TIMESTAMP = "timestamp must be a number (seconds since 1970) or a date"


def one_line(exc: BaseException) -> str:
    """An exception's message on one line."""
    return " ".join(str(exc).split()) or type(exc).__name__


def check_file(path: Path, expected: str = "a file") -> None:
    """Raise :class:`MissingFileError` if ``path`` does not exist, :class:`DataError` if it is a folder."""
    if path.is_dir():
        raise DataError(f"is a directory, expected {expected}", path=str(path))
    if not path.exists():
        raise MissingFileError("file not found", path=str(path))


def check_encoding(encoding: str, path: Path) -> None:
    """Raise :class:`DataError` unless ``encoding`` names a codec Python knows."""
    try:
        codecs.lookup(encoding)
    except (LookupError, TypeError):
        raise DataError(
            f"unknown encoding: argument encoding={encoding!r} names no codec (e.g. 'utf-8', 'latin-1')", path=str(path)
        ) from None


def read_delimited(
    path: str | os.PathLike,
    *,
    sep: str,
    names: list[str] | None = None,
    header: int | None = None,
    encoding: str = "utf-8",
    usecols=None,
    dtype=None,
    expected: str = "a file",
) -> pd.DataFrame:
    """Read a delimited text file, turning parser, encoding and shape problems into :class:`DataError`.

    ``sep="::"`` (MovieLens 1M/10M) is read with the fast C parser after mapping ``::`` to a tab.
    Blank lines are kept (as missing values) so that row ``i`` is always line ``i + 1 (+1 with a header)``;
    blank lines at the end of the file are dropped.
    """
    path = Path(path)
    check_file(path, expected)
    check_encoding(encoding, path)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", pd.errors.ParserWarning)
            if sep == "::":
                text = path.read_bytes().decode(encoding)
                if "\t" in text:
                    source: object = io.StringIO(text)
                    kwargs = {"sep": "::", "engine": "python"}
                else:
                    source = io.StringIO(text.replace("::", "\t"))
                    kwargs = {"sep": "\t"}
            else:
                source = path
                kwargs = {"sep": sep, "encoding": encoding}
            df = pd.read_csv(
                source,
                names=names,
                header=header,
                index_col=False,
                usecols=usecols,
                dtype=dtype,
                skip_blank_lines=False,
                quoting=csv.QUOTE_NONE if sep in ("|", "::", "\t") else csv.QUOTE_MINIMAL,
                **kwargs,
            )
    except UnicodeError as exc:
        where = _first_undecodable(path, encoding)
        if where is None:
            raise DataError(
                f"cannot be decoded as {encoding} ({one_line(exc)}): {_ENCODING_HINT}",
                path=str(path),
            ) from None
        line, offset, byte = where
        raise DataError(
            f"cannot be decoded as {encoding}: byte {byte!r} at offset {offset} ({_ENCODING_HINT})",
            path=str(path),
            line=line,
        ) from None
    except pd.errors.EmptyDataError:
        raise DataError("file is empty: expected rows of ratings", path=str(path)) from None
    except (pd.errors.ParserError, csv.Error) as exc:
        m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        if m:
            raise DataError(
                f"malformed row: expected {m.group(1)} fields, found {m.group(3)}", path=str(path), line=int(m.group(2))
            ) from None
        raise DataError(f"cannot be parsed: {one_line(exc)}", path=str(path)) from None
    except (ValueError, TypeError, OverflowError) as exc:  # usecols/names/dtype that do not fit the file
        raise DataError(f"cannot be parsed: {one_line(exc)}", path=str(path)) from None
    except OSError as exc:
        raise DataError(f"cannot be read: {exc.strerror or one_line(exc)}", path=str(path)) from None
    first_data_line = 1 if header is None else header + 2
    if any(issubclass(w.category, pd.errors.ParserWarning) and "Length of header" in str(w.message) for w in caught):
        n_expected = len(names) if names is not None else len(df.columns)
        found = _count_fields(path, first_data_line, sep, encoding)
        raise DataError(
            f"malformed row: expected {n_expected} fields, found {found}", path=str(path), line=first_data_line
        )
    if header is not None and all(_blank_name(c) for c in df.columns):
        if _trailing_blank_rows(df) == len(df):
            raise DataError("file holds only blank lines: expected a header row and rows of data", path=str(path))
        raise DataError(f"header row has no column names, got {list(map(str, df.columns))}", path=str(path),
                        line=header + 1)
    df = df.iloc[: len(df) - _trailing_blank_rows(df)]
    if len(df) == 0:
        raise DataError("file has no data rows", path=str(path))
    return df


def _blank_name(column) -> bool:
    name = str(column)
    return name.strip() == "" or name.startswith("Unnamed: ")


def _trailing_blank_rows(df: pd.DataFrame) -> int:
    """How many rows at the end of ``df`` hold nothing but missing values and whitespace."""
    n = len(df)
    while n and all(_blank_value(v) for v in df.iloc[n - 1]):
        n -= 1
    return len(df) - n


def _blank_value(value) -> bool:
    if isinstance(value, str):
        return not value.strip()
    return bool(pd.isna(value))


def _count_fields(path: Path, line: int, sep: str, encoding: str) -> int:
    """Number of ``sep``-separated fields on ``line`` (1-based) of ``path``."""
    with open(path, encoding=encoding, errors="replace", newline="") as fh:
        for number, text in enumerate(fh, start=1):
            if number == line:
                text = text.rstrip("\r\n")
                if len(sep) > 1:
                    return len(text.split(sep))
                return len(next(csv.reader([text], delimiter=sep), []))
    return 0


def _first_undecodable(path: Path, encoding: str) -> tuple[int, int, bytes] | None:
    """(line, byte offset, byte) of the first byte of ``path`` that ``encoding`` cannot decode, if any."""
    data = path.read_bytes()
    try:
        data.decode(encoding)
    except UnicodeDecodeError as exc:
        return data[: exc.start].count(b"\n") + 1, exc.start, data[exc.start : exc.start + 1]
    except UnicodeError:
        return None
    return None


def _plain(value):
    """numpy scalars as plain Python values, so messages read ``6`` rather than ``np.int64(6)``."""
    return value.item() if hasattr(value, "item") else value


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
    """Ratings as float64: numbers only (no booleans, text or infinities)."""
    flags = _is_bool(s)
    if flags.any():
        fail(flags, "rating must be a number", "rating")
    if not pd.api.types.is_numeric_dtype(s):
        num = pd.to_numeric(s, errors="coerce")
        bad = num.isna().to_numpy()
        if bad.any():
            fail(bad, "rating must be a number", "rating")
        s = num
    s = s.astype("float64")
    inf = ~np.isfinite(s.to_numpy())
    if inf.any():
        fail(inf, "rating must be finite", "rating")
    return s


def _ids(s: pd.Series, col: str, fail: Fail) -> pd.Series:
    """Integer ids (whole floats become int64) or text labels.

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
        return s
    if not (pd.api.types.is_object_dtype(s) or pd.api.types.is_string_dtype(s)):
        fail(np.ones(len(s), dtype=bool), f"{col} must be an integer or a label", col)
    is_int = s.astype(str).str.strip().str.fullmatch(_INTEGER).to_numpy(dtype=bool)
    if 2 * is_int.sum() > len(s) and not is_int.all():
        fail(~is_int, f"{col} mixes integers and text", col)
    return s


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


def validate_ratings(
    df: pd.DataFrame,
    *,
    path: str,
    rating_scale: RatingScale | None = None,
    first_line: int = 1,
    require_timestamp: bool = False,
) -> tuple[pd.DataFrame, RatingScale]:
    """Check a (user_id, item_id, rating[, timestamp]) frame; return it with numeric ratings and its scale.

    Row ``i`` is reported as line ``first_line + i``. Raises :class:`DataError` naming file, line, constraint, value.
    A timestamp column is either empty or filled on every row.
    """
    fail = _failer(df, path, first_line)
    if len(df) == 0:
        raise DataError("no ratings: the table has no rows", path=path)
    blank = df.isna().all(axis=1).to_numpy()
    if blank.any():
        fail(blank, "blank line where a rating row was expected")
    has_ts = "timestamp" in df.columns and bool(df["timestamp"].notna().any())
    for col in ("user_id", "item_id", "rating") + (("timestamp",) if has_ts else ()):
        miss = df[col].isna().to_numpy()
        if col != "rating" and not pd.api.types.is_numeric_dtype(df[col]):
            miss = miss | (df[col].astype(str).str.strip() == "").to_numpy()
        if miss.any():
            fail(miss, f"missing value in column '{col}' (short row or empty field)")
    if not has_ts and require_timestamp:
        raise DataError("column 'timestamp' is required", path=path)
    ratings = _ratings(df["rating"], fail)
    out = df.assign(
        user_id=_ids(df["user_id"], "user_id", fail),
        item_id=_ids(df["item_id"], "item_id", fail),
        rating=ratings,
    )
    if has_ts:
        out = out.assign(timestamp=_timestamps(df["timestamp"], fail))
    if rating_scale is None:
        try:
            rating_scale = RatingScale.infer(ratings)
        except ValueError as exc:
            raise DataError(str(exc), path=path) from None
    else:
        off = ~rating_scale.on_scale(ratings.to_numpy())
        if off.any():
            fail(
                off,
                f"rating outside the declared scale {rating_scale.minimum:g}..{rating_scale.maximum:g} "
                f"(step {rating_scale.step:g})",
                "rating",
            )
    _check_unique_pairs(out, path, first_line)
    return out.reset_index(drop=True), rating_scale


def _check_unique_pairs(df: pd.DataFrame, path: str, first_line: int) -> None:
    dup = df.duplicated(["user_id", "item_id"], keep=False).to_numpy()
    if not dup.any():
        return
    rows = np.flatnonzero(dup)
    first = rows[0]
    key = (_plain(df["user_id"].iloc[first]), _plain(df["item_id"].iloc[first]))
    same = rows[(df["user_id"].iloc[rows] == key[0]).to_numpy() & (df["item_id"].iloc[rows] == key[1]).to_numpy()]
    lines = ", ".join(str(first_line + int(r)) for r in same[:5])
    raise DataError(
        f"duplicate rating for (user_id={key[0]!r}, item_id={key[1]!r}) on lines {lines}: "
        "each (user, item) pair may be rated once",
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
    flags: tuple[str, ...] = (),
) -> None:
    """Check a headerless metadata table (e.g. MovieLens ``u.item``): a unique integer ``key``, no empty
    ``required`` field (a short row), whole numbers in ``integers`` and 0/1 in ``flags``."""
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
    for col in flags:
        bad = ~pd.to_numeric(df[col], errors="coerce").isin([0, 1]).to_numpy()
        if bad.any():
            fail(bad, f"genre flag {col!r} must be 0 or 1", col)
    dup = df[key].duplicated(keep=False).to_numpy()
    if dup.any():
        value = df[key].iloc[int(np.flatnonzero(dup)[0])]
        rows = np.flatnonzero((df[key] == value).to_numpy())
        lines = ", ".join(str(first_line + int(r)) for r in rows[:5])
        raise DataError(f"duplicate {key} {_plain(value)!r} on lines {lines}", path=path, line=first_line + int(rows[-1]))


def _as_scale(rating_scale) -> RatingScale | None:
    """The ``rating_scale`` argument as a :class:`RatingScale` (None stays None)."""
    if rating_scale is None or isinstance(rating_scale, RatingScale):
        return rating_scale
    shape = "rating_scale must be (minimum, maximum[, step]) or a RatingScale"
    if isinstance(rating_scale, (str, bytes)) or not hasattr(rating_scale, "__iter__"):
        raise DataError(f"{shape}, got {rating_scale!r}")
    values = tuple(rating_scale)
    if len(values) not in (2, 3):
        raise DataError(f"{shape}, got {rating_scale!r}")
    if any(isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real) for v in values):
        raise DataError(f"rating_scale values must be numbers, got {rating_scale!r}")
    try:
        return RatingScale(*(float(v) for v in values))
    except ValueError as exc:
        raise DataError(f"rating_scale={rating_scale!r} is not a valid scale: {exc}") from None


def _infer_sep(path: Path, encoding: str) -> str:
    suffix = path.suffix.lower()
    if suffix in (".tsv", ".tab"):
        return "\t"
    if suffix == ".dat":
        return "::"
    try:
        with open(path, encoding=encoding, errors="replace") as fh:
            first = fh.readline()
    except (OSError, UnicodeError):  # reported by the reader itself
        return ","
    if "::" in first:
        return "::"
    for sep in (",", "\t", ";", "|"):
        if sep in first:
            return sep
    return ","


def _read_any(path: Path, *, sep: str | None, encoding: str, expected: str = "a file") -> pd.DataFrame:
    if path.suffix.lower() in (".parquet", ".pq"):
        check_file(path, expected)
        try:
            df = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several unrelated types
            raise DataError(f"cannot be read as Parquet: {one_line(exc)}", path=str(path)) from None
        if len(df) == 0:
            raise DataError("file has no data rows", path=str(path))
        return df
    check_file(path, expected)
    check_encoding(encoding, path)
    return read_delimited(path, sep=sep or _infer_sep(path, encoding), header=0, encoding=encoding, expected=expected)


def load_ratings(
    path: str | os.PathLike,
    user_col: str = "user_id",
    item_col: str = "item_id",
    rating_col: str = "rating",
    timestamp_col: str | None = None,
    sep: str | None = None,
    rating_scale=None,
    *,
    items: str | os.PathLike | pd.DataFrame | None = None,
    users: str | os.PathLike | pd.DataFrame | None = None,
    item_key: str | None = None,
    user_key: str | None = None,
    encoding: str = "utf-8",
    name: str | None = None,
) -> Dataset:
    """Load your own ratings from CSV/TSV/Parquet (with a header row) into a :class:`Dataset`.

    ``rating_scale`` is ``(minimum, maximum[, step])``; when omitted it is inferred from the ratings (e.g. 0.5-5 in
    half stars). ``items``/``users`` are optional metadata tables keyed by ``item_key``/``user_key`` (default: the same
    column names as in the ratings file). A ``genres`` column of ``|``-separated names becomes one 0/1 column per genre;
    a year in parentheses at the end of a title gives ``release_year``.
    """
    path = Path(path)
    scale = _as_scale(rating_scale)
    df = _read_any(path, sep=sep, encoding=encoding, expected=_RATINGS_FILE)
    wanted = {"user_col": user_col, "item_col": item_col, "rating_col": rating_col}
    if timestamp_col is not None:
        wanted["timestamp_col"] = timestamp_col
    for arg, col in wanted.items():
        if col not in df.columns:
            raise DataError(
                f"missing column {col!r} (argument {arg}); the file has columns {list(map(str, df.columns))}",
                path=str(path),
            )
    renamed = pd.DataFrame(
        {
            "user_id": df[user_col],
            "item_id": df[item_col],
            "rating": df[rating_col],
            "timestamp": df[timestamp_col] if timestamp_col else pd.Series(np.nan, index=df.index),
        }
    )
    first_line = 1 if path.suffix.lower() in (".parquet", ".pq") else 2
    ratings, scale = validate_ratings(renamed, path=str(path), rating_scale=scale, first_line=first_line)
    item_table = _metadata_table(items, item_key or item_col, "item_id", encoding) if items is not None else None
    user_table = _metadata_table(users, user_key or user_col, "user_id", encoding) if users is not None else None
    genres: list[str] = []
    if item_table is not None:
        item_table, genres = normalise_items(item_table)
    return Dataset(
        ratings=ratings,
        items=item_table,
        users=user_table,
        name=name or path.stem,
        rating_scale=scale,
        genres=genres,
        source=str(path),
    )


def _metadata_table(table, key: str, index_name: str, encoding: str) -> pd.DataFrame:
    if isinstance(table, pd.DataFrame):
        df, where = table.copy(), "metadata table"
    else:
        p = Path(table)
        df, where = _read_any(p, sep=None, encoding=encoding), str(p)
    if key not in df.columns:
        if df.index.name == key:
            df = df.reset_index()
        else:
            raise DataError(f"missing key column {key!r}; the table has columns {list(map(str, df.columns))}", path=where)
    miss = df[key].isna().to_numpy()
    if miss.any():
        row = int(np.flatnonzero(miss)[0])
        raise DataError(f"missing value in key column {key!r} (row {row + 1})", path=where)
    dup = df[key].duplicated()
    if dup.any():
        raise DataError(f"duplicate {index_name} {df[key][dup].iloc[0]!r} in key column {key!r}", path=where)
    return df.rename(columns={key: index_name}).set_index(index_name)


def normalise_items(items: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Expand a ``|``-separated ``genres`` column to 0/1 columns and derive ``release_year`` from titles."""
    items = items.copy()
    genres: list[str] = []
    if "genres" in items.columns and not pd.api.types.is_numeric_dtype(items["genres"]):
        dummies = items["genres"].fillna("").str.get_dummies(sep="|")
        dummies = dummies.drop(columns=[c for c in ("(no genres listed)",) if c in dummies.columns])
        genres = list(dummies.columns)
        items = pd.concat([items.drop(columns=["genres"]), dummies.astype("int8")], axis=1)
    if "release_year" not in items.columns and "title" in items.columns:
        year = items["title"].astype(str).str.extract(_YEAR_IN_TITLE, expand=False)
        items["release_year"] = pd.to_numeric(year, errors="coerce").astype("Int64")
    return items, genres

"""Reading and validating rating and metadata tables (CSV, TSV, ``::``-separated, Parquet)."""

from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError
from .dataset import Dataset
from .scale import RatingScale

_YEAR_IN_TITLE = re.compile(r"\((\d{4})(?:[-–]\d{0,4})?\)\s*$")


def read_delimited(
    path: str | os.PathLike,
    *,
    sep: str,
    names: list[str] | None = None,
    header: int | None = None,
    encoding: str = "utf-8",
    usecols=None,
    dtype=None,
) -> pd.DataFrame:
    """Read a delimited text file, turning parser, encoding and shape problems into :class:`DataError`.

    ``sep="::"`` (MovieLens 1M/10M) is read with the fast C parser after mapping ``::`` to a tab.
    Blank lines are kept (as missing values) so that row ``i`` is always line ``i + 1 (+1 with a header)``.
    """
    path = Path(path)
    if not path.exists():
        raise DataError("file not found", path=str(path))
    try:
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
            usecols=usecols,
            dtype=dtype,
            skip_blank_lines=False,
            quoting=csv.QUOTE_NONE if sep in ("|", "::", "\t") else csv.QUOTE_MINIMAL,
            **kwargs,
        )
    except UnicodeDecodeError:
        line, offset, byte = _first_undecodable(path, encoding)
        raise DataError(
            f"cannot be decoded as {encoding}: byte {byte!r} at offset {offset} "
            f"(pass the file's encoding, e.g. encoding='latin-1')",
            path=str(path),
            line=line,
        ) from None
    except pd.errors.EmptyDataError:
        raise DataError("file is empty: expected rows of ratings", path=str(path)) from None
    except pd.errors.ParserError as exc:
        m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        if m:
            raise DataError(
                f"malformed row: expected {m.group(1)} fields, found {m.group(3)}", path=str(path), line=int(m.group(2))
            ) from None
        raise DataError(f"cannot be parsed: {exc}", path=str(path)) from None
    except ValueError as exc:  # usecols/names that do not fit the file
        raise DataError(f"cannot be parsed: {exc}", path=str(path)) from None
    if len(df) == 0:
        raise DataError("file has no data rows", path=str(path))
    return df


def _first_undecodable(path: Path, encoding: str) -> tuple[int, int, bytes]:
    """(line, byte offset, byte) of the first byte of ``path`` that ``encoding`` cannot decode."""
    data = path.read_bytes()
    try:
        data.decode(encoding)
    except UnicodeDecodeError as exc:
        return data[: exc.start].count(b"\n") + 1, exc.start, data[exc.start : exc.start + 1]
    return 1, 0, b""


def _plain(value):
    """numpy scalars as plain Python values, so messages read ``6`` rather than ``np.int64(6)``."""
    return value.item() if hasattr(value, "item") else value


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
    """

    original = df

    def fail(mask: np.ndarray, what: str, column: str | None = None) -> None:
        row = int(np.flatnonzero(mask)[0])
        value = "" if column is None else f", got {_plain(original[column].iloc[row])!r}"
        raise DataError(f"{what}{value}", path=path, line=first_line + row)

    if len(df) == 0:
        raise DataError("no ratings: the table has no rows", path=path)
    blank = df.isna().all(axis=1).to_numpy()
    if blank.any():
        fail(blank, "blank line where a rating row was expected")
    for col in ("user_id", "item_id", "rating"):
        miss = df[col].isna().to_numpy()
        if col != "rating" and not pd.api.types.is_numeric_dtype(df[col]):
            miss = miss | (df[col].astype(str).str.strip() == "").to_numpy()
        if miss.any():
            fail(miss, f"missing value in column '{col}' (short row or empty field)")
    ratings = df["rating"]
    if not pd.api.types.is_numeric_dtype(ratings):
        num = pd.to_numeric(ratings, errors="coerce")
        bad = num.isna().to_numpy()
        if bad.any():
            fail(bad, "rating must be a number", "rating")
        ratings = num
    ratings = ratings.astype("float64")
    inf = ~np.isfinite(ratings.to_numpy())
    if inf.any():
        fail(inf, "rating must be finite", "rating")
    for col in ("user_id", "item_id"):
        if not pd.api.types.is_numeric_dtype(df[col]):
            continue  # text ids are labels
        if pd.api.types.is_float_dtype(df[col]):
            frac = (df[col] != np.floor(df[col])).to_numpy()
            if frac.any():
                fail(frac, f"{col} must be an integer or a label", col)
    if "timestamp" in df.columns and df["timestamp"].notna().any():
        ts = df["timestamp"]
        if not pd.api.types.is_numeric_dtype(ts):
            conv = pd.to_numeric(ts, errors="coerce")
            if conv.isna().sum() > ts.isna().sum():
                parsed = pd.to_datetime(ts, errors="coerce", utc=True)
                bad = (parsed.isna() & ts.notna()).to_numpy()
                if bad.any():
                    fail(bad, "timestamp must be a number (seconds since 1970) or a date", "timestamp")
                conv = (parsed - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
            ts = conv
        df = df.assign(timestamp=ts)
    elif require_timestamp:
        raise DataError("column 'timestamp' is required", path=path)
    df = df.assign(rating=ratings)
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
    dup = df.duplicated(["user_id", "item_id"], keep=False).to_numpy()
    if dup.any():
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
    return df.reset_index(drop=True), rating_scale


def _as_scale(rating_scale) -> RatingScale | None:
    if rating_scale is None or isinstance(rating_scale, RatingScale):
        return rating_scale
    try:
        return RatingScale(*[float(v) for v in rating_scale])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"rating_scale must be (minimum, maximum[, step]) or a RatingScale, got {rating_scale!r}: {exc}")


def _infer_sep(path: Path, encoding: str) -> str:
    suffix = path.suffix.lower()
    if suffix in (".tsv", ".tab"):
        return "\t"
    if suffix == ".dat":
        return "::"
    try:
        with open(path, encoding=encoding, errors="replace") as fh:
            first = fh.readline()
    except OSError:
        return ","
    if "::" in first:
        return "::"
    for sep in (",", "\t", ";", "|"):
        if sep in first:
            return sep
    return ","


def _read_any(path: Path, *, sep: str | None, encoding: str) -> pd.DataFrame:
    if path.suffix.lower() in (".parquet", ".pq"):
        if not path.exists():
            raise DataError("file not found", path=str(path))
        try:
            df = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several unrelated types
            raise DataError(f"cannot be read as Parquet: {exc}", path=str(path)) from None
        if len(df) == 0:
            raise DataError("file has no data rows", path=str(path))
        return df
    return read_delimited(path, sep=sep or _infer_sep(path, encoding), header=0, encoding=encoding)


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
    df = _read_any(path, sep=sep, encoding=encoding)
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

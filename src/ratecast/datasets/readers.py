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

import numpy as np
import pandas as pd

from ..errors import DataError, MissingFileError, argument, spelled
from .dataset import Dataset
from .scale import RatingScale
from .validate import text_ids, validate_ratings

_YEAR_IN_TITLE = re.compile(r"\((\d{4})(?:[-–]\d{0,4})?\)\s*$")
_RATINGS_FILE = "a ratings file (CSV, TSV or Parquet)"


def _encoding_hint() -> str:
    return f"pass the file's encoding, e.g. {spelled('encoding')}='utf-8' or {spelled('encoding')}='latin-1'"


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
            f"unknown encoding: {argument('encoding')}={encoding!r} names no codec (e.g. 'utf-8', 'latin-1')",
            path=str(path),
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
                f"cannot be decoded as {encoding} ({one_line(exc)}): {_encoding_hint()}",
                path=str(path),
            ) from None
        line, offset, byte = where
        raise DataError(
            f"cannot be decoded as {encoding}: byte {byte!r} at offset {offset} ({_encoding_hint()})",
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


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() in (".parquet", ".pq")


def _read_any(path: Path, *, sep: str | None, encoding: str, expected: str = "a file",
              id_cols: tuple[str, ...] = ()) -> pd.DataFrame:
    """A table with a header row; in a delimited file the ``id_cols`` are read as text (see :func:`text_ids`)."""
    if _is_parquet(path):
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
    return read_delimited(path, sep=sep or _infer_sep(path, encoding), header=0, encoding=encoding, expected=expected,
                          dtype={c: str for c in id_cols} or None)


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
    if sep is not None and (not isinstance(sep, str) or not sep):
        raise DataError(f"{argument('sep')} must be a field separator such as ',' or ';' (or omitted, to infer it "
                        f"from the file), got {sep!r}", path=str(path))
    df = _read_any(path, sep=sep, encoding=encoding, expected=_RATINGS_FILE, id_cols=(user_col, item_col))
    wanted = {"user_col": user_col, "item_col": item_col, "rating_col": rating_col}
    if timestamp_col is not None:
        wanted["timestamp_col"] = timestamp_col
    for arg, col in wanted.items():
        if col not in df.columns:
            hint = f" (the header reads as one column: is {spelled('sep')} right?)" if len(df.columns) == 1 else ""
            raise DataError(
                f"missing column {col!r} ({argument(arg)}); the file has columns {list(map(str, df.columns))}{hint}",
                path=str(path),
            )
    text = not _is_parquet(path)  # ids were read as text: integers only where written as such ("007" stays text)
    renamed = pd.DataFrame(
        {
            "user_id": text_ids(df[user_col]) if text else df[user_col],
            "item_id": text_ids(df[item_col]) if text else df[item_col],
            "rating": df[rating_col],
            "timestamp": df[timestamp_col] if timestamp_col else pd.Series(np.nan, index=df.index),
        }
    )
    first_line = 2 if text else 1
    ratings, scale = validate_ratings(renamed, path=str(path), rating_scale=scale, first_line=first_line)
    item_table = (_metadata_table(items, item_key or item_col, "item_id", encoding, ratings["item_id"],
                                  _key_argument("item", item_key))
                  if items is not None else None)
    user_table = (_metadata_table(users, user_key or user_col, "user_id", encoding, ratings["user_id"],
                                  _key_argument("user", user_key))
                  if users is not None else None)
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


def _key_argument(side: str, key: str | None) -> str:
    """Where the key column's name of a metadata table came from, for messages."""
    if key is not None:
        return argument(f"{side}_key")
    return f"{argument(f'{side}_key')} not given: the {spelled(f'{side}_col')} column"


def _metadata_table(table, key: str, index_name: str, encoding: str, ids: pd.Series,
                    key_argument: str = "") -> pd.DataFrame:
    """A metadata table indexed by ``key``; keys read from a delimited file are typed like the ratings' ``ids``:
    integers where the ratings' ids are integers and the key is written as one, else the text as written."""
    if isinstance(table, pd.DataFrame):
        df, where = table.copy(), "metadata table"
    else:
        p = Path(table)
        df, where = _read_any(p, sep=None, encoding=encoding, id_cols=(key,)), str(p)
        if not _is_parquet(p) and key in df.columns and pd.api.types.is_integer_dtype(ids):
            df[key] = text_ids(df[key])
    if key not in df.columns:
        if df.index.name == key:
            df = df.reset_index()
        else:
            from_ = f" ({key_argument})" if key_argument else ""
            raise DataError(f"missing key column {key!r}{from_}; the table has columns {list(map(str, df.columns))}",
                            path=where)
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

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
import pyarrow as pa
import pyarrow.csv as pacsv

from ..errors import DataError, MissingFileError, argument, spelled
from .dataset import Dataset
from .scale import RatingScale
from .validate import Codes, blank_values, check_duplicates_option, check_unique_key, text_ids, validate_ratings

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


#: byte-order marks and the codec that reads the text after them (longest first: UTF-32 LE starts as UTF-16 LE does)
BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def bom_encoding(path: Path) -> str | None:
    """The encoding a byte-order mark at the start of ``path`` announces (``utf-8-sig``, ``utf-16``, ``utf-32``), or
    None when the file starts with none (or cannot be read: the reader reports that)."""
    try:
        with open(path, "rb") as fh:
            start = fh.read(4)
    except OSError:
        return None
    return next((name for bom, name in BOMS if start.startswith(bom)), None)


def file_encoding(path: Path, encoding: str) -> str:
    """The encoding to read ``path`` with: the one its byte-order mark announces, else ``encoding``."""
    return bom_encoding(path) or encoding


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
    marked = bom_encoding(path)
    encoding = marked or encoding
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
        if marked is not None:  # another encoding cannot help: the byte-order mark says which one the file claims
            at = "" if where is None else f" (byte {where[2]!r} at offset {where[1]})"
            raise DataError(f"cannot be decoded as {encoding}, the encoding its byte-order mark announces{at}: the "
                            "file is damaged, or not text", path=str(path), line=None if where is None else where[0])
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
        with open(path, encoding=file_encoding(path, encoding), errors="replace") as fh:
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


def _unsupported(t: pa.DataType) -> bool:
    """Whether a Parquet column of type ``t`` holds values no ratings or metadata column can be: lists, structs,
    maps, unions (nested values) or raw bytes."""
    if pa.types.is_dictionary(t):
        t = t.value_type
    return (pa.types.is_nested(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t)
            or pa.types.is_fixed_size_binary(t))


def check_parquet_columns(path: Path, columns=None) -> None:
    """Raise :class:`DataError` naming the file, column and type if one of ``columns`` (default: every column) of the
    Parquet file ``path`` is of a type ratecast cannot use (see :func:`_unsupported`). An unreadable file is left to
    the reader, which reports it."""
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except Exception:  # pyarrow raises several unrelated types; the reader reports them
        return
    wanted = None if columns is None else {c for c in columns if c is not None}
    for field in schema:
        if (wanted is None or field.name in wanted) and _unsupported(field.type):
            raise DataError(f"column {field.name!r} is of the Parquet type {field.type}, which cannot be read as ids, "
                            "ratings or metadata (expected integers, numbers, text, booleans or dates)",
                            path=str(path))


def _read_any(path: Path, *, sep: str | None, encoding: str, expected: str = "a file",
              id_cols: tuple[str, ...] = (), used=None) -> pd.DataFrame:
    """A table with a header row; in a delimited file the ``id_cols`` are read as text (see :func:`text_ids`). In a
    Parquet file, the ``used`` columns (default: all) must be of a type ratecast reads."""
    if _is_parquet(path):
        check_file(path, expected)
        check_parquet_columns(path, used)
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


# --- big files: pyarrow ---------------------------------------------------------------------------------------------
# Files of ARROW_MIN_BYTES or more are read with pyarrow: multi-threaded, only the columns wanted, typed as they are
# read (ids as int64 where pandas would read numbers, else as text then dictionary-encoded; ratings float64,
# timestamps int64), so that a 25M-rating file never exists as Python objects. The result is the frame pandas would
# have given; whatever pyarrow reads differently from pandas (missing values, blank lines, text where numbers are
# expected, an encoding other than UTF-8, names pandas would rename) makes the reader return None, and the file is
# read again by pandas, which reports the problem as it always has.
ARROW_MIN_BYTES = 1 << 20
_BLOCK = 1 << 24
_TEXT = pd.StringDtype("pyarrow", np.nan)  # the dtype pandas.read_csv(dtype=str) gives
try:
    from pandas._libs.parsers import STR_NA_VALUES as _NA_TOKENS
except ImportError:  # pragma: no cover - the default missing-value tokens of pandas.read_csv
    _NA_TOKENS = {"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>",
                  "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"}


def _quoting(sep: str) -> bool:
    """Whether ``"`` quotes fields, as in :func:`read_delimited`."""
    return sep not in ("|", "::", "\t")


def _arrow_header(path: Path, sep: str) -> list[str] | None:
    """The header row's column names, when pandas and pyarrow both read them as plain, distinct, non-blank names."""
    with open(path, "rb") as fh:
        first = fh.readline(1 << 20)
    try:
        text = first.decode("utf-8").removeprefix("\ufeff").rstrip("\r\n")
    except UnicodeDecodeError:
        return None
    if not text or "\r" in text:
        return None
    if _quoting(sep):
        try:
            names = next(csv.reader([text], delimiter=sep, quotechar='"', doublequote=True, strict=True), [])
        except csv.Error:
            return None
    else:
        names = text.split(sep)
    if any(not n.strip() or '"' in n for n in names) or len(set(names)) != len(names):
        return None
    return names


def _scan(path: Path, *, utf8: bool) -> tuple[bool, bool]:
    """(whether the file holds a ``"``, whether it decodes as UTF-8 -- checked only if ``utf8``), read in blocks."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    quote, valid = False, True
    with open(path, "rb") as fh:
        while block := fh.read(_BLOCK):
            quote = quote or b'"' in block
            if utf8 and valid:
                try:
                    decoder.decode(block)
                except UnicodeDecodeError:
                    valid = False
    if utf8 and valid:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            valid = False
    return quote, valid


def _read_arrow_csv(path: Path, sep: str, types: dict[str, pa.DataType], quotes: bool) -> pa.Table | None:
    """The columns ``types`` names of a delimited file, typed; None where pyarrow cannot read it (a parse or
    conversion error, a row of another width, invalid UTF-8 in a text column). ``quotes``: the file holds a ``"``,
    so that a quoted field may span lines (as pandas reads it); otherwise lines are rows, which reads faster."""
    quoted = _quoting(sep)
    try:
        return pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(use_threads=True, block_size=_BLOCK),
            parse_options=pacsv.ParseOptions(delimiter=sep, quote_char='"' if quoted else False, double_quote=True,
                                              escape_char=False, newlines_in_values=quoted and quotes,
                                              ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(column_types=types, include_columns=list(types),
                                                 strings_can_be_null=False, quoted_strings_can_be_null=False),
        )
    except (pa.ArrowException, OSError, ValueError, KeyError, TypeError):
        return None


def _dictionary(col: pa.ChunkedArray) -> tuple[list[np.ndarray], pd.Series]:
    """A text or dictionary-encoded column as (each chunk's int32 codes, the distinct values as text)."""
    if not pa.types.is_dictionary(col.type):
        col = col.dictionary_encode()  # one dictionary, grown chunk by chunk: the last chunk's holds every value
    chunks = [c for c in col.chunks if len(c)]
    dictionary = chunks[-1].dictionary if chunks else pa.array([], pa.string())
    if any(not c.dictionary.equals(dictionary[:len(c.dictionary)]) for c in chunks):
        return _dictionary(pa.Table.from_arrays([col], ["c"]).unify_dictionaries().column(0))
    values = pd.Series(pd.arrays.ArrowStringArray(dictionary.cast(pa.large_string())), dtype=_TEXT)
    return [c.indices.to_numpy() for c in chunks], values


def _codes(parts: list[np.ndarray], values: pd.Series) -> Codes:
    """:class:`Codes` of a column from :func:`_dictionary`, without the values no row has (a Parquet dictionary may
    hold some)."""
    codes = np.concatenate(parts) if len(parts) != 1 else parts[0]
    used = np.bincount(codes, minlength=len(values)) > 0
    if not used.all():
        codes = (np.cumsum(used) - 1).astype("int32")[codes]
        values = values[used].reset_index(drop=True)
    return Codes(codes, pd.Index(values))


def _text_ids(col: pa.ChunkedArray) -> tuple[pd.Series | np.ndarray, Codes | None] | None:
    """An id column read as text, kept as written (:func:`text_ids`: int64 only when every id is a canonical
    integer); None where pandas reads it otherwise (missing-value tokens, blanks). The tests look at each distinct
    id once."""
    parts, values = _dictionary(col)
    if (values.isin(_NA_TOKENS) | (values.str.strip() == "") | values.str.contains("\x00", regex=False)).any():
        return None  # pandas reads these as missing (or stops at NUL): its path reports them
    typed = text_ids(values)
    if pd.api.types.is_integer_dtype(typed):
        numbers, out, start = typed.to_numpy(dtype="int64"), np.empty(len(col), dtype="int64"), 0
        for part in parts:
            np.take(numbers, part, out=out[start:start + len(part)])
            start += len(part)
        return out, None
    column = pd.Series(pd.arrays.ArrowStringArray(col.cast(pa.large_string())), dtype=_TEXT)
    return column, Codes(np.concatenate(parts) if len(parts) != 1 else parts[0], pd.Index(values))


def arrow_ratings(path: Path, *, sep: str, encoding: str, columns: dict[str, str | None], written_ids: bool,
                  header: list[str] | None = None) -> tuple[pd.DataFrame, dict[str, Codes]] | None:
    """Ratings of a big delimited file with a header row, read by pyarrow, as the frame (user_id, item_id, rating,
    timestamp) that pandas' reading would give, and the :class:`Codes` of text id columns; None when the file is
    small or pandas must read it (see above). ``columns`` maps each role to its column name (timestamp: None when
    the ratings have none); ``header``, when given, is the header row the file must have.

    ``written_ids``: ids are kept as written (read as text: integers only when every id is a canonical integer);
    otherwise pandas' typing applies, and ids are read as int64 (pyarrow reads an integer where pandas does; any
    other id sends the file to pandas).
    """
    if len(sep) != 1 or sep in '"\r\n':
        return None
    wanted = {role: name for role, name in columns.items() if name is not None}
    try:
        if not path.is_file() or path.stat().st_size < ARROW_MIN_BYTES or codecs.lookup(encoding).name != "utf-8":
            return None
        names = _arrow_header(path, sep)
        if (names is None or (header is not None and names != header) or len(set(wanted.values())) != len(wanted)
                or not set(wanted.values()) <= set(names)):
            return None
        every_column = len(names) == len(wanted)
        # a quoted value that spans lines, read as lines, leaves a '"' inside a field: in a number column that is an
        # error (and pandas reads the file); only text columns need to know whether the file has quotes
        quotes, utf8 = (False, True) if every_column and not written_ids else _scan(path, utf8=not every_column)
    except (OSError, LookupError):  # reported by pandas' path
        return None
    if not utf8:
        return None  # pandas decodes the columns not read here too
    id_type = pa.string() if written_ids else pa.int64()
    kinds = {"user_id": id_type, "item_id": id_type, "rating": pa.float64(), "timestamp": pa.int64()}
    table = _read_arrow_csv(path, sep, {name: kinds[role] for role, name in wanted.items()}, quotes)
    if table is None or table.num_rows == 0 or any(col.null_count for col in table.columns):
        return None  # missing values, blank lines (pandas also types a column with blank lines at the end as float)
    n = table.num_rows
    read = {role: table.column(name) for role, name in wanted.items()}
    del table  # each column's pyarrow memory goes as soon as it is converted
    rating = read.pop("rating").to_numpy()
    if not np.isfinite(rating).all():
        return None  # pandas and pyarrow spell infinities and not-a-number differently
    frame: dict[str, object] = {}
    codes: dict[str, Codes] = {}
    for role in ("user_id", "item_id"):
        col = read.pop(role)
        if written_ids:
            ids = _text_ids(col)
            if ids is None:
                return None
            frame[role] = ids[0]
            if ids[1] is not None:
                codes[role] = ids[1]
        else:
            frame[role] = col.to_numpy()
        del col
    frame["rating"] = rating
    frame["timestamp"] = read.pop("timestamp").to_numpy() if "timestamp" in read else np.full(n, np.nan)
    return pd.DataFrame(frame, copy=False), codes


def _arrow_parquet_type(role: str, t: pa.DataType) -> bool:
    """Whether pandas reads a Parquet column of type ``t`` as plain numbers or text, as this reader builds it."""
    if role in ("user_id", "item_id"):
        return pa.types.is_integer(t) or pa.types.is_string(t) or pa.types.is_large_string(t)
    return pa.types.is_integer(t) or pa.types.is_floating(t)


def arrow_parquet(path: Path, columns: dict[str, str | None]) -> tuple[pd.DataFrame, dict[str, Codes]] | None:
    """Ratings of a big Parquet file, only the wanted ``columns`` ({role: name}) read, text ids dictionary-encoded,
    as the frame (user_id, item_id, rating, timestamp) that ``pandas.read_parquet`` would give; None when the file
    is small or pandas must read it (missing values, other column types, a named pandas index, a column missing)."""
    import pyarrow.parquet as pq

    try:
        if not path.is_file() or path.stat().st_size < ARROW_MIN_BYTES:
            return None
        schema = pq.read_schema(path)
    except Exception:  # pyarrow raises several unrelated types; pandas' path reports them
        return None
    wanted = {role: name for role, name in columns.items() if name is not None}
    index = (schema.pandas_metadata or {}).get("index_columns", [])
    if (len(set(wanted.values())) != len(wanted) or any(isinstance(c, str) for c in index)
            or any(schema.names.count(name) != 1 for name in wanted.values())
            or not all(_arrow_parquet_type(role, schema.field(name).type) for role, name in wanted.items())):
        return None
    text = [name for role, name in wanted.items()
            if role in ("user_id", "item_id") and not pa.types.is_integer(schema.field(name).type)]
    # row group by row group into arrays of the final size: the file is never in memory twice
    try:
        parquet = pq.ParquetFile(path, read_dictionary=text)
        n = parquet.metadata.num_rows
        numbers = {name: np.empty(n, dtype=schema.field(name).type.to_pandas_dtype())
                   for name in wanted.values() if name not in text}
        pieces: dict[str, list] = {name: [] for name in text}
        start = 0
        for group in range(parquet.num_row_groups):
            table = parquet.read_row_group(group, columns=list(wanted.values()), use_threads=True,
                                           use_pandas_metadata=False)
            if any(col.null_count for col in table.columns) or start + table.num_rows > n:
                return None
            for name, out in numbers.items():
                out[start:start + table.num_rows] = table.column(name).to_numpy()
            for name in text:
                pieces[name].extend(table.column(name).chunks)
            start += table.num_rows
    except Exception:
        return None
    if n == 0 or start != n:
        return None
    frame: dict[str, object] = {}
    codes: dict[str, Codes] = {}
    for role in ("user_id", "item_id"):
        name = wanted[role]
        if name in text:
            col = pa.chunked_array(pieces.pop(name))  # one dictionary per row group: unified below
            frame[role] = pd.Series(pd.arrays.ArrowStringArray(col.cast(pa.large_string())), dtype=_TEXT)
            codes[role] = _codes(*_dictionary(col))
        else:
            frame[role] = numbers.pop(name)
    frame["rating"] = numbers.pop(wanted["rating"])
    frame["timestamp"] = numbers.pop(wanted["timestamp"]) if "timestamp" in wanted else np.full(n, np.nan)
    return pd.DataFrame(frame, copy=False), codes


#: formats a ratings file is sometimes mistaken for, refused by name rather than read as text
NOT_RATINGS_SUFFIXES = (".json", ".jsonl", ".ndjson", ".xlsx", ".xls", ".xml", ".pkl", ".pickle", ".h5", ".hdf5")


#: id column names a ratings file's header is searched for, in order, when the caller names none (MovieLens' own
#: ``userId``/``movieId`` among them)
USER_COLUMNS = ("user_id", "userId", "userid", "UserId", "UserID", "user")
ITEM_COLUMNS = ("item_id", "itemId", "itemid", "ItemId", "ItemID", "movieId", "movie_id", "MovieID", "item", "movie")


def header_columns(path: Path, sep: str | None, encoding: str) -> list[str]:
    """The column names of a ratings file (Parquet schema, or the first line of a delimited file); empty when it
    cannot be read (the reader then reports the file itself)."""
    import pyarrow.parquet as pq

    try:
        if _is_parquet(path):
            return list(pq.read_schema(path).names)
        with open(path, encoding=file_encoding(path, encoding), errors="replace", newline="") as fh:
            first = fh.readline()
    except (OSError, UnicodeError, LookupError, pa.ArrowException):  # e.g. an unknown encoding, reported later
        return []
    delimiter = sep or _infer_sep(path, encoding)
    if len(delimiter) != 1:
        return [c.strip() for c in first.rstrip("\r\n").split(delimiter)]
    return next(csv.reader([first], delimiter=delimiter), [])


def id_columns(path: Path, sep: str | None, encoding: str, user_col: str | None, item_col: str | None
               ) -> tuple[str, str]:
    """(user, item) id columns: the ones given, else the first of :data:`USER_COLUMNS` / :data:`ITEM_COLUMNS` the
    header holds, else ``user_id`` / ``item_id`` (reported as missing by the reader)."""
    if user_col is not None and item_col is not None:
        return user_col, item_col
    names = set(header_columns(path, sep, encoding))
    user = user_col or next((c for c in USER_COLUMNS if c in names), "user_id")
    item = item_col or next((c for c in ITEM_COLUMNS if c in names), "item_id")
    return user, item


def load_ratings(
    path: str | os.PathLike,
    user_col: str | None = None,
    item_col: str | None = None,
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
    duplicates: str = "error",
) -> Dataset:
    """Load your own ratings from CSV/TSV/Parquet (with a header row) into a :class:`Dataset`.

    ``user_col``/``item_col`` default to the first of :data:`USER_COLUMNS` / :data:`ITEM_COLUMNS` the header holds
    (``user_id``, ``userId``, ``user``, ...; ``item_id``, ``movieId``, ``item``, ...).
    ``rating_scale`` is ``(minimum, maximum[, step])``; when omitted it is inferred from the ratings (e.g. 0.5-5 in
    half stars). ``items``/``users`` are optional metadata tables keyed by ``item_key``/``user_key`` (default: the same
    column names as in the ratings file). A ``genres`` column of ``|``-separated names becomes one 0/1 column per genre;
    a year in parentheses at the end of a title gives ``release_year``.

    ``duplicates``: a (user, item) pair rated on several rows is an error (``"error"``, the default); ``"last"`` keeps
    its latest rating (by timestamp, file order breaking ties; without timestamps the last row), ``"mean"`` the mean
    of its ratings (kept as it is, possibly between two steps of the scale).

    Ratings files of 1 MiB or more (UTF-8 CSV/TSV with a one-character separator, or Parquet) are read by pyarrow on
    several threads, only the columns named above; the Dataset and every error message are the ones the pandas
    reading of small files gives (a file pyarrow would read otherwise goes to pandas).
    """
    path = Path(path)
    scale = _as_scale(rating_scale)
    check_duplicates_option(duplicates)
    if sep is not None and (not isinstance(sep, str) or not sep):
        raise DataError(f"{argument('sep')} must be a field separator such as ',' or ';' (or omitted, to infer it "
                        f"from the file), got {sep!r}", path=str(path))
    check_file(path, _RATINGS_FILE)
    _refuse_other_format(path, "ratings")
    user_col, item_col = id_columns(path, sep, encoding, user_col, item_col)
    roles = {"user_id": user_col, "item_id": item_col, "rating": rating_col, "timestamp": timestamp_col}
    if _is_parquet(path):
        check_parquet_columns(path, roles.values())
        fast = arrow_parquet(path, roles)
    else:
        check_encoding(encoding, path)
        fast = arrow_ratings(path, sep=sep or _infer_sep(path, encoding), encoding=file_encoding(path, encoding),
                             columns=roles, written_ids=True)
    first_line = 1 if _is_parquet(path) else 2  # a delimited file's first line is its header
    if fast is not None:
        renamed, codes = fast
    else:
        renamed, codes = _pandas_ratings(path, sep, encoding, roles), None
    ratings, scale = validate_ratings(renamed, path=str(path), rating_scale=scale, first_line=first_line,
                                      id_codes=codes, columns={role: col for role, col in roles.items() if col},
                                      duplicates=duplicates)
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
        duplicates=duplicates,
    )


def _pandas_ratings(path: Path, sep: str | None, encoding: str, roles: dict[str, str | None]) -> pd.DataFrame:
    """The ratings file read by pandas, as the frame (user_id, item_id, rating, timestamp) to validate."""
    user_col, item_col, rating_col, timestamp_col = (roles[r] for r in ("user_id", "item_id", "rating", "timestamp"))
    df = _read_any(path, sep=sep, encoding=encoding, expected=_RATINGS_FILE, id_cols=(user_col, item_col),
                   used=roles.values())
    _require_columns(df, {"user_col": user_col, "item_col": item_col, "rating_col": rating_col,
                          "timestamp_col": timestamp_col}, path)
    text = not _is_parquet(path)  # ids were read as text: integers only where written as such ("007" stays text)
    return pd.DataFrame(
        {
            "user_id": text_ids(df[user_col]) if text else df[user_col],
            "item_id": text_ids(df[item_col]) if text else df[item_col],
            "rating": df[rating_col],
            "timestamp": df[timestamp_col] if timestamp_col else pd.Series(np.nan, index=df.index),
        }
    )


def read_pairs(path: str | os.PathLike, *, user_col: str = "user_id", item_col: str = "item_id",
               timestamp_col: str | None = None, sep: str | None = None, encoding: str = "utf-8") -> pd.DataFrame:
    """(user, item[, timestamp]) pairs to predict, from CSV/TSV with a header row (ids kept as the text written, to
    be matched to a model's ids) or Parquet (ids as stored). Raises :class:`DataError` naming the file, and the line
    of a missing id."""
    path = Path(path)
    _refuse_other_format(path, "pairs")
    df = _read_any(path, sep=sep, encoding=encoding, expected="a pairs file (CSV, TSV or Parquet)",
                   id_cols=(user_col, item_col), used=(user_col, item_col, timestamp_col))
    columns = _require_columns(df, {"user_col": user_col, "item_col": item_col, "timestamp_col": timestamp_col},
                               path)
    if len(df) == 0:
        raise DataError("file has no data rows", path=str(path))
    first_line = 1 if _is_parquet(path) else 2
    for col in (user_col, item_col):
        missing = blank_values(df[col])
        if missing.any():
            raise DataError(f"missing value in column {col!r}", path=str(path),
                            line=first_line + int(np.flatnonzero(missing)[0]))
    return df[columns]


def _refuse_other_format(path: Path, what: str) -> None:
    """Refuse, by name, a file whose suffix says it is not a table of rows (JSON, Excel, pickle, ...)."""
    if path.suffix.lower() in NOT_RATINGS_SUFFIXES:
        raise DataError(f"{what} files must be CSV/TSV with a header row, or Parquet; got a {path.suffix} file",
                        path=str(path))


def _require_columns(df: pd.DataFrame, wanted: dict[str, str | None], path: Path) -> list[str]:
    """The columns ``wanted`` names (argument -> column; None: not wanted), each required in ``df``."""
    for arg, col in wanted.items():
        if col is not None and col not in df.columns:
            hint = f" (the header reads as one column: is {spelled('sep')} right?)" if len(df.columns) == 1 else ""
            raise DataError(
                f"missing column {col!r} ({argument(arg)}); the file has columns {list(map(str, df.columns))}{hint}",
                path=str(path),
            )
    return [col for col in wanted.values() if col is not None]


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
    delimited = not isinstance(table, pd.DataFrame) and not _is_parquet(Path(table))
    check_unique_key(df[key], what=index_name, path=where, first_line=2 if delimited else 1,
                     unit="line" if delimited else "row", detail=f" in key column {key!r}")
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

"""Safe output writing.

* Files are written to a temporary file beside the target and renamed into place: nothing is ever half-written.
* Every temporary is named ``.NAME.ratecast-KIND-PID-TOKEN`` and locked by the process that made it, so a later write
  removes the ones that a killed ratecast process left (:func:`clean_stale_temporaries`) and nothing else.
* :func:`output_dir` writes a whole folder the same way, under a lock, and never replaces a folder that ratecast
  did not write.
* :func:`check_replaceable` refuses to replace a file that ratecast did not write (unless asked to).
* :func:`to_json` / :func:`write_json` write strict JSON: NaN and infinities become ``null``.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import shutil
from contextlib import contextmanager, suppress
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import pandas as pd

from .errors import LockedError, NotWritableError, OutputExistsError

#: What ratecast writes into the files it makes, so that it can tell them from files it must not replace.
GENERATOR = "ratecast"
HTML_MARKER = f'<meta name="generator" content="{GENERATOR}">'
PNG_METADATA = {"Software": GENERATOR}


# --- temporaries ----------------------------------------------------------------------------------------------------
try:
    import fcntl
except ImportError:  # no advisory locks here: stale temporaries are left alone
    fcntl = None

#: ``.NAME.ratecast-KIND-PID-TOKEN[SUFFIX]`` beside output NAME. KIND is ``tmp`` (being written), ``old`` (a folder
#: moved aside while its replacement is renamed in) or ``del`` (a folder being removed); PID is the process that made
#: it, which holds an exclusive lock on it for as long as it exists; SUFFIX (files only) is NAME's own.
_TEMPORARY = re.compile(r"\.(?P<target>.+)\.ratecast-(?P<kind>tmp|old|del)-(?P<pid>[1-9][0-9]{0,9})-"
                        r"(?P<token>[0-9a-f]{12})(?P<suffix>\.[^.]+)?")


def _temporary_name(target: str, kind: str, suffix: str = "") -> str:
    return f".{target}.ratecast-{kind}-{os.getpid()}-{secrets.token_hex(6)}{suffix}"


def temporary_target(name: str) -> str | None:
    """The output name that ``name`` is a ratecast temporary of, or None when ``name`` is not one."""
    match = _TEMPORARY.fullmatch(name)
    if match is None:
        return None
    if match["suffix"] and (match["kind"] != "tmp" or match["suffix"] != Path(match["target"]).suffix):
        return None
    return match["target"]


def _lock(fd: int) -> bool:
    """Take the exclusive lock of open file ``fd`` without waiting; False when another holder has it (or there are no
    locks here)."""
    if fcntl is None:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _open_locked(path: Path) -> int | None:
    """``path`` opened and locked (see :func:`_lock`); None when it cannot be opened or someone else holds it."""
    flags = (os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)) if path.is_dir() else os.O_RDWR
    try:
        fd = os.open(path, flags | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    if not _lock(fd):
        os.close(fd)
        return None
    return fd


def _close(fd: int | None) -> None:
    if fd is not None:
        with suppress(OSError):
            os.close(fd)


def _alive(pid: int) -> bool:
    """Whether a process ``pid`` runs on this machine (pids of other machines or containers may read as not)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except OSError:  # exists, but belongs to someone else
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with suppress(FileNotFoundError):
            path.unlink()


def _set_aside(path: Path, kind: str) -> Path:
    """Rename folder ``path`` to a temporary name of ``kind`` owned by this process (the caller holds its lock, taken
    before the rename, so the new name never appears unowned); returns the new path."""
    aside = path.with_name(_temporary_name(temporary_target(path.name) or path.name, kind))
    os.replace(path, aside)
    return aside


def _discard(path: Path) -> None:
    shutil.rmtree(_set_aside(path, "del"), ignore_errors=True)


def discard_dir(path: str | os.PathLike) -> bool:
    """Remove folder ``path`` (one that ratecast wrote): it is first renamed to a ``del`` temporary, then deleted, so a
    kill midway leaves no half-deleted folder under its own name, only a temporary that the next write removes.

    Returns whether it was removed; a folder that cannot be renamed is left whole."""
    path = Path(path)
    if not path.is_dir() or path.is_symlink():
        return False
    fd = _open_locked(path)
    try:
        _discard(path)
    except OSError:
        return False
    finally:
        _close(fd)
    return True


def clean_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporaries in ``folder`` that ratecast processes which no longer run left behind; returns them.

    Only names of ratecast's pattern are considered, and only when their process has ended *and* their lock is free:
    a temporary being written right now (by any process) is kept. A folder that was moved aside while its replacement
    was renamed in, and whose replacement never arrived, is put back in place instead of removed.
    """
    folder = Path(folder)
    if fcntl is None:
        return []
    try:
        entries = [e for e in os.scandir(folder) if ".ratecast-" in e.name]
    except OSError:
        return []
    cleaned = []
    for entry in entries:
        if temporary_target(entry.name) is None or entry.is_symlink():
            continue
        match = _TEMPORARY.fullmatch(entry.name)
        if _alive(int(match["pid"])):
            continue
        path = Path(entry.path)
        if match["kind"] != "tmp" and not path.is_dir():
            continue  # ratecast moves aside folders only
        fd = _open_locked(path)
        if fd is None:
            continue  # held by a live writer (e.g. on another machine), or not ours to open
        original = folder / match["target"]
        try:
            if match["kind"] == "old" and not os.path.lexists(original):
                os.rename(path, original)  # its replacement never arrived: put it back
            elif path.is_dir():
                _discard(path)
            else:
                path.unlink()
        except OSError:
            continue
        finally:
            _close(fd)
        cleaned.append(path)
    return cleaned


@contextmanager
def _temporary(dest: Path, folder: bool) -> Iterator[Path]:
    """A new temporary file or folder beside ``dest``, locked by this process, with the usual permissions; removed
    on exit unless it was renamed away. Stale temporaries beside ``dest`` are removed first."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(dest.parent)
    while True:
        tmp = dest.with_name(_temporary_name(dest.name, "tmp", "" if folder else dest.suffix))
        try:
            if folder:
                os.mkdir(tmp)
                fd = _open_locked(tmp)
            else:
                fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
                _lock(fd)
            break
        except FileExistsError:
            continue
    try:
        yield tmp
    finally:
        try:
            if os.path.lexists(tmp):
                _remove(tmp)
        finally:
            _close(fd)


# --- files ----------------------------------------------------------------------------------------------------------
@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed to ``path``, on error removed."""
    path = Path(path)
    with _temporary(path, folder=False) as tmp:
        yield tmp
        os.replace(tmp, path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def _table_suffix(path: Path) -> str:
    """The table format of ``path``: ``.csv``, ``.tsv`` or ``.parquet`` (anything else is refused)."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".tsv", ".parquet"):
        raise ValueError(f"path must end in .csv, .tsv or .parquet, got {str(path)!r}")
    return suffix


def _parquet_frame(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` as Parquet takes it: text column names, no attrs."""
    out = df.copy()
    out.columns = [str(c) for c in out.columns]
    out.attrs = {}
    return out


def write_table(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``df`` as CSV (``.csv``), TSV (``.tsv``) or Parquet (``.parquet``), chosen by the suffix."""
    path = Path(path)
    suffix = _table_suffix(path)
    with atomic_path(path) as tmp:
        if suffix == ".parquet":
            table = _arrow_table(_parquet_frame(df))
            import pyarrow.parquet as pq

            pq.write_table(table, tmp)
        else:
            df.to_csv(tmp, sep="\t" if suffix == ".tsv" else ",", index=False)
    return path


def write_table_parts(parts: Iterable[pd.DataFrame], path: str | os.PathLike) -> int:
    """Write the frames ``parts`` (same columns, at least one) one after another into one table at ``path``, as
    :func:`write_table` would write their concatenation, holding one part in memory at a time: the file appears
    whole at the end, or not at all. Returns the number of rows written."""
    path = Path(path)
    suffix = _table_suffix(path)
    rows = 0
    with atomic_path(path) as tmp:
        if suffix == ".parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            writer, schema = None, None
            try:
                for part in map(_parquet_frame, parts):
                    if writer is None:
                        first = _arrow_table(part)  # a column with no value yet is text (e.g. missing titles)
                        schema = pa.schema([f.with_type(pa.string()) if pa.types.is_null(f.type) else f
                                            for f in first.schema], metadata=first.schema.metadata)
                        writer = pq.ParquetWriter(tmp, schema)
                    writer.write_table(pa.Table.from_pandas(part, schema=schema, preserve_index=False))
                    rows += len(part)
            finally:
                if writer is not None:
                    writer.close()
            if writer is None:
                raise ValueError("parts must hold at least one table")
        else:
            header = True
            with open(tmp, "w", newline="") as fh:
                for part in parts:
                    part.to_csv(fh, sep="\t" if suffix == ".tsv" else ",", index=False, header=header)
                    header, rows = False, rows + len(part)
            if header:
                raise ValueError("parts must hold at least one table")
    return rows


def _arrow_table(df: pd.DataFrame):
    import pyarrow as pa

    table = pa.Table.from_pandas(df, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[b"generator"] = GENERATOR.encode()
    return table.replace_schema_metadata(meta)


def is_ratecast_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a file that ratecast wrote (HTML page, PNG plot or Parquet table with its mark)."""
    path = Path(path)
    if not path.is_file():
        return False
    suffix = path.suffix.lower()
    try:
        if suffix in (".html", ".htm"):
            with open(path, "rb") as fh:
                return HTML_MARKER.encode() in fh.read(1 << 16)
        if suffix == ".png":
            with open(path, "rb") as fh:
                head = fh.read(1 << 16)
            return head.startswith(b"\x89PNG") and b"Software\x00" + GENERATOR.encode() in head
        if suffix in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            meta = pq.read_schema(path).metadata or {}
            return meta.get(b"generator") == GENERATOR.encode()
    except Exception:  # unreadable or not what its suffix says: not ours
        return False
    return False


def check_replaceable(path: str | os.PathLike, *, overwrite: bool = False, option: str = "--out") -> Path:
    """Raise :class:`OutputExistsError` unless ``path`` is free, or a file ratecast wrote, or ``overwrite`` is set.

    Folders, links to folders and the filesystem root are never replaced by a file.
    """
    path = Path(path)
    if path.name in ("", ".", ".."):
        raise OutputExistsError(f"{option} {str(path)!r}: expected a file name, got a folder")
    if path.is_dir():
        raise OutputExistsError(f"{option} {str(path)!r}: is a folder; give a file name inside it")
    if path.exists() and not (overwrite or is_ratecast_file(path)):
        marked = path.suffix.lower() in (".html", ".htm", ".png", ".parquet", ".pq")
        why = ("was not written by ratecast" if marked else
               f"may not be ratecast's ({path.suffix or 'this'} files carry no ratecast mark)")
        raise OutputExistsError(f"{option} {str(path)!r}: the file exists and {why}; choose another name or pass "
                                "--overwrite to replace it")
    return path


# --- JSON -------------------------------------------------------------------------------------------------------------
def json_safe(obj: Any) -> Any:
    """``obj`` with numpy scalars/arrays, paths and dataclasses turned into JSON types, and NaN/inf into None."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if obj is None or isinstance(obj, str):
        return obj
    if is_dataclass(obj) and not isinstance(obj, type):
        return json_safe(asdict(obj))
    if obj is pd.NA or obj is pd.NaT:
        return None
    return str(obj)


def to_json(obj: Any, indent: int | None = None) -> str:
    """Strict JSON text of ``obj`` (see :func:`json_safe`): never a bare NaN or Infinity."""
    return json.dumps(json_safe(obj), indent=indent, allow_nan=False)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as strict, indented JSON, atomically."""
    return write_text(path, to_json(obj, indent=2) + "\n")


def read_json_object(path: str | os.PathLike, what: str | None = None) -> dict:
    """Read a JSON file that must hold an object; anything else raises ``IntegrityError`` naming the file.

    The message never quotes the file's contents.
    """
    from .errors import IntegrityError, MissingFileError

    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{what or 'file'} not found", path=str(path))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise IntegrityError(f"{path}: not UTF-8 text; expected a JSON object") from None
    except json.JSONDecodeError as exc:
        raise IntegrityError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}); "
                             "expected a JSON object") from None
    if not isinstance(data, dict):
        raise IntegrityError(f"{path}: expected a JSON object, got a JSON {_json_type(data)}")
    return data


def _json_type(value: Any) -> str:
    return {list: "array", str: "string", bool: "boolean", int: "number", float: "number",
            type(None): "null"}.get(type(value), type(value).__name__)


# --- folders ----------------------------------------------------------------------------------------------------------
@contextmanager
def temp_dir(dest: str | os.PathLike) -> Iterator[Path]:
    """A temporary folder beside ``dest`` (same filesystem, so it can be renamed into place), with the usual
    permissions and owned by this process; removed on exit unless it was renamed away."""
    with _temporary(Path(dest), folder=True) as tmp:
        yield tmp


def replace_dir(src: Path, dest: Path) -> None:
    """Move folder ``src`` to ``dest``, replacing an existing ``dest`` with no moment where neither exists whole."""
    src, dest = Path(src), Path(dest)
    if not dest.exists():
        os.replace(src, dest)
        return
    fd = _open_locked(dest)  # owned before it is renamed
    try:
        old = _set_aside(dest, "old")  # a kill before the next rename: the next write puts it back
        try:
            os.replace(src, dest)
        except BaseException:
            os.replace(old, dest)
            raise
        _discard(old)
    finally:
        _close(fd)


def check_output_folder(dest: str | os.PathLike, *, overwrite: bool = False, marker: str = "run.json",
                        option: str = "--out", overwrite_hint: str = "pass --overwrite") -> Path:
    """Check that folder ``dest`` may be written; raise :class:`OutputExistsError` naming it otherwise.

    Allowed: a path that does not exist, an empty folder, or (with ``overwrite``) a folder holding ``marker``, i.e. one
    that ratecast wrote. Never allowed: the filesystem root, the home folder, the working directory or one of its
    parents, a file, a symbolic link, a non-empty folder without ``marker``.
    """
    dest = Path(dest)
    shown = str(dest)
    if dest.name in ("", ".", ".."):
        raise OutputExistsError(f"{option} {shown!r}: name a new folder (e.g. runs/NAME), not '.', '..' or '/'")
    resolved = dest.resolve()
    cwd = Path.cwd().resolve()
    if resolved == Path(resolved.anchor) or resolved == cwd or resolved in cwd.parents or \
            resolved == Path.home().resolve():
        raise OutputExistsError(f"{option} {shown!r}: is the root, the home folder, the working directory or one "
                                "of its parents; name a new folder (e.g. runs/NAME)")
    if dest.is_symlink():
        raise OutputExistsError(f"{option} {shown!r}: is a symbolic link; give the folder itself")
    if dest.exists():
        if not dest.is_dir():
            raise OutputExistsError(f"{option} {shown!r}: exists and is not a folder")
        if any(dest.iterdir()):
            if not (dest / marker).is_file():
                raise OutputExistsError(f"{option} {shown!r}: the folder is not empty and was not written by "
                                        f"ratecast (no {marker}); choose a new folder")
            if not overwrite:
                raise OutputExistsError(f"{option} {shown!r}: already holds a ratecast output; {overwrite_hint} to "
                                        "replace it")
    return dest


def check_foreign_files(dest: Path, option: str = "--out") -> None:
    """Refuse to replace folder ``dest`` while it holds files ratecast did not write (they would be deleted)."""
    if dest.is_dir():
        foreign = _foreign_files(dest)
        if foreign:
            raise OutputExistsError(f"{option} {str(dest)!r}: also holds files ratecast did not write "
                                    f"({', '.join(foreign[:3])}); move them out or choose a new folder")


def _foreign_files(folder: Path) -> list[str]:
    """Files under ``folder`` that ratecast cannot show it wrote: neither listed in the folder's MANIFEST.json nor
    carrying ratecast's mark (HTML, PNG, Parquet). Without a manifest, only marked files count as ratecast's."""
    from . import manifest

    path = folder / manifest.MANIFEST
    listed: set[str] = set()
    if path.is_file():
        try:
            listed = set(json.loads(path.read_text(encoding="utf-8"))["files"])
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            return [manifest.MANIFEST + " (unreadable)"]
    files = (p for p in folder.rglob("*") if p.is_file() and not (p.name == manifest.MANIFEST and listed))
    return sorted(rel for p in files if (rel := p.relative_to(folder).as_posix()) not in listed
                  and not is_ratecast_file(p))


def lock_path(dest: str | os.PathLike) -> Path:
    """The lock file that guards writers of ``dest``: ``.NAME.lock`` beside it."""
    dest = Path(dest)
    return dest.parent / f".{dest.name}.lock"


@contextmanager
def lock_output(dest: str | os.PathLike) -> Iterator[Path]:
    """Hold the lock of output ``dest`` (see :func:`lock_path`); a second writer fails at once with
    :class:`LockedError`. Once it is held, stale temporaries beside ``dest`` are cleaned (see
    :func:`clean_stale_temporaries`). The lock file is removed when released."""
    from filelock import FileLock, Timeout

    dest = Path(dest)
    if dest.name in ("", ".", ".."):  # no lock file can be named for these; check_output_folder refuses them
        yield lock_path(dest)
        return
    path = lock_path(dest)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NotWritableError(f"{dest}: cannot create its parent folder ({exc.strerror or exc})") from None
    try:  # the lock library reads a failure to create its file as "locked": tell the two apart first
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o644))
    except OSError as exc:
        raise NotWritableError(f"{dest}: cannot write in {path.parent} ({exc.strerror or exc})") from None
    lock = FileLock(str(path), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise LockedError(f"{dest}: another process is writing it (lock file {path}); wait for it to finish")
    except OSError as exc:
        raise NotWritableError(f"{dest}: cannot take the lock {path} ({exc.strerror or exc})") from None
    try:
        clean_stale_temporaries(dest.parent)  # e.g. put back a folder that a killed writer had moved aside
        yield path
    finally:
        with suppress(OSError):
            path.unlink()
        lock.release()


@contextmanager
def staged_dir(dest: str | os.PathLike, *, overwrite: bool = False, marker: str = "run.json", option: str = "--out",
               overwrite_hint: str = "pass --overwrite") -> Iterator[Path]:
    """:func:`output_dir` without the lock (for callers that already hold :func:`lock_output`)."""
    dest = check_output_folder(dest, overwrite=overwrite, marker=marker, option=option, overwrite_hint=overwrite_hint)
    if dest.is_dir() and any(dest.iterdir()):
        check_foreign_files(dest, option)  # before any work: replacing it must not delete anyone's files
    with temp_dir(dest) as tmp:
        yield tmp
        _swap_in(tmp, dest, marker)


@contextmanager
def output_dir(dest: str | os.PathLike, *, overwrite: bool = False, marker: str = "run.json", option: str = "--out",
               overwrite_hint: str = "pass --overwrite") -> Iterator[Path]:
    """Write folder ``dest`` as a whole, or not at all.

    ::

        with output_dir("runs/hybrid", overwrite=False, marker="run.json") as tmp:
            ...  # write every file into tmp, ``marker`` included

    1. Takes the lock of ``dest`` first, so a second writer of the same folder fails at once (:class:`LockedError`).
    2. Refuses (:class:`OutputExistsError`) a non-empty ``dest`` without ``marker`` (not a ratecast folder of that
       kind), an existing ratecast folder unless ``overwrite``, and '.', '..', '/', the working directory and its
       parents.
    3. Yields a temporary folder beside ``dest``. When the block succeeds, the folder is renamed into place; an
       existing ``dest`` is moved aside first and removed only once the new folder is in place. When the block raises
       (or is interrupted), ``dest`` is left as it was and only the temporary folder is removed.
    """
    with lock_output(dest):
        with staged_dir(dest, overwrite=overwrite, marker=marker, option=option, overwrite_hint=overwrite_hint) as tmp:
            yield tmp


def _swap_in(tmp: Path, dest: Path, marker: str) -> None:
    if dest.is_dir() and not any(dest.iterdir()):
        os.replace(tmp, dest)  # rename over an empty folder
        return
    if dest.exists() and not (dest / marker).is_file():  # changed since it was checked: leave it alone
        raise OutputExistsError(f"{dest}: the folder is not empty and was not written by ratecast (no {marker})")
    replace_dir(tmp, dest)

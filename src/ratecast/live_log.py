"""The log of ratings given to a served run (``POST /v1/users/{id}/ratings``): one JSON line per accepted batch,
``{"user_id": ..., "time": ..., "ratings": [[item_id, rating], ...]}``, appended to :data:`LOG_NAME` in the run
folder and flushed to disk (fdatasync) before the batch is acknowledged. The server replays it at start-up (the users
come back after a restart) and ``ratecast refit`` trains on it.

Writers append whole lines under a lock (a thread lock and an exclusive ``flock`` of the file, so several server
processes cannot interleave either). A line cut short by a crash is skipped with a warning when the log is read, and
the next append starts on a line of its own.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
import warnings
import weakref
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

#: the log in a served run folder (written by the server; not part of the run's manifest)
LOG_NAME = "live_ratings.jsonl"
#: the logged ratings a refitted run was trained on besides its data (part of its manifest)
REFIT_NAME = "refit_ratings.jsonl"
COLUMNS = ("user_id", "item_id", "rating", "timestamp")


def batch_line(user_id: Any, items: Sequence[Any], ratings: Sequence[float], when: float | None = None) -> bytes:
    """One log line (bytes, newline included) for a batch of one user's ratings."""
    record = {"user_id": user_id, "time": time.time() if when is None else when,
              "ratings": [[i, float(r)] for i, r in zip(items, ratings)]}
    return (json.dumps(record, allow_nan=False, separators=(",", ":")) + "\n").encode()


def write_ratings_log(path: str | os.PathLike, frame: pd.DataFrame) -> Path:
    """Write ``frame`` (user_id, item_id, rating, timestamp) as a whole log at ``path`` (temporary file, then
    renamed), one line per rating."""
    from .io import write_text

    lines = [batch_line(_plain(u), [_plain(i)], [r], float(t))
             for u, i, r, t in frame[list(COLUMNS)].itertuples(index=False)]
    return write_text(path, b"".join(lines).decode())


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


#: flushes a file's data (and the size that makes it readable) to disk
sync = getattr(os, "fdatasync", os.fsync)


class RatingsLog:
    """An append-only ratings log at ``path`` (created on the first append)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._fd: int | None = None

    def _open(self) -> int:
        if self._fd is None:
            created = not self.path.exists()
            self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            self._closer = weakref.finalize(self, os.close, self._fd)  # closed once: by close() or when let go
            if created:  # the new entry itself must survive a crash
                folder = os.open(self.path.parent, os.O_RDONLY)
                try:
                    os.fsync(folder)
                finally:
                    os.close(folder)
        return self._fd

    def append(self, user_id: Any, items: Sequence[Any], ratings: Sequence[float]) -> None:
        """Append one batch and flush it to disk; when this returns, the batch is on disk."""
        line = batch_line(user_id, items, ratings)
        with self._lock:
            fd = self._open()
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":  # a line cut short by a crash: end it first
                    line = b"\n" + line
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view):]
                sync(fd)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                self._closer()
                self._fd = None


def _batch(record: Any) -> list[tuple[Any, Any, float, float]] | None:
    """The rows of one parsed line, or None when it is not a whole batch."""
    if not isinstance(record, dict) or not isinstance(record.get("ratings"), list):
        return None
    user, when = record.get("user_id"), record.get("time")
    if not isinstance(user, (int, str)) or isinstance(user, bool) or not isinstance(when, (int, float)):
        return None
    rows = []
    for pair in record["ratings"]:
        if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[1], (int, float))
                and isinstance(pair[0], (int, str)) and not isinstance(pair[0], bool)):
            return None
        rows.append((user, pair[0], float(pair[1]), float(when)))
    return rows


def read_log(path: str | os.PathLike) -> pd.DataFrame:
    """The ratings of the log at ``path`` in the order given (columns user_id, item_id, rating, timestamp in
    seconds); no file: no rows. A line that is not a whole batch (one cut short by a crash) is skipped with a
    warning naming it."""
    path = Path(path)
    rows: list[tuple] = []
    bad: list[int] = []
    if path.is_file():
        with open(path, "rb") as f:
            for number, raw in enumerate(f, start=1):
                if not raw.strip():
                    continue
                try:
                    batch = _batch(json.loads(raw))
                except ValueError:  # also a UnicodeDecodeError
                    batch = None
                if batch is None:
                    bad.append(number)
                else:
                    rows.extend(batch)
    if bad:
        shown = ", ".join(map(str, bad[:5])) + (", ..." if len(bad) > 5 else "")
        warnings.warn(f"{path}: skipped {len(bad)} line(s) that are not a whole batch of ratings (cut short by a "
                      f"crash?): line {shown}", UserWarning, stacklevel=2)
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    for column in ("user_id", "item_id"):
        frame[column] = frame[column].astype(object)
    return frame

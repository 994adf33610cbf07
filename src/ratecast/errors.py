"""Exceptions raised by ratecast."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar

_ARGUMENT_NAMES: ContextVar[Mapping[str, str]] = ContextVar("ratecast_argument_names", default={})


@contextmanager
def argument_names(names: Mapping[str, str]) -> Iterator[None]:
    """Within this block, messages name the arguments as ``names`` spells them (e.g. ``user_col`` as ``--user-col``
    on the command line)."""
    token = _ARGUMENT_NAMES.set(names)
    try:
        yield
    finally:
        _ARGUMENT_NAMES.reset(token)


def spelled(name: str) -> str:
    """The argument ``name`` as the caller writes it: ``user_col``, or e.g. ``--user-col`` (see
    :func:`argument_names`); ``f"{spelled('encoding')}='latin-1'"`` reads right in both."""
    return _ARGUMENT_NAMES.get().get(name, name)


def argument(name: str) -> str:
    """The argument ``name`` in a message: ``argument user_col``, or e.g. ``--user-col``."""
    flag = _ARGUMENT_NAMES.get().get(name)
    return f"argument {name}" if flag is None else flag


class RatecastError(Exception):
    """Base class of every ratecast error."""


class DataError(RatecastError, ValueError):
    """Input data breaks a constraint. The message names the file (and line), the constraint and the value."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None):
        where = ""
        if path is not None:
            where = f"{path}"
            if line is not None:
                where += f", line {line}"
            where += ": "
        super().__init__(where + message)
        self.path = path
        self.line = line


class DownloadError(RatecastError, OSError):
    """A dataset could not be downloaded or verified."""


class NotFittedError(RatecastError, AttributeError):
    """A method that needs a fitted estimator was called before ``fit``."""


class UnknownDatasetError(RatecastError, KeyError):
    """The dataset name is not one ratecast knows."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class MissingFileError(DataError, FileNotFoundError):
    """A file or folder that the operation needs does not exist (exit code 4 on the command line)."""


class IntegrityError(RatecastError, ValueError):
    """A saved artefact fails its checksum or its bounds: it was corrupted, truncated or edited."""


class OutputExistsError(RatecastError, FileExistsError):
    """The output folder exists and may not be replaced (not a ratecast folder, or no overwrite asked)."""


class LockedError(RatecastError, OSError):
    """Another process is writing the same output folder."""


class TrainingError(RatecastError, ArithmeticError):
    """Training failed, e.g. the loss became NaN or infinite (diverged)."""


class NotWritableError(RatecastError, PermissionError):
    """An output location cannot be written (permissions, read-only filesystem)."""


class UnknownIdError(KeyError):
    """A user or item id the fitted model does not know, where a known one is required (a ``KeyError`` whose message
    prints as written, without the quotes ``KeyError`` adds)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""

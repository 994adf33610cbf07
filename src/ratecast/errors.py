"""Exceptions raised by ratecast."""

from __future__ import annotations


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

"""The parts of a model fitted outside the training engine: in closed form, by sampling, or by a loop of their own.

A model class lists its :class:`Fitter` parts (``fitters``); the estimator runs each part's :meth:`Fitter.before` on
the ratings the network trains on, then the training engine (unless a part :attr:`~Fitter.replaces_gradient`),
then each part's :meth:`Fitter.after` on every training rating the users gave (the validation share included). The
network itself only computes outputs: it neither samples nor loops over epochs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

#: where the parts fitted apart from the engine report their progress (None: nowhere); see :func:`reporting`
_REPORTER: ContextVar[Callable[[str], None] | None] = ContextVar("ratecast_fit_reporter", default=None)


def report(message: str) -> None:
    """Show one line of a fitted part's progress (e.g. a pass of its own loop), where the fit is verbose."""
    reporter = _REPORTER.get()
    if reporter is not None:
        reporter(message)


@contextmanager
def reporting(reporter: Callable[[str], None] | None) -> Iterator[None]:
    """Send :func:`report`'s lines to ``reporter`` (None: nowhere) while the block runs."""
    token = _REPORTER.set(reporter)
    try:
        yield
    finally:
        _REPORTER.reset(token)


@dataclass(frozen=True)
class Ratings:
    """Training ratings as index arrays (users, items; 0 = unknown), their ratings and, for models that use the
    day, each rating's day number (-1 where unknown)."""

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    days: np.ndarray | None = None


class Fitter:
    """One part of a model fitted apart from the training engine (nothing by default)."""

    #: whether this part fits the whole model, so that the training engine is not run (no epochs, no batches)
    replaces_gradient: ClassVar[bool] = False

    def before(self, model, fit: Ratings) -> None:
        """Before gradient training, from the ratings the network trains on."""

    def after(self, model, given: Ratings) -> dict[str, list[float]] | None:
        """After gradient training, from every training rating the users gave; may return per-step logs (e.g.
        ``{"loss": [...]}``) that join the fit's history."""
        return None


def trained_by_gradient(fitters: tuple[Fitter, ...]) -> bool:
    """Whether a model with these parts is trained by the training engine."""
    return not any(f.replaces_gradient for f in fitters)

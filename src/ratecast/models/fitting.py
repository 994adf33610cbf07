"""The parts of a model fitted outside the training engine: in closed form, by sampling, or by a loop of their own.

A model class lists its :class:`Fitter` parts (``fitters``); the estimator runs each part's :meth:`Fitter.before` on
the ratings the network trains on, then the training engine (unless a part :attr:`~Fitter.replaces_gradient`),
then each part's :meth:`Fitter.after` on every training rating the users gave (the validation share included). The
network itself only computes outputs: it neither samples nor loops over epochs.

:func:`fit_after` runs the ``after`` steps. Consecutive parts that are :attr:`~Fitter.concurrent` (each reads what
the parts before it left and writes only weights of its own) run at the same time, each on a thread of its own: a
part's loop mostly keeps one core busy, and this spreads independent parts over the machine's cores, with the
same results as one after the other. Parts share what they derive from the ratings (e.g. padded sets) through
:meth:`Ratings.derived`, computed once per fit.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, ClassVar

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
    _derived: dict = field(default_factory=dict, repr=False, compare=False)
    _lock: Any = field(default_factory=threading.Lock, repr=False, compare=False)

    def derived(self, name: str, make: Callable[[], Any]) -> Any:
        """What ``make()`` derives from these ratings, made once and shared by the parts of a fit under ``name``."""
        with self._lock:
            if name not in self._derived:
                self._derived[name] = make()
            return self._derived[name]


class Fitter:
    """One part of a model fitted apart from the training engine (nothing by default)."""

    #: whether this part fits the whole model, so that the training engine is not run (no epochs, no batches)
    replaces_gradient: ClassVar[bool] = False
    #: whether :meth:`after` may run at the same time as its concurrent neighbours (see :func:`fit_after`)
    concurrent: ClassVar[bool] = False

    def before(self, model, fit: Ratings) -> None:
        """Before gradient training, from the ratings the network trains on."""

    def after(self, model, given: Ratings) -> dict[str, list[float]] | None:
        """After gradient training, from every training rating the users gave; may return per-step logs (e.g.
        ``{"loss": [...]}``) that join the fit's history."""
        return None


def trained_by_gradient(fitters: tuple[Fitter, ...]) -> bool:
    """Whether a model with these parts is trained by the training engine."""
    return not any(f.replaces_gradient for f in fitters)


def fit_after(fitters: tuple[Fitter, ...], model, given: Ratings) -> dict[str, list[float]]:
    """Each part's :meth:`Fitter.after`, in order, with consecutive :attr:`~Fitter.concurrent` parts at the same
    time; returns their per-step logs merged. A part's error is raised once every part of its group has stopped."""
    history: dict[str, list[float]] = {}
    groups: list[list[Fitter]] = []
    for part in fitters:
        if part.concurrent and groups and groups[-1][0].concurrent:
            groups[-1].append(part)
        else:
            groups.append([part])
    for group in groups:
        if len(group) == 1:
            history.update(group[0].after(model, given) or {})
            continue
        results: list[Any] = [None] * len(group)

        def run(k: int, context: contextvars.Context) -> None:
            try:
                results[k] = ("ok", context.run(group[k].after, model, given))
            except BaseException as error:  # handed to the caller's thread below
                results[k] = ("error", error)

        # daemon threads: an interrupted fit (Ctrl-C) exits without waiting for the parts still running
        threads = [threading.Thread(target=run, args=(k, contextvars.copy_context()), daemon=True)
                   for k in range(len(group))]
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)
        for status, value in results:
            if status == "error":
                raise value
            history.update(value or {})
    return history

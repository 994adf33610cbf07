"""Ctrl-C during a fit or a search.

Python raises ``KeyboardInterrupt`` at whatever line runs when SIGINT arrives; inside a finaliser or a weak-reference
callback (database connections, JAX buffers, the garbage collection after each trial) it is printed and swallowed,
and the work runs on. While a fit or a search runs, SIGINT only sets a flag instead, and the work reads it where
stopping is safe: a fit at the end of each epoch (after its checkpoint, so ``--resume`` continues from there); a
search at the end of each epoch (the trial in progress is recorded as failed) and after each trial. A second Ctrl-C
raises at once. Worker processes share the flag through a ``multiprocessing`` event.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Any, Iterator

_local = threading.Event()  # set by this process's SIGINT
_holding = False  # whether deferred_interrupts holds SIGINT in this process now
_shared: Any = None  # a multiprocessing Event shared with worker processes, when there are any


class SearchInterrupted(KeyboardInterrupt):
    """The search stopped on Ctrl-C; its ``finished`` trials (complete or pruned) are kept in the study."""

    def __init__(self, message: str, finished: int = 0) -> None:
        super().__init__(message)
        self.finished = finished


def share(event: Any) -> None:
    """Read (and set) ``event`` as well as this process's flag: how worker processes learn of a Ctrl-C."""
    global _shared
    _shared = event


def requested() -> bool:
    """Whether Ctrl-C was pressed during the current search (here or in the process that started the workers)."""
    return _local.is_set() or (_shared is not None and _shared.is_set())


def check_fit() -> None:
    """Raise ``KeyboardInterrupt`` when Ctrl-C was pressed while :func:`deferred_interrupts` holds SIGINT (called at
    the end of each epoch of a fit, after its checkpoint); a flag left from an earlier search is not read here."""
    if _holding and requested():
        raise KeyboardInterrupt


def check() -> None:
    """Raise :class:`SearchInterrupted` when Ctrl-C was pressed (at a point where stopping is safe)."""
    if requested():
        raise SearchInterrupted("interrupted")


@contextmanager
def deferred_interrupts() -> Iterator[None]:
    """While the block runs, a first SIGINT sets the flag that :func:`requested` reads; a second raises
    ``KeyboardInterrupt`` at once. Only where SIGINT has Python's own handler and in the main thread (elsewhere
    signals cannot be handled, and a handler set by the program is left alone)."""
    global _holding
    if _holding:  # inside an outer block (a fit within a search): its handler and flag stay
        yield
        return
    _local.clear()  # a flag left by an earlier block is never read by this one
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return

    def on_sigint(signum, frame) -> None:
        if requested():
            raise KeyboardInterrupt
        _local.set()
        if _shared is not None:
            _shared.set()

    signal.signal(signal.SIGINT, on_sigint)
    _holding = True
    try:
        yield
    finally:
        _holding = False
        signal.signal(signal.SIGINT, signal.default_int_handler)

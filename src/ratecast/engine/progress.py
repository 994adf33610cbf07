"""Training progress on standard error: one bar per epoch on a terminal, one plain line per epoch otherwise (logs,
pipes, notebooks' captured output), nothing when off."""

from __future__ import annotations

import sys
from typing import TextIO


def describe(logs: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.4f}" for k, v in logs.items())


class EpochProgress:
    """Shows the epochs of one fit. A bar advances by slices of an epoch (each slice is one compiled call)."""

    SLICES = 20  # per epoch, when a bar is shown

    def __init__(self, epochs: int, enabled: bool, stream: TextIO | None = None, bars: bool = True):
        self.epochs, self.enabled = int(epochs), bool(enabled)
        self.stream = stream or sys.stderr
        self.live = self.enabled and bars and hasattr(self.stream, "isatty") and self.stream.isatty()
        self._bar = None
        self._task = None
        self._epoch = 0
        if self.live:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("{task.fields[logs]}"),
                                 console=Console(file=self.stream), transient=False)
            self._bar.start()

    def slices(self, n_batches: int) -> list[tuple[int, int]]:
        """Batch ranges to run as separate calls: one when no bar moves."""
        parts = min(self.SLICES, n_batches) if self.live else 1
        edges = [round(k * n_batches / parts) for k in range(parts + 1)]
        return [(a, b) for a, b in zip(edges, edges[1:]) if b > a]

    def start_epoch(self, epoch: int, n_batches: int) -> None:
        self._epoch = epoch
        if self._bar is not None:
            self._task = self._bar.add_task(f"epoch {epoch + 1}/{self.epochs}", total=n_batches, logs="")

    def advance(self, batches: int) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.advance(self._task, batches)

    def end_epoch(self, logs: dict[str, float], seconds: float) -> None:
        if not self.enabled:
            return
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, logs=describe(logs))
        else:
            print(f"epoch {self._epoch + 1}/{self.epochs}: {describe(logs)} ({seconds:.1f} s)", file=self.stream,
                  flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

"""The one epoch loop of every training engine: resume from a checkpoint, per-epoch learning rate, divergence checks,
validation, early stopping with the best weights restored, a checkpoint after every epoch, ``on_epoch`` and Ctrl-C.

An engine supplies an :class:`EpochRunner`, which knows how to run one epoch and how to read and write its weights;
the loop holds everything that happens between epochs, written once for both engines (Keras ``fit`` in
:mod:`~ratecast.engine.keras_fit`, the compiled engine in :mod:`~ratecast.engine.compiled`).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from .. import interrupts
from ..errors import TrainingError
from . import checkpoint as ckpt
from .progress import EpochProgress

#: a training loss this many times the first epoch's is taken as divergence
DIVERGED = 1000.0


class EpochRunner(Protocol):
    """What an engine gives the epoch loop."""

    #: whether a progress bar can move within an epoch (False: one line per epoch)
    bars: bool
    #: batches per epoch (for the progress bar)
    steps_per_epoch: int

    def restore(self, variables: list[np.ndarray], optimizer: list[np.ndarray]) -> None:
        """Take the weights and optimizer state of a checkpoint."""

    def train_epoch(self, epoch: int, learning_rate: float, progress: EpochProgress) -> dict[str, float]:
        """Run epoch ``epoch`` (0-based) at ``learning_rate``; its mean loss and metrics."""

    def validate(self) -> dict[str, float]:
        """The validation figures of the weights now held (``val_``-prefixed)."""

    def sync(self) -> None:
        """Make the model's variables hold the weights now trained."""

    def checkpoint_arrays(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """(variables, optimizer state) to write into a checkpoint."""

    def best_weights(self) -> list[np.ndarray]:
        """A copy of the weights now held, to restore if this epoch stays the best."""

    def set_weights(self, weights: list[np.ndarray]) -> None:
        """Put back weights that :meth:`best_weights` gave (after :meth:`sync`)."""


def check_loss(epoch: int, logs: dict[str, float], history: dict[str, list[float]], cfg) -> None:
    """Raise :class:`TrainingError` when an epoch's loss is not finite, or has grown past :data:`DIVERGED` times the
    first epoch's (a finite but exploding loss)."""
    hint = f"(learning_rate={cfg.learning_rate}, optimizer={cfg.optimizer}); lower the learning rate"
    for key, value in logs.items():
        if not math.isfinite(value):
            raise TrainingError(f"training diverged in epoch {epoch + 1}: {key} is {value} {hint}")
    first = (history.get("loss") or [None])[0]
    loss = logs.get("loss")
    if first is not None and loss is not None and first > 0 and loss > DIVERGED * first:
        raise TrainingError(f"training diverged in epoch {epoch + 1}: loss {loss:.4g} is more than "
                            f"{DIVERGED:g} times the first epoch's {first:.4g} {hint}")


def run_epochs(runner: EpochRunner, cfg, *, validation: bool, verbose: bool = False,
               checkpoint_dir: str | Path | None = None, fingerprint: str = "",
               extra_validation: Callable[[], dict[str, float]] | None = None,
               on_epoch: Callable[[int, dict[str, float]], None] | None = None) -> dict[str, list[float]]:
    """Train through ``runner`` for ``cfg.epochs`` epochs and return the per-epoch history (``loss``, metrics,
    ``val_*``).

    * With ``checkpoint_dir``, a checkpoint written there for the same ``fingerprint`` is resumed, and one is written
      after every epoch (a kill at any moment leaves the previous one whole).
    * The learning rate of each epoch follows ``cfg.lr_schedule`` (``cfg.epoch_learning_rate``).
    * A non-finite or exploding loss (training or validation) stops the fit with :class:`TrainingError`.
    * With ``validation`` and ``cfg.early_stopping``, the fit stops after that many epochs without a better
      ``cfg.monitor``, and the best epoch's weights are restored.
    * ``extra_validation()`` is called after each epoch's validation with the model holding that epoch's weights;
      its values join the logs (and may be the monitor). ``on_epoch(epoch, logs)`` is called at the end of every
      epoch; an exception it raises stops the fit. Ctrl-C stops it at the end of an epoch
      (:func:`ratecast.interrupts.check_fit`).
    """
    progress, best = ckpt.Progress(fingerprint), None
    if checkpoint_dir is not None:
        found = ckpt.load(checkpoint_dir, fingerprint)
        if found is not None:
            progress, variables, optimizer, best = found
            runner.restore(variables, optimizer)
            best = best or None
    watch = validation and cfg.early_stopping is not None
    bar = EpochProgress(cfg.epochs, enabled=verbose, bars=runner.bars)
    try:
        for epoch in range(progress.epoch, cfg.epochs):
            if watch and progress.wait >= cfg.early_stopping:
                break
            start = time.perf_counter()
            bar.start_epoch(epoch, runner.steps_per_epoch)
            logs = runner.train_epoch(epoch, cfg.epoch_learning_rate(epoch), bar)
            check_loss(epoch, logs, progress.history, cfg)
            if validation:
                val = runner.validate()
                check_loss(epoch, val, {}, cfg)
                logs.update(val)
                if extra_validation is not None:
                    runner.sync()  # the model's variables hold this epoch's weights
                    logs.update(extra_validation())
            if progress.record(epoch, logs, watch, cfg.monitor):
                best = runner.best_weights()
            bar.end_epoch(logs, time.perf_counter() - start)
            if checkpoint_dir is not None:
                variables, optimizer = runner.checkpoint_arrays()
                ckpt.save(checkpoint_dir, progress, variables, optimizer, best)
            if on_epoch is not None:
                on_epoch(epoch, dict(logs))
            interrupts.check_fit()
    finally:
        bar.close()
    runner.sync()
    if watch and best is not None:
        runner.set_weights(best)
    return progress.history

"""Training a model: :func:`engine_for` picks the engine for a training config, and :func:`train` checks the memory
budget and the options, then runs the one epoch loop (:func:`ratecast.engine.epochs.run_epochs`) with that engine's
runner."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from .. import interrupts
from ..models import RatingModel, TrainingConfig
from .epochs import run_epochs
from .footprint import check_training_memory


def engine_for(cfg: TrainingConfig) -> str:
    """The engine a config trains with: ``jax`` (compiled, sparse updates) on the JAX backend for the optimizers it
    implements, else ``keras`` (Keras ``fit``)."""
    from ..optim import ROW_OPTIMIZERS

    if cfg.engine != "auto":
        return cfg.engine
    return "jax" if keras.backend.backend() == "jax" and cfg.optimizer in ROW_OPTIMIZERS else "keras"


def train(model: RatingModel, x: dict[str, np.ndarray], y: np.ndarray, validation: tuple[dict, np.ndarray] | None,
          cfg: TrainingConfig, *, seed: int | None, verbose: bool = False, checkpoint_dir: str | Path | None = None,
          fingerprint: str = "", distribution=None, extra_validation=None, on_epoch=None) -> dict[str, list[float]]:
    """Fit ``model`` in place and return the per-epoch history (``loss``, metrics, ``val_*``).

    ``extra_validation`` (no arguments, returns ``{"val_...": value}``) is called after each epoch's validation
    with the model holding that epoch's weights; its values join the history (and may be the ``monitor``).
    ``on_epoch(epoch, logs)`` is called at the end of every epoch (0-based) with its logs; an exception it raises
    stops the fit (e.g. a search pruning a poor trial).

    A fit whose memory estimate (:mod:`ratecast.engine.footprint`) exceeds the memory available is refused before
    it starts. The engine comes from :func:`engine_for`; a ``distribution`` (``ratecast.distribution``) needs the
    compiled engine. Both run the same epoch loop (:func:`~ratecast.engine.epochs.run_epochs`): early stopping
    with the best validation epoch's weights kept, checkpoints written to and resumed from ``checkpoint_dir``.
    """
    engine = engine_for(cfg)
    devices = 1 if distribution is None else int(np.size(distribution.device_mesh.devices))
    check_training_memory(model, cfg, engine, len(y), 0 if validation is None else len(validation[1]), devices)
    if engine != "jax":
        cfg.refuse_table_rule(engine)  # an option this engine cannot honour is refused, never ignored
        if distribution is not None:
            raise ValueError(f"a distribution needs engine 'jax' (the JAX backend and optimizer adam, adagrad or "
                             f"sgd); this fit uses engine {engine!r}")
    with interrupts.deferred_interrupts():  # Ctrl-C stops the fit at the end of an epoch (see ratecast.interrupts)
        if engine == "jax":
            from .compiled import CompiledRunner

            runner = CompiledRunner(model, x, y, validation, cfg, seed, distribution)
            fingerprint = f"{fingerprint}:jax"
        else:
            from .keras_fit import KerasRunner

            runner = KerasRunner(model, x, y, validation, cfg, seed)
        return run_epochs(runner, cfg, validation=validation is not None, verbose=verbose,
                          checkpoint_dir=checkpoint_dir, fingerprint=fingerprint,
                          extra_validation=extra_validation, on_epoch=on_epoch)

"""The epoch loop over Keras ``fit`` (portable to every Keras backend; the lab's exact training), and
:func:`train`, which picks the engine for a training config."""

from __future__ import annotations

import math
import time
from pathlib import Path

import keras
import numpy as np

from .. import interrupts
from ..errors import TrainingError
from ..models import RatingModel, TrainingConfig
from . import checkpoint as ckpt
from .footprint import check_training_memory
from .progress import EpochProgress

OPTIMIZERS = {"adam": keras.optimizers.Adam, "adamw": keras.optimizers.AdamW, "sgd": keras.optimizers.SGD,
              "rmsprop": keras.optimizers.RMSprop, "adagrad": keras.optimizers.Adagrad}


class _Batches(keras.utils.PyDataset):
    """Mini-batches in one given order (a fresh seeded permutation per epoch; no global RNG)."""

    def __init__(self, x: dict, y: np.ndarray, batch_size: int, order: np.ndarray):
        super().__init__()
        self.x, self.y, self.batch_size, self.order = x, y, batch_size, order

    def __len__(self) -> int:
        return math.ceil(len(self.y) / self.batch_size)

    def __getitem__(self, i: int):
        idx = self.order[i * self.batch_size:(i + 1) * self.batch_size]
        return {k: v[idx] for k, v in self.x.items()}, self.y[idx]


def compile_model(model: RatingModel, optimizer: str, learning_rate: float) -> None:
    model.compile(optimizer=OPTIMIZERS[optimizer](learning_rate=float(learning_rate)), loss=model.training_loss(),
                  metrics=model.metric_names())


#: a training loss this many times the first epoch's is taken as divergence
DIVERGED = 1000.0


def check_loss(epoch: int, logs: dict[str, float], history: dict[str, list[float]], cfg: TrainingConfig) -> None:
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


def engine_for(cfg: TrainingConfig) -> str:
    """The engine a config trains with: ``jax`` (compiled, sparse updates) on the JAX backend for the optimizers it
    implements, else ``keras`` (Keras ``fit``)."""
    from .optim import ROW_OPTIMIZERS

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
    compiled engine; both keep the weights of the best validation epoch when early stopping is on, and both write
    and resume ``checkpoint_dir``.
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
            from .compiled import train as train_compiled

            return train_compiled(model, x, y, validation, cfg, seed=seed, verbose=verbose,
                                  checkpoint_dir=checkpoint_dir, fingerprint=f"{fingerprint}:jax",
                                  distribution=distribution, extra_validation=extra_validation, on_epoch=on_epoch)
        return train_keras(model, x, y, validation, cfg, seed=seed, verbose=verbose, checkpoint_dir=checkpoint_dir,
                           fingerprint=fingerprint, extra_validation=extra_validation, on_epoch=on_epoch)


def train_keras(model: RatingModel, x: dict[str, np.ndarray], y: np.ndarray,
                validation: tuple[dict, np.ndarray] | None, cfg: TrainingConfig, *, seed: int | None,
                verbose: bool = False, checkpoint_dir: str | Path | None = None,
                fingerprint: str = "", extra_validation=None, on_epoch=None) -> dict[str, list[float]]:
    """Fit ``model`` in place with Keras ``fit``, one epoch per call, and return the per-epoch history.

    Every option of ``cfg`` is honoured (the learning rate follows ``lr_schedule`` epoch by epoch) except the
    tables' own rule, which :func:`train` refuses. The model keeps the weights of the best validation epoch when
    early stopping is on. With ``checkpoint_dir``,
    the loop's state is written there after every epoch and a later call with the same ``fingerprint`` resumes it.
    """
    compile_model(model, cfg.optimizer, cfg.learning_rate)
    n = len(y)
    base_seed = 0 if seed is None else int(seed)
    progress, best = ckpt.Progress(fingerprint), None
    if checkpoint_dir is not None:
        found = ckpt.load(checkpoint_dir, fingerprint)
        if found is not None:
            progress, variables, opt_values, best = found
            for var, value in zip(model.variables, variables):
                var.assign(value)
            model.optimizer.build(model.trainable_variables)
            for var, value in zip(model.optimizer.variables, opt_values):
                var.assign(value)
            best = best or None
    watch = validation is not None and cfg.early_stopping is not None
    val_batch = max(cfg.batch_size, 4096)
    bar = EpochProgress(cfg.epochs, enabled=verbose, bars=False)  # Keras fit runs a whole epoch: a line each
    for epoch in range(progress.epoch, cfg.epochs):
        if watch and progress.wait >= cfg.early_stopping:
            break
        start = time.perf_counter()
        bar.start_epoch(epoch, 0)
        order = np.random.default_rng([base_seed, epoch]).permutation(n)
        model.optimizer.learning_rate.assign(cfg.epoch_learning_rate(epoch))  # the lr_schedule
        hist = model.fit(_Batches(x, y, cfg.batch_size, order), validation_data=validation, epochs=1, verbose=0,
                         shuffle=False, validation_batch_size=val_batch)
        # a NaN or infinite batch loss makes the epoch's mean loss non-finite: checked once per epoch, so training
        # never waits on the host between batches
        logs = {k: float(v[-1]) for k, v in hist.history.items()}
        logs.setdefault("loss", float("nan"))
        check_loss(epoch, logs, progress.history, cfg)
        if extra_validation is not None and validation is not None:
            logs.update(extra_validation())
        if progress.record(epoch, logs, watch, cfg.monitor):
            best = [np.array(v) for v in model.get_weights()]
        bar.end_epoch(logs, time.perf_counter() - start)
        if checkpoint_dir is not None:
            ckpt.save(checkpoint_dir, progress, [np.asarray(v) for v in model.variables],
                      [np.asarray(v) for v in model.optimizer.variables], best)
        if on_epoch is not None:
            on_epoch(epoch, dict(logs))
        interrupts.check_fit()
    if watch and best is not None:
        model.set_weights(best)
    return progress.history

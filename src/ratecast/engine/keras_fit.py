"""The Keras ``fit`` engine: one epoch per ``fit`` call, on every Keras backend (the lab's exact training). The
epochs themselves run in the one epoch loop (:func:`ratecast.engine.epochs.run_epochs`)."""

from __future__ import annotations

import math

import keras
import numpy as np

from ..models import RatingModel, TrainingConfig
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


class KerasRunner:
    """Epochs of Keras ``fit`` for :func:`~ratecast.engine.epochs.run_epochs`. Every option of ``cfg`` is honoured
    (the learning rate follows ``lr_schedule`` epoch by epoch) except the tables' own rule, which
    :func:`~ratecast.engine.training.train` refuses."""

    bars = False  # Keras fit runs a whole epoch: a line each

    def __init__(self, model: RatingModel, x: dict[str, np.ndarray], y: np.ndarray,
                 validation: tuple[dict, np.ndarray] | None, cfg: TrainingConfig, seed: int | None):
        compile_model(model, cfg.optimizer, cfg.learning_rate)
        self.model, self.x, self.y, self.validation, self.cfg = model, x, y, validation, cfg
        self.seed = 0 if seed is None else int(seed)
        self.steps_per_epoch = math.ceil(len(y) / cfg.batch_size)
        self._val_logs: dict[str, float] = {}

    def restore(self, variables: list[np.ndarray], optimizer: list[np.ndarray]) -> None:
        m = self.model
        for var, value in zip(m.variables, variables):
            var.assign(value)
        m.optimizer.build(m.trainable_variables)
        for var, value in zip(m.optimizer.variables, optimizer):
            var.assign(value)

    def train_epoch(self, epoch: int, learning_rate: float, progress: EpochProgress) -> dict[str, float]:
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.y))
        self.model.optimizer.learning_rate.assign(learning_rate)
        hist = self.model.fit(_Batches(self.x, self.y, self.cfg.batch_size, order), validation_data=self.validation,
                              epochs=1, verbose=0, shuffle=False,
                              validation_batch_size=max(self.cfg.batch_size, 4096))
        # a NaN or infinite batch loss makes the epoch's mean loss non-finite: checked once per epoch, so training
        # never waits on the host between batches
        logs = {k: float(v[-1]) for k, v in hist.history.items()}
        self._val_logs = {k: v for k, v in logs.items() if k.startswith("val_")}
        out = {k: v for k, v in logs.items() if not k.startswith("val_")}
        out.setdefault("loss", float("nan"))
        return out

    def validate(self) -> dict[str, float]:
        return dict(self._val_logs)  # computed by the epoch's fit call

    def sync(self) -> None:
        """Keras fit trains the model's own variables: nothing to write back."""

    def checkpoint_arrays(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        return ([np.asarray(v) for v in self.model.variables],
                [np.asarray(v) for v in self.model.optimizer.variables])

    def best_weights(self) -> list[np.ndarray]:
        return [np.array(v) for v in self.model.get_weights()]

    def set_weights(self, weights: list[np.ndarray]) -> None:
        self.model.set_weights(weights)

"""The classification model: a softmax over the rating scale's values (5 classes for 1-5 stars, 10 for half stars),
trained with sparse categorical cross-entropy; the rating is the median, the expectation or the mode."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import keras
import numpy as np
from keras import ops

from ..search_space import Choice, Float, Int
from .base import register
from .config import Loss
from .tower import TowerConfig, TowerModel


@dataclass(frozen=True)
class ClassificationConfig(TowerConfig):
    """Softmax over the rating values with sparse categorical cross-entropy."""

    name: ClassVar[str] = "classification"
    training: ClassVar[dict] = {"optimizer": "adam", "learning_rate": 1e-2, "batch_size": 1024, "epochs": 40}
    losses: ClassVar[tuple[str, ...]] = ("crossentropy",)
    search_space: ClassVar[dict] = {
        "embedding_dim": Int(8, 128, log=True), "hidden": Choice(((64,), (128,), (128, 64))),
        "dropout": Float(0.0, 0.7), "l2": Float(1e-7, 1e-3, log=True),
        "prediction": Choice(("median", "expected")), "learning_rate": Float(1e-3, 3e-2, log=True),
        "batch_size": Choice((512, 1024, 2048))}
    embedding_dim: int = 16
    min_support: int = 20  # lists: chosen on validation (benchmarks/topn.py --tune-support)
    loss: Loss = "crossentropy"
    # median of the predicted distribution minimises expected absolute error (chosen on validation MAE);
    # "expected" (sum p*r) minimises squared error; "argmax" is the most likely class
    prediction: Literal["median", "expected", "argmax"] = "median"


@register("classification", ClassificationConfig)
class ClassificationModel(TowerModel):
    """A distribution over the rating values for each (user, item) pair."""

    @property
    def n_classes(self) -> int:
        return self.scale.n_classes

    def make_head(self):
        return keras.layers.Dense(self.n_classes, activation="softmax", kernel_initializer=self._glorot(4),
                                  name="head")

    def head_output(self, out):
        return out

    @property
    def output_shape_tail(self) -> tuple[int, ...]:
        return (self.n_classes,)

    def targets(self, ratings: np.ndarray) -> np.ndarray:
        return self.scale.to_class(ratings)

    def training_loss(self):
        return "sparse_categorical_crossentropy"

    def metric_names(self) -> list[str]:
        return ["sparse_categorical_accuracy"]

    def _values(self):
        return ops.convert_to_tensor(self.scale.values.astype("float32"))

    def to_rating(self, outputs):
        p = ops.cast(outputs, "float32")
        values = self._values()
        rule = self.cfg.prediction
        if rule == "argmax":
            return ops.take(values, ops.argmax(p, axis=-1))
        if rule == "median":
            return ops.take(values, ops.argmax(ops.cast(ops.cumsum(p, axis=-1) >= 0.5, "int32"), axis=-1))
        return ops.sum(p * values, axis=-1)

    def ranking_key(self, outputs):
        """The rating by the prediction rule, ties broken by the expected rating (within half a step)."""
        s = self.scale
        expected = ops.sum(ops.cast(outputs, "float32") * self._values(), axis=-1)
        return self.to_rating(outputs) + 0.49 * s.step * (expected - s.minimum) / (s.maximum - s.minimum)

    def probabilities(self, outputs):
        return outputs

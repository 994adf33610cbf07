"""What a network's outputs mean: the estimator's side of a model, apart from the network that computes them.

An :class:`Outputs` rule says how ratings become training targets and a loss, how a pair's output becomes a rating
on the scale (:meth:`Outputs.to_rating`) and a ranking key (:meth:`Outputs.ranking_key`, which orders items as the
rating does and breaks its ties), the shape of one pair's output, and the class probabilities where the output is a
distribution. A model holds one (``model.output_rule``), made from its config and rating scale; every caller (the
engines, the scorer, fold-in, the estimator) reads outputs through it.

* :class:`RatingOutput`: one rating per pair (the dot, tower, baseline, hybrid and Bayesian models);
* :class:`CountOutput`: (rating, training popularity), lists by popularity (``popularity``);
* :class:`ClassOutput`: a distribution over the scale's values (``classification``);
* :class:`PickOutput`: (rating, log-probability of the pick, ranking key) (``implicit``).

Every method works on device arrays (``keras.ops``) and on NumPy arrays alike.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from ..datasets.scale import RatingScale

LOSSES = {"mae": "mean_absolute_error", "mse": "mean_squared_error", "huber": "huber"}


class Outputs:
    """The rule of a model that outputs one rating per pair (subclasses change what the output holds)."""

    #: shape of one pair's output: () for a rating
    shape: tuple[int, ...] = ()

    def __init__(self, scale: RatingScale, loss: str = "mse", name: str = "") -> None:
        self.scale, self.loss, self.name = scale, loss, name  # name: the model's, for messages

    def targets(self, ratings: np.ndarray) -> np.ndarray:
        """Training targets for ``ratings``."""
        return np.asarray(ratings, dtype="float32")

    def training_loss(self):
        """The Keras loss for :meth:`targets`."""
        return LOSSES[self.loss]

    def metric_names(self) -> list[str]:
        """Metrics the engines report per epoch beside the loss."""
        return ["mae"]

    def to_rating(self, outputs):
        """Ratings on the scale for outputs (clipped to it)."""
        return ops.clip(ops.cast(outputs, "float32"), self.scale.minimum, self.scale.maximum)

    def ranking_key(self, outputs):
        """A key that orders items as :meth:`to_rating` does and breaks its ties (e.g. clipped at the top)."""
        return ops.cast(outputs, "float32")

    def probabilities(self, outputs):
        """Probabilities over the scale's values, for outputs that are a distribution."""
        raise ValueError(f"model {self.name!r} predicts ratings, not class probabilities; predict_proba needs a "
                         "model with a distribution output (e.g. 'classification')")


RatingOutput = Outputs


class CountOutput(Outputs):
    """(rating, training popularity) per pair: lists rank by popularity, then by rating; the loss reads the
    rating."""

    shape = (2,)

    def to_rating(self, outputs):
        return super().to_rating(outputs[..., 0])

    def ranking_key(self, outputs):
        # a count, then the rating as a fraction below 1: equal counts are ordered by rating, never collapsed
        s = self.scale
        rating = ops.clip(ops.cast(outputs[..., 0], "float32"), s.minimum, s.maximum)
        return ops.cast(outputs[..., 1], "float32") + (rating - s.minimum) / (s.maximum - s.minimum + 1.0)

    def training_loss(self):
        fn = keras.losses.get(super().training_loss())

        def rating_loss(y_true, y_pred):
            return fn(ops.reshape(y_true, (-1, 1)), y_pred[..., :1])

        return rating_loss

    def metric_names(self) -> list[str]:
        return []


class ClassOutput(Outputs):
    """A distribution over the scale's values per pair, trained with sparse categorical cross-entropy; the rating is
    its median, its expectation or its mode (``prediction``)."""

    def __init__(self, scale: RatingScale, prediction: str = "median", name: str = "") -> None:
        super().__init__(scale, "crossentropy", name)
        self.prediction = prediction
        self.shape = (scale.n_classes,)

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
        if self.prediction == "argmax":
            return ops.take(values, ops.argmax(p, axis=-1))
        if self.prediction == "median":
            return ops.take(values, ops.argmax(ops.cast(ops.cumsum(p, axis=-1) >= 0.5, "int32"), axis=-1))
        return ops.sum(p * values, axis=-1)

    def ranking_key(self, outputs):
        """The rating by the prediction rule, ties broken by the expected rating (within half a step)."""
        s = self.scale
        expected = ops.sum(ops.cast(outputs, "float32") * self._values(), axis=-1)
        return self.to_rating(outputs) + 0.49 * s.step * (expected - s.minimum) / (s.maximum - s.minimum)

    def probabilities(self, outputs):
        return outputs


class PickOutput(Outputs):
    """(rating, log-probability that the user picks the item, ranking key) per pair. The loss is the squared rating
    error less ``weight`` times the pick's log-likelihood, pairs rated below ``liked`` weighing ``low``."""

    shape = (3,)

    def __init__(self, scale: RatingScale, liked: float, low: float, weight: float, name: str = "") -> None:
        super().__init__(scale, "mse", name)
        self.liked, self.low, self.weight = float(liked), float(low), float(weight)

    def to_rating(self, outputs):
        return super().to_rating(outputs[..., 0])

    def ranking_key(self, outputs):
        return ops.cast(outputs[..., 2], "float32")

    def training_loss(self):
        liked, low, weight = self.liked, self.low, self.weight

        def rating_and_pick_loss(y_true, y_pred):
            y = ops.reshape(ops.cast(y_true, "float32"), (-1,))
            w = ops.where(y >= liked - 1e-6, 1.0, low)
            return ops.square(y - y_pred[..., 0]) - weight * w * y_pred[..., 1]

        return rating_and_pick_loss

    def metric_names(self) -> list[str]:
        return []

"""Deep models: concatenated embeddings (plus metadata for the hybrid) through a dense tower."""

from __future__ import annotations

import keras
from keras import ops

from .base import RatingModel, register
from .layers import DenseTower


class _TowerModel(RatingModel):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        c = self.cfg
        self.tower = DenseTower(c.hidden, c.dropout, c.hidden_dropout, c.batch_norm, c.activation,
                                seed=self._seed(3), random_init=self.random_init, name="tower")
        self.head = self.make_head()

    def make_head(self):
        return keras.layers.Dense(
            1, kernel_initializer=self._glorot(4),
            bias_initializer=keras.initializers.Constant(self.global_mean), name="head",
        )

    def features(self, inputs):
        u, v = self.embed(inputs)
        return ops.concatenate([u, v], axis=-1)

    def score(self, inputs, training=None):
        h = self.tower(self.features(inputs), training=training)
        return ops.squeeze(self.head(h), -1)


@register("deep")
class DeepModel(_TowerModel):
    """The lab's corrected deep model: concat -> Dropout(0.5) -> Dense(64, relu) -> Dense(1)."""


@register("hybrid")
class HybridModel(_TowerModel):
    """The deep model with item and user metadata concatenated to the embeddings.

    While training, a ``cold_start_rate`` share of user and item ids is replaced by the unknown index 0, so the
    unknown rows learn an "average" vector and the tower learns to lean on metadata when ids are unknown.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.cold_seed = keras.random.SeedGenerator(self._seed(5))

    def score(self, inputs, training=None):
        rate = self.cfg.cold_start_rate
        if training and rate:
            inputs = dict(inputs)
            for key in ("user", "item"):
                ids = inputs[key]
                keep = keras.random.uniform(ops.shape(ids), seed=self.cold_seed) >= rate
                inputs[key] = ops.where(keep, ids, ops.zeros_like(ids))
        return super().score(inputs, training=training)

    def features(self, inputs):
        parts = [super().features(inputs)]
        if self.item_feature_dim:
            parts.append(ops.cast(inputs["item_features"], "float32"))
        if self.user_feature_dim:
            parts.append(ops.cast(inputs["user_features"], "float32"))
        return ops.concatenate(parts, axis=-1)


@register("classification")
class ClassificationModel(_TowerModel):
    """Softmax over the rating scale's values (5 classes for 1-5 stars, 10 for half stars)."""

    def make_head(self):
        if self.n_classes < 2:
            raise ValueError(f"n_classes must be >= 2 for the classification model, got {self.n_classes}")
        return keras.layers.Dense(
            self.n_classes, activation="softmax",
            kernel_initializer=self._glorot(4), name="head",
        )

    def score(self, inputs, training=None):
        return self.head(self.tower(self.features(inputs), training=training))

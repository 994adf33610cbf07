"""The dense-tower family: user parts and item parts concatenated, then a dense stack and a head.

Scoring every item for a batch of users splits the first dense layer by input side: its user part is computed once
per user and its item part once per item, so a (user, item) pair costs one addition before the rest of the tower.
This is exact at inference, where input dropout is off."""

from __future__ import annotations

from typing import Literal

import keras
from keras import ops

from .base import RatingModel
from .config import Flag, Fraction, ModelConfig, config, widths
from .layers import DenseTower, FastDropout


@config
class TowerConfig(ModelConfig):
    """Concatenated embeddings -> dropout -> dense stack -> head."""

    hidden: widths(65536) = (64,)
    dropout: Fraction = 0.5  # on the concatenated inputs
    hidden_dropout: Fraction = 0.0  # after each hidden layer
    batch_norm: Flag = False
    activation: Literal["relu", "gelu", "tanh", "silu"] = "relu"


class TowerModel(RatingModel):
    """Base of the tower models; subclasses choose the parts and the head."""

    known_row_tables = ("item_embedding",)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        c = self.cfg
        self.tower = DenseTower(c.hidden, c.dropout, c.hidden_dropout, c.batch_norm, c.activation,
                                seed=self.seed_for(3), random_init=self.random_init, name="tower")
        self.head = self.make_head()

    def make_head(self):
        return keras.layers.Dense(1, kernel_initializer=self._glorot(4),
                                  bias_initializer=keras.initializers.Constant(self.global_mean), name="head")

    # the inputs of the tower: user parts first, then item parts
    def user_parts(self, inputs, user_vectors) -> list:
        return [user_vectors]

    def item_parts(self, inputs, item_vectors) -> list:
        return [item_vectors]

    def tower_inputs(self, inputs):
        u, v = self.embed(inputs)
        return ops.concatenate(self.user_parts(inputs, u) + self.item_parts(inputs, v), axis=-1)

    def head_output(self, out):
        return ops.squeeze(out, -1)

    def score(self, inputs, training=None):
        return self.head_output(self.head(self.tower(self.tower_inputs(inputs), training=training)))

    @property
    def pair_cost(self) -> int:
        return max(self.cfg.hidden or (1,)) + super().pair_cost

    def score_items(self, users, user_features=None):
        n = self.n_items - 1
        uin = {"user": users}
        if user_features is not None:
            uin["user_features"] = user_features
        iin = {"item": ops.arange(1, n + 1, dtype="int32")}
        ux = ops.concatenate(self.user_parts(uin, ops.take(self.user_embedding.embeddings, users, axis=0)), -1)
        ix = ops.concatenate(self.item_parts(iin, self.known_rows(self.item_embedding.embeddings)), -1)
        layers = [layer for block in self.tower.blocks for layer in block] + [self.head]
        first, rest = layers[0], layers[1:]
        wu = ux.shape[-1]
        h = (ops.matmul(ux, first.kernel[:wu])[:, None, :]
             + (ops.matmul(ix, first.kernel[wu:]) + first.bias)[None, :, :])
        if first.activation is not None:
            h = first.activation(h)
        for layer in rest:
            h = layer(h, training=False) if isinstance(
                layer, (FastDropout, keras.layers.BatchNormalization)) else layer(h)
        return self.head_output(h)

"""The pick head, a part of model ``implicit``: which item a user picks, as logits over the whole catalogue,
``<rep_u, w_i> + c_i``, from a user representation ``rep_u`` that the model gives it."""

from __future__ import annotations

from typing import Any

import keras

from .layers import item_dots


class PickHead(keras.layers.Layer):
    """Item factors ``factors`` (n_items, dim) and biases ``bias`` (n_items, 1), row 0 for the unknown item; trained
    with the model (``init``: the factors' initialiser)."""

    def __init__(self, n_items: int, dim: int, init="zeros", **kwargs):
        super().__init__(**kwargs)
        self.factors = self.add_weight(shape=(n_items, dim), initializer=init, name="factors")
        self.bias = self.add_weight(shape=(n_items, 1), initializer="zeros", name="bias")
        self.built = True  # every weight is made here

    def logits(self, rep: Any) -> Any:
        """Logits over the known items (index 1..) for user representations ``rep`` (batch, dim):
        (batch, n_items - 1)."""
        return item_dots(rep, self.factors) + self.bias[None, 1:, 0]

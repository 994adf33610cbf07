"""Dot-product matrix factorisation (the lab's first model) and its biased variant."""

from __future__ import annotations

from keras import ops

from .base import RatingModel, register
from .layers import embedding


@register("dot")
class DotModel(RatingModel):
    """rating = <user vector, item vector> (+ the training mean when ``use_global_mean``)."""

    def score(self, inputs, training=None):
        u, v = self.embed(inputs)
        y = ops.sum(u * v, axis=-1)
        return y + self.global_mean if self.cfg.use_global_mean else y


@register("biased_dot")
class BiasedDotModel(RatingModel):
    """rating = global mean + user bias + item bias + <user vector, item vector>."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.user_bias = embedding(self.n_users, 1, "user_bias", None, zeros=True)
        self.item_bias = embedding(self.n_items, 1, "item_bias", None, zeros=True)

    def score(self, inputs, training=None):
        u, v = self.embed(inputs)
        bu = ops.squeeze(self.user_bias(inputs["user"]), -1)
        bi = ops.squeeze(self.item_bias(inputs["item"]), -1)
        if self.cfg.l2:
            self.add_loss(self.cfg.l2 * ops.mean(bu * bu + bi * bi))
        return self.global_mean + bu + bi + ops.sum(u * v, axis=-1)

"""Dot-product matrix factorisation (the lab's first model) and its biased variant."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from keras import ops

from ..search_space import Choice, Float, Int
from .base import RatingModel, register
from .config import Count, Flag, Loss, ModelConfig, NonNegative, config
from .layers import embedding, item_dots


@config
class DotConfig(ModelConfig):
    """User and item embeddings, dot product (the lab's first model)."""

    name: ClassVar[str] = "dot"
    # chosen on a validation split carved from ML-100k's lab training set (benchmarks/accuracy.py --tune)
    training: ClassVar[dict] = {"optimizer": "adam", "learning_rate": 1e-3, "batch_size": 1024, "epochs": 40}
    search_space: ClassVar[dict] = {
        "embedding_dim": Int(8, 256, log=True), "l2": Float(1e-7, 1e-2, log=True),
        "learning_rate": Float(3e-4, 1e-2, log=True), "batch_size": Choice((256, 512, 1024, 2048)),
        "use_global_mean": Choice((False, True))}
    min_support: Count = 20  # lists: chosen on validation (benchmarks/topn.py --tune-support)
    use_global_mean: Flag = False  # add the training mean (off: the lab's pure dot product validated better)


@config
class BiasedDotConfig(ModelConfig):
    """Biased matrix factorisation: global mean + user bias + item bias + dot product."""

    name: ClassVar[str] = "biased_dot"
    training: ClassVar[dict] = {"optimizer": "sgd", "learning_rate": 0.01, "batch_size": 1024, "epochs": 40}
    lab: ClassVar[dict] = {"l2": 1e-4}
    search_space: ClassVar[dict] = {
        "embedding_dim": Int(8, 256, log=True), "l2": Float(3e-3, 0.3, log=True),
        "learning_rate": Float(3e-3, 3e-2, log=True), "batch_size": Choice((256, 512, 1024))}
    loss: Loss = "mse"
    l2: NonNegative = 0.05  # per example and row: each occurrence of a row in a batch adds l2 * |row|^2
    min_support: Count = 20  # lists: chosen on validation (benchmarks/topn.py --tune-support)


@register("dot", DotConfig)
class DotModel(RatingModel):
    """rating = <user vector, item vector> (+ the training mean when ``use_global_mean``)."""

    def _offset(self) -> float:
        return self.global_mean if self.cfg.use_global_mean else 0.0

    def score(self, inputs, training=None):
        u, v = self.embed(inputs)
        return ops.sum(u * v, axis=-1) + self._offset()

    def item_product_table(self):
        """[item vector] (and a column of ones for the offset when ``use_global_mean``)."""
        V = self.known_rows(self.item_embedding.embeddings)
        if not self.cfg.use_global_mean:
            return V
        return ops.concatenate([V, ops.ones_like(V[:, :1])], axis=1)

    def user_product_rows(self, users, user_features=None):
        """[user vector] (and the offset when ``use_global_mean``)."""
        U = ops.take(self.user_embedding.embeddings, users, axis=0)
        if not self.cfg.use_global_mean:
            return U
        return ops.concatenate([U, ops.full_like(U[:, :1], self._offset())], axis=1)

    def score_items(self, users, user_features=None):
        U = ops.take(self.user_embedding.embeddings, users, axis=0)
        return item_dots(U, self.item_embedding.embeddings) + self._offset()

    def linear_tables(self) -> dict[str, np.ndarray]:
        users, items = self.table_rows(self.user_embedding), self.table_rows(self.item_embedding)
        return {"offset": np.asarray(self._offset(), "float32"), "user_bias": np.zeros(len(users), "float32"),
                "item_bias": np.zeros(len(items), "float32"), "user_factors": users, "item_factors": items}

    def fold_in_design(self, items, rows):
        X = np.asarray(self.item_embedding.embeddings)[items]
        return X, np.full(items.shape, self._offset(), "float64")


@register("biased_dot", BiasedDotConfig)
class BiasedDotModel(RatingModel):
    """rating = global mean + user bias + item bias + <user vector, item vector>."""

    user_layers = ("user_embedding", "user_bias")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.user_bias = embedding(self.n_users, 1, "user_bias", None, zeros=True)
        self.item_bias = embedding(self.n_items, 1, "item_bias", None, zeros=True)

    def offset(self):
        """The constant every rating starts from (the training mean)."""
        return self.global_mean

    def score(self, inputs, training=None):
        u, v = self.embed(inputs)
        bu = ops.squeeze(self.user_bias(inputs["user"]), -1)
        bi = ops.squeeze(self.item_bias(inputs["item"]), -1)
        if self.cfg.l2:
            self.add_loss(self.cfg.l2 * ops.mean(bu * bu + bi * bi))
        return self.offset() + bu + bi + ops.sum(u * v, axis=-1)

    def item_product_table(self):
        """[item vector, item bias, 1]: the biases are terms of the product."""
        bi = self.item_bias.embeddings[1:]
        return ops.concatenate([self.known_rows(self.item_embedding.embeddings), bi, ops.ones_like(bi)], axis=1)

    def user_product_rows(self, users, user_features=None):
        """[user vector, 1, mean + user bias]."""
        U = ops.take(self.user_embedding.embeddings, users, axis=0)
        bu = ops.take(self.user_bias.embeddings, users, axis=0)
        return ops.concatenate([U, ops.ones_like(bu), self.offset() + bu], axis=1)

    def score_items(self, users, user_features=None):
        U = ops.take(self.user_embedding.embeddings, users, axis=0)
        bu = ops.take(self.user_bias.embeddings[:, 0], users, axis=0)
        bi = self.item_bias.embeddings[1:, 0]
        dots = item_dots(U, self.item_embedding.embeddings)
        return self.offset() + bu[:, None] + bi[None, :] + dots

    def linear_tables(self) -> dict[str, np.ndarray]:
        """(A pair without a day: a subclass's day bias does not apply.)"""
        rows = self.table_rows
        return {"offset": np.asarray(self.offset(), "float32"), "user_bias": rows(self.user_bias)[:, 0],
                "item_bias": rows(self.item_bias)[:, 0], "user_factors": rows(self.user_embedding),
                "item_factors": rows(self.item_embedding)}

    def fold_in_design(self, items, rows):
        """theta = [user vector, user bias]: X = [item vector, 1], offset = mean + item bias."""
        X = np.asarray(self.item_embedding.embeddings)[items]
        offset = float(np.asarray(self.offset())) + np.asarray(self.item_bias.embeddings)[items, 0]
        return np.concatenate([X, np.ones((*items.shape, 1), X.dtype)], axis=-1), offset.astype("float64")

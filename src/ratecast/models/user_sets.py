"""Users' implicit item sets, a part of model ``implicit`` that its other parts read: each user's rated items as a
padded row of item indices with a weight per entry (:func:`padded_sets`), held on the device by the layer
:class:`UserSets`; a batch of them, as a part reads it, is a :class:`Chosen`."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import keras
import numpy as np
from keras import ops

from .layers import fast_uniform


def padded_sets(users: np.ndarray, items: np.ndarray, values: np.ndarray, n_users: int, width: int,
                seed: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Each user's distinct items as a row of ``width`` indices (0 = padding), with each item's value (the last one
    given for a repeated pair) beside it; a seeded sample of a user's items when there are more than ``width``."""
    users, items = np.asarray(users, "int64"), np.asarray(items, "int64")
    span = int(items.max(initial=0)) + 1
    keys = users * span + items
    last = len(keys) - 1 - np.unique(keys[::-1], return_index=True)[1]  # position of each pair's last occurrence
    order = last[np.random.default_rng(seed).permutation(len(last))]  # which items a capped user keeps
    order = order[np.argsort(users[order], kind="stable")]
    u, i, v = users[order], items[order], np.asarray(values)[order]
    rank = np.arange(len(u)) - np.searchsorted(u, u)
    keep = rank < width
    table = np.zeros((n_users, width), "int32")
    table[u[keep], rank[keep]] = i[keep]
    value = np.zeros((n_users, width), "float32")
    value[u[keep], rank[keep]] = v[keep]
    return table, value


@dataclasses.dataclass(frozen=True)
class Chosen:
    """A batch of users' weighted sets: ``sets`` and ``mask`` (batch, width; 0 at padding and at what training
    drops), the number of items kept per user (batch, 1), and, where the catalogue is small enough, the same as a
    dense (batch, items) matrix (None otherwise: products then read the rows of the user's items)."""

    sets: object
    mask: object
    count: object
    dense: object = None

    def times(self, table):
        """The weighted sets times ``table`` (items, k): (batch, k)."""
        if self.dense is not None:
            return ops.matmul(self.dense, table)
        return ops.einsum("bw,bwk->bk", self.mask, ops.take(table, self.sets, axis=0))

    def norm(self):
        """Each set's L2 norm (batch, 1), floored."""
        return ops.sqrt(ops.maximum(ops.sum(self.mask * self.mask, axis=1, keepdims=True), 1e-12))

    def value_of(self, items):
        """The weight of each of ``items`` (batch, k) in the user's set (0 where absent)."""
        hit = ops.cast(ops.expand_dims(self.sets, 1) == ops.expand_dims(ops.cast(items, "int32"), 2), "float32")
        return ops.sum(hit * ops.expand_dims(self.mask, 1), axis=-1)

    def matrix(self, n_items: int):
        """The weighted sets as a dense (batch, items) matrix."""
        if self.dense is not None:
            return self.dense
        b, width = ops.shape(self.sets)
        rows = ops.repeat(ops.arange(b, dtype="int32"), width)
        at = ops.stack([rows, ops.reshape(self.sets, (-1,))], axis=1)
        return ops.scatter(at, ops.reshape(self.mask, (-1,)), (b, n_items))


class UserSets(keras.layers.Layer):
    """Every user's padded set (``items``, int32) and its weights (``values``), ``(n_users, width)`` each, 0 at
    padding; not trained (filled from ratings by :meth:`fill`). ``seed``: of the dropout that training applies."""

    #: the variables with one row per user (a model holding the layer gives them new rows as users come)
    per_user: ClassVar[tuple[str, ...]] = ("items", "values")

    def __init__(self, n_users: int, width: int, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.items = self.add_weight(shape=(n_users, width), initializer="zeros", dtype="int32", trainable=False,
                                     name="items")
        self.values = self.add_weight(shape=(n_users, width), initializer="zeros", trainable=False, name="values")
        self.dropout_seed = keras.random.SeedGenerator(seed)
        self.built = True  # every weight is made here

    def fill(self, table: np.ndarray, value: np.ndarray) -> None:
        """Hold these padded sets and their weights (rows as :func:`padded_sets` makes them)."""
        self.items.assign(table)
        self.values.assign(value)

    def chosen(self, users: Any, leave_out: Any = None, dropout: float = 0.0, n_items: int | None = None) -> Chosen:
        """The sets of ``users``: while training, the pair's own item (``leave_out``, one per user) is left out
        and the rest dropped at random with probability ``dropout``. ``n_items``: also as a dense (batch, items)
        matrix (a matrix product then reads it, where a gather of (batch, width, k) rows and its scatter-add would
        move far more memory)."""
        sets = ops.take(self.items, users, axis=0)
        mask = ops.take(self.values, users, axis=0)  # 0 at padding
        if leave_out is not None:
            mask = mask * ops.cast(sets != ops.expand_dims(ops.cast(leave_out, "int32"), 1), "float32")
            if dropout:
                keep = fast_uniform(ops.shape(mask), self.dropout_seed) >= dropout
                mask = mask * ops.cast(keep, "float32")
        count = ops.sum(ops.cast(mask > 0, "float32"), axis=1, keepdims=True)
        chosen = Chosen(sets, mask, count)
        return chosen if n_items is None else Chosen(sets, mask, count, chosen.matrix(n_items))

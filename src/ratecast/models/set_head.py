"""The set head of model ``implicit`` (the layer :class:`SetHead`), a part fitted by a loop of its own: Mult-DAE
(Liang et al. 2018), which models each user's whole weighted item set at once, and its logits, which the network
reads when it scores."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from .layers import standardise
from .user_sets import Chosen


def fit_set_head(sets: np.ndarray, weights: np.ndarray, n_items: int, hidden: int, epochs: int, l2: float,
              dropout: float, seed: int | None, batch: int = 500, learning_rate: float = 1e-3) -> list[np.ndarray]:
    """Mult-DAE on the weighted sets: ``(W1, b1, W2, b2)`` of ``logits = tanh(norm(x) W1 + b1) W2 + b2``, trained
    (Adam) to maximise each user's multinomial log-likelihood of their weighted set from a dropout-corrupted copy of
    it, plus ``l2`` times the squared weights; one example per user, ``epochs`` passes in batches of users.

    No (users x items) matrix is built: the padded sets go to the device once, and each step builds its batch's
    dense rows there from them (batch x items floats) after dropping and normalising the set values. (A sparse
    first layer, a gather of W1's rows and a scatter back, ran 3x slower per step on CPU at ML-100k size: XLA's CPU
    scatter is far slower than its matrix product up to this head's 12000-item catalogues.)"""
    import jax
    import jax.numpy as jnp

    sets = np.asarray(sets, "int32")
    values = np.where(sets > 0, np.asarray(weights, "float32"), np.float32(0))
    users = np.flatnonzero(values.sum(axis=1) > 0)  # users with an empty set are no examples
    width = int(np.max(np.where(sets[users] > 0, np.arange(1, sets.shape[1] + 1), 0), initial=1))  # last entry
    S, V = jnp.asarray(sets[users, :width]), jnp.asarray(values[users, :width])
    rng = np.random.default_rng(seed)
    scale = lambda a, b: np.sqrt(2.0 / (a + b))  # Glorot
    params = [rng.normal(0, scale(n_items, hidden), (n_items, hidden)).astype("float32"),
              np.zeros(hidden, "float32"),
              rng.normal(0, scale(hidden, n_items), (hidden, n_items)).astype("float32"),
              np.zeros(n_items, "float32")]
    params = [jnp.asarray(p) for p in params]
    beta1, beta2 = 0.9, 0.999

    def loss(p, rows, key):
        s, v = S[rows], V[rows]  # the batch's sets, (batch, width); padding: item 0, value 0
        kept = v * jax.random.bernoulli(key, 1 - dropout, v.shape) / (1 - dropout) if dropout else v
        kept = kept / jnp.sqrt(jnp.maximum(jnp.sum(kept * kept, axis=1, keepdims=True), 1e-12))
        x = jnp.zeros((len(rows), n_items), "float32").at[jnp.arange(len(rows))[:, None], s].add(kept)
        log_p = jax.nn.log_softmax(jnp.tanh(x @ p[0] + p[1]) @ p[2] + p[3])
        return (-jnp.mean(jnp.sum(v * jnp.take_along_axis(log_p, s, axis=1), axis=1))
                + l2 * (jnp.sum(p[0] ** 2) + jnp.sum(p[2] ** 2)))

    @jax.jit
    def step(p, m, v, t, rows, key):
        g = jax.grad(loss)(p, rows, key)
        m = [beta1 * a + (1 - beta1) * b for a, b in zip(m, g)]
        v = [beta2 * a + (1 - beta2) * b * b for a, b in zip(v, g)]
        lr = learning_rate * jnp.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
        return [a - lr * mm / (jnp.sqrt(vv) + 1e-8) for a, mm, vv in zip(p, m, v)], m, v

    m = [jnp.zeros_like(p) for p in params]
    v = [jnp.zeros_like(p) for p in params]
    key = jax.random.PRNGKey(0 if seed is None else seed)
    t = 0
    n_batches = -(-len(users) // batch)
    batch = -(-len(users) // n_batches)  # equal batches (one compiled shape), the last one topped up at random
    for _ in range(epochs):
        order = rng.permutation(len(users)).astype("int32")
        order = np.concatenate([order, order[:n_batches * batch - len(users)]])
        for start in range(0, len(order), batch):
            t += 1
            key, sub = jax.random.split(key)
            params, m, v = step(params, m, v, float(t), order[start:start + batch], sub)
    return [np.asarray(p) for p in params]


def set_logits(p, x, backend):
    """The set head's logits for a (batch, items) matrix of weighted sets (``backend``: jax.numpy or keras.ops)."""
    norm = backend.sqrt(backend.maximum(backend.sum(x * x, axis=1, keepdims=True), 1e-12))
    return backend.matmul(backend.tanh(backend.matmul(x / norm, p[0]) + p[1]), p[2]) + p[3]


class SetHead(keras.layers.Layer):
    """``logits = tanh(norm(x) W1 + b1) W2 + b2`` over the catalogue for a user's weighted set ``x``: weights ``w1``
    (n_items, hidden), ``b1``, ``w2`` (hidden, n_items), ``b2``, and ``fitted`` (1 once :meth:`assign_fitted` has
    filled them, else 0: the head then has no share in a ranking and is not run). Not trained with the model."""

    def __init__(self, n_items: int, hidden: int, **kwargs):
        super().__init__(**kwargs)
        self.w1 = self.add_weight(shape=(n_items, hidden), initializer="zeros", trainable=False, name="w1")
        self.b1 = self.add_weight(shape=(hidden,), initializer="zeros", trainable=False, name="b1")
        self.w2 = self.add_weight(shape=(hidden, n_items), initializer="zeros", trainable=False, name="w2")
        self.b2 = self.add_weight(shape=(n_items,), initializer="zeros", trainable=False, name="b2")
        self.fitted = self.add_weight(shape=(), initializer="zeros", trainable=False, name="fitted")
        self.built = True  # every weight is made here

    def assign_fitted(self, params: list[np.ndarray]) -> None:
        """Hold fitted ``(W1, b1, W2, b2)`` (as :func:`fit_set_head` returns them) and mark the head fitted."""
        for variable, value in zip((self.w1, self.b1, self.w2, self.b2, self.fitted), [*params, np.float32(1)],
                                   strict=True):
            variable.assign(value)

    def logits(self, chosen: Chosen) -> Any:
        """The logits over the known items (index 1..) of the users' sets (a
        :class:`~ratecast.models.user_sets.Chosen`): (batch, n_items - 1)."""
        p = (self.w1, self.b1, self.w2, self.b2)
        if chosen.dense is not None:
            return set_logits(p, chosen.dense, ops)[:, 1:]
        hidden = ops.tanh(chosen.times(self.w1) / chosen.norm() + self.b1)
        return (ops.matmul(hidden, self.w2) + self.b2)[:, 1:]

    def term(self, chosen: Chosen, at: Any = None) -> Any:
        """The logits standardised over the user's known items, for all of them or those at positions ``at``
        (batch, k). Zeros until the head is fitted, the head not run: a run-time branch on ``fitted`` (one branch
        runs), so what reads the model before the head is fitted (e.g. validation while training) skips it."""
        def head():
            row = self.logits(chosen)
            picked = row if at is None else ops.take_along_axis(row, at, 1)
            return standardise(picked, ops.mean(row, axis=-1, keepdims=True), ops.std(row, axis=-1, keepdims=True))

        width = ops.shape(self.b2)[0] - 1 if at is None else ops.shape(at)[1]
        return ops.cond(self.fitted > 0, head, lambda: ops.zeros((ops.shape(chosen.sets)[0], width), "float32"))

"""Fast inference for a fitted rating model: one compiled function from (user, item) indices to outputs.

On the JAX backend it is ``jax.jit``-compiled. For the tower models (deep, hybrid, classification) the first dense
layer is split by input: its user part (user embedding and user metadata) and item part (item embedding and item
metadata) are computed once per user and once per item, so scoring a (user, item) pair costs one addition before
the rest of the tower; exact at inference, where input dropout is off. Other backends use ``predict_on_batch``.
"""

from __future__ import annotations

from typing import Callable

import keras
import numpy as np

Scorer = Callable[[np.ndarray, np.ndarray], np.ndarray]


def make_scorer(model: keras.Model, item_table: np.ndarray, user_table: np.ndarray) -> Scorer:
    has_items, has_users = item_table.shape[1] > 0, user_table.shape[1] > 0

    if keras.backend.backend() != "jax":
        def score(u, i):
            x = {"user": u, "item": i}
            if has_items:
                x["item_features"] = item_table[i]
            if has_users:
                x["user_features"] = user_table[u]
            return np.asarray(model.predict_on_batch(x))

        return score

    import jax
    import jax.numpy as jnp

    tower = getattr(model, "tower", None)
    if tower is not None and tower.blocks:
        return _factorised_tower_scorer(model, jnp.asarray(item_table), jnp.asarray(user_table))

    it, ut = jnp.asarray(item_table), jnp.asarray(user_table)

    @jax.jit
    def _run(trainable, non_trainable, u, i):
        x = {"user": u, "item": i}
        if has_items:
            x["item_features"] = it[i]
        if has_users:
            x["user_features"] = ut[u]
        out, _ = model.stateless_call(trainable, non_trainable, x, training=False)
        return out

    # the weights are read once: a scorer belongs to one fitted state (the estimator makes a new one after any change)
    tv = [v.value for v in model.trainable_variables]
    ntv = [v.value for v in model.non_trainable_variables]

    def score(u, i):
        return np.asarray(_run(tv, ntv, u, i))

    return score


def _factorised_tower_scorer(model, item_table, user_table) -> Scorer:
    import jax
    import jax.numpy as jnp

    d = model.cfg.embedding_dim
    first = model.tower.blocks[0][0]
    W, b = jnp.asarray(first.kernel.value), jnp.asarray(first.bias.value)
    U = jnp.asarray(model.user_embedding.embeddings.value)
    V = jnp.asarray(model.item_embedding.embeddings.value)
    fi, fu = item_table.shape[1], user_table.shape[1]
    # input order in the model: [user emb (d), item emb (d), item features (fi), user features (fu)]
    user_part = U @ W[:d] + user_table @ W[2 * d + fi:2 * d + fi + fu]
    item_part = V @ W[d:2 * d] + item_table @ W[2 * d:2 * d + fi] + b
    rest = [model.tower.blocks[0][1:]] + [block for block in model.tower.blocks[1:]]

    @jax.jit
    def _run(u, i):
        h = user_part[u] + item_part[i]
        for block in rest:
            for layer in block:
                h = layer(h, training=False) if isinstance(
                    layer, (keras.layers.Dropout, keras.layers.BatchNormalization)) else layer(h)
        out = model.head(h)
        return out if model.n_classes else jnp.squeeze(out, -1)

    def score(u, i):
        return np.asarray(_run(u, i))

    return score

"""The memory a fit needs, estimated from the built model and the training config before the first step, and
checked against the memory available (:func:`ratecast.memory.require`).

The estimate counts, in the variables' own dtypes:

* the weights, held three times by the compiled engine (the Keras model, the training state, the best epoch's
  copy) and twice by Keras ``fit`` (the model and the best copy);
* the optimizer's slots: two per weight for ``adam``/``adamw``, one for ``rmsprop``/``adagrad``, none for
  ``sgd``; on the compiled engine the tables take their own rule (row-wise ``adagrad``: one number per row);
* the training pairs, on the host and on the device;
* the intermediates of one batch (three times its activations: the forward values, their gradients and the
  update's temporaries) and of one validation chunk (twice its activations). A pair's activations are the
  row-table widths it looks up (one row per user or item table) plus the inputs and outputs of every other matrix
  (a dense layer's kernel), a bound that follows ``embedding_dim``, ``hidden`` and ``batch_size``.
"""

from __future__ import annotations

import math

import numpy as np

from .. import memory
from ..models import RatingModel, TrainingConfig

#: slots per weight of each optimizer
SLOTS = {"adam": 2, "adamw": 2, "rmsprop": 1, "adagrad": 1, "sgd": 0}
#: rows of validation pairs the compiled engine evaluates at once
EVALUATION_CHUNK = 65536


def _bytes(v) -> int:
    return math.prod(v.shape) * np.dtype(v.dtype).itemsize


def training_bytes(model: RatingModel, cfg: TrainingConfig, engine: str, n_train: int, n_validation: int) -> int:
    """Bytes a fit of the built ``model`` with ``cfg`` on ``engine`` (``jax`` or ``keras``) needs at its peak."""
    rows = {model.n_users, model.n_items}
    weights = sum(_bytes(v) for v in model.variables)
    per_pair = 0  # floats of activation per (user, item) pair
    slots = 0
    table_rule = cfg.optimizer if engine != "jax" or cfg.table_optimizer == "same" else cfg.table_optimizer
    for v in model.trainable_variables:
        is_table = len(v.shape) == 2 and v.shape[0] in rows
        rule = table_rule if is_table else cfg.optimizer
        if is_table and engine == "jax" and rule == "adagrad":  # row-wise: one accumulator per row
            slots += v.shape[0] * np.dtype(v.dtype).itemsize
        else:
            slots += SLOTS[rule] * _bytes(v)
    for v in model.variables:
        if len(v.shape) == 2:
            per_pair += v.shape[1] if v.shape[0] in rows else v.shape[0] + v.shape[1]
    copies = 3 if engine == "jax" else 2
    data = 2 * n_train * 3 * 4  # user, item, rating as 4 bytes each, host and device
    batch = min(cfg.batch_size, max(n_train, 1))
    chunk = min(EVALUATION_CHUNK if engine == "jax" else max(cfg.batch_size, 4096), n_validation)
    activations = 4 * per_pair * (3 * batch + 2 * chunk)
    return int(copies * weights + slots + data + activations)


def check_training_memory(model: RatingModel, cfg: TrainingConfig, engine: str, n_train: int,
                          n_validation: int) -> None:
    """Refuse, in one line, a fit whose :func:`training_bytes` exceed the memory available."""
    needed = training_bytes(model, cfg, engine, n_train, n_validation)
    options = f"embedding_dim={model.cfg.embedding_dim}"
    if getattr(model.cfg, "hidden", None):
        options += f", hidden={list(model.cfg.hidden)}"
    memory.require(needed, f"training {model.cfg.name!r} with {options}, batch_size={cfg.batch_size} on "
                           f"{n_train:,} ratings ({model.n_users - 1:,} users, {model.n_items - 1:,} items)",
                   "lower embedding_dim (or hidden, batch_size), or train on a machine with more memory")

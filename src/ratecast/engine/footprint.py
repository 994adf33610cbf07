"""The memory a fit needs, estimated from the built model and the training config before the first step, and
checked against the memory available (:mod:`ratecast.memory`).

The estimate counts, in the variables' own dtypes:

* the weights, held three times by the compiled engine (the Keras model, the training state, the best epoch's
  copy) and twice by Keras ``fit`` (the model and the best copy);
* the optimizer's slots: two per weight for ``adam``/``adamw``, one for ``rmsprop``/``adagrad``, none for
  ``sgd``; on the compiled engine the tables take their own rule (row-wise ``adagrad``: one number per row);
* the training pairs, on the host and on the device;
* the intermediates of one training batch and of one chunk of pairs scored after it (a validation chunk, or the
  :func:`ratecast.ranking.pair_chunk` pairs of a prediction, counted no larger than the training set), whichever
  is larger.

A pair's intermediates are first bounded from the weights' shapes (:func:`pair_floats`: the row-table widths it
looks up plus the inputs and outputs of every other matrix, three copies while training and two while scoring).
Only where that bound does not fit are they measured (:func:`measured_pair_bytes`, XLA's own memory analysis of the
model's compiled forward and gradient), so a model whose weights overstate its pairs' needs is not refused.
"""

from __future__ import annotations

import math

import numpy as np

from .. import memory
from ..models import RatingModel, TrainingConfig
from ..ranking import pair_chunk

#: slots per weight of each optimizer
SLOTS = {"adam": 2, "adamw": 2, "rmsprop": 1, "adagrad": 1, "sgd": 0}
#: rows of validation pairs the compiled engine evaluates at once
EVALUATION_CHUNK = 65536


def _bytes(v) -> int:
    return math.prod(v.shape) * np.dtype(v.dtype).itemsize


def pair_floats(model: RatingModel) -> int:
    """A bound on the floats one (user, item) pair's forward pass holds, from the weights' shapes: the width of
    every table with one row per user or item, and the inputs and outputs of every other matrix."""
    rows = {model.n_users, model.n_items}
    return sum(v.shape[1] if v.shape[0] in rows else v.shape[0] + v.shape[1]
               for v in model.variables if len(v.shape) == 2)


def measured_pair_bytes(model: RatingModel) -> tuple[int, int] | None:
    """(training, scoring) bytes per pair by XLA's memory analysis of the model's compiled gradient and forward
    pass at two batch sizes (their difference, so temporaries of fixed size are not counted per pair), or None
    where the analysis is not available (another backend)."""
    try:
        import jax
        import jax.numpy as jnp

        trainable = [v.value for v in model.trainable_variables]
        fixed = [v.value for v in model.non_trainable_variables]

        def forward(tv, x):
            return model.stateless_call(tv, fixed, x, training=False)[0]

        def gradient(tv, x):
            return jax.grad(lambda w: jnp.sum(jnp.asarray(model.stateless_call(w, fixed, x, training=True)[0],
                                                          "float32")))(tv)

        per_pair = []
        for fn in (gradient, forward):
            sizes = []
            for n in (256, 512):
                stats = jax.jit(fn).lower(trainable, model.dummy_inputs(n)).compile().memory_analysis()
                sizes.append(stats.temp_size_in_bytes + stats.output_size_in_bytes)
            per_pair.append(max(1, (sizes[1] - sizes[0]) // 256))
        return per_pair[0], per_pair[1]
    except Exception:  # no analysis on this backend or model: keep the bound
        return None


def training_bytes(model: RatingModel, cfg: TrainingConfig, engine: str, n_train: int, n_validation: int,
                   pair_bytes: tuple[int, int] | None = None) -> int:
    """Bytes a fit of the built ``model`` with ``cfg`` on ``engine`` (``jax`` or ``keras``) needs at its peak;
    ``pair_bytes`` (training, scoring) per pair, else the bound of :func:`pair_floats`."""
    rows = {model.n_users, model.n_items}
    weights = sum(_bytes(v) for v in model.variables)
    slots = 0
    table_rule = cfg.optimizer if engine != "jax" or cfg.table_optimizer == "same" else cfg.table_optimizer
    for v in model.trainable_variables:
        is_table = len(v.shape) == 2 and v.shape[0] in rows
        rule = table_rule if is_table else cfg.optimizer
        if is_table and engine == "jax" and rule == "adagrad":  # row-wise: one accumulator per row
            slots += v.shape[0] * np.dtype(v.dtype).itemsize
        else:
            slots += SLOTS[rule] * _bytes(v)
    if pair_bytes is None:
        floats = pair_floats(model)
        pair_bytes = (3 * 4 * floats, 2 * 4 * floats)
    copies = 3 if engine == "jax" else 2
    data = 2 * n_train * 3 * 4  # user, item, rating as 4 bytes each, host and device
    batch = min(cfg.batch_size, max(n_train, 1))
    largest = pair_chunk(model)  # pairs scored at once: fewer for models with whole-catalogue rows per pair
    validation_chunk = min(EVALUATION_CHUNK if engine == "jax" else max(cfg.batch_size, 4096), n_validation, largest)
    chunk = max(validation_chunk, min(largest, n_train))  # predictions: a test set is counted as large as train
    return int(copies * weights + slots + data + max(pair_bytes[0] * batch, pair_bytes[1] * chunk))


def check_training_memory(model: RatingModel, cfg: TrainingConfig, engine: str, n_train: int,
                          n_validation: int, devices: int = 1) -> None:
    """Refuse, in one line, a fit whose :func:`training_bytes` exceed the memory available (on accelerators,
    ``devices`` of them share the work)."""
    free = memory.available(devices)
    if free is None:
        return
    needed = training_bytes(model, cfg, engine, n_train, n_validation)
    if needed > free:
        measured = measured_pair_bytes(model)
        if measured is not None:
            needed = training_bytes(model, cfg, engine, n_train, n_validation, measured)
    options = f"embedding_dim={model.cfg.embedding_dim}"
    if getattr(model.cfg, "hidden", None):
        options += f", hidden={list(model.cfg.hidden)}"
    memory.require(needed, f"training {model.cfg.name!r} with {options}, batch_size={cfg.batch_size} on "
                           f"{n_train:,} ratings ({model.n_users - 1:,} users, {model.n_items - 1:,} items)",
                   "lower embedding_dim (or hidden, batch_size), or train on a machine with more memory", devices)

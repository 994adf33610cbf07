"""The compiled training engine for the JAX backend.

Each epoch runs as compiled code (``jax.lax.fori_loop`` over the batches) on device-resident data; the host only
starts an epoch (or a slice of one, to move a progress bar) and reads its mean loss. The model stays a Keras model:
a step calls it through ``stateless_call``.

Sparse updates: for every :class:`~ratecast.models.layers.RowTable` (one row per user or item), a step gathers the
rows of its batch's ids (and the unknown row 0, which a model may substitute for any id), differentiates with
respect to those rows only, and hands each occurrence's gradient to the optimizer's sparse rule
(:meth:`~ratecast.engine.optim.Update.apply_rows`), which writes back only those rows. Dense weights (towers,
heads) get the same optimizer's whole-weight rule.

Batches: the ``n`` training rows are laid out as ``B`` columns of ``nb = ceil(n / B)`` consecutive rows (the last
column wraps to the start). Batch ``t`` of an epoch takes one row of every column: row ``(order[t] + offset[j]) mod
nb`` of column ``j``, with ``order`` a seeded permutation of the batches and ``offset`` seeded per column and
epoch. Every row is visited once per epoch, batches are mixed anew every epoch, and no O(n) shuffle is made.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import keras
import numpy as np

from ..errors import TrainingError
from ..models import RatingModel, TrainingConfig
from ..models.layers import RowTable, row_override
from . import checkpoint as ckpt
from .optim import Update
from .progress import EpochProgress

METRIC_ALIASES = {"mae": "mean_absolute_error", "mse": "mean_squared_error"}


def _metric_function(name: str):
    fn = getattr(keras.metrics, METRIC_ALIASES.get(name, name), None)
    if not callable(fn) or isinstance(fn, type):
        raise ValueError(f"metric {name!r} has no function form for the compiled engine")
    return fn


def row_tables(model: keras.Model) -> list[RowTable]:
    """The model's trainable per-user and per-item tables."""
    return [layer for layer in model._flatten_layers(include_self=False, recursive=True)
            if isinstance(layer, RowTable) and layer.trainable]


@dataclass
class _Layout:
    """Positions of the tables and dense weights among the model's trainable variables."""

    tables: list[RowTable]
    table_pos: list[int]
    dense_pos: list[int]
    rows: list[int]  # rows of each table

    @classmethod
    def of(cls, model: keras.Model) -> "_Layout":
        tv = model.trainable_variables
        tables = row_tables(model)
        table_pos = [next(k for k, v in enumerate(tv) if v is t.embeddings) for t in tables]
        dense_pos = [k for k in range(len(tv)) if k not in table_pos]
        return cls(tables, table_pos, dense_pos, [int(t.embeddings.shape[0]) for t in tables])


class CompiledTrainer:
    """Trains one model with one training config; :meth:`fit` returns the per-epoch history."""

    def __init__(self, model: RatingModel, cfg: TrainingConfig, n: int):
        self.model, self.cfg, self.n = model, cfg, int(n)
        self.layout = _Layout.of(model)
        self.rule = Update(cfg.optimizer)
        self.batch = min(int(cfg.batch_size), self.n)
        self.n_batches = math.ceil(self.n / self.batch)
        self.loss_fn = keras.losses.get(model.training_loss())
        self.metric_names = list(model.metric_names())
        self.metric_fns = [_metric_function(m) for m in self.metric_names]
        self._run = jax.jit(self._run_batches, donate_argnums=(0,))
        self._eval = jax.jit(self._evaluate_chunk)

    # --- state ------------------------------------------------------------------------------------------------
    def initial_state(self) -> dict[str, Any]:
        m, lay = self.model, self.layout
        tv = [jnp.array(v.value) for v in m.trainable_variables]  # copies: the state is donated to each call
        dense = [tv[k] for k in lay.dense_pos]
        tables = [tv[k] for k in lay.table_pos]
        maps = {t.key: jnp.zeros((rows,), "int32") for t, rows in zip(lay.tables, lay.rows)} \
            if self.rule.needs_row_map else {}
        return {"dense": dense, "tables": tables,
                "dense_slots": [self.rule.slots(p) for p in dense],
                "table_slots": [self.rule.table_slots(p) for p in tables],
                "ntv": [jnp.array(v.value) for v in m.non_trainable_variables],
                "row_maps": maps, "step": jnp.zeros((), "int32")}

    def trainable_values(self, state) -> list:
        values: list = [None] * len(self.model.trainable_variables)
        for k, v in zip(self.layout.dense_pos, state["dense"]):
            values[k] = v
        for k, v in zip(self.layout.table_pos, state["tables"]):
            values[k] = v
        return values

    def write_back(self, state) -> None:
        """Assign the state's weights to the model's variables."""
        for var, value in zip(self.model.trainable_variables, self.trainable_values(state)):
            var.assign(value)
        for var, value in zip(self.model.non_trainable_variables, state["ntv"]):
            var.assign(value)

    def state_arrays(self, state) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """(weights, optimizer state) as host copies, for checkpoints."""
        weights = [np.array(v) for v in self.trainable_values(state)] + [np.array(v) for v in state["ntv"]]
        opt = [np.array(s) for slots in state["dense_slots"] + state["table_slots"] for s in slots]
        return weights, opt + [np.array(state["step"])]

    def state_from_arrays(self, weights: list[np.ndarray], opt: list[np.ndarray]) -> dict[str, Any]:
        state = self.initial_state()
        n_tv = len(self.model.trainable_variables)
        tv, ntv = weights[:n_tv], weights[n_tv:]
        state["dense"] = [jnp.asarray(tv[k]) for k in self.layout.dense_pos]
        state["tables"] = [jnp.asarray(tv[k]) for k in self.layout.table_pos]
        state["ntv"] = [jnp.asarray(v) for v in ntv]
        it = iter(opt[:-1])
        for key in ("dense_slots", "table_slots"):
            state[key] = [tuple(jnp.asarray(next(it)) for _ in slots) for slots in state[key]]
        state["step"] = jnp.asarray(opt[-1], "int32")
        return state

    # --- one step ---------------------------------------------------------------------------------------------
    def _step(self, state, x: dict, y, lr):
        lay, model = self.layout, self.model
        ids = {t.key: x[t.key].astype("int32") for t in lay.tables}
        subs = [tab.at[ids[t.key]].get(mode="fill", fill_value=0) for t, tab in zip(lay.tables, state["tables"])]
        unknown = [tab[:1] for tab in state["tables"]]

        def objective(dense, subs, unknown):
            values: list = [None] * len(model.trainable_variables)
            for k, v in zip(lay.dense_pos, dense):
                values[k] = v
            for k, v in zip(lay.table_pos, state["tables"]):
                values[k] = v  # present for the call; the lookups read ``subs`` and ``unknown``
            with row_override({id(t): (ids[t.key], s, u) for t, s, u in zip(lay.tables, subs, unknown)}):
                out, ntv, losses = model.stateless_call(values, state["ntv"], x, training=True, return_losses=True)
            data_loss = jnp.mean(self.loss_fn(y, out))
            return data_loss + sum(losses, jnp.zeros(())), (out, ntv)

        (loss, (out, ntv)), (g_dense, g_subs, g_unknown) = jax.value_and_grad(
            objective, argnums=(0, 1, 2), has_aux=True)(state["dense"], subs, unknown)
        step = state["step"] + 1
        dense, dense_slots = [], []
        for p, g, s in zip(state["dense"], g_dense, state["dense_slots"]):
            p, s = self.rule.apply(p, g, s, step, lr)
            dense.append(p)
            dense_slots.append(s)
        tables, table_slots, maps = [], [], dict(state["row_maps"])
        for t, tab, g, g0, slots in zip(lay.tables, state["tables"], g_subs, g_unknown, state["table_slots"]):
            all_ids = jnp.concatenate([jnp.zeros((1,), "int32"), ids[t.key]])
            # per-example gradients (the loss is a batch mean): a row's step does not depend on the batch size
            grads = jnp.concatenate([g0, g]) * self.batch
            tab, slots, maps[t.key] = self.rule.apply_rows(tab, slots, all_ids, grads, step, lr, maps.get(t.key))
            tables.append(tab)
            table_slots.append(slots)
        metrics = [jnp.mean(fn(y, out)) for fn in self.metric_fns]
        new_state = {"dense": dense, "tables": tables, "dense_slots": dense_slots, "table_slots": table_slots,
                     "ntv": ntv, "row_maps": {k: v for k, v in maps.items() if v is not None}, "step": step}
        return new_state, jnp.stack([loss, *metrics])

    # --- a slice of an epoch ------------------------------------------------------------------------------------
    def _run_batches(self, state, data, order, offsets, start, stop, lr):
        n, nb, b = self.n, self.n_batches, self.batch
        columns = jnp.arange(b, dtype="int32") * nb

        def body(t, carry):
            state, sums = carry
            pos = columns + (order[t] + offsets) % nb
            idx = jnp.where(pos >= n, pos - n, pos)
            x = {k: v[idx] for k, v in data["x"].items()}
            state, values = self._step(state, x, data["y"][idx], lr)
            return state, sums + values

        zeros = jnp.zeros((1 + len(self.metric_fns),), "float32")
        return jax.lax.fori_loop(start, stop, body, (state, zeros))

    def _evaluate_chunk(self, state, x, y, mask):
        out, _ = self.model.stateless_call(self.trainable_values(state), state["ntv"], x, training=False)
        w = mask.astype("float32")
        values = [self.loss_fn(y, out)] + [fn(y, out) for fn in self.metric_fns]
        return jnp.stack([jnp.sum(jnp.reshape(v, (-1,)) * w) for v in values])

    def evaluate(self, state, x: dict[str, np.ndarray], y: np.ndarray, chunk: int = 65536) -> dict[str, float]:
        """Mean loss and metrics over (x, y), in fixed-size chunks (one compile)."""
        n = len(y)
        size = min(chunk, n)
        sums = np.zeros(1 + len(self.metric_fns))
        for start in range(0, n, size):
            sl = slice(start, start + size)
            k = len(y[sl])
            pad = size - k
            xb = {key: np.pad(v[sl], (0, pad)) for key, v in x.items()}
            yb = np.pad(y[sl], [(0, pad)] + [(0, 0)] * (y.ndim - 1))
            sums += np.asarray(self._eval(state, xb, yb, np.arange(size) < k), dtype="float64")
        names = ["loss", *self.metric_names]
        return {name: float(v / n) for name, v in zip(names, sums)}

    # --- epochs -----------------------------------------------------------------------------------------------
    def epoch_plan(self, seed: int, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([seed, epoch])
        order = rng.permutation(self.n_batches).astype("int32")
        offsets = rng.integers(0, self.n_batches, size=self.batch, dtype=np.int64).astype("int32")
        return order, offsets

    def run_epoch(self, state, data, seed: int, epoch: int, lr: float, progress: EpochProgress):
        order, offsets = self.epoch_plan(seed, epoch)
        slices = progress.slices(self.n_batches)
        sums = np.zeros(1 + len(self.metric_fns))
        lr = jnp.asarray(lr, "float32")
        for start, stop in slices:
            state, part = self._run(state, data, order, offsets, jnp.int32(start), jnp.int32(stop), lr)
            sums += np.asarray(part, dtype="float64")
            progress.advance(stop - start)
        names = ["loss", *self.metric_names]
        return state, {name: float(v / self.n_batches) for name, v in zip(names, sums)}


def learning_rate(cfg: TrainingConfig, epoch: int) -> float:
    """The learning rate of ``epoch`` (0-based) under the config's schedule."""
    if cfg.lr_schedule == "cosine" and cfg.epochs > 1:
        return cfg.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * epoch / (cfg.epochs - 1))))
    return cfg.learning_rate


def train(model: RatingModel, x: dict[str, np.ndarray], y: np.ndarray, validation: tuple[dict, np.ndarray] | None,
          cfg: TrainingConfig, *, seed: int | None, verbose: bool = False, checkpoint_dir: str | Path | None = None,
          fingerprint: str = "") -> dict[str, list[float]]:
    """Fit ``model`` in place with the compiled engine; same contract as :func:`ratecast.engine.loop.train`."""
    from .loop import check_loss

    trainer = CompiledTrainer(model, cfg, len(y))
    base_seed = 0 if seed is None else int(seed)
    progress_state, best = ckpt.Progress(fingerprint), None
    state = None
    if checkpoint_dir is not None:
        found = ckpt.load(checkpoint_dir, fingerprint)
        if found is not None:
            progress_state, weights, opt, best = found
            state = trainer.state_from_arrays(weights, opt)
            best = best or None
    if state is None:
        state = trainer.initial_state()
    data = {"x": {k: jnp.asarray(v, "int32") for k, v in x.items()}, "y": jnp.asarray(y)}
    watch = validation is not None and cfg.early_stopping is not None
    bar = EpochProgress(cfg.epochs, enabled=verbose)
    try:
        for epoch in range(progress_state.epoch, cfg.epochs):
            if watch and progress_state.wait >= cfg.early_stopping:
                break
            start = time.perf_counter()
            bar.start_epoch(epoch, trainer.n_batches)
            state, logs = trainer.run_epoch(state, data, base_seed, epoch, learning_rate(cfg, epoch), bar)
            check_loss(epoch, logs, progress_state.history, cfg)
            if validation is not None:
                val = trainer.evaluate(state, validation[0], validation[1])
                logs.update({f"val_{k}": v for k, v in val.items()})
                check_loss(epoch, {"val_loss": logs["val_loss"]}, {}, cfg)
            for k, v in logs.items():
                progress_state.history.setdefault(k, []).append(v)
            progress_state.epoch = epoch + 1
            if watch:
                if progress_state.best_loss is None or logs["val_loss"] < progress_state.best_loss:
                    progress_state.best_loss, progress_state.best_epoch = logs["val_loss"], epoch + 1
                    progress_state.wait = 0
                    best = trainer.state_arrays(state)[0]
                else:
                    progress_state.wait += 1
            bar.end_epoch(logs, time.perf_counter() - start)
            if checkpoint_dir is not None:
                weights, opt = trainer.state_arrays(state)
                ckpt.save(checkpoint_dir, progress_state, weights, opt, best)
    finally:
        bar.close()
    trainer.write_back(state)
    if watch and best is not None:
        for var, value in zip(model.trainable_variables + model.non_trainable_variables, best):
            var.assign(value)
    return progress_state.history

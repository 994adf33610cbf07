"""The compiled training engine for the JAX backend.

Each epoch runs as compiled code (``jax.lax.fori_loop`` over the batches) on device-resident data; the host only
starts an epoch (or a slice of one, to move a progress bar) and reads its mean loss. The model stays a Keras model:
a step calls it through ``stateless_call``.

Sparse updates: for every :class:`~ratecast.models.layers.RowTable` (one row per user or item), a step gathers the
rows of its batch's ids (and the unknown row 0, which a model may substitute for any id), differentiates with
respect to those rows only, and hands each occurrence's gradient to the optimizer's sparse rule
(:meth:`~ratecast.optim.Update.apply_rows`), which writes back only those rows. Dense weights (towers,
heads) get the same optimizer's whole-weight rule.

Batches: the ``n`` training rows are laid out as ``B`` columns of ``nb = ceil(n / B)`` consecutive rows (the last
column wraps to the start). Batch ``t`` of an epoch takes one row of every column: row ``(order[t] + offset[j]) mod
nb`` of column ``j``, with ``order`` a seeded permutation of the batches and ``offset`` seeded per column and
epoch. Every row is visited once per epoch, batches are mixed anew every epoch, and no O(n) shuffle is made.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import keras
import numpy as np

from ..models import RatingModel, TrainingConfig
from ..models.layers import RowTable, row_override
from ..optim import Update, gather_rows
from .placement import Placement
from .progress import EpochProgress

METRIC_ALIASES = {"mae": "mean_absolute_error", "mse": "mean_squared_error"}

# Traced programs of recent trainers, keyed by everything the trace depends on (the model's class, config and
# variable shapes, the training config and the data's layout): a later fit of an identical model on data of the same
# shape runs the program already traced instead of tracing and lowering it again (repeated fits: seeds, benchmarks,
# restarts). Only for models up to PROGRAM_CACHE_BYTES of variables on one device, as an entry keeps its model alive.
PROGRAM_CACHE_SIZE = 4
PROGRAM_CACHE_BYTES = 64 << 20
_PROGRAMS: OrderedDict = OrderedDict()


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
class _Group:
    """The tables indexed by one input (e.g. the user embedding and the user bias), held side by side as one
    array in the training state, so a step gathers and scatters each row once."""

    key: str
    members: list[int]  # positions in _Layout.tables
    offsets: list[int]  # first column of each member
    widths: list[int]


@dataclass
class _Layout:
    """Positions of the tables and dense weights among the model's trainable variables."""

    tables: list[RowTable]
    table_pos: list[int]
    dense_pos: list[int]
    groups: list[_Group]

    @classmethod
    def of(cls, model: keras.Model) -> "_Layout":
        tv = model.trainable_variables
        tables = row_tables(model)
        table_pos = [next(k for k, v in enumerate(tv) if v is t.embeddings) for t in tables]
        dense_pos = [k for k in range(len(tv)) if k not in table_pos]
        groups = []
        for key in dict.fromkeys(t.key for t in tables):
            members = [m for m, t in enumerate(tables) if t.key == key]
            widths = [int(tables[m].embeddings.shape[1]) for m in members]
            groups.append(_Group(key, members, [sum(widths[:j]) for j in range(len(widths))], widths))
        return cls(tables, table_pos, dense_pos, groups)


class CompiledTrainer:
    """Trains one model with one training config, on one device or on a ``keras.distribution`` mesh."""

    def __init__(self, model: RatingModel, cfg: TrainingConfig, n: int, distribution=None):
        self.model, self.cfg, self.n = model, cfg, int(n)
        self.layout = _Layout.of(model)
        self.rule = Update(cfg.optimizer)  # dense weights
        self.table_rule = Update(cfg.optimizer if cfg.table_optimizer == "same" else cfg.table_optimizer)
        self.table_lr_ratio = 1.0 if cfg.table_learning_rate is None else cfg.table_learning_rate / cfg.learning_rate
        self.place = Placement(distribution)
        shards = self.place.batch_shards
        if self.n < shards:
            raise ValueError(f"{self.n} training ratings cannot be split over {shards} devices")
        self.batch = max(shards, min(int(cfg.batch_size), self.n) // shards * shards)
        self.n_batches = math.ceil(self.n / self.batch)
        self.loss_fn = keras.losses.get(model.output_rule.training_loss())
        self.metric_names = list(model.output_rule.metric_names())
        self.metric_fns = [_metric_function(m) for m in self.metric_names]
        tv, ntv = model.trainable_variables, model.non_trainable_variables
        self.tv_specs = [self.place.spec(v) for v in tv]
        self.ntv_specs = [self.place.spec(v) for v in ntv]
        self.tv_shapes = [tuple(v.shape) for v in tv]
        self.ntv_shapes = [tuple(v.shape) for v in ntv]
        self._run = jax.jit(self._run_batches, donate_argnums=(0,))
        self._eval = jax.jit(self._evaluate_chunk)

    # --- state ------------------------------------------------------------------------------------------------
    def _put(self, value, spec, shape):
        rows = self.place.padded_rows(shape[0], spec) if len(shape) else None
        return self.place.put(value, spec, rows)

    def _put_slots(self, slots: tuple, spec) -> tuple:
        """Optimizer slots laid out like their weight (a per-row slot like the weight's rows)."""
        out = []
        for slot in slots:
            host = np.asarray(slot)
            sub = spec if host.ndim == len(spec) or not len(spec) else type(spec)(*tuple(spec)[:host.ndim])
            out.append(self.place.put(host, sub))
        return tuple(out)

    def _state(self, tv: list, ntv: list, slots: list | None = None, step=0) -> dict[str, Any]:
        lay = self.layout
        fused = [np.concatenate([np.asarray(tv[lay.table_pos[m]]) for m in g.members], axis=1)
                 for g in lay.groups]
        tables = [self._put(f, self._group_spec(g), f.shape) for g, f in zip(lay.groups, fused)]
        dense = [self._put(tv[k], self.tv_specs[k], self.tv_shapes[k]) for k in lay.dense_pos]
        if slots is None:
            dense_slots = [self._put_slots(self.rule.slots(np.asarray(p)), self.tv_specs[k])
                           for k, p in zip(lay.dense_pos, dense)]
            table_slots = [self._put_slots(self.table_rule.table_slots(np.asarray(p)), self._group_spec(g))
                           for g, p in zip(lay.groups, tables)]
        else:
            dense_slots, table_slots = slots
            dense_slots = [self._put_slots(sl, self.tv_specs[k]) for k, sl in zip(lay.dense_pos, dense_slots)]
            table_slots = [self._put_slots(sl, self._group_spec(g)) for g, sl in zip(lay.groups, table_slots)]
        maps = {g.key: self.place.put(np.zeros((tab.shape[0],), "int32")) for g, tab in zip(lay.groups, tables)} \
            if self.table_rule.needs_row_map else {}
        return {"dense": dense, "tables": tables, "dense_slots": dense_slots, "table_slots": table_slots,
                "ntv": [self._put(v, sp, sh) for v, sp, sh in zip(ntv, self.ntv_specs, self.ntv_shapes)],
                "row_maps": maps, "step": self.place.put(np.asarray(step, "int32"))}

    def _group_spec(self, group: _Group):
        return self.tv_specs[self.layout.table_pos[group.members[0]]]

    def initial_state(self) -> dict[str, Any]:
        m = self.model
        return self._state([np.asarray(v.value) for v in m.trainable_variables],
                           [np.asarray(v.value) for v in m.non_trainable_variables])

    def trainable_values(self, state) -> list:
        """The trainable weights in the model's order (padded where the layout pads)."""
        values: list = [None] * len(self.model.trainable_variables)
        for k, v in zip(self.layout.dense_pos, state["dense"]):
            values[k] = v
        for g, fused in zip(self.layout.groups, state["tables"]):
            for m, a, w in zip(g.members, g.offsets, g.widths):
                values[self.layout.table_pos[m]] = fused[:, a:a + w]
        return values

    @staticmethod
    def _logical(values: list, shapes: list) -> list:
        """Padding rows cut off (inside a compiled call), so Keras sees its variables' shapes."""
        return [v if tuple(v.shape) == sh else v[:sh[0]] for v, sh in zip(values, shapes)]

    def _host(self, value, shape) -> np.ndarray:
        host = value if isinstance(value, np.ndarray) else self.place.to_host(value)
        return host if host.shape == tuple(shape) else host[:shape[0]]

    def state_arrays(self, state) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """(weights, optimizer state) as host copies without padding (checkpoints, best weights). The fused tables
        are copied whole and split on the host: slicing them on the device would compile a program per slice."""
        host = {**state, "tables": [self.place.to_host(fused) for fused in state["tables"]]}
        weights = [self._host(v, sh) for v, sh in zip(self.trainable_values(host), self.tv_shapes)]
        weights += [self._host(v, sh) for v, sh in zip(state["ntv"], self.ntv_shapes)]
        lay = self.layout
        opt = []
        for k, slots in zip(lay.dense_pos, state["dense_slots"]):
            opt += [self._host(sl, self.tv_shapes[k][:np.ndim(sl)]) for sl in slots]
        for g, slots in zip(lay.groups, state["table_slots"]):
            rows = self.tv_shapes[lay.table_pos[g.members[0]]][0]
            opt += [self._host(sl, (rows,)) for sl in slots]
        return weights, opt + [self.place.to_host(state["step"])]

    def write_back(self, state) -> None:
        """Assign the state's weights to the model's variables."""
        weights, _ = self.state_arrays(state)
        for var, value in zip(self.model.trainable_variables + self.model.non_trainable_variables, weights):
            var.assign(value)

    def state_from_arrays(self, weights: list[np.ndarray], opt: list[np.ndarray]) -> dict[str, Any]:
        n_tv = len(self.model.trainable_variables)
        lay = self.layout
        it = iter(opt[:-1])
        # (float32 stand-ins: only the number of slots is read)
        counts = [len(self.rule.slots(np.zeros(self.tv_shapes[k], "float32"))) for k in lay.dense_pos] + \
                 [len(self.table_rule.table_slots(np.zeros((1, 1), "float32"))) for _ in lay.groups]
        grouped = [tuple(next(it) for _ in range(c)) for c in counts]
        slots = (grouped[:len(lay.dense_pos)], grouped[len(lay.dense_pos):])
        return self._state(weights[:n_tv], weights[n_tv:], slots, step=opt[-1])

    # --- one step ---------------------------------------------------------------------------------------------
    def _step(self, state, x: dict, y, lr):
        lay, model = self.layout, self.model
        swaps = model.cold_start.substitutes_unknown_ids(model.cfg)  # may the model replace ids by 0 (unknown) while training?
        ids = {g.key: x[g.key].astype("int32") for g in lay.groups}
        subs = [gather_rows(fused, ids[g.key]) for g, fused in zip(lay.groups, state["tables"])]
        unknown = [fused[:1] if swaps else None for fused in state["tables"]]

        def objective(dense, subs, unknown):
            values = self.trainable_values({**state, "dense": dense})  # tables: present for the call only
            override = {}
            for g, sub, unk in zip(lay.groups, subs, unknown):
                for m, a, w in zip(g.members, g.offsets, g.widths):
                    override[id(lay.tables[m])] = (ids[g.key], sub[:, a:a + w],
                                                   None if unk is None else unk[:, a:a + w])
            with row_override(override):
                out, ntv, losses = model.stateless_call(self._logical(values, self.tv_shapes),
                                                        self._logical(state["ntv"], self.ntv_shapes), x,
                                                        training=True, return_losses=True)
            # padded tables (constant feature tables) keep their padded state; the rest take the call's update
            ntv = [new if new.shape == old.shape else old for old, new in zip(state["ntv"], ntv)]
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
        for g, fused, grad, g0, slots, sub, unk in zip(lay.groups, state["tables"], g_subs, g_unknown,
                                                       state["table_slots"], subs, unknown):
            rows_ids = ids[g.key]
            if g0 is not None:
                rows_ids = jnp.concatenate([jnp.zeros((1,), "int32"), rows_ids])
                grad = jnp.concatenate([g0, grad])
                sub = jnp.concatenate([unk, sub])
            # per-example gradients (the loss is a batch mean): a row's step does not depend on the batch size
            fused, slots, maps[g.key] = self.table_rule.apply_rows(fused, slots, rows_ids, grad * self.batch, step,
                                                                   lr * self.table_lr_ratio, maps.get(g.key),
                                                                   rows=sub)
            tables.append(fused)
            table_slots.append(slots)
        metrics = [jnp.mean(fn(y, out)) for fn in self.metric_fns]
        new_state = {"dense": dense, "tables": tables, "dense_slots": dense_slots, "table_slots": table_slots,
                     "ntv": ntv, "row_maps": {k: v for k, v in maps.items() if v is not None}, "step": step}
        return new_state, jnp.stack([loss, *metrics])

    # --- the training data on the device ----------------------------------------------------------------------
    def device_data(self, x: dict[str, np.ndarray], y: np.ndarray) -> dict:
        """The training pairs on the device. When every id and target is exact in float32 (ids below 2**24), they
        are packed as one row per rating, so a batch reads one memory line per rating instead of one per column."""
        put = self.place.put
        keys = sorted(x)
        y = np.asarray(y)
        if y.ndim == 1 and all(int(np.max(x[k], initial=0)) < 2 ** 24 for k in keys) and \
                np.array_equal(y.astype("float32").astype(y.dtype), y):
            rows = np.empty((len(y), len(keys) + 1), "float32")
            for j, k in enumerate(keys):
                rows[:, j] = x[k]
            rows[:, -1] = y
            self._packed = (tuple(keys), str(y.dtype))
            data = {"rows": put(rows)}
        else:
            self._packed = None
            data = {"x": {k: put(np.asarray(v, "int32")) for k, v in x.items()}, "y": put(y)}
        self._reuse_programs(data)
        return data

    def _program_key(self, data: dict) -> str | None:
        """What the traced step and evaluation depend on, or None where they are not shared (a distribution, a
        large model)."""
        model = self.model
        variables = model.trainable_variables + model.non_trainable_variables
        size = sum(math.prod(v.shape) * np.dtype(v.dtype).itemsize for v in variables)
        if self.place.distribution is not None or size > PROGRAM_CACHE_BYTES:
            return None
        layout = jax.tree_util.tree_map(lambda a: (tuple(a.shape), str(a.dtype)), data)
        config = {k: v for k, v in model.get_config().items() if k != "name"}  # a name is numbered per instance
        return json.dumps([type(model).__module__, type(model).__qualname__, config,
                           [(tuple(v.shape), str(v.dtype)) for v in variables], repr(self.cfg), self.n,
                           self.batch, self._packed, self.metric_names, layout], sort_keys=True, default=str)

    def _reuse_programs(self, data: dict) -> None:
        key = self._program_key(data)
        if key is None:
            return
        if key in _PROGRAMS:
            self._run, self._eval = _PROGRAMS[key]
            _PROGRAMS.move_to_end(key)
            return
        _PROGRAMS[key] = (self._run, self._eval)
        while len(_PROGRAMS) > PROGRAM_CACHE_SIZE:
            _PROGRAMS.popitem(last=False)

    def _batch(self, data: dict, idx):
        if "rows" in data:
            keys, y_dtype = self._packed
            rows = gather_rows(data["rows"], idx)
            return {k: rows[:, j].astype("int32") for j, k in enumerate(keys)}, rows[:, -1].astype(y_dtype)
        return {k: v[idx] for k, v in data["x"].items()}, data["y"][idx]

    # --- a slice of an epoch ------------------------------------------------------------------------------------
    def _run_batches(self, state, data, order, offsets, start, stop, lr):
        n, nb, b = self.n, self.n_batches, self.batch
        columns = jnp.arange(b, dtype="int32") * nb

        def body(t, carry):
            state, sums = carry
            pos = columns + (order[t] + offsets) % nb
            idx = self.place.split_batch(jnp.where(pos >= n, pos - n, pos))
            x, y = self._batch(data, idx)
            state, values = self._step(state, x, y, lr)
            return state, sums + values

        zeros = jnp.zeros((1 + len(self.metric_fns),), "float32")
        return jax.lax.fori_loop(start, stop, body, (state, zeros))

    def _evaluate_chunk(self, state, x, y, mask):
        out, _ = self.model.stateless_call(self._logical(self.trainable_values(state), self.tv_shapes),
                                           self._logical(state["ntv"], self.ntv_shapes), x, training=False)
        w = mask.astype("float32")
        values = [self.loss_fn(y, out)] + [fn(y, out) for fn in self.metric_fns]
        return jnp.stack([jnp.sum(jnp.reshape(v, (-1,)) * w) for v in values])

    def evaluate(self, state, x: dict[str, np.ndarray], y: np.ndarray, chunk: int = 65536) -> dict[str, float]:
        """Mean loss and metrics over (x, y), in fixed-size chunks (one compile) of at most ``chunk`` pairs, fewer
        where the model holds whole-catalogue rows per pair (:func:`ratecast.ranking.pair_chunk`)."""
        from ..ranking import pair_chunk

        n = len(y)
        size = min(pair_chunk(self.model, chunk), n)
        sums = np.zeros(1 + len(self.metric_fns))
        for start in range(0, n, size):
            sl = slice(start, start + size)
            k = len(y[sl])
            pad = size - k
            xb = {key: np.pad(v[sl], (0, pad)) for key, v in x.items()}
            yb = np.pad(y[sl], [(0, pad)] + [(0, 0)] * (y.ndim - 1))
            put = self.place.put
            xb = {key: put(v) for key, v in xb.items()}
            sums += np.asarray(self.place.to_host(self._eval(state, xb, put(yb), put(np.arange(size) < k))),
                               dtype="float64")
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
        for start, stop in slices:
            put = self.place.put
            state, part = self._run(state, data, put(order), put(offsets), put(np.int32(start)),
                                    put(np.int32(stop)), put(np.float32(lr)))
            sums += np.asarray(self.place.to_host(part), dtype="float64")
            progress.advance(stop - start)
        names = ["loss", *self.metric_names]
        return state, {name: float(v / self.n_batches) for name, v in zip(names, sums)}


class CompiledRunner:
    """Epochs of the compiled engine for :func:`~ratecast.engine.epochs.run_epochs`. With a ``keras.distribution``
    distribution, the training state and each batch are laid out over its mesh."""

    bars = True  # an epoch runs in slices, so a bar moves within it

    def __init__(self, model: RatingModel, x: dict[str, np.ndarray], y: np.ndarray,
                 validation: tuple[dict, np.ndarray] | None, cfg: TrainingConfig, seed: int | None,
                 distribution=None):
        self.model, self.x, self.y, self.validation = model, x, y, validation
        self.trainer = CompiledTrainer(model, cfg, len(y), distribution)
        self.seed = 0 if seed is None else int(seed)
        self.steps_per_epoch = self.trainer.n_batches
        self._state, self._data = None, None

    def state(self):
        """The training state (the model's initial weights unless a checkpoint was restored)."""
        if self._state is None:
            self._state = self.trainer.initial_state()
        return self._state

    def restore(self, variables: list[np.ndarray], optimizer: list[np.ndarray]) -> None:
        self._state = self.trainer.state_from_arrays(variables, optimizer)

    def train_epoch(self, epoch: int, learning_rate: float, progress: EpochProgress) -> dict[str, float]:
        state = self.state()
        if self._data is None:
            self._data = self.trainer.device_data(self.x, self.y)
        self._state, logs = self.trainer.run_epoch(state, self._data, self.seed, epoch, learning_rate, progress)
        return logs

    def validate(self) -> dict[str, float]:
        val = self.trainer.evaluate(self.state(), self.validation[0], self.validation[1])
        return {f"val_{k}": v for k, v in val.items()}

    def sync(self) -> None:
        self.trainer.write_back(self.state())

    def checkpoint_arrays(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        return self.trainer.state_arrays(self.state())

    def best_weights(self) -> list[np.ndarray]:
        return self.trainer.state_arrays(self.state())[0]

    def set_weights(self, weights: list[np.ndarray]) -> None:
        m = self.model
        for var, value in zip(m.trainable_variables + m.non_trainable_variables, weights):
            var.assign(value)

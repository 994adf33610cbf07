"""Optimizer updates as pure functions over arrays, for the compiled engine.

Dense weights get the whole-weight rule (:meth:`Update.apply`). Embedding tables get a sparse rule
(:meth:`Update.apply_rows`) that reads and writes only the rows a batch touched, given the batch's ids and the
gradient of each occurrence:

* ``sgd``: the gradients are scatter-added, so an id that repeats within a batch gets the sum of its gradients,
  as long as that sum is a stable step: the ``c`` occurrences of a row are summed as if the row took ``c`` steps,
  but all from the same stale value, which overshoots once ``learning_rate * c`` nears the inverse of the loss's
  curvature (a user with 60 ratings in a batch of 1024, on a small file of few users). A row's summed rate
  ``learning_rate * c`` is therefore capped at :data:`ROW_RATE_LIMIT`, or at ``learning_rate`` itself where that is
  larger (each occurrence's step scaled down to fit): repeats never add beyond the limit, a single occurrence
  always takes the learning rate asked for, and rows repeated less often are untouched.
* ``adagrad``: row-wise Adagrad (one accumulator per row, the mean squared gradient of its elements, as in large
  embedding trainers). Every occurrence adds to its row's accumulator and its own step is scaled by the row's new
  accumulator: scatter-adds only, no sort.
* ``adam``: lazy Adam. Repeated ids are merged first (a map from row to its first position in the batch, kept
  between steps so it is never cleared), then the merged rows, their moments and their weights are updated once;
  rows not in the batch keep their moments. Bias correction uses the global step. Both moments of a row sit side by
  side in one slot (``[m | v]``), so a step reads and writes them with one gather and one scatter. Exact, but it
  moves about three times the data of ``adagrad``.

The caller may pass the rows it already gathered for the forward pass (``rows``), which saves a second gather.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp

from .models.layers import row_chunk

#: optimizers the compiled engine implements
ROW_OPTIMIZERS = ("adam", "adagrad", "sgd")

#: the most a row's summed SGD rate (learning rate times the row's occurrences in one batch) may be, unless the
#: learning rate alone is larger: a quarter keeps a step on a mean squared error (curvature 2 per occurrence) at half
#: of the exact correction, so a user and an item moving together never overshoot
ROW_RATE_LIMIT = 0.25


def occurrences(ids):
    """How many times each position's id occurs in ``ids`` (a sort and two binary searches: no table-sized
    scratch array)."""
    ordered = jnp.sort(ids)
    return jnp.searchsorted(ordered, ids, side="right") - jnp.searchsorted(ordered, ids, side="left")


def summed_rate_scale(ids, lr):
    """Per occurrence, the factor that keeps its row's summed rate ``lr * occurrences`` within
    ``max(ROW_RATE_LIMIT, lr)`` (1 where it already is)."""
    count = occurrences(ids).astype("float32")
    return jnp.minimum(1.0, jnp.maximum(ROW_RATE_LIMIT, lr) / (lr * count))


def gather_rows(table, ids):
    """``table[ids]`` for ids known to be in range (the engine's are), read as rows of short column runs (see
    :func:`ratecast.models.layers.row_chunk`) and without the per-element range check of a filling gather."""
    if table.ndim != 2:
        return table.at[ids].get(mode="promise_in_bounds")
    n, width = table.shape
    chunk = row_chunk(width)
    view = table.reshape(n, width // chunk, chunk)
    return view.at[ids].get(mode="promise_in_bounds").reshape(ids.shape[0], width)


@dataclass(frozen=True)
class Update:
    """One optimizer rule over dense weights and embedding tables."""

    name: str
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-7
    initial_accumulator: float = 0.1  # Adagrad

    def __post_init__(self) -> None:
        if self.name not in ROW_OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {list(ROW_OPTIMIZERS)} for the compiled engine, "
                             f"got {self.name!r}")

    # --- dense weights ----------------------------------------------------------------------------------------
    def slots(self, param) -> tuple:
        if self.name == "adam":
            return jnp.zeros_like(param), jnp.zeros_like(param)
        if self.name == "adagrad":
            return (jnp.full_like(param, self.initial_accumulator),)
        return ()

    def _adam_scale(self, step, lr, dtype):
        t = step.astype(dtype)
        return lr * jnp.sqrt(1 - self.beta_2 ** t) / (1 - self.beta_1 ** t)

    def apply(self, param, grad, slots: tuple, step, lr) -> tuple:
        """New (param, slots) for a dense weight; ``step`` counts from 1."""
        if self.name == "adam":
            m, v = slots
            m = self.beta_1 * m + (1 - self.beta_1) * grad
            v = self.beta_2 * v + (1 - self.beta_2) * grad * grad
            return param - self._adam_scale(step, lr, param.dtype) * m / (jnp.sqrt(v) + self.epsilon), (m, v)
        if self.name == "adagrad":
            (acc,) = slots
            acc = acc + grad * grad
            return param - lr * grad / jnp.sqrt(acc + self.epsilon), (acc,)
        return param - lr * grad, ()

    # --- embedding tables -------------------------------------------------------------------------------------
    def table_slots(self, table) -> tuple:
        if self.name == "adam":  # [m | v] per row
            return (jnp.zeros((table.shape[0], 2 * table.shape[1]), table.dtype),)
        if self.name == "adagrad":
            return (jnp.full(table.shape[:1], self.initial_accumulator, table.dtype),)
        return ()

    @property
    def needs_row_map(self) -> bool:
        """Whether :meth:`apply_rows` merges repeated ids through a row map (one int32 per row, kept in the state)."""
        return self.name == "adam"

    def apply_rows(self, table, slots: tuple, ids, grads, step, lr, row_map=None, rows=None) -> tuple:
        """New (table, slots, row_map) after the batch whose occurrence ``k`` looked up row ``ids[k]`` and got
        gradient ``grads[k]``; ``rows``, when given, holds ``table[ids]``."""
        if self.name == "sgd":
            scale = (lr * summed_rate_scale(ids, lr)).astype(table.dtype)
            return table.at[ids].add(-scale[:, None] * grads, mode="drop"), (), row_map
        if self.name == "adagrad":
            (acc,) = slots
            acc = acc.at[ids].add(jnp.mean(grads * grads, axis=-1), mode="drop")
            scale = lr / jnp.sqrt(acc.at[ids].get(mode="fill", fill_value=1.0) + self.epsilon)
            return table.at[ids].add(-scale[:, None] * grads, mode="drop"), (acc,), row_map
        # lazy Adam: merge repeats into one position per row, then update each row once
        (mv,) = slots
        w = table.shape[1]
        positions = jnp.arange(ids.shape[0], dtype="int32")
        row_map = row_map.at[ids].set(positions, mode="drop")
        first = row_map.at[ids].get(mode="fill", fill_value=0)
        merged = jnp.zeros_like(grads).at[first].add(grads)
        target = jnp.where(first == positions, ids, table.shape[0])  # one writer per row; the rest are dropped
        moments = gather_rows(mv, ids)
        m_rows = self.beta_1 * moments[:, :w] + (1 - self.beta_1) * merged
        v_rows = self.beta_2 * moments[:, w:] + (1 - self.beta_2) * merged * merged
        if rows is None:
            rows = gather_rows(table, ids)
        rows = rows - self._adam_scale(step, lr, table.dtype) * m_rows / (jnp.sqrt(v_rows) + self.epsilon)
        return (table.at[target].set(rows, mode="drop"),
                (mv.at[target].set(jnp.concatenate([m_rows, v_rows], axis=1), mode="drop"),), row_map)

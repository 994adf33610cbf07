"""Building blocks shared by the models (Keras 3, ``keras.ops`` only)."""

from __future__ import annotations

import contextlib
import contextvars

import keras
from keras import ops

# RowTable id -> (sorted row ids, their rows): set by the compiled engine while it traces a training step
_ROWS: contextvars.ContextVar[dict | None] = contextvars.ContextVar("ratecast_rows", default=None)


@contextlib.contextmanager
def row_override(mapping: dict):
    """Within the block, each :class:`RowTable` in ``mapping`` answers from rows gathered beforehand instead of its
    weight: ``{id(table): (ids, rows, unknown_row)}``, where ``rows[k]`` is the row of ``ids[k]``. A lookup must be
    of ``ids`` itself, except that a model whose ``cold_start.substitutes_unknown_ids`` is true may replace any id by 0
    (unknown), which answers ``unknown_row`` (None for the other models). The
    training engine differentiates with respect to ``rows`` and ``unknown_row`` only, so a step touches the rows
    its batch uses, never the whole table."""
    token = _ROWS.set(mapping)
    try:
        yield
    finally:
        _ROWS.reset(token)


def row_chunk(width: int) -> int:
    """How many columns a row gather moves as one element: 4 where the width allows, else the largest divisor up
    to 16 (1 for a prime width). XLA's CPU gather copies a row element by element; viewing a (n, 64) table as
    (n, 16, 4) lets it move four floats at a time, which about halves the time of a random row read (150 to 70 ns
    per row on two AVX2 cores, a 162k-row table)."""
    if width % 4 == 0:
        return 4
    return max((d for d in range(2, 17) if width % d == 0), default=1)


def item_dots(rows, table):
    """``rows`` (users, K) dotted with every row of ``table`` (items, K) but row 0 (unknown): (users, items - 1).
    Contracted over the whole table and sliced after: XLA on CPU copies a table sliced first (and transposed) for
    a matrix-vector product, which made one user's list at 6,400 columns (bayesian on ML-100k) about 35 ms instead
    of 1 ms."""
    return ops.tensordot(rows, table, axes=[[1], [1]])[:, 1:]


def standardise(x, mean, std):
    """(x - mean) / std, with a floor under std so that a flat row stays flat rather than amplifying rounding."""
    return (x - mean) / ops.maximum(std, 1e-3)


def take_rows(table, ids):
    """``table[ids]`` for a 2-D table, gathered in runs of :func:`row_chunk` columns (same values, faster reads)."""
    n, width = table.shape
    chunk = row_chunk(width)
    if chunk == 1:
        return ops.take(table, ids, axis=0)
    rows = ops.take(ops.reshape(table, (n, width // chunk, chunk)), ids, axis=0)
    return ops.reshape(rows, (*ops.shape(ids), width))


@keras.saving.register_keras_serializable(package="ratecast")
class RowTable(keras.layers.Embedding):
    """An embedding table with one row per user or per item (``key``: the input it is indexed by)."""

    def __init__(self, *args, key: str = "user", **kwargs):
        super().__init__(*args, **kwargs)
        self.key = key

    def call(self, inputs):
        sub = (_ROWS.get() or {}).get(id(self))
        if sub is None:
            if self.lora_enabled:
                return super().call(inputs)
            if inputs.dtype not in ("int32", "int64"):
                inputs = ops.cast(inputs, "int32")
            return ops.cast(take_rows(self.embeddings, inputs), self.compute_dtype)
        ids, rows, unknown = sub
        if unknown is None:  # the model looks up exactly the batch's ids
            return rows
        same = ops.expand_dims(ops.cast(inputs, ids.dtype) == ids, -1)
        return ops.where(same, rows, unknown)

    def get_config(self):
        return {**super().get_config(), "key": self.key}


def embedding(n: int, dim: int, name: str, seed: int | None, stddev: float = 0.05, zeros: bool = False,
              key: str | None = None) -> RowTable:
    """A table of ``n`` rows of width ``dim`` indexed by the ``key`` input (default: the side ``name`` starts with)."""
    init = "zeros" if zeros else keras.initializers.RandomNormal(stddev=stddev, seed=seed)
    key = key or name.split("_")[0]
    if key not in ("user", "item"):
        raise ValueError(f"a row table is indexed by 'user' or 'item', got {key!r}")
    return RowTable(n, dim, embeddings_initializer=init, name=name, key=key)


def fast_uniform(shape, seed_generator: keras.random.SeedGenerator):
    """Uniform floats in [0, 1) of ``shape``, from a counter hash (a murmur3 finaliser of the element's position
    and the generator's next seed). Dropout masks need independent-looking bits, not a cryptographic generator:
    this costs a few integer operations per element, some 30 times less than the default generator on a CPU,
    where masks of a batch's inputs were a third of a training step. Same seed, same numbers."""
    seed = ops.cast(seed_generator.next(), "uint32")
    salt = seed[0] * ops.cast(0x27D4EB2F, "uint32") + seed[1] * ops.cast(0x165667B1, "uint32")
    size = 1
    for d in shape:
        size = size * d
    h = ops.arange(size, dtype="uint32") * ops.cast(0x9E3779B1, "uint32") + salt
    h = ops.bitwise_xor(h, ops.right_shift(h, ops.cast(16, "uint32")))
    h = h * ops.cast(0x85EBCA6B, "uint32")
    h = ops.bitwise_xor(h, ops.right_shift(h, ops.cast(13, "uint32")))
    h = h * ops.cast(0xC2B2AE35, "uint32")
    h = ops.bitwise_xor(h, ops.right_shift(h, ops.cast(16, "uint32")))
    top = ops.cast(ops.right_shift(h, ops.cast(8, "uint32")), "float32")  # 24 bits: exact in float32
    return ops.reshape(top * (1.0 / 16777216.0), shape)


@keras.saving.register_keras_serializable(package="ratecast")
class FastDropout(keras.layers.Layer):
    """Inverted dropout whose mask comes from :func:`fast_uniform`; otherwise Keras' ``Dropout``."""

    def __init__(self, rate: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= rate < 1:
            raise ValueError(f"rate must be in [0, 1), got {rate!r}")
        self.rate = float(rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, x, training=None):
        if not training or not self.rate:
            return x
        keep = fast_uniform(ops.shape(x), self.seed_generator) >= self.rate
        return ops.where(keep, x / (1.0 - self.rate), ops.zeros_like(x))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


@keras.saving.register_keras_serializable(package="ratecast")
class DenseTower(keras.layers.Layer):
    """Input dropout, then Dense(+BatchNorm)(+Dropout) blocks."""

    def __init__(self, hidden=(64,), dropout=0.0, hidden_dropout=0.0, batch_norm=False, activation="relu",
                 seed=None, random_init=True, **kwargs):
        super().__init__(**kwargs)
        for i, w in enumerate(hidden):
            if not isinstance(w, int) or w <= 0:
                raise ValueError(f"hidden[{i}] must be a positive integer, got {w!r}")
        for name, p in (("dropout", dropout), ("hidden_dropout", hidden_dropout)):
            if not 0 <= p < 1:
                raise ValueError(f"{name} must be in [0, 1), got {p!r}")
        self.hidden = tuple(hidden)
        self.dropout_rate = float(dropout)
        self.hidden_dropout = float(hidden_dropout)
        self.batch_norm = bool(batch_norm)
        self.activation = activation
        self.seed = seed
        s = (lambda k: None) if seed is None else (lambda k: seed + k)
        self.input_dropout = FastDropout(dropout, seed=s(101)) if dropout else None
        self.blocks = []
        for i, width in enumerate(self.hidden):
            init = keras.initializers.GlorotUniform(seed=s(i)) if random_init else "zeros"
            block = [keras.layers.Dense(width, kernel_initializer=init, name=f"dense_{i}")]
            if batch_norm:
                block.append(keras.layers.BatchNormalization(name=f"bn_{i}"))
            block.append(keras.layers.Activation(activation))
            if hidden_dropout:
                block.append(FastDropout(hidden_dropout, seed=s(201 + i)))
            self.blocks.append(block)

    def call(self, x, training=None):
        if self.input_dropout is not None:
            x = self.input_dropout(x, training=training)
        for block in self.blocks:
            for layer in block:
                x = layer(x, training=training) if isinstance(layer, (FastDropout,
                                                                     keras.layers.BatchNormalization)) else layer(x)
        return x

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.hidden[-1] if self.hidden else input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "hidden": list(self.hidden), "dropout": self.dropout_rate,
                "hidden_dropout": self.hidden_dropout, "batch_norm": self.batch_norm,
                "activation": self.activation, "seed": self.seed}


def l2_penalty(weight: float, *tensors):
    total = 0.0
    for t in tensors:
        total = total + ops.mean(ops.sum(ops.square(t), axis=-1))
    return weight * total

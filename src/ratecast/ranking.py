"""The recommendation pipeline, one named piece per step:

candidates (:class:`Candidates`: unseen, excluded, minimum support) -> scoring and top-k on the device
(:class:`Scorer`) -> fallback for unknown users (:func:`popular`).

The scorer compiles one function per input shape and passes the model's variables to it on every call, so it never
goes stale when the weights change (keras-rs' brute-force retrieval keeps its candidates in variables likewise).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable, Iterable, Mapping

import keras
import numpy as np
from keras import ops

from .models.base import given_known_rows
from .similarity import top_k as top_k_numpy

PAIR_CHUNK = 1 << 16
SCORE_BUDGET = 1 << 25  # floats held at once while scoring (user, item) pairs
TOP_K_BUDGET = 1 << 22  # floats held at once while ranking all items for a batch of users: they stay in the cache
MAX_USER_BATCH = 1024


def pair_chunk(model, largest: int = PAIR_CHUNK, row_floats: int | None = None) -> int:
    """How many (user, item) pairs to score at once: ``largest``, fewer where the model holds whole-catalogue rows
    per pair (``pair_row_floats``, or ``row_floats`` when given), so that a chunk stays within
    :data:`SCORE_BUDGET` floats."""
    row_floats = model.pair_row_floats if row_floats is None else row_floats
    return int(min(largest, max(256, SCORE_BUDGET // max(1, row_floats))))


def _compile(fn: Callable, static_argnames: tuple[str, ...] = ()) -> Callable:
    """``jax.jit`` on the JAX backend; other backends run the same function eagerly."""
    if keras.backend.backend() == "jax":
        import jax

        return jax.jit(fn, static_argnames=static_argnames)
    return fn


def _bucket(n: int, smallest: int = 8) -> int:
    """A padded size for ``n``: few distinct compiled shapes, at most twice the work."""
    return max(smallest, 1 << max(0, int(n) - 1).bit_length())


def check_min_ratings(value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"min_ratings must be an integer >= 0, got {value!r}")


#: the default minimum support never leaves fewer candidate items than this (or a tenth of the catalogue)
MIN_CANDIDATES = 100


@dataclass(frozen=True)
class Allowed:
    """Which item positions each of a batch of users may be recommended, held compactly: the items any of them may
    get (``items``, (n_items,) bool) less each user's own excluded positions (``excluded``: those of user ``r`` are
    ``positions[indptr[r]:indptr[r + 1]]``). :meth:`mask` is the same as a dense (users, n_items) boolean."""

    items: np.ndarray
    indptr: np.ndarray
    positions: np.ndarray

    @classmethod
    def from_mask(cls, mask) -> "Allowed":
        """The compact form of a dense boolean ``mask`` (users, n_items)."""
        mask = np.asarray(mask, dtype=bool)
        items = mask.any(axis=0) if len(mask) else np.ones(mask.shape[1], bool)
        rows, cols = np.nonzero(~mask & items[None, :])
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=len(mask)))])
        return cls(items, indptr, cols)

    def __len__(self) -> int:
        return len(self.indptr) - 1

    def mask(self) -> np.ndarray:
        """The dense boolean (users, n_items)."""
        out = np.repeat(self.items[None, :], len(self), axis=0)
        out[np.repeat(np.arange(len(self)), np.diff(self.indptr)), self.positions[:self.indptr[-1]]] = False
        return out

    def excluded_pairs(self, start: int, stop: int, rows: int) -> np.ndarray:
        """The excluded (row, position) pairs of users ``start:stop`` (rows counted from ``start``) as a (2, width)
        array; width: their number rounded up to 1,024 times a power of 4 (few compiled shapes), the padding pairs
        in row ``rows``, past the last row of a batch of ``rows`` users, so that they change nothing."""
        stop = min(stop, len(self))
        counts = np.diff(self.indptr[start:stop + 1])
        first, last = self.indptr[start], self.indptr[stop]
        width = 1024
        while width < last - first:
            width *= 4
        out = np.zeros((2, width), "int32")
        out[0] = rows
        out[0, :last - first] = np.repeat(np.arange(stop - start), counts)
        out[1, :last - first] = self.positions[first:last]
        return out


class Candidates:
    """Which items may be recommended to each user: unseen in training, not excluded, enough training ratings
    (``min_ratings``, else the model's ``min_support``)."""

    def __init__(self, state) -> None:
        self.state = state

    @cached_property
    def default_support(self) -> int | None:
        """The model's ``min_support``, lowered where needed so that at least :data:`MIN_CANDIDATES` items (or a
        tenth of the catalogue, if more) stay candidates: a small catalogue is never filtered away."""
        support = getattr(self.state.model_config, "min_support", 0)
        if not support:
            return None
        counts = np.sort(np.asarray(self.state.popularity[1:]))[::-1]
        if not len(counts):
            return None
        keep = min(len(counts), max(MIN_CANDIDATES, len(counts) // 10))
        return int(min(support, counts[keep - 1])) or None

    def allowed(self, users: np.ndarray, *, exclude_seen: bool = True, exclude: Iterable | None = None,
                min_ratings: int | None = None) -> Allowed:
        """The candidates of user indices ``users`` in compact form; user index 0 (unknown) has seen nothing."""
        s = self.state
        items = np.ones(len(s.item_index), dtype=bool)
        if exclude is not None:
            if isinstance(exclude, (str, bytes)) or not hasattr(exclude, "__iter__"):
                raise ValueError(f"exclude must be a list of item ids, got {exclude!r}")
            ex = s.item_index.index(np.asarray(list(exclude)))
            items[ex[ex > 0] - 1] = False
        if min_ratings is None:  # the model's default minimum support
            min_ratings = self.default_support
        if min_ratings is not None:
            check_min_ratings(min_ratings)
            items &= s.popularity[1:] >= min_ratings
        if not exclude_seen:
            return Allowed(items, np.zeros(len(users) + 1, "int64"), np.zeros(0, "int64"))
        rows = s.seen[np.asarray(users)]
        rows.eliminate_zeros()
        return Allowed(items, rows.indptr.astype("int64"), rows.indices[:rows.nnz] - 1)

    def mask(self, users: np.ndarray, *, exclude_seen: bool = True, exclude: Iterable | None = None,
             min_ratings: int | None = None) -> np.ndarray:
        """Boolean (len(users), n_items) over item positions: :meth:`allowed` as a dense array."""
        return self.allowed(users, exclude_seen=exclude_seen, exclude=exclude, min_ratings=min_ratings).mask()


# compiled scoring programs per model: every Scorer of a model (e.g. of the states fold_in derives, which share it)
# runs the same programs
_PROGRAMS: "weakref.WeakKeyDictionary[Any, tuple[Callable, ...]]" = weakref.WeakKeyDictionary()


def _programs(model) -> tuple[Callable, ...]:
    found = _PROGRAMS.get(model)
    if found is None:
        ref = weakref.ref(model)  # the programs must not keep their model alive (it keys the cache)

        def pairs_fn(trainable, non_trainable, x):
            model = ref()
            out, _ = model.stateless_call(trainable, non_trainable, x, training=False)
            return out, model.output_rule.to_rating(out)

        def product_table_fn(variables, known, items):
            model = ref()
            with keras.StatelessScope(state_mapping=list(zip(model.variables, variables))), given_known_rows(known):
                table = model.item_product_table()
                return None if table is None else masked_product_table(table, items)

        def top_k_fn(variables, known, table, users, items, excluded, user_features, k):
            model = ref()
            with keras.StatelessScope(state_mapping=list(zip(model.variables, variables))), given_known_rows(known):
                if table is not None:  # a product, masked by its last column: written once, exclusions in place
                    rows = model.user_product_rows(users, user_features)
                    rows = ops.concatenate([rows, ops.ones_like(rows[:, :1])], axis=1)
                    out = without_excluded(ops.matmul(rows, ops.transpose(table)), excluded)
                    key = model.output_rule.ranking_key(out)
                else:
                    out = model.score_items(users, user_features)
                    key = model.output_rule.ranking_key(out)
                    key = ops.where(items[None, :], key, ops.full_like(key, -np.inf))
                    key = without_excluded(whole_blocks(key, k), excluded)  # padded as it is masked: one pass
                values, idx = top_k_in_blocks(key, k)
                rows, n = ops.shape(out)[0], ops.shape(out)[1]
                flat = ops.reshape(out, (rows * n, *ops.shape(out)[2:]))
                picked = ops.take(flat, idx + ops.arange(rows, dtype=idx.dtype)[:, None] * n, axis=0)
                return values, idx, model.output_rule.to_rating(picked)  # ratings of the k picked outputs only

        def ratings_fn(variables, x):
            model = ref()
            with keras.StatelessScope(state_mapping=list(zip(model.variables, variables))):
                return model.score_ratings(x)

        found = _PROGRAMS[model] = (_compile(pairs_fn), _compile(top_k_fn, static_argnames=("k",)),
                                    _compile(ratings_fn), _compile(product_table_fn))
    return found


#: positions per block of :func:`top_k_in_blocks`
TOP_K_BLOCK = 128


def top_k_in_blocks(key, k: int):
    """``ops.top_k(key, k)`` of each row of ``key`` (values and positions, best first; ties: the lower position
    first), in two steps for a long row. The row is cut into blocks of :data:`TOP_K_BLOCK` positions; the ``k``
    blocks with the largest maxima (ties: the lower block) hold the row's best ``k``, a tie at the ``k``-th value
    included, since a block passed over has no value above it and only later positions; only those blocks are
    ranked, in the order of their positions, so that ties fall as in one ranking of the whole row."""
    rows, n = ops.shape(key)[0], ops.shape(key)[1]
    blocks = -(-n // TOP_K_BLOCK)
    if blocks < 8 * k:  # a short row: one ranking costs no more
        return ops.top_k(key, k)
    cut = ops.reshape(whole_blocks(key, k), (rows, blocks, TOP_K_BLOCK))
    _, best = ops.top_k(ops.max(cut, axis=2), k)
    best = ops.sort(best, axis=1)  # the chosen blocks in the order of their positions
    candidates = ops.reshape(ops.take_along_axis(cut, best[:, :, None], axis=1), (rows, k * TOP_K_BLOCK))
    values, at = ops.top_k(candidates, k)
    block = ops.take_along_axis(best, at // TOP_K_BLOCK, axis=1)
    return values, block * TOP_K_BLOCK + at % TOP_K_BLOCK


def whole_blocks(key, k: int):
    """``key`` with -inf appended to each row up to a whole number of :data:`TOP_K_BLOCK` positions where
    :func:`top_k_in_blocks` ranks it by blocks (else as it is). Masking a padded key, rather than padding a masked
    one, lets the compiler write the scores once instead of copying them."""
    rows, n = ops.shape(key)[0], ops.shape(key)[1]
    blocks = -(-n // TOP_K_BLOCK)
    if blocks < 8 * k or n == blocks * TOP_K_BLOCK:
        return key
    return ops.concatenate([key, ops.full((rows, blocks * TOP_K_BLOCK - n), -np.inf, key.dtype)], axis=1)


def masked_product_table(table, items):
    """A product model's item side ``table`` (rows: the known items) made ready for a ranking: a last column of 0
    for the allowed ``items`` and -inf for the others, which the user side meets with 1 (so an item that is not
    allowed scores -inf, and an allowed one exactly its product); rows of zeros and -inf appended up to a whole
    number of :data:`TOP_K_BLOCK` rows, so that the product is a key already cut into whole blocks."""
    n = ops.shape(table)[0]
    extra = -(-n // TOP_K_BLOCK) * TOP_K_BLOCK - n
    mask = ops.where(ops.expand_dims(items, 1), ops.zeros_like(table[:, :1]), ops.full_like(table[:, :1], -np.inf))
    table = ops.concatenate([table, mask], axis=1)
    if not extra:
        return table
    padding = ops.concatenate([ops.zeros((extra, ops.shape(table)[1] - 1), table.dtype),
                               ops.full((extra, 1), -np.inf, table.dtype)], axis=1)
    return ops.concatenate([table, padding], axis=0)


def without_excluded(key, excluded):
    """``key`` (users, n_items) with -inf at the ``excluded`` (row, position) pairs, a (2, width) array
    (:meth:`Allowed.excluded_pairs`); pairs past the last row are padding and change nothing."""
    if keras.backend.backend() == "jax":
        import jax.numpy as jnp

        return key.at[excluded[0], excluded[1]].set(-jnp.inf, mode="drop")
    return without_any_backend(key, excluded)


def without_any_backend(key, excluded):
    """:func:`without_excluded` in Keras operations alone (any backend)."""
    rows = ops.shape(key)[0]
    tall = ops.concatenate([key, ops.zeros((1, ops.shape(key)[1]), key.dtype)], axis=0)  # padding: the extra row
    at = ops.stack([ops.minimum(excluded[0], rows), excluded[1]], axis=-1)
    return ops.scatter_update(tall, at, ops.full((ops.shape(at)[0],), -np.inf, key.dtype))[:rows]


class Scorer:
    """Model outputs on the device: for (user, item) pairs, and top-k over all items for batches of users.
    ``values`` (variable path -> array) replaces some variables' values (a fold-in's new per-user arrays)."""

    def __init__(self, model, distribution=None, values: Mapping[str, Any] | None = None) -> None:
        from .engine.placement import Placement

        self.model = model
        self.place = Placement(distribution)
        self.values = dict(values or {})
        self._pairs, self._top_k, self._ratings, self._product_table = _programs(model)
        self._held_table: tuple | None = None  # (the variables' values, the items mask, the product table)

    def _variables(self, which: str) -> list:
        """The variables' current values (placed on the distribution's devices when there is one): read at every
        call, so scores follow any change of the weights."""
        m = self.model
        variables = {"trainable": m.trainable_variables, "non_trainable": m.non_trainable_variables,
                     "all": m.variables}[which]
        out = []
        for v in variables:
            if v.path in self.values:
                value = self.values[v.path]
                out.append(self.place.put(np.asarray(value)) if self.place.mesh is not None else value)
            else:
                out.append(self.place.put_variable(v) if self.place.mesh is not None else v.value)
        return out

    def known_rows(self, variables: list) -> dict:
        """The known rows (1..) of the model's :meth:`~ratecast.models.base.RatingModel.known_row_variables`, by
        path, from ``variables`` (the values :meth:`_variables` read): sliced once for a whole ranking. Empty
        under a distribution (its tables may be split by rows): the program slices them."""
        if self.place.mesh is not None:
            return {}
        wanted = {id(v) for v in self.model.known_row_variables()}
        return {v.path: value[1:] for v, value in zip(self.model.variables, variables) if id(v) in wanted}

    def _item_table(self, variables: list, known: dict, mask: np.ndarray, items) -> Any:
        """A product model's item side (None for other models) for these weights and allowed ``mask`` (``items``:
        the mask as the program takes it): made once, then kept while both stay the same, so that one user's list
        does not make a table of the whole catalogue again. Values are compared by identity: a weight's value is
        replaced, never changed in place, when it changes (a fold-in changes per-user rows in place, which the
        item side does not read)."""
        held = self._held_table
        if (held is not None and len(held[0]) == len(variables) and all(a is b for a, b in zip(held[0], variables))
                and np.array_equal(held[1], mask)):
            return held[2]
        table = self._product_table(variables, known, items)
        self._held_table = (list(variables), np.array(mask, dtype=bool), table)
        return table

    # --- public -----------------------------------------------------------------------------------------------
    def _padded(self, x: dict[str, np.ndarray], n: int) -> dict:
        """``x``'s arrays (``n`` rows each) padded with zeros to a fixed size (so compiled shapes are reused), and
        placed on the distribution's devices when there is one."""
        size = -(-n // 256) * 256 if n <= 4096 else _bucket(n)
        x = {k: np.concatenate([np.asarray(v), np.zeros((size - n, *np.shape(v)[1:]), np.asarray(v).dtype)])
             for k, v in x.items()}
        return {key: self.place.put_batch(v) for key, v in x.items()} if self.place.mesh is not None else x

    def _chunks(self, u: np.ndarray, i: np.ndarray, extra: dict[str, np.ndarray] | None, chunk: int):
        """Padded input chunks of the pairs (see :meth:`_padded`) and their real lengths."""
        for start in range(0, len(u), chunk):
            x = {"user": np.asarray(u[start:start + chunk]).astype("int32"),
                 "item": np.asarray(i[start:start + chunk]).astype("int32")}
            x.update({k: v[start:start + chunk] for k, v in (extra or {}).items()})
            n = len(x["user"])
            yield self._padded(x, n), n

    def pairs(self, u: np.ndarray, i: np.ndarray, extra: dict[str, np.ndarray] | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
        """(outputs, ratings) for index pairs, in fixed-size padded chunks so compiled shapes are reused."""
        m = self.model
        trainable, non_trainable = self._variables("trainable"), self._variables("non_trainable")
        outs, ratings = [], []
        for x, n in self._chunks(u, i, extra, pair_chunk(m)):
            out, rating = self._pairs(trainable, non_trainable, x)
            outs.append(self.place.to_host(out)[:n])
            ratings.append(np.asarray(self.place.to_host(rating), dtype="float64")[:n])
        if not outs:
            return np.zeros((0, *m.output_rule.shape), "float32"), np.zeros(0)
        return np.concatenate(outs), np.concatenate(ratings)

    def ratings(self, u: np.ndarray, i: np.ndarray, extra: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """Ratings alone for index pairs (:meth:`pairs`' second half, without the outputs that only lists need).
        For a model that rates through a per-user part (``model.capabilities.rates_by_user``), the pairs go by user:
        each chunk holds the pairs of at most ``pair_chunk`` users, and the model computes each user's part once per
        chunk."""
        variables = self._variables("all")
        m = self.model
        users = pair_chunk(m, row_floats=m.rating_row_floats)
        if not m.capabilities.rates_by_user or len(u) == 0:
            out = [np.asarray(self.place.to_host(self._ratings(variables, x)), dtype="float64")[:n]
                   for x, n in self._chunks(u, i, extra, users)]
            return np.concatenate(out) if out else np.zeros(0)
        order = np.argsort(u, kind="stable")
        u, i = np.asarray(u)[order], np.asarray(i)[order]
        extra = {k: np.asarray(v)[order] for k, v in (extra or {}).items()}
        group = np.cumsum(np.r_[True, u[1:] != u[:-1]]) - 1  # each pair's user, counted in sorted order
        starts = np.flatnonzero(np.r_[True, np.diff(group // users) > 0])  # a chunk: the pairs of `users` users
        edges = [b for a, z in zip(starts, [*starts[1:], len(u)]) for b in range(a, z, PAIR_CHUNK)] + [len(u)]
        out = np.empty(len(u), "float64")
        for a, z in zip(edges, edges[1:]):
            distinct, row = np.unique(u[a:z], return_inverse=True)
            x = self._padded({"user": u[a:z].astype("int32"), "item": i[a:z].astype("int32"),
                              "user_row": row.astype("int32"), **{k: v[a:z] for k, v in extra.items()}}, z - a)
            x.update(self._padded({"unique_user": distinct.astype("int32")}, len(distinct)))
            out[a:z] = np.asarray(self.place.to_host(self._ratings(variables, x)), dtype="float64")[:z - a]
        result = np.empty_like(out)
        result[order] = out
        return result

    def user_batch(self) -> int:
        """How many users to rank at once against every item: as many as keep their scores within
        :data:`TOP_K_BUDGET` floats."""
        per_user = max(1, (self.model.n_items - 1) * self.model.pair_cost)
        return int(max(1, min(MAX_USER_BATCH, TOP_K_BUDGET // per_user)))

    def top_k(self, users: np.ndarray, allowed: np.ndarray | Allowed, k: int, user_features: np.ndarray | None = None,
              batch_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Best ``k`` allowed item positions per user (best first, -1 where fewer are allowed; ties: the lower
        position first) and their ratings. ``allowed``: a boolean (users, n_items) or its :class:`Allowed` form.
        Users are scored ``batch_size`` at a time (default: :meth:`user_batch`); every batch is queued on the
        device before the first is read back, so the device never waits for the host."""
        n_items = self.model.n_items - 1
        kk = min(_bucket(k), n_items)
        if not isinstance(allowed, Allowed):
            allowed = Allowed.from_mask(allowed)
        variables = self._variables("all")
        known = self.known_rows(variables)  # sliced here once, not in the program once per batch
        items = self.place.put(allowed.items) if self.place.mesh is not None else allowed.items
        table = self._item_table(variables, known, allowed.items, items)
        batch = batch_size or self.user_batch()  # checked by the caller (Recommender._top_positions)
        queued = []
        for start in range(0, len(users), batch):
            uu = users[start:start + batch]
            n = len(uu)
            size = min(_bucket(n, 1), batch) if n < batch else batch
            uu = np.concatenate([uu, np.zeros(size - n, uu.dtype)]).astype("int32")
            ex = allowed.excluded_pairs(start, start + batch, size)
            uf = None
            if user_features is not None:
                f = user_features[start:start + batch]
                uf = np.concatenate([f, np.zeros((size - n, f.shape[1]), f.dtype)]).astype("float32")
            if self.place.mesh is not None:
                uu, ex = self.place.put_batch(uu), self.place.put(ex)  # the pairs: for every row
                uf = None if uf is None else self.place.put_batch(uf)
            queued.append((n, self._top_k(variables, known, table, uu, items, ex, uf, k=kk)))
        pos_parts, rating_parts = [], []
        for n, (values, idx, rating) in queued:
            values, idx = self.place.to_host(values)[:n, :k], self.place.to_host(idx)[:n, :k]
            pos_parts.append(np.where(np.isneginf(values), -1, idx))
            rating_parts.append(np.asarray(self.place.to_host(rating), dtype="float64")[:n, :k])
        if not pos_parts:
            return np.zeros((0, min(k, n_items)), "int64"), np.zeros((0, min(k, n_items)))
        return np.concatenate(pos_parts), np.concatenate(rating_parts)


def popular(state, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The fallback when nothing is known about a user: the items with the best damped mean training rating
    (global mean + item bias, shrunk toward the mean by the baseline's pseudo-ratings)."""
    scores = state.rating_scale.clip(state.baseline.mean + state.baseline.item_bias[1:])
    pos = top_k_numpy(scores, k, allowed)
    return pos, scores[pos]

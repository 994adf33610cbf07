"""The recommendation pipeline, one named piece per step:

candidates (:class:`Candidates`: unseen, excluded, minimum support) -> scoring and top-k on the device
(:class:`Scorer`) -> fallback for unknown users (:func:`popular`).

The scorer compiles one function per input shape and passes the model's variables to it on every call, so it never
goes stale when the weights change (keras-rs' brute-force retrieval keeps its candidates in variables likewise).
"""

from __future__ import annotations

import weakref
from functools import cached_property
from typing import Any, Callable, Iterable, Mapping

import keras
import numpy as np
from keras import ops

from .similarity import top_k as top_k_numpy

PAIR_CHUNK = 1 << 16
SCORE_BUDGET = 1 << 25  # floats held at once while scoring all items for a batch of users
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

    def mask(self, users: np.ndarray, *, exclude_seen: bool = True, exclude: Iterable | None = None,
             min_ratings: int | None = None) -> np.ndarray:
        """Boolean (len(users), n_items) over item positions; user index 0 (unknown) has seen nothing."""
        s = self.state
        n_items = len(s.item_index)
        allowed = np.ones((len(users), n_items), dtype=bool)
        if exclude_seen:
            rows = s.seen[np.asarray(users)]
            r, c = rows.nonzero()
            allowed[r, c - 1] = False
        if exclude is not None:
            if isinstance(exclude, (str, bytes)) or not hasattr(exclude, "__iter__"):
                raise ValueError(f"exclude must be a list of item ids, got {exclude!r}")
            ex = s.item_index.index(np.asarray(list(exclude)))
            allowed[:, ex[ex > 0] - 1] = False
        if min_ratings is None:  # the model's default minimum support
            min_ratings = self.default_support
        if min_ratings is not None:
            check_min_ratings(min_ratings)
            allowed &= (s.popularity[1:] >= min_ratings)[None, :]
        return allowed


# compiled scoring programs per model: every Scorer of a model (e.g. of the states fold_in derives, which share it)
# runs the same programs
_PROGRAMS: "weakref.WeakKeyDictionary[Any, tuple[Callable, Callable, Callable]]" = weakref.WeakKeyDictionary()


def _programs(model) -> tuple[Callable, Callable, Callable]:
    found = _PROGRAMS.get(model)
    if found is None:
        ref = weakref.ref(model)  # the programs must not keep their model alive (it keys the cache)

        def pairs_fn(trainable, non_trainable, x):
            model = ref()
            out, _ = model.stateless_call(trainable, non_trainable, x, training=False)
            return out, model.output_rule.to_rating(out)

        def top_k_fn(variables, users, allowed, user_features, k):
            model = ref()
            with keras.StatelessScope(state_mapping=list(zip(model.variables, variables))):
                out = model.score_items(users, user_features)
                key, rating = model.output_rule.ranking_key(out), model.output_rule.to_rating(out)
            key = ops.where(allowed, key, ops.full_like(key, -np.inf))
            values, idx = ops.top_k(key, k)
            return values, idx, ops.take_along_axis(rating, idx, axis=1)

        def ratings_fn(variables, x):
            model = ref()
            with keras.StatelessScope(state_mapping=list(zip(model.variables, variables))):
                return model.score_ratings(x)

        found = _PROGRAMS[model] = (_compile(pairs_fn), _compile(top_k_fn, static_argnames=("k",)),
                                    _compile(ratings_fn))
    return found


class Scorer:
    """Model outputs on the device: for (user, item) pairs, and top-k over all items for batches of users.
    ``values`` (variable path -> array) replaces some variables' values (a fold-in's new per-user arrays)."""

    def __init__(self, model, distribution=None, values: Mapping[str, Any] | None = None) -> None:
        from .engine.placement import Placement

        self.model = model
        self.place = Placement(distribution)
        self.values = dict(values or {})
        self._pairs, self._top_k, self._ratings = _programs(model)

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

    # --- public -----------------------------------------------------------------------------------------------
    def _chunks(self, u: np.ndarray, i: np.ndarray, extra: dict[str, np.ndarray] | None, chunk: int):
        """Padded input chunks of the pairs (fixed sizes, so compiled shapes are reused) and their real lengths."""
        for start in range(0, len(u), chunk):
            x = {"user": u[start:start + chunk], "item": i[start:start + chunk]}
            x.update({k: v[start:start + chunk] for k, v in (extra or {}).items()})
            n = len(x["user"])
            size = -(-n // 256) * 256 if n <= 4096 else _bucket(n)
            x = {k: np.concatenate([np.asarray(v), np.zeros((size - n, *np.shape(v)[1:]), np.asarray(v).dtype)])
                 for k, v in x.items()}
            x["user"], x["item"] = x["user"].astype("int32"), x["item"].astype("int32")
            yield ({key: self.place.put_batch(v) for key, v in x.items()} if self.place.mesh is not None else x), n

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
        """Ratings alone for index pairs (:meth:`pairs`' second half, without the outputs that only lists need)."""
        variables = self._variables("all")
        out = [np.asarray(self.place.to_host(self._ratings(variables, x)), dtype="float64")[:n]
               for x, n in self._chunks(u, i, extra, pair_chunk(self.model, row_floats=self.model.rating_row_floats))]
        return np.concatenate(out) if out else np.zeros(0)

    def user_batch(self) -> int:
        """How many users to score at once against every item."""
        per_user = max(1, (self.model.n_items - 1) * self.model.pair_cost)
        return int(max(1, min(MAX_USER_BATCH, SCORE_BUDGET // per_user)))

    def top_k(self, users: np.ndarray, allowed: np.ndarray, k: int, user_features: np.ndarray | None = None,
              batch_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Best ``k`` allowed item positions per user (best first, -1 where fewer are allowed) and their ratings.
        Users are scored ``batch_size`` at a time (default: as many as fit a fixed memory budget)."""
        n_items = self.model.n_items - 1
        kk = min(_bucket(k), n_items)
        variables = self._variables("all")
        batch = batch_size or self.user_batch()  # checked by the caller (Recommender._top_positions)
        pos_parts, rating_parts = [], []
        for start in range(0, len(users), batch):
            uu, aa = users[start:start + batch], allowed[start:start + batch]
            n = len(uu)
            size = min(_bucket(n, 1), batch) if n < batch else batch
            uu = np.concatenate([uu, np.zeros(size - n, uu.dtype)]).astype("int32")
            aa = np.concatenate([aa, np.zeros((size - n, n_items), bool)])
            uf = None
            if user_features is not None:
                f = user_features[start:start + batch]
                uf = np.concatenate([f, np.zeros((size - n, f.shape[1]), f.dtype)]).astype("float32")
            if self.place.mesh is not None:
                uu, aa = self.place.put_batch(uu), self.place.put_batch(aa)
                uf = None if uf is None else self.place.put_batch(uf)
            values, idx, rating = self._top_k(variables, uu, aa, uf, k=kk)
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

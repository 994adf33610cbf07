"""Folding users into a fitted model: each user's rows re-solved from their ratings, every item-side weight fixed.

One mechanism for every model, with per-model hooks (:mod:`ratecast.models.base`):

* a model linear in its user rows (``fold_in_design`` gives ``rating = offset + X . theta``: dot, biased_dot,
  baseline, implicit's rating head, bayesian's posterior-mean dot product) gets the closed-form MAP solution of a
  ridge regression, in its dual form (a ratings x ratings system per user, so its cost does not grow with the rows'
  width): ``theta = m + S X^T (X S X^T + s2 I)^-1 (r - offset - X m)`` (or its primal form, when a user has more
  ratings than the rows have columns), with the prior mean ``m`` and the diagonal
  prior variance ``S`` of the trained users' rows and the noise variance ``s2`` of the model's training residuals.
  ``theta - m = sum_j alpha_j S x_j`` decomposes the user exactly over their rated items (what
  :mod:`ratecast.explain` reports). A model whose user columns hold several independent fits side by side
  (``fold_in_blocks``: ``bayesian``, one per posterior sample) gets one such solve per block, each fitting the
  ratings alone with its own bias, averaged as its prediction averages the samples: the conditional mean of the
  user's factors given each sample's item factors, with the trained users' spread as the prior (an approximation
  of the sampled one: the samples' own hyperparameters are not kept). These solves run BLAS on one thread
  (:func:`one_blas_thread`);
* any other model (the towers: deep, hybrid, classification) takes a few Adam steps of its own training loss plus
  the same Gaussian prior, over the user rows only: one compiled program per model and shape bucket (users, ratings
  per user, both padded to powers of two), the model's weights passed as arguments (``row_override`` substitutes
  the users' rows in the model's table lookups), so a later call of the same bucket compiles nothing.

Per-user data besides weights (implicit's item sets, bayesian's day tables) comes from ``fold_in_rows``. A new user
takes a spare row: the model's user tables grow in capacity buckets (built once per bucket), and a new state gets
new arrays for its per-user weights only (``FittedState.user_values``), sharing every other weight. Those arrays
are views of two buffers per table that the states of a chain of fold-ins take turns on (:class:`TableLineage`), so
a fold-in writes the rows it changes, not the whole table, whether its users are new or known.
"""

from __future__ import annotations

import functools
import threading
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np
import pandas as pd

from .datasets.dataset import IdIndex
from .state import Baseline, FittedState, SeenRatings

#: Adam steps and learning rate of the gradient solve
STEPS = 60
LEARNING_RATE = 0.05
#: how many ratings a user's noise-variance estimate samples from the training ratings
NOISE_SAMPLE = 4096
#: the ridge penalty of the regression of the trained users' rows on their metadata (the prior's mean)
FEATURE_RIDGE = 1.0
#: most users solved in one call (one shape bucket)
MAX_BATCH = 256

_PRIORS: "weakref.WeakKeyDictionary[Any, Prior]" = weakref.WeakKeyDictionary()
_PROGRAMS: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()
_GROWN: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()
_TRACES = {"count": 0}


def trace_count() -> int:
    """How many fold-in programs have been traced so far (a call of a bucket already compiled adds none)."""
    return _TRACES["count"]


def bucket(n: int) -> int:
    """The padded size for ``n``: the next power of two (few compiled shapes, at most twice the work)."""
    return 1 << max(0, int(n) - 1).bit_length()


def capacity(n_users: int) -> int:
    """User rows to allocate for ``n_users``: a quarter more and at least 64 spare, rounded to 64."""
    return -(-(n_users + max(64, n_users // 4)) // 64) * 64


@dataclass(frozen=True)
class Prior:
    """The Gaussian prior of a user's rows ``theta`` (the user layers side by side): per-column mean and variance
    of the trained users' rows, and the noise variance of the training residuals. With user metadata, the mean
    moves with the user's feature row: ``mean + (f - feature_mean) @ feature_weights``, a ridge regression of the
    trained users' rows on their features (and ``var`` is what it leaves unexplained)."""

    mean: np.ndarray
    var: np.ndarray
    noise: float
    feature_mean: np.ndarray | None = None  # (F,)
    feature_weights: np.ndarray | None = None  # (F, K)

    def means(self, features: np.ndarray | None, n: int) -> np.ndarray:
        """The prior mean of ``n`` users with these feature rows (None: no metadata): (n, K)."""
        if features is None or self.feature_weights is None:
            return np.broadcast_to(self.mean, (n, len(self.mean)))
        return self.mean + (np.asarray(features, "float64") - self.feature_mean) @ self.feature_weights


@dataclass
class Users:
    """The users of one fold-in: their target rows, ratings (padded to a bucket) and whether they were known."""

    ids: list
    rows: np.ndarray  # (U,) user index each one is written to
    known: np.ndarray  # (U,) bool
    items: list[np.ndarray]
    ratings: list[np.ndarray]
    new_items: list[np.ndarray]  # the pairs this fold-in adds (for seen)
    new_ratings: list[np.ndarray]

    def padded(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(items, ratings, mask), each (bucket(users), bucket(ratings)); padding is item 0, masked out."""
        U = bucket(len(self.rows))
        R = bucket(max((len(i) for i in self.items), default=1))
        items, ratings, mask = np.zeros((U, R), "int32"), np.zeros((U, R), "float32"), np.zeros((U, R), bool)
        for k, (i, r) in enumerate(zip(self.items, self.ratings)):
            items[k, :len(i)], ratings[k, :len(i)], mask[k, :len(i)] = i, r, True
        return items, ratings, mask


_BLAS_LOCK = threading.Lock()
_BLAS: dict[str, Any] = {"controller": None, "users": 0, "limiter": None}


@contextmanager
def one_blas_thread():
    """BLAS and LAPACK on one thread while the block runs (nested and concurrent blocks too; the thread counts are
    process-wide, set back when the last block ends). A fold-in's matrices are small: a second thread saves
    little, and on a busy machine one that is descheduled stalls the whole call by a time slice or more."""
    with _BLAS_LOCK:
        if _BLAS["users"] == 0:
            from threadpoolctl import ThreadpoolController

            if _BLAS["controller"] is None:  # finds the loaded libraries: made once
                _BLAS["controller"] = ThreadpoolController()
            _BLAS["limiter"] = _BLAS["controller"].limit(limits=1, user_api="blas")
        _BLAS["users"] += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _BLAS["users"] -= 1
            if _BLAS["users"] == 0:
                limiter, _BLAS["limiter"] = _BLAS["limiter"], None
                limiter.restore_original_limits()


def _on_one_blas_thread(function: Callable) -> Callable:
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with one_blas_thread():
            return function(*args, **kwargs)

    return wrapper


def block_layout(model) -> tuple[int, int]:
    """(blocks, width): the model's :meth:`fold_in_blocks` independent fits over its first user layer's columns."""
    blocks = int(model.fold_in_blocks())
    head = theta_widths(model)[0]
    if blocks < 1 or head % blocks:
        raise ValueError(f"fold_in_blocks must divide the {head} columns of {model.user_layers[0]}, got {blocks}")
    return blocks, head // blocks


def theta_widths(model) -> list[int]:
    """Widths of the model's :attr:`user_layers` tables: ``theta`` is their rows side by side."""
    return [int(getattr(model, name).embeddings.shape[1]) for name in model.user_layers]


@_on_one_blas_thread
def prior_of(state: FittedState, noise: Callable[[], float]) -> Prior:
    """The prior of ``state``'s model (computed once per model from its trained users); ``noise()`` gives the
    variance of the model's training errors."""
    found = _PRIORS.get(state.model)
    if found is not None:
        return found
    n = state.user_index.size
    theta = np.concatenate([np.asarray(state.value(getattr(state.model, name).embeddings))[1:n]
                            for name in state.model.user_layers], axis=1).astype("float64")
    mean, centred = theta.mean(axis=0), theta - theta.mean(axis=0)
    f_mean = weights = None
    if state.model.user_feature_table is not None:
        F = np.asarray(state.value(state.model.user_feature_table))[1:n].astype("float64")
        f_mean = F.mean(axis=0)
        Fc = F - f_mean
        weights = np.linalg.solve(Fc.T @ Fc + FEATURE_RIDGE * np.eye(F.shape[1]), Fc.T @ centred)
        centred = centred - Fc @ weights
    prior = Prior(mean, np.maximum(centred.var(axis=0), 1e-6), float(max(noise(), 1e-4)), f_mean, weights)
    _PRIORS[state.model] = prior
    return prior


def with_capacity(state: FittedState, n_users: int) -> FittedState:
    """``state`` with a model of at least ``n_users`` user rows: a grown copy holding the state's values, built once
    per model and capacity bucket (kept for later fold-ins into the same state)."""
    model = state.model
    if model.n_users >= n_users:
        return state
    grown = _GROWN.get(model) if state.user_values is None else None
    if grown is None or grown.n_users < n_users:
        grown = model.resized(capacity(n_users), [state.value(v) for v in model.variables])
        if state.user_values is None:
            _GROWN[model] = grown
    if model in _PRIORS:
        _PRIORS[grown] = _PRIORS[model]
    return replace(state, model=grown, user_values=None)


def gather_users(state: FittedState, user_ids: np.ndarray, items: np.ndarray, ratings: np.ndarray) -> Users:
    """Group the pairs (raw user ids, item indices, ratings) by user, in order of first appearance: a known user's
    ratings are their stored ones plus the new (a new rating of an item replaces the stored one; the last one given
    counts); a new user takes the next free row."""
    codes, uniques = pd.factorize(np.asarray(user_ids, dtype=object), sort=False)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(uniques) + 1))
    rows_of = state.user_index.index(np.asarray(uniques, dtype=object))
    ids, rows, known, all_items, all_ratings, new_items, new_ratings = [], [], [], [], [], [], []
    next_row = state.user_index.size
    for k, user_id in enumerate(uniques):
        at = order[bounds[k]:bounds[k + 1]]
        i_new, r_new = items[at].astype("int64"), ratings[at].astype("float32")
        last = len(i_new) - 1 - np.unique(i_new[::-1], return_index=True)[1]  # the last rating of each item
        last.sort()
        i_new, r_new = i_new[last], r_new[last]
        u = int(rows_of[k])
        if u:
            i_old, r_old = state.user_ratings(u)
            keep = ~np.isin(i_old, i_new)
            i_all, r_all = np.concatenate([i_old[keep], i_new]), np.concatenate([r_old[keep], r_new])
        else:
            u, next_row = next_row, next_row + 1
            i_all, r_all = i_new, r_new
        ids.append(user_id.item() if isinstance(user_id, np.generic) else user_id)
        rows.append(u)
        known.append(u < state.user_index.size)
        all_items.append(i_all)
        all_ratings.append(r_all)
        new_items.append(i_new)
        new_ratings.append(r_new)
    return Users(ids, np.asarray(rows, "int64"), np.asarray(known, bool), all_items, all_ratings, new_items,
                 new_ratings)


# --- the solves ----------------------------------------------------------------------------------------------------
def table_rows(model, users: Users) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The :meth:`user_tables` rows :meth:`fold_in_rows` gives the users, by name: (which users got one, their
    rows stacked); a user left out keeps the row they have."""
    per_user = [model.fold_in_rows(i, r, bool(k)) for i, r, k in zip(users.items, users.ratings, users.known)]
    tables = model.user_tables()
    out = {}
    for name in dict.fromkeys(name for rows in per_user for name in rows):
        got = np.array([name in rows for rows in per_user])
        out[name] = (got, np.stack([rows[name] for rows in per_user if name in rows]).astype(tables[name].dtype))
    return out


def ridge(X: np.ndarray, offset: np.ndarray, y: np.ndarray, mask: np.ndarray, prior: Prior, means: np.ndarray,
          var: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The MAP ``theta`` (users, K) of ``y = offset + X theta + noise`` under the prior (the users' prior ``means``,
    (users, K); the prior variance ``var``, (K,) or (users, K), default the prior's), and the dual weights
    ``alpha`` (users, ratings): ``theta = means + var * sum_j alpha_j X_j``.

    Solved in the dual (a ratings x ratings system per user) when users have fewer ratings than ``theta`` has
    columns, else in the primal (K x K); at the solution ``alpha = (y - offset - X theta) / noise`` either way."""
    var = prior.var if var is None else var
    var_rows = np.broadcast_to(var, means.shape)
    Xm = np.asarray(X, "float64") * mask[..., None]
    target = (np.asarray(y, "float64") - offset) * mask
    K, R = Xm.shape[2], Xm.shape[1]
    if R <= K:
        resid = target - np.einsum("urk,uk->ur", Xm, means)
        G = np.matmul(Xm * var_rows[:, None, :], np.swapaxes(Xm, 1, 2))
        G += prior.noise * np.eye(R)
        alpha = np.linalg.solve(G, resid[..., None])[..., 0] * mask
        return means + var_rows * np.matmul(alpha[:, None, :], Xm)[:, 0], alpha
    A = np.matmul(np.swapaxes(Xm, 1, 2), Xm) / prior.noise
    A[:, np.arange(K), np.arange(K)] += 1.0 / var_rows
    b = np.matmul(target[:, None, :], Xm)[:, 0] / prior.noise + means / var_rows
    theta = np.linalg.solve(A, b[..., None])[..., 0]
    alpha = (target - np.einsum("urk,uk->ur", Xm, theta)) * mask / prior.noise
    return theta, alpha


@dataclass
class BlockFit:
    """A closed-form fold-in of users whose rows are ``blocks`` independent fits averaged (``bayesian``: one per
    posterior sample): block ``b`` explains the ratings alone with its ``width`` columns of the rows' head (scaled
    by ``blocks``, as the prediction is the blocks' mean) and its own copy of the tail (e.g. the bias), which is
    averaged. With one block this is the plain ridge regression of :func:`ridge`."""

    theta: np.ndarray  # (users, K): the blocks' head columns side by side, then the tail averaged
    design: np.ndarray  # (users * blocks, ratings, width + tail)
    alpha: np.ndarray  # (users * blocks, ratings)
    means: np.ndarray  # (users * blocks, width + tail)
    var: np.ndarray  # (users * blocks, width + tail)
    blocks: int
    width: int

    def split(self, X: np.ndarray) -> np.ndarray:
        """Design rows (users, n, K) in block form: (users * blocks, n, width + tail)."""
        return _blocked(X, self.blocks, self.width)

    def contributions(self, xi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For one design row per user ``xi`` (users, K): each rated item's share of ``xi . theta`` (users,
        ratings) and the prior's (users,); with ``offset`` they sum to the rating."""
        x = self.split(xi[:, None, :])[:, 0]  # (users * blocks, width + tail)
        B = self.blocks
        per_item = self.alpha * np.einsum("nrk,nk->nr", self.design * self.var[:, None, :], x)
        prior = np.einsum("nk,nk->n", self.means, x)
        U = len(per_item) // B
        return per_item.reshape(U, B, -1).mean(axis=1), prior.reshape(U, B).mean(axis=1)

    def mean_share(self, mean: np.ndarray, xi: np.ndarray) -> float:
        """The share of the rating a prior mean ``mean`` (K,) gives the design row ``xi`` (K,) (linear in both)."""
        B, w = self.blocks, self.width
        tail = mean[B * w:]
        m = np.concatenate([mean[:B * w].reshape(B, w), np.broadcast_to(tail, (B, len(tail)))], axis=1)
        x = self.split(np.asarray(xi, "float64")[None, None, :])[:, 0]
        return float(np.einsum("bk,bk->b", m, x).mean())


def _blocked(X: np.ndarray, B: int, w: int) -> np.ndarray:
    U, R, K = X.shape
    head = np.asarray(X[..., :B * w], "float64").reshape(U, R, B, w) * B
    tail = np.broadcast_to(np.asarray(X[..., B * w:], "float64")[:, :, None, :], (U, R, B, K - B * w))
    return np.concatenate([head, tail], axis=-1).transpose(0, 2, 1, 3).reshape(U * B, R, w + K - B * w)


@_on_one_blas_thread
def block_ridge(X: np.ndarray, offset: np.ndarray, y: np.ndarray, mask: np.ndarray, prior: Prior,
                means: np.ndarray, blocks: int = 1, width: int | None = None) -> BlockFit:
    """:func:`ridge` of each of ``blocks`` independent fits of ``width`` head columns each (see
    :class:`BlockFit`), averaged; one block: the plain ridge regression over every column."""
    U, R, K = X.shape
    B = blocks
    w = K if B == 1 or width is None else width
    design = _blocked(X, B, w)

    def per_block(v: np.ndarray) -> np.ndarray:  # (U, K) -> (U * B, w + tail)
        head = v[:, :B * w].reshape(v.shape[0], B, w)
        tail = np.broadcast_to(v[:, None, B * w:], (v.shape[0], B, K - B * w))
        return np.concatenate([head, tail], axis=-1).reshape(v.shape[0] * B, -1)

    m = per_block(np.asarray(means, "float64"))
    v = per_block(np.broadcast_to(prior.var, (U, K)))
    rep = lambda a: np.repeat(a, B, axis=0)  # noqa: E731 - one row per block
    solved, alpha = ridge(design, rep(offset), rep(y), rep(mask), prior, m, v)
    solved = solved.reshape(U, B, -1)
    theta = np.concatenate([solved[:, :, :w].reshape(U, B * w), solved[:, :, w:].mean(axis=1)], axis=1)
    return BlockFit(theta, design, alpha, m, v, B, w)


def _program(model, shape: tuple[int, int], n_features: int):
    """The compiled gradient solve for ``model`` and one bucket (cached per model)."""
    programs = _PROGRAMS.setdefault(model, {})
    key = (*shape, n_features)
    if key not in programs:
        programs[key] = _make_program(model)
    return programs[key]


def _make_program(model):
    import jax
    import jax.numpy as jnp
    import keras

    from .models.layers import row_override

    ref = weakref.ref(model)  # the programs must not keep their model alive (it keys the cache)
    names, widths = model.user_layers, theta_widths(model)
    loss_fn = keras.losses.get(model.output_rule.training_loss())

    def outputs(trainable, non_trainable, theta, users, items, features):
        model = ref()
        layers = [getattr(model, name) for name in names]
        R = items.shape[1]
        flat_users = jnp.repeat(users, R)
        x = {"user": flat_users, "item": items.reshape(-1)}
        if features is not None:
            x["user_features"] = jnp.repeat(features, R, axis=0)
        override, start = {}, 0
        for layer, w in zip(layers, widths):
            override[id(layer)] = (flat_users, jnp.repeat(theta[:, start:start + w], R, axis=0), None)
            start += w
        with row_override(override):
            out, _ = model.stateless_call(trainable, non_trainable, x, training=False)
        return out

    def solve(trainable, non_trainable, users, items, targets, mask, features, mean, var, noise, steps, lr):
        _TRACES["count"] += 1  # runs while tracing only
        flat_mask = mask.reshape(-1).astype("float32")
        flat_targets = targets.reshape((-1, *targets.shape[2:]))

        def objective(theta):
            out = outputs(trainable, non_trainable, theta, users, items, features)
            per = jax.vmap(lambda t, o: jnp.sum(loss_fn(t[None], o[None])))(flat_targets, out)
            return jnp.sum(per * flat_mask) + noise * jnp.sum((theta - mean) ** 2 / var)

        grad = jax.grad(objective)

        def step(t, carry):
            theta, m, v = carry
            g = grad(theta)
            m = 0.9 * m + 0.1 * g
            v = 0.999 * v + 0.001 * g * g
            tt = (t + 1).astype("float32")
            mh, vh = m / (1 - 0.9 ** tt), v / (1 - 0.999 ** tt)
            return theta - lr * mh / (jnp.sqrt(vh) + 1e-8), m, v

        theta0 = mean.astype("float32")  # (users, K)
        zeros = jnp.zeros_like(theta0)
        theta, _, _ = jax.lax.fori_loop(0, steps, step, (theta0, zeros, zeros))
        return theta

    def score(trainable, non_trainable, theta, users, items, features):
        _TRACES["count"] += 1
        return ref().output_rule.ranking_key(outputs(trainable, non_trainable, theta, users, items, features))

    return {"solve": jax.jit(solve), "score": jax.jit(score)}


def _variables(state: FittedState, overlay: dict[str, Any]) -> tuple[list, list]:
    m = state.model

    def value(v):
        return overlay[v.path] if v.path in overlay else state.value(v)

    return [value(v) for v in m.trainable_variables], [value(v) for v in m.non_trainable_variables]


def gradient_solve(state: FittedState, overlay: dict[str, Any], users: np.ndarray, items: np.ndarray,
                   ratings: np.ndarray, mask: np.ndarray, prior: Prior, features: np.ndarray | None,
                   steps: int = STEPS, learning_rate: float = LEARNING_RATE) -> np.ndarray:
    """``theta`` (users, K) by Adam steps of the model's loss plus the prior, over the user rows only."""
    m = state.model
    flat = np.asarray(m.output_rule.targets(ratings.reshape(-1)))
    targets = flat.reshape(*ratings.shape, *flat.shape[1:])
    program = _program(m, items.shape, 0 if features is None else features.shape[1])
    trainable, non_trainable = _variables(state, overlay)
    means = prior.means(features, len(users))
    theta = program["solve"](trainable, non_trainable, users.astype("int32"), items, targets, mask,
                             features, np.asarray(means, "float32"), prior.var.astype("float32"),
                             np.float32(prior.noise), np.int32(steps), np.float32(learning_rate))
    return np.asarray(theta, "float64")


def gradient_scores(state: FittedState, overlay: dict[str, Any], theta: np.ndarray, users: np.ndarray,
                    items: np.ndarray, features: np.ndarray | None) -> np.ndarray:
    """The ranking key of (user rows ``theta``, items (users, k)) pairs: (users, k)."""
    m = state.model
    program = _program(m, items.shape, 0 if features is None else features.shape[1])
    trainable, non_trainable = _variables(state, overlay)
    return np.asarray(program["score"](trainable, non_trainable, theta.astype("float32"), users.astype("int32"),
                                       items.astype("int32"), features), "float64").reshape(items.shape)


# --- arrays that grow at their end, shared by the states derived one after another --------------------------------
def spare(n: int) -> int:
    """Rows to allocate for ``n`` used: a quarter more, at least 16 (at least 80% full when large: scipy copies a
    sparse matrix's arrays out of a buffer less than half used)."""
    return n + max(16, n // 4)


class Lineage:
    """Two sides of buffers, one buffer per column (the seen pairs' items, ratings and flags), for states derived one
    from another whose arrays are prefixes (``buffer[:n]``) of one side's buffers.

    A state derived from another rebuilds its arrays from an offset on (the rows of the users it changes and all
    rows after them) and shares what is before. It writes into a side that no living state reads past that offset:
    its parent's own side when it only appends (new users), else the other side, once the part of the prefix that
    side does not hold yet is copied over (``common``: how long a prefix the two sides hold alike), so that a
    known user's new ratings cost what changed since the side was last written, not a copy of every rating. When
    states of both sides still read past the offset, a new lineage is started (a copy of everything). A state counts
    as a reader of its side, through a weak reference to what it holds (its seen matrix), until it is gone."""

    def __init__(self, dtypes: tuple, capacity: int) -> None:
        self.dtypes, self.capacity = dtypes, capacity
        self.sides: list[tuple[np.ndarray, ...] | None] = [None, None]
        self.readers: list[dict[int, tuple[Any, int]]] = [{}, {}]  # id(reader) -> (weak reference, length read)
        self.common = 0

    def side_buffers(self, side: int) -> tuple[np.ndarray, ...]:
        if self.sides[side] is None:
            self.sides[side] = tuple(np.empty(self.capacity, d) for d in self.dtypes)
            _LINEAGES[id(self.sides[side][0])] = (weakref.ref(self.sides[side][0]), self, side)
        return self.sides[side]

    def reach(self, side: int) -> int:
        """How far the living readers of ``side`` read."""
        live = {k: v for k, v in self.readers[side].items() if v[0]() is not None}
        self.readers[side] = live
        return max((n for _, n in live.values()), default=0)

    def forget_if_unread(self) -> None:
        if self.reach(0) == 0 and self.reach(1) == 0:
            for side in self.sides:
                if side is not None:
                    _LINEAGES.pop(id(side[0]), None)


class _Pending:
    """Holds a reader's place in a side until the state that reads it exists."""


_LINEAGE_LOCK = threading.Lock()
_LINEAGES: dict[int, tuple[Any, Lineage, int]] = {}  # id(a side's first buffer) -> (weak reference, lineage, side)


def _side_of(views: tuple[np.ndarray, ...]) -> tuple[Lineage, int] | None:
    """The lineage and side whose buffers ``views`` are prefixes of, if any."""
    base = views[0].base
    entry = _LINEAGES.get(id(base)) if isinstance(base, np.ndarray) else None
    if entry is None or entry[0]() is not base:
        return None
    lineage, side = entry[1], entry[2]
    buffers = lineage.sides[side]
    if all(v.base is b and v.__array_interface__["data"][0] == b.__array_interface__["data"][0]
           for v, b in zip(views, buffers)):
        return lineage, side
    return None


def rebuilt(views: tuple[np.ndarray, ...], start: int, tails: tuple[list[np.ndarray], ...]
            ) -> tuple[tuple[np.ndarray, ...], Callable[[Any], None]]:
    """Arrays ``views[c][:start]`` followed by the parts ``tails[c]`` one after the other for each column ``c``
    (each part written once, into the buffer the new arrays are views of), sharing the prefix with ``views`` when a
    :class:`Lineage` allows (``views`` are left as they were), and the function to call with what the new state
    holds (its reader: while it lives, nothing writes what it reads)."""
    n = start + sum(len(part) for part in tails[0])
    pending = _Pending()
    with _LINEAGE_LOCK:
        for _, lineage, _ in list(_LINEAGES.values()):  # lineages no state reads any more are let go
            lineage.forget_if_unread()
        found = _side_of(views)
        target = None
        if found is not None and n <= found[0].capacity:
            lineage, side = found
            if lineage.reach(side) <= start:  # only appends to what its readers read
                target, lineage.common = side, min(lineage.common, start)
            else:
                other = 1 - side
                if lineage.sides[other] is None:
                    lineage.common = 0  # the new side holds nothing yet
                low = min(lineage.common, start)
                if lineage.reach(other) <= low:
                    for src, dst in zip(lineage.sides[side], lineage.side_buffers(other)):
                        dst[low:start] = src[low:start]
                    target, lineage.common = other, start
        if target is None:  # a new lineage
            lineage = Lineage(tuple(v.dtype for v in views), spare(n))
            target = 0
            for v, dst in zip(views, lineage.side_buffers(0)):
                dst[:start] = v[:start]
        buffers = lineage.side_buffers(target)
        for parts, dst in zip(tails, buffers):
            at = start
            for part in parts:
                dst[at:at + len(part)] = part
                at += len(part)
        key = id(pending)
        lineage.readers[target][key] = (weakref.ref(pending), n)

    def read_by(owner: Any) -> None:
        with _LINEAGE_LOCK:
            lineage.readers[target].pop(key, None)
            lineage.readers[target][id(owner)] = (weakref.ref(owner), n)
        del pending_holder[:]

    pending_holder = [pending]  # keeps the place until read_by
    return tuple(b[:n] for b in buffers), read_by


_ONES: list[np.ndarray] = [np.ones(0, bool)]


def ones(n: int) -> np.ndarray:
    """``n`` True values, a view of a buffer shared by the seen matrices (never written)."""
    buf = _ONES[0]
    if not n <= len(buf) <= 2 * n:  # scipy copies a view of less than half its buffer
        buf = _ONES[0] = np.ones(spare(n), bool)
    return buf[:n]


# --- per-user tables: two buffers each, taken in turns by the states derived one after another --------------------
ORIGIN = -1  #: the side of a :class:`TableLineage`'s origin (the table it was started from, never written)


def _aligned_zeros(shape: tuple[int, ...], dtype, alignment: int = 64) -> np.ndarray:
    """A C-contiguous array of zeros starting on an ``alignment``-byte boundary (what XLA takes without a
    copy)."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    raw = np.zeros(nbytes + alignment, np.uint8)
    start = -raw.__array_interface__["data"][0] % alignment
    return raw[start:start + nbytes].view(dtype).reshape(shape)


class TableLineage:
    """Two host buffers ("sides") of one per-user table's shape, for the states derived one from another: each state
    reads its table through a device array over one side's buffer (made without a copy; shared with its parent when
    it only appended rows to the parent's), up to the rows it uses; the table the lineage was started from (its
    origin: the model's own) is read, never written.

    A fold-in writes the rows it changes (its known users' rows, its new users' rows after the parent's) into a side
    that no living state reads at those rows: the parent's own side when it only appends past what every reader of
    that side reads, else another side, once the rows in which that side differs from the parent's table are copied
    over. ``stamps`` say which write of the lineage each row of a side holds (0: the origin's row, -1: none yet),
    so finding those rows compares one integer per row, and a chain of fold-ins (each from the state the previous
    one returned, as the server makes them) writes the rows changed since the side was last written, never the
    whole table. When every side is read where a fold-in must write, a new lineage is started from the parent's
    table (one copy of it)."""

    def __init__(self, origin: Any) -> None:
        self.shape, self.dtype = tuple(origin.shape), np.dtype(origin.dtype)
        self.buffers: list[np.ndarray | None] = [None, None]
        self.stamps: list[np.ndarray | None] = [None, None]
        self.readers: list[dict[int, tuple[Any, int]]] = [{}, {}]  # id(array) -> (weak reference, rows it reads)
        self.writes = 0

    def reach(self, side: int) -> int:
        """How many rows of ``side`` its living readers read."""
        live = {k: v for k, v in self.readers[side].items() if v[0]() is not None}
        self.readers[side] = live
        return max((n for _, n in live.values()), default=0)

    def write(self, parent: Any, side: int, rows: np.ndarray, new: np.ndarray, used: int, target: int) -> bool:
        """Make side ``target`` hold the table of ``parent`` (on ``side``, ``used`` rows read) with ``rows``
        replaced by ``new``; False, and nothing written, when a living reader of ``target`` reads one of the rows
        that takes."""
        if self.buffers[target] is None:
            self.buffers[target] = _aligned_zeros(self.shape, self.dtype)
            self.stamps[target] = np.full(self.shape[0], -1, "int64")
        stamps = self.stamps[target]
        source = 0 if side == ORIGIN else self.stamps[side][:used]
        stale = np.zeros(0, "int64") if side == target else np.flatnonzero(stamps[:used] != source)
        lowest = min(int(stale[0]) if len(stale) else used, int(rows.min()) if len(rows) else used)
        if lowest < self.reach(target):
            return False
        if len(stale):
            buffer = np.asarray(parent) if side == ORIGIN else self.buffers[side]
            if len(stale) > used // 2:  # most rows (a new side): one block copy
                stale = slice(0, used)
            self.buffers[target][stale] = buffer[stale]
            stamps[stale] = 0 if side == ORIGIN else source[stale]
        self.writes += 1
        self.buffers[target][rows] = new
        stamps[rows] = self.writes
        return True


_TABLE_LOCK = threading.Lock()
#: id(a table handed out or a lineage's origin) -> (weak reference to it, its lineage, its side, the buffer it is
#: made over: kept while it lives). An origin holds its lineage by a weak reference: the sides' buffers live as
#: long as a table handed out from them, not as long as the model they were started from.
_TABLES: dict[int, tuple[Any, Any, int, np.ndarray | None]] = {}


def _lineage_of(value: Any) -> tuple[TableLineage | None, int, np.ndarray | None]:
    """(lineage, side, buffer kept) of a registered table (lineage None: not registered, or its lineage is gone)."""
    entry = _TABLES.get(id(value))
    if entry is None or entry[0]() is not value:
        return None, ORIGIN, None
    lineage = entry[1]() if entry[2] == ORIGIN else entry[1]
    return lineage, entry[2], entry[3]


def _register(table: Any, lineage: TableLineage, side: int, buffer: np.ndarray | None) -> None:
    key = id(table)

    def forget(ref, key=key):  # no lock: it may run in any thread, the one holding the lock included
        entry = _TABLES.get(key)
        if entry is not None and entry[0] is ref:
            _TABLES.pop(key, None)

    _TABLES[key] = (weakref.ref(table, forget), weakref.ref(lineage) if side == ORIGIN else lineage, side, buffer)


# --- one fold-in ---------------------------------------------------------------------------------------------------
def _set_rows(value, rows: np.ndarray, new: np.ndarray, used: int, new_used: int):
    """A table holding ``value`` (a per-user table whose rows past ``used`` no state reads) with ``rows`` replaced,
    for a state that reads ``new_used`` rows; ``value`` is left as it was. Written into a side of ``value``'s
    :class:`TableLineage` (the rows the fold-in changes, not the whole table), and handed to JAX without a copy."""
    import jax.numpy as jnp

    rows = np.asarray(rows, "int64")
    with _TABLE_LOCK:
        lineage, side, keep = _lineage_of(value)
        target = None
        if lineage is not None:
            targets = ([] if side == ORIGIN else [side]) + [t for t in (0, 1) if t != side]
            target = next((t for t in targets if lineage.write(value, side, rows, new, used, t)), None)
        if target is None:  # a new lineage, from value's table
            lineage, target = TableLineage(value), 0
            _register(value, lineage, ORIGIN, keep)
            lineage.write(value, ORIGIN, rows, new, used, target)
        elif target == side:  # appended past what every reader reads: the same array serves both states
            ref, _ = lineage.readers[side][id(value)]
            lineage.readers[side][id(value)] = (ref, new_used)
            return value
        buffer = lineage.buffers[target]
        table = jnp.from_dlpack(buffer)
        try:
            shared = table.unsafe_buffer_pointer() == buffer.__array_interface__["data"][0]
        except Exception:  # not a single host buffer: a copy, that nothing else writes
            shared = False
        if shared:
            lineage.readers[target][id(table)] = (weakref.ref(table), new_used)
            _register(table, lineage, target, buffer)
    return table


@_on_one_blas_thread
def solve_users(state: FittedState, users: Users, noise: Callable[[], float], feature_rows: dict | None = None,
                steps: int = STEPS, learning_rate: float = LEARNING_RATE
                ) -> tuple[FittedState, dict[str, Any], np.ndarray]:
    """Grow ``state`` for the users, write their per-user tables and feature rows, and solve their rows: (the grown
    state, the new per-user arrays, theta (users, K)). Users are solved in groups of like rating counts (one
    shape bucket each, at most :data:`MAX_BATCH` users), so one prolific user does not pad everyone's ratings."""
    prior = prior_of(state, noise)
    used, new_used = state.user_index.size, state.user_index.size + int((~users.known).sum())
    state = with_capacity(state, new_used)
    m = state.model
    n = len(users.rows)
    overlay = {v.path: state.value(v) for v in m.user_variables()}
    user_tables = m.user_tables()
    for name, (got, block) in table_rows(m, users).items():
        var = user_tables[name]
        overlay[var.path] = _set_rows(overlay[var.path], users.rows[got], block, used, new_used)
    features = fill = None
    if m.user_feature_table is not None:
        table = m.user_feature_table
        current = np.asarray(overlay[table.path])
        features = current[users.rows].copy()
        fill = current[:1]
        for k, (uid, known) in enumerate(zip(users.ids, users.known)):
            if not known:
                given = (feature_rows or {}).get(uid)
                features[k] = current[0] if given is None else np.asarray(given, features.dtype).reshape(-1)
        overlay[table.path] = _set_rows(overlay[table.path], users.rows, features, used, new_used)
    theta = np.zeros((n, int(sum(theta_widths(m)))))
    sizes = np.array([bucket(max(len(i), 1)) for i in users.items])
    for size in np.unique(sizes):
        group = np.flatnonzero(sizes == size)
        for start in range(0, len(group), MAX_BATCH):
            idx = group[start:start + MAX_BATCH]
            sub = Users([users.ids[k] for k in idx], users.rows[idx], users.known[idx],
                        [users.items[k] for k in idx], [users.ratings[k] for k in idx], [], [])
            items, ratings, mask = sub.padded()
            U = items.shape[0]
            rows = np.concatenate([sub.rows, np.zeros(U - len(idx), "int64")])  # padding users read row 0
            feats = None if features is None else np.concatenate(
                [features[idx], np.repeat(fill, U - len(idx), axis=0)]).astype("float32")
            tables = {name: np.asarray(overlay[var.path])[rows] for name, var in user_tables.items()}
            design = m.fold_in_design(items, tables)
            if design is not None:
                solved = block_ridge(design[0], design[1], ratings, mask, prior, prior.means(feats, U),
                                     *block_layout(m)).theta
            else:
                solved = gradient_solve(state, overlay, rows, items, ratings, mask, prior, feats, steps,
                                        learning_rate)
            theta[idx] = solved[:len(idx)]
    start = 0
    for name, w in zip(m.user_layers, theta_widths(m)):
        var = getattr(m, name).embeddings
        overlay[var.path] = _set_rows(overlay[var.path], users.rows, theta[:, start:start + w], used, new_used)
        start += w
    return state, overlay, theta


def fold_in(state: FittedState, user_ids: np.ndarray, items: np.ndarray, ratings: np.ndarray,
            noise: Callable[[], float], *,
            trained: bool, feature_rows: dict | None = None, steps: int = STEPS,
            learning_rate: float = LEARNING_RATE) -> FittedState:
    """A new state that knows every user of the pairs (raw user ids, item indices, ratings) from their ratings;
    ``trained``: the new ratings join the training data (``update``) rather than only informing the users' rows
    (``fold_in``)."""
    users = gather_users(state, user_ids, items, ratings)
    grown, overlay, _ = solve_users(state, users, noise, feature_rows, steps, learning_rate)
    new = [uid for uid, k in zip(users.ids, users.known) if not k]
    seen, added = _seen(state, users, trained)
    out = replace(grown, user_index=_with_ids(state.user_index, new), user_values=overlay,
                  baseline=_baseline(state.baseline, users), **seen)
    # what the new state would compute again from every rating (its caches), carried over and updated
    popularity = state.popularity.copy()
    np.add.at(popularity, added, 1)
    vars(out)["popularity"] = popularity
    if "title_array" in vars(state):  # the items do not change
        vars(out)["title_array"] = state.title_array
    return out


def _with_ids(index: IdIndex, new: list) -> IdIndex:
    """``index`` plus the ``new`` ids (an id of another type makes the ids mixed: none is converted)."""
    if not new:
        return index
    return index.extended(list(new))


def _baseline(baseline: Baseline, users: Users, damping: float = 10.0) -> Baseline:
    """New users get a damped bias from their ratings; known users keep theirs."""
    new = [(i, r) for i, r, k in zip(users.items, users.ratings, users.known) if not k]
    if not new:
        return baseline
    biases = [float((r - baseline.mean - baseline.item_bias[i]).sum() / (len(r) + damping)) for i, r in new]
    return replace(baseline, user_bias=np.append(baseline.user_bias, biases))


def _seen(state: FittedState, users: Users, trained: bool) -> tuple[dict[str, Any], np.ndarray]:
    """The seen pairs and their ratings with the users' new pairs (a re-rated pair keeps its place), and the items
    of the pairs not seen before. Only the rows from the first user of the fold-in on are rebuilt (untouched rows
    between touched ones copied as blocks, no sort or Python pass over them); the rows before are shared with
    ``state`` where a :class:`Lineage` allows, so new users (appended rows) and users added since the lineage was
    last written cost no copy of every rating."""
    import scipy.sparse as sp

    seen, old = state.seen, state.seen_ratings
    indptr, indices = seen.indptr, seen.indices[:seen.nnz]
    ratings = old.ratings if old is not None else np.zeros(seen.nnz, "float32")
    flags = old.trained if old is not None else np.ones(seen.nnz, bool)
    n_rows = state.user_index.size + int((~users.known).sum())
    added, fresh = 0, []
    rows = {}  # row -> (items, ratings, trained), sorted by item
    for u, known, i_new, r_new in zip(users.rows, users.known, users.new_items, users.new_ratings):
        i_old, r_old, t_old = (indices[indptr[u]:indptr[u + 1]], ratings[indptr[u]:indptr[u + 1]],
                               flags[indptr[u]:indptr[u + 1]]) if known else (indices[:0], ratings[:0], flags[:0])
        at = np.searchsorted(i_old, i_new)
        hit = (at < len(i_old)) & (i_old[np.minimum(at, max(len(i_old) - 1, 0))] == i_new) if len(i_old) else \
            np.zeros(len(i_new), bool)
        before = np.zeros(len(i_new), bool)
        before[hit] = t_old[at[hit]]
        keep = np.ones(len(i_old), bool)
        keep[at[hit]] = False
        added += int(((before | trained) & ~before).sum())
        fresh.append(i_new[~hit])
        i = np.concatenate([i_old[keep], i_new])
        o = np.argsort(i, kind="stable")
        rows[int(u)] = (i[o].astype(indices.dtype), np.concatenate([r_old[keep], r_new])[o].astype("float32"),
                        np.concatenate([t_old[keep], before | trained])[o])
    # from the first touched row on: block copies of the untouched rows between the touched ones, touched rows
    # rebuilt, new rows appended
    counts = np.diff(indptr).astype("int64")
    counts = np.concatenate([counts, np.zeros(n_rows - len(counts), "int64")])
    first = int(indptr[min(min(rows), len(indptr) - 1)])
    parts_i, parts_r, parts_t, at = [], [], [], first
    for u in sorted(rows):
        stop = indptr[min(u, len(indptr) - 1)]
        parts_i.append(indices[at:stop])
        parts_r.append(ratings[at:stop])
        parts_t.append(flags[at:stop])
        i, r, t = rows[u]
        parts_i.append(i)
        parts_r.append(r)
        parts_t.append(t)
        counts[u] = len(i)
        at = indptr[u + 1] if u + 1 < len(indptr) else indptr[-1]
    parts_i.append(indices[at:])
    parts_r.append(ratings[at:])
    parts_t.append(flags[at:])
    tails = (parts_i, parts_r, parts_t)
    if old is not None and len(ratings) == len(indices):
        (new_indices, new_ratings, new_flags), read_by = rebuilt((indices, ratings, flags), first, tails)
    else:  # no ratings kept: nothing to share them with
        new_indices, new_ratings, new_flags = (np.concatenate([a[:first], *t]) for a, t in
                                               zip((indices, ratings, flags), tails))
        read_by = None
    new_indptr = np.concatenate([[0], np.cumsum(counts)]).astype(indptr.dtype)
    new_seen = sp.csr_matrix((ones(len(new_indices)), new_indices, new_indptr), shape=(n_rows, seen.shape[1]))
    new_seen.has_sorted_indices = True
    if read_by is not None:
        read_by(new_seen)
    out = {"seen": new_seen, "seen_ratings": None if old is None else SeenRatings(new_ratings, new_flags)}
    if trained:
        out["n_train"] = state.n_train + added
    return out, np.concatenate(fresh).astype("int64")

"""Gibbs sampling for a Bayesian factorisation model over two relation blocks (JAX).

The model (Freudenthaler et al. 2011's Bayesian factorisation machine, in the relational form of Rendle 2013, without
the interactions inside a block)::

    rating(u, i) = w0 + b(u) + c(i) + <p(u), q(i)>
    [b(u), p(u)] = theta_user[u] + sum_l x_ul theta_l          (l: the user block's extra features)
    [c(i), q(i)] = theta_item[i] + sum_l x_il theta_l          (l: the item block's extra features)

Rating-level bias groups may be added: ``rating += sum_g b_g[index_g(rating)]``, e.g. a bias per user and day
(timeSVD++'s ``b_{u,t}``), each group with a zero-mean Normal prior whose precision is sampled.

Extra features are, e.g., the items a user rated (SVD++'s implicit feedback, normalised by the square root of their
count), the users who rated an item ("flipped"), genres or demographics. Each feature group has its own Normal prior
whose mean and precision (one per column) are sampled from a Normal-Gamma hyperprior (the id rows' precisions with
their column integrated out: :func:`collapsed_hyperparameters`); the noise precision has a Gamma prior. Every sweep samples, for each block, the id rows jointly per row (independent given the other block), then
every extra feature's row at once: given the id rows they are jointly Gaussian, and one draw is the solution of a
linear system with noise added to its right-hand side, solved by preconditioned conjugate gradients (each step a
product with the sparse owners x features matrix and each owner's K x K block). A sweep costs O(ratings * k^2) plus
O(ratings * k) per conjugate-gradient step, in a few dozen steps whatever the vocabulary (not one sequential step
per feature), and never builds a rows-by-features matrix.

:func:`sample` returns the posterior mean of the biases and every kept sample's factors (the item side's id rows
as their conditional means, Rao-Blackwellised), which a dot product of the samples' factors concatenated (each
scaled by ``1/sqrt(S)``) turns into the posterior mean prediction. Independent chains pool into one
:class:`Posterior` (:meth:`Posterior.pooled`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import TrainingError

#: the extra features' joint draw: conjugate gradients stop at this residual, relative to the right-hand side's, or
#: after this many steps (the directions a truncated solve has not reached keep the rows' previous values: a partial
#: move). Measured on ML-100k's lab split: the preset's RMSE 0.8654 against 0.8659 with the features drawn one after
#: another; one chain of 25 samples 0.8711 at 20 steps, 0.8708 at 40 steps (tolerance 1e-3), 0.8738 one after another
CG_TOLERANCE, CG_MAX_STEPS = 1e-2, 20
#: listed ratings whose rows a sweep gathers at once (per owner's list bucket, chunk after chunk)
CHUNK_RATINGS = 1 << 16


def padded_lists(key: np.ndarray, member: np.ndarray, value: np.ndarray, n_keys: int, ratio: int, *,
                 empty: bool = True) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...]:
    """Each key's (member, value) list, padded (member 0, value 0) in buckets of keys whose list lengths are within
    a factor ``ratio`` of each other: ``(keys, members, values)`` per bucket, ``members[j]`` the members of
    ``keys[j]``. Keys without members join the bucket of lists of length 1 (width 1, all padding), or no bucket
    if not ``empty``."""
    key, member = np.asarray(key, "int64"), np.asarray(member, "int64")
    value = np.asarray(value, "float32")
    order = np.lexsort((member, key))
    key, member, value = key[order], member[order], value[order]
    counts = np.bincount(key, minlength=n_keys)
    rank = np.arange(len(key)) - np.repeat(np.cumsum(counts) - counts, counts)
    level = np.ceil(np.log(np.maximum(counts, 1)) / np.log(ratio) - 1e-9).astype(int)
    buckets = []
    listed = (counts > 0) | empty
    for lv in np.unique(level[listed]):
        keys = np.flatnonzero((level == lv) & listed)
        width = max(int(counts[keys].max()), 1)
        slot = np.full(n_keys, -1)
        slot[keys] = np.arange(len(keys))
        keep = slot[key] >= 0
        m = np.zeros((len(keys), width), "int32")
        v = np.zeros((len(keys), width), "float32")
        m[slot[key[keep]], rank[keep]] = member[keep]
        v[slot[key[keep]], rank[keep]] = value[keep]
        buckets.append((keys.astype("int32"), m, v))
    return tuple(buckets)


@dataclass(frozen=True)
class Block:
    """One side of the ratings: ``n`` owners (index 0 = unknown) and ``m`` extra features.

    Features are kept in buckets of similar support: ``buckets[b] = (features, owners, values)`` where
    ``owners[j]`` lists the owners that have feature ``features[j]`` (0 = padding) and ``values[j]`` their values
    (0 for padding), padded to the bucket's width. ``groups[l]`` is feature ``l``'s prior group in
    ``0..n_groups-1``."""

    n: int
    m: int
    buckets: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...]
    groups: np.ndarray  # (m,) int32
    n_groups: int
    # the same entries by owner: ``(owners, features, values)`` per bucket, owners without features left out
    owner_lists: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...] = ()

    @classmethod
    def from_sparse(cls, n: int, columns: list[tuple[np.ndarray, np.ndarray, np.ndarray, int]],
                    bucket_ratio: int = 2) -> "Block":
        """``columns``: per feature group, (owner, feature, value, n_features) for its nonzero entries."""
        own, feat, val, groups, m = [], [], [], [], 0
        for g, (o, f, v, width) in enumerate(columns):
            own.append(np.asarray(o, "int64"))
            feat.append(np.asarray(f, "int64") + m)
            val.append(np.asarray(v, "float32"))
            groups.append(np.full(int(width), g, "int32"))
            m += int(width)
        own = np.concatenate(own) if own else np.zeros(0, "int64")
        feat = np.concatenate(feat) if feat else np.zeros(0, "int64")
        val = np.concatenate(val) if val else np.zeros(0, "float32")
        # buckets by support, widths in powers of bucket_ratio: fewer buckets compile faster, more waste less padding
        buckets = padded_lists(feat, own, val, m, bucket_ratio)
        by_owner = padded_lists(own, feat, val, int(n), bucket_ratio, empty=False)
        return cls(n=int(n), m=m, buckets=tuple(buckets),
                   groups=np.concatenate(groups) if groups else np.zeros(0, "int32"), n_groups=len(columns),
                   owner_lists=tuple(by_owner))


@dataclass(frozen=True)
class Posterior:
    """What prediction needs: posterior means of the global and per-owner biases, and every kept sample's factors."""

    w0: float
    user_bias: np.ndarray  # (n_users,)
    item_bias: np.ndarray  # (n_items,)
    user_factors: np.ndarray  # (samples, n_users, rank)
    item_factors: np.ndarray  # (samples, n_items, rank)
    noise_std: float  # posterior mean of 1/sqrt(noise precision)
    rating_biases: tuple[np.ndarray, ...] = ()  # per rating-level group: posterior mean of each of its biases
    noise_scales: tuple[np.ndarray, ...] = ()  # per noise group: posterior mean of each member's precision scale
    solver_steps: np.ndarray | None = None  # per sweep, the features' conjugate-gradient steps (user, item side)
    user_factor_mean: np.ndarray | None = None  # (n_users, rank): the mean of every sample's factors
    item_factor_mean: np.ndarray | None = None  # (n_items, rank)

    def without_factors(self) -> "Posterior":
        """This posterior with no samples' factors (its means only)."""
        return replace(self, user_factors=self.user_factors[:0], item_factors=self.item_factors[:0],
                       user_factor_mean=None, item_factor_mean=None)

    @classmethod
    def pooled(cls, chains: "list[Posterior]") -> "Posterior":
        """One posterior from independent chains of equal length: the means averaged, the samples side by side."""
        if len(chains) == 1:
            return chains[0]

        def mean(values):
            return (sum(np.asarray(v, "float64") for v in values) / len(values)).astype("float32")

        return cls(w0=float(np.mean([c.w0 for c in chains])), user_bias=mean([c.user_bias for c in chains]),
                   item_bias=mean([c.item_bias for c in chains]),
                   user_factors=np.concatenate([c.user_factors for c in chains]),
                   item_factors=np.concatenate([c.item_factors for c in chains]),
                   noise_std=float(np.mean([c.noise_std for c in chains])),
                   rating_biases=tuple(mean(g) for g in zip(*(c.rating_biases for c in chains))),
                   noise_scales=tuple(mean(g) for g in zip(*(c.noise_scales for c in chains))))


def chain_seed(seed: int, chain: int) -> int:
    """The seed of chain ``chain`` of a fit seeded ``seed``: ``seed`` itself for the first chain, and for the others
    a draw from both, so that nearby seeds share no chain (as ``seed + chain`` would make them do)."""
    return int(seed) if chain == 0 else int(np.random.SeedSequence([int(seed), int(chain)]).generate_state(1)[0])


def sample(users: np.ndarray, items: np.ndarray, ratings: np.ndarray, user_block: Block, item_block: Block, *,
           rank: int, samples: int, burn_in: int, seed: int, init_std: float = 0.1,
           rating_groups: tuple[tuple[np.ndarray, int], ...] = (),
           noise_groups: tuple[tuple[np.ndarray, int, float], ...] = (), rao_blackwell: bool = True,
           store: int | None = None, on_sweep: Callable[[int, float], None] | None = None,
           collapse: bool = True) -> Posterior:
    """Run ``burn_in + samples`` Gibbs sweeps and average the last ``samples``; the factors of ``store`` of them
    (evenly spaced; None: all) are kept. ``on_sweep(sweep, train_rmse)``
    is called after each sweep. ``rating_groups``: per rating-level bias group, (each rating's index in
    ``0..size-1``, or -1 for none; size). ``noise_groups``: (index, size, shape) of groups whose members each
    scale the noise precision of their ratings by a factor with a Gamma(shape, shape) prior (mean 1: a Student-t
    noise per member, e.g. per user, so that erratic raters weigh less). With ``rao_blackwell``, each sweep's item
    id rows enter the average as their conditional means given the rest rather than as draws (the same expectation,
    less Monte Carlo noise; the chain itself moves on with the draws). With ``collapse``, the id rows' prior
    precisions are drawn with their column integrated out (:func:`collapsed_hyperparameters`), else from the rows. The compiled sweep is reused by later
    calls with the same shapes."""
    K = rank + 1  # a bias column, then the factors
    rng = np.random.default_rng(seed)
    # host-side draws: every small eager JAX call compiles on its own, which costs more than the draws

    def init(n):
        t = (init_std * rng.standard_normal((n, K))).astype("float32")
        t[:, 0] = 0.0
        t[0] = 0.0
        return t

    state = {"w0": np.float32(np.mean(ratings)), "alpha": np.float32(1.0),
             "user_id": init(user_block.n), "item_id": init(item_block.n),
             "user_x": np.zeros((user_block.m, K), "float32"), "item_x": np.zeros((item_block.m, K), "float32")}
    state["user_rep"], state["item_rep"] = state["user_id"].copy(), state["item_id"].copy()  # no feature rows yet
    sizes = tuple(int(size) for _, size in rating_groups)
    # index -1 (no bias) points at a last slot that stays 0
    slots = [_slots(index, size) for (index, _), size in zip(rating_groups, sizes)]
    state["rating_biases"] = tuple(np.zeros(size + 1, "float32") for size in sizes)
    noise_sizes = tuple(int(size) for _, size, _ in noise_groups)
    noise_shapes = [float(shape) for _, _, shape in noise_groups]
    noise_slots = [_slots(index, size) for (index, _, _), size in zip(noise_groups, noise_sizes)]
    state["noise_scales"] = tuple(np.ones(size + 1, "float32") for size in noise_sizes)
    data = {"noise_groups": tuple((jnp.asarray(ix), np.float32(shape))
                                  for ix, shape in zip(noise_slots, noise_shapes)),
            "rating_groups": tuple(jnp.asarray(ix) for ix in slots),
            "y": jnp.asarray(ratings, "float32"), "user": jnp.asarray(users, "int32"),
            "item": jnp.asarray(items, "int32"), "key": np.asarray(seed, "uint32"),
            "blocks": {name: ([tuple(jnp.asarray(a) for a in bucket) for bucket in b.buckets], jnp.asarray(b.groups),
                              [tuple(jnp.asarray(a) for a in bucket) for bucket in b.owner_lists])
                       for name, b in (("user", user_block), ("item", item_block))},
            # each owner's ratings, in buckets of lengths within a factor 2 (owner_sums on ML-100k: 2.9 ms a side,
            # against 3.3 ms at 4 and 9.1 ms at 8)
            # (and each listed rating's owner on the other side: the row of the other side's table it reads)
            "ratings_of": {name: [(*(jnp.asarray(a) for a in bucket), jnp.asarray(other[bucket[1]], "int32"))
                                  for bucket in padded_lists(owner, np.arange(len(owner)), np.ones(len(owner)), b.n,
                                                             2, empty=False)]
                           for name, owner, other, b in (("user", users, items, user_block),
                                                         ("item", items, users, item_block))}}
    # the shapes of every Gamma draw of a sweep: per block, its id rows' and each feature group's precisions
    # (one per column, shape (1 + count) / 2: Gamma(1/2, 1/2) prior, the group mean integrated out), then the noise
    # precision's ((1 + ratings) / 2)
    gamma_shapes = []
    for b in (user_block, item_block):
        counts = [b.n - 1] + [int(np.sum(b.groups == g)) for g in range(b.n_groups)]
        gamma_shapes += [np.full(K, (1.0 + c) / 2.0) for c in counts]
    gamma_shapes += [np.array([(1.0 + size) / 2.0]) for size in sizes]  # the rating groups' precisions
    gamma_shapes.append(np.array([(1.0 + len(ratings)) / 2.0]))
    # each noise group's scales: shape (the group's prior shape) + (the member's ratings) / 2
    gamma_shapes += [shape + np.bincount(ix, minlength=size + 1) / 2.0
                     for ix, size, shape in zip(noise_slots, noise_sizes, noise_shapes)]
    meta = (K, user_block.n, item_block.n, user_block.n_groups, item_block.n_groups,
            tuple(len(a) for a in gamma_shapes), len(sizes), len(noise_sizes), bool(rao_blackwell), bool(collapse))
    gamma_shapes = np.concatenate(gamma_shapes)

    total = burn_in + samples
    w0, bu, bi, noise = 0.0, np.zeros(user_block.n), np.zeros(item_block.n), 0.0
    store = samples if store is None else max(0, min(int(store), samples))
    slot = np.full(samples, -1)
    if store:
        slot[(np.arange(store) * samples) // store] = np.arange(store)  # which samples are kept, and where
    uf = np.zeros((store, user_block.n, rank), "float32")
    itf = np.zeros((store, item_block.n, rank), "float32")
    uf_sum, itf_sum = np.zeros((user_block.n, rank)), np.zeros((item_block.n, rank))
    group_sums = [np.zeros(size, "float64") for size in sizes]
    scale_sums = [np.zeros(size, "float64") for size in noise_sizes]
    solver_steps = []
    for t in range(total):
        gammas = rng.standard_gamma(gamma_shapes).astype("float32")  # one sweep's at a time: O(ratings) memory
        state, ru, ri, rmse, steps = _sweep(state, np.int32(t), gammas, data, meta=meta)
        solver_steps.append(np.asarray(steps))
        if on_sweep is not None:
            on_sweep(t, float(rmse))
        if t < burn_in:
            continue
        s = t - burn_in
        ru, ri = np.asarray(ru), np.asarray(ri)
        w0, bu, bi = w0 + float(state["w0"]), bu + ru[:, 0], bi + ri[:, 0]
        if slot[s] >= 0:
            uf[slot[s]], itf[slot[s]] = ru[:, 1:], ri[:, 1:]
        uf_sum += ru[:, 1:]
        itf_sum += ri[:, 1:]
        noise += float(state["alpha"]) ** -0.5
        for acc, b in zip(group_sums, state["rating_biases"]):
            acc += np.asarray(b)[:-1]
        for acc, b in zip(scale_sums, state["noise_scales"]):
            acc += np.asarray(b)[:-1]
    w0, bu, bi = w0 / samples, bu / samples, bi / samples
    group_means = tuple((acc / samples).astype("float32") for acc in group_sums)
    if not np.isfinite(w0) or not (np.isfinite(bu).all() and np.isfinite(bi).all() and np.isfinite(uf).all()
                                   and np.isfinite(itf).all() and all(np.isfinite(g).all() for g in group_means)):
        raise TrainingError("the Gibbs sampler produced non-finite values (the ratings may hold extreme values); "
                            "try a smaller embedding_dim")
    return Posterior(w0=float(w0), user_bias=bu.astype("float32"), item_bias=bi.astype("float32"),
                     user_factors=uf, item_factors=itf, noise_std=noise / samples, rating_biases=group_means,
                     noise_scales=tuple((acc / samples).astype("float32") for acc in scale_sums),
                     solver_steps=np.asarray(solver_steps).reshape(-1, 2),
                     user_factor_mean=(uf_sum / samples).astype("float32"),
                     item_factor_mean=(itf_sum / samples).astype("float32"))


def owner_sums(z, weight, weighted_residual, rating_lists, n: int, extra=None):
    """Per owner, the precision-weighted sums of its ratings: ``G[o] = sum_r weight_r z_r z_r^T`` (n, K, K) and
    ``E[o] = sum_r weighted_residual_r z_r`` (n, K), over the owners' padded rating lists (``padded_lists``
    buckets: padding has value 0). One batched product per bucket: several times faster on a CPU than summing
    per-rating outer products by owner. Owners without ratings get zeros. With ``extra`` (one number per rating)
    its sums ``sum_r extra_r z_r`` (n, K) come third. A bucket's fourth array, where given, says which row of ``z``
    each rating reads (``z`` then holds one row per owner of the other side, so that no array of ratings x K is made
    whole), else rating ``r`` reads row ``r``."""
    K = z.shape[1]
    G, E = jnp.zeros((n, K, K), z.dtype), jnp.zeros((n, K), z.dtype)
    X = None if extra is None else jnp.zeros((n, K), z.dtype)
    coefficients = (weight, weighted_residual) + (() if extra is None else (extra,))
    for owners, rows, values, *reads in rating_lists:
        reads = reads[0] if reads else rows

        def one(r, v, at):
            zr = z[at]  # (C, W, K)
            out = [jnp.einsum("fw,fwa,fwb->fab", weight[r] * v, zr, zr)]
            return out + [jnp.einsum("fw,fwa->fa", c[r] * v, zr) for c in coefficients[1:]]

        sums = in_chunks(one, rows, values, reads)
        G, E = G.at[owners].set(sums[0]), E.at[owners].set(sums[1])
        if extra is not None:
            X = X.at[owners].set(sums[2])
    return (G, E) if extra is None else (G, E, X)


def in_chunks(fn, *lists):
    """``fn`` over padded lists (each (F, W), one row per key) in chunks of about :data:`CHUNK_RATINGS` entries,
    one chunk after another, its outputs' rows concatenated: the rows a chunk gathers are all that is held at once,
    not those of the whole bucket."""
    F, W = lists[0].shape
    C = max(1, min(F, CHUNK_RATINGS // W))
    pad = (-F) % C

    def chunks(a):
        a = jnp.concatenate([a, jnp.zeros((pad, W), a.dtype)]) if pad else a
        return a.reshape(-1, C, W)

    out = jax.lax.map(lambda chunk: fn(*chunk), tuple(chunks(a) for a in lists))
    return jax.tree_util.tree_map(lambda a: a.reshape(-1, *a.shape[2:])[:F], out)


def pair_dots(left, right, left_rows, right_rows):
    """``sum(left[left_rows] * right[right_rows], axis=1)`` (one number per pair of rows), in chunks of
    :data:`CHUNK_RATINGS` pairs: no array of pairs x width is made whole."""
    N = left_rows.shape[0]
    C = max(1, min(N, CHUNK_RATINGS))
    pad = (-N) % C

    def chunks(a):
        return (jnp.concatenate([a, jnp.zeros((pad,), a.dtype)]) if pad else a).reshape(-1, C)

    out = jax.lax.map(lambda ab: jnp.sum(left[ab[0]] * right[ab[1]], axis=1),
                      (chunks(left_rows), chunks(right_rows)))
    return out.reshape(-1)[:N]


def list_sums(lists, table, n: int, power: int = 1):
    """Per key of the padded ``lists`` (``(keys, members, values)`` buckets), ``sum_j values_j^power *
    table[members_j]``: (n, width); keys not listed get zeros. With a block's ``owner_lists`` this is ``X @ table``
    (each owner's features' rows), with its feature ``buckets`` ``X^T @ table``."""
    out = jnp.zeros((n, table.shape[1]), table.dtype)
    for keys, members, values in lists:
        sums = in_chunks(lambda m, v: jnp.einsum("fw,fwk->fk", v ** power, table[m]), members, values)
        out = out.at[keys].set(sums)
    return out


def conjugate_gradients(matvec, b, precondition, tol: float, max_iter: int):
    """x with ``matvec(x) = b`` (a symmetric positive definite operator) by preconditioned conjugate gradients from
    x = 0, until the residual's norm is ``tol`` times ``b``'s or after ``max_iter`` steps: (x, steps)."""
    def dot(a, c):
        return jnp.sum(a * c)

    z = precondition(b)
    limit = tol * jnp.sqrt(dot(b, b))

    def going(carry):
        k, _, r, _, _ = carry
        return (k < max_iter) & (jnp.sqrt(dot(r, r)) > limit)

    def step(carry):
        k, x, r, p, rz = carry
        Ap = matvec(p)
        alpha = rz / dot(p, Ap)
        x, r = x + alpha * p, r - alpha * Ap
        z = precondition(r)
        rz_next = dot(r, z)
        return k + 1, x, r, z + (rz_next / rz) * p, rz_next

    k, x, *_ = jax.lax.while_loop(going, step, (jnp.int32(0), jnp.zeros_like(b), b, z, dot(b, z)))
    return x, k


def slice_sample(key, log_density, x0, width: float = 1.0, max_steps: int = 32):
    """One slice-sampling update (Neal 2003: stepping out, then shrinkage) of a scalar ``x0`` under an unnormalised
    ``log_density``: a draw that leaves that density invariant, however narrow or wide it is."""
    k_level, k_place, k_shrink = jax.random.split(key, 3)
    level = log_density(x0) - jax.random.exponential(k_level)
    left = x0 - width * jax.random.uniform(k_place)

    left = jax.lax.while_loop(lambda c: (c[1] < max_steps) & (log_density(c[0]) > level),
                              lambda c: (c[0] - width, c[1] + 1), (left, 0))[0]
    right = jax.lax.while_loop(lambda c: (c[1] < max_steps) & (log_density(c[0]) > level),
                               lambda c: (c[0] + width, c[1] + 1), (left + width, 0))[0]

    def shrinking(c):
        return ~c[3] & (c[4] < 4 * max_steps)

    def shrink(c):
        lo, hi, _, _, k = c
        x = lo + (hi - lo) * jax.random.uniform(jax.random.fold_in(k_shrink, k))
        inside = log_density(x) > level
        return jnp.where(x < x0, x, lo), jnp.where(x < x0, hi, x), x, inside, k + 1

    _, _, x, inside, _ = jax.lax.while_loop(shrinking, shrink, (left, right, x0, jnp.bool_(False), 0))
    return jnp.where(inside, x, x0)


def collapsed_hyperparameters(key, G, lin, theta, mu, lam, mask):
    """Each column's prior precision drawn with that column of the rows integrated out, then the column and its
    prior mean given it, one column after another: ``(mu, lam)``.

    Rows ``theta`` (n, K) have the prior N(mu, 1/lam) per column (lam ~ Gamma(1/2, 1/2), mu ~ N(0, 1/lam)) and the
    data's precision ``G`` (n, K, K) and linear term ``lin`` (n, K). Drawn from the rows, as a plain Gibbs step
    does, the precision barely moves where most rows have few ratings (their draws follow the prior, whatever it
    is): at ML-25M's vocabulary it took hundreds of sweeps to leave its start. With the column integrated out,
    each row's data weighs in by its own precision, and one draw lands near the precision's conditional whatever
    it started from (a partially collapsed Gibbs step: van Dyk and Park 2008)."""
    K = theta.shape[1]
    keys = jax.random.split(key, 3 * K).reshape(K, 3, -1)
    m = mask.astype(theta.dtype)
    n = jnp.sum(m)

    def column(k, carry):
        theta, mu, lam = carry
        g = G[:, k, k] * m
        # the column's data term given the row's other columns: lin_k - sum_{j != k} G_kj theta_j
        data = (lin[:, k] - jnp.einsum("nj,nj->n", G[:, k, :], theta) + G[:, k, k] * theta[:, k]) * m
        d = data - g * mu[k]

        x0 = jnp.log(lam[k])
        lam0 = lam[k]

        def log_density(x):  # log lam = x (its Jacobian included), less its value at x0: each row's marginal of
            # its data, as a difference from x0's (a sum of whole log densities over many rows would lose the
            # digits that matter in float32)
            lam_x = jnp.exp(x)
            rows = jnp.sum(m * (0.5 * (x - x0) - 0.5 * jnp.log1p((lam_x - lam0) / (lam0 + g)))
                           + d * d * (lam0 - lam_x) / (2.0 * (lam_x + g) * (lam0 + g)))
            return (x - x0) - (0.5 + 0.5 * mu[k] ** 2) * (lam_x - lam0) + rows

        lam_k = jnp.exp(slice_sample(keys[k, 0], log_density, x0))
        prec = g + lam_k
        col = (data + lam_k * mu[k]) / prec + jax.random.normal(keys[k, 1], g.shape) / jnp.sqrt(prec)
        col = col * m
        mu_k = jnp.sum(col) / (n + 1.0) + jax.random.normal(keys[k, 2]) / jnp.sqrt((n + 1.0) * lam_k)
        return theta.at[:, k].set(col), mu.at[k].set(mu_k), lam.at[k].set(lam_k)

    _, mu, lam = jax.lax.fori_loop(0, K, column, (theta, mu, lam))
    return mu, lam


def _slots(index: np.ndarray, size: int) -> np.ndarray:
    """A group's per-rating index with -1 (none) sent to an extra last slot, which the sweep keeps neutral."""
    index = np.asarray(index)
    return np.where(index < 0, size, index).astype("int32")


def cholesky(a):
    """Lower Cholesky factors of a batch of small symmetric positive definite matrices (..., K, K), one column per
    loop step (a rolled loop keeps the compiled program small)."""
    K = a.shape[-1]
    idx = jnp.arange(K)

    def column(j, L):
        row = L[..., j, :]  # L[j, :j] is filled, the rest still 0
        d = jnp.sqrt(jnp.maximum(a[..., j, j] - jnp.sum(row * row, axis=-1), 1e-12))
        below = (a[..., :, j] - jnp.einsum("...ik,...k->...i", L, row)) / d[..., None]
        col = jnp.where(idx > j, below, jnp.where(idx == j, d[..., None], 0.0))
        return L.at[..., :, j].set(col)

    return jax.lax.fori_loop(0, K, column, jnp.zeros_like(a))


def forward_substitute(L, b):
    """x with L x = b (L lower triangular; batched over leading axes)."""
    def step(i, x):  # x[i:] is still 0
        return x.at[..., i].set((b[..., i] - jnp.sum(L[..., i, :] * x, axis=-1)) / L[..., i, i])

    return jax.lax.fori_loop(0, b.shape[-1], step, jnp.zeros_like(b))


def back_substitute(L, b):
    """x with L^T x = b (L lower triangular; batched over leading axes)."""
    K = b.shape[-1]

    def step(k, x):  # i = K - 1 - k; x[:i + 1] is still 0
        i = K - 1 - k
        return x.at[..., i].set((b[..., i] - jnp.sum(L[..., :, i] * x, axis=-1)) / L[..., i, i])

    return jax.lax.fori_loop(0, K, step, jnp.zeros_like(b))


# LLVM's level 1: the sweep compiles in about 2/3 of the time at the same speed (measured on ML-100k)
@functools.partial(jax.jit, static_argnames="meta", compiler_options={"xla_backend_optimization_level": 1})
def _sweep(state, t, gammas, data, *, meta):
    """One Gibbs sweep: the user block, the item block, then the global bias and the noise precision. Returns the
    new state, both sides' ``[bias, factors]`` rows and the training RMSE."""
    K, n_users, n_items, user_groups, item_groups, gamma_sizes, n_rating_groups, n_noise_groups, rb, collapse = meta
    # the rating-level biases: one term per rating, held fixed while the blocks are sampled
    rating_terms = [b[ix] for b, ix in zip(state["rating_biases"], data["rating_groups"])]
    y_blocks = data["y"] - sum(rating_terms, jnp.zeros(()))
    sides = {"user": (n_users, user_groups, data["user"], data["item"]),
             "item": (n_items, item_groups, data["item"], data["user"])}
    eye = jnp.eye(K)
    # each rating's noise precision: alpha times its noise groups' scales
    scale = functools.reduce(lambda acc, g: acc * g[0][g[1][0]], zip(state["noise_scales"], data["noise_groups"]),
                             jnp.ones_like(data["y"]))
    weight = state["alpha"] * scale

    def rep(name, theta_id=None, *, state):
        """Each owner's [bias, factors] in ``state``: its id row (or ``theta_id``) plus its features' rows."""
        theta_id = state[f"{name}_id"] if theta_id is None else theta_id
        return theta_id + list_sums(data["blocks"][name][2], state[f"{name}_x"], theta_id.shape[0])

    def normal_gamma(key, theta, mask, std_gamma):
        """One (mean, precision) per column of ``theta`` from its Normal-Gamma conditional (rows in ``mask``; prior
        mean 0 with weight 1): the precision with the mean integrated out, then the mean given it. ``std_gamma``:
        the columns' Gamma(shape, 1) draws."""
        n = jnp.sum(mask)
        mean_hat = jnp.sum(theta * mask[:, None], axis=0) / (n + 1.0)
        ss = jnp.sum(mask[:, None] * (theta - mean_hat) ** 2, axis=0) + mean_hat ** 2
        lam = std_gamma / ((1.0 + ss) / 2.0)
        return mean_hat + jax.random.normal(key, (K,)) / jnp.sqrt((n + 1.0) * lam), lam

    def gauss(key, prec, lin, with_mean=False):
        """Draws from N(prec^-1 lin, prec^-1) for a batch of (K, K) precisions: x = L^-T (L^-1 lin + eps) with
        prec = L L^T (hand-written for small K: LAPACK calls inside the compiled loop can stall the CPU runtime);
        ``with_mean``: (draws, means)."""
        L = cholesky(prec)
        f = forward_substitute(L, lin)
        draw = back_substitute(L, f + jax.random.normal(key, lin.shape))
        return (draw, back_substitute(L, f)) if with_mean else draw

    def half_sweep(state, key, name, other, draws):
        n, n_groups, own, oth = sides[name]
        by_feature, groups, by_owner = data["blocks"][name]
        r_other = state[f"{other}_rep"]
        # each rating's design row [1, other side's factors], read from a table of the other side's owners
        z = jnp.concatenate([jnp.ones((r_other.shape[0], 1)), r_other[:, 1:]], axis=1)  # (n_other, K)
        # each rating's residual: [bias, factors] of its owner on this side . [1, factors] of the other, plus the
        # other side's bias
        mine = state[f"{name}_rep"]
        fitted = pair_dots(jnp.concatenate([mine, jnp.ones_like(mine[:, :1])], axis=1),
                           jnp.concatenate([z, r_other[:, :1]], axis=1), own, oth)
        we = weight * (y_blocks - state["w0"] - fitted)
        kh, kid, kx, kg, kr = jax.random.split(key, 5)
        # E with each rating's noise draw added (sqrt(w) eps z summed per owner: a draw of N(0, G)), for the
        # features' joint draw below
        noisy = we + jnp.sqrt(weight) * jax.random.normal(kr, we.shape)
        G, E, E_noisy = owner_sums(z, weight, we, data["ratings_of"][name], n, noisy)
        # hyperparameters: the id rows (row 0, unknown, left out) and each extra group
        ids = state[f"{name}_id"]
        mu_id, lam_id = normal_gamma(kh, ids, jnp.arange(n) > 0, draws[0])
        if collapse:
            mu_id, lam_id = collapsed_hyperparameters(jax.random.fold_in(kh, 1), G,
                                                      E + jnp.einsum("nab,nb->na", G, ids), ids, mu_id, lam_id,
                                                      jnp.arange(n) > 0)
        gkeys = jax.random.split(kg, max(n_groups, 1))
        hyper = [normal_gamma(gkeys[g], state[f"{name}_x"], groups == g, draws[1 + g]) for g in range(n_groups)]
        mus = jnp.stack([h[0] for h in hyper]) if hyper else jnp.zeros((1, K))
        lams = jnp.stack([h[1] for h in hyper]) if hyper else jnp.ones((1, K))
        # the id rows: independent given everything else
        prec = G + lam_id[None, :, None] * eye
        lin = E + jnp.einsum("nab,nb->na", G, ids) + (lam_id * mu_id)[None]
        if rb and name == "item":
            new, mean = gauss(kid, prec, lin, with_mean=True)
            # the rows the average keeps: the id rows' conditional means with the feature rows they were
            # conditioned on (before the feature rows below move)
            kept = rep(name, mean.at[0].set(0.0), state=state)
        else:
            new, kept = gauss(kid, prec, lin), None
        new = new.at[0].set(0.0)
        moved = jnp.einsum("nab,nb->na", G, new - ids)
        # the extra features, all at once: given the id rows, their rows theta are jointly Gaussian with precision
        # A = X^T G X + Lambda (X: owners x features, G: each owner's K x K block, Lambda: each group's prior) and
        # linear term X^T E - Lambda (theta - mu); a draw is A^-1 (that term + X^T xi + Lambda^1/2 eps), xi ~ N(0, G)
        # per owner, solved by conjugate gradients (a block-diagonal preconditioner: each feature's support times
        # the owners' mean K x K block, plus its prior)
        theta_x = state[f"{name}_x"]
        m = theta_x.shape[0]
        lam, mu = lams[groups], mus[groups]  # (m, K)
        rhs = (list_sums(by_feature, E_noisy - moved, m) - lam * (theta_x - mu)
               + jnp.sqrt(lam) * jax.random.normal(kx, theta_x.shape))
        weights = G[:, 0, 0]  # each owner's summed precision
        mean_block = jnp.sum(G, axis=0) / jnp.maximum(jnp.sum(weights), 1e-12)
        support = list_sums(by_feature, weights[:, None], m, power=2)[:, 0]
        L = cholesky(support[:, None, None] * mean_block[None] + lam[:, :, None] * eye)

        def precondition(r):
            return back_substitute(L, forward_substitute(L, r))

        def matvec(v):
            return list_sums(by_feature, jnp.einsum("nab,nb->na", G, list_sums(by_owner, v, n)), m) + lam * v

        change, iterations = conjugate_gradients(matvec, rhs, precondition, CG_TOLERANCE, CG_MAX_STEPS)
        theta_x = theta_x + change
        state = {**state, f"{name}_id": new, f"{name}_x": theta_x}
        return {**state, f"{name}_rep": rep(name, state=state)}, kept, iterations

    k_w0, k_u, k_i, k_r = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(data["key"]), t), 4)
    draws = jnp.split(gammas, np.cumsum(gamma_sizes)[:-1])
    blocks_end = 2 + user_groups + item_groups
    state, _, user_steps = half_sweep(state, k_u, "user", "item", draws[:1 + user_groups])
    state, item_kept, item_steps = half_sweep(state, k_i, "item", "user", draws[1 + user_groups:blocks_end])
    ru, ri = state["user_rep"], state["item_rep"]
    ri_kept = ri if item_kept is None else item_kept  # what the average takes
    u, i = data["user"], data["item"]
    # [b(u), p(u), 1] . [1, q(i), c(i)] per rating
    pred = state["w0"] + pair_dots(jnp.concatenate([ru, jnp.ones_like(ru[:, :1])], axis=1),
                                   jnp.concatenate([jnp.ones_like(ri[:, :1]), ri[:, 1:], ri[:, :1]], axis=1), u, i)
    # each rating-level group given the rest: independent Normal biases (zero-mean prior, sampled precision)
    y = data["y"]
    rating_biases = []
    rkeys = jax.random.split(k_r, max(n_rating_groups, 1))
    for g, (ix, old) in enumerate(zip(data["rating_groups"], state["rating_biases"])):
        rest = y - pred - sum((term for h, term in enumerate(rating_terms) if h != g), jnp.zeros(()))
        lam = draws[blocks_end + g][0] / ((1.0 + jnp.sum(old[:-1] ** 2)) / 2.0)
        prec = jax.ops.segment_sum(weight, ix, num_segments=old.shape[0]) + lam
        mean = jax.ops.segment_sum(weight * rest, ix, num_segments=old.shape[0]) / prec
        new = (mean + jax.random.normal(rkeys[g], old.shape) / jnp.sqrt(prec)).at[-1].set(0.0)
        rating_biases.append(new)
        rating_terms[g] = new[ix]
    pred = pred - state["w0"] + sum(rating_terms, jnp.zeros(()))
    # the global bias (a flat prior), the noise precision (Gamma(1, 1) prior), then each noise group's scales
    total = jnp.sum(weight)
    w0 = jnp.sum(weight * (y - pred)) / total + jax.random.normal(k_w0) / jnp.sqrt(total)
    e = y - w0 - pred
    noise_draws = draws[len(draws) - n_noise_groups:]
    alpha = draws[len(draws) - n_noise_groups - 1][0] / ((1.0 + jnp.sum(scale * e * e)) / 2.0)
    scales = list(state["noise_scales"])
    for g, (ix, shape) in enumerate(data["noise_groups"]):
        rest = functools.reduce(lambda acc, h: acc * scales[h][data["noise_groups"][h][0]],
                                (h for h in range(n_noise_groups) if h != g), jnp.ones_like(y))
        rate = shape + alpha * jax.ops.segment_sum(rest * e * e, ix, num_segments=scales[g].shape[0]) / 2.0
        scales[g] = (noise_draws[g] / rate).at[-1].set(1.0)
    return ({**state, "w0": w0, "alpha": alpha, "rating_biases": tuple(rating_biases),
             "noise_scales": tuple(scales)}, ru, ri_kept, jnp.sqrt(jnp.mean(e * e)),
            jnp.stack([user_steps, item_steps]))

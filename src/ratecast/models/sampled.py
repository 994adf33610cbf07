"""Training over a large catalogue without a whole-catalogue softmax per example: a sampled softmax with the log-Q
correction, and the user-batched trainers of :mod:`ratecast.models.implicit` that use it.

Sampled softmax: the log-partition ``log sum_j exp(o_j)`` over every item is estimated from ``K`` items drawn (with
replacement) from a fixed distribution ``q``: ``log sum_k exp(o_k - log(K q_k))``. Subtracting ``log(K q_k)`` (the
log-Q correction) makes the sum an unbiased estimate of the partition function, so popular items, drawn often, are
not over-counted; without it the head learns the sampler's popularity instead of the users' picks. The draw is
shared by every user of a step (one ``(users, K)`` product) and the positives' own logits are exact.

The trainers walk users, not pairs: each step takes whole users, packed into a fixed number of pairs
(:class:`PackedSets`: one compiled shape, and no work spent on padding a short set up to a long one), drops a share
of each user's set at random, represents the user from the kept items (sums by user over the step's flat pairs) and
trains the rating head on all of the user's pairs and the pick head on the dropped ones (a denoising objective:
predict what was left out from what was kept). Tables update by rows (lazy Adam on the rows a step read, the
engine's rule, or row-wise Adagrad or SGD), so a step costs what its batch touches, never the catalogue.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator

import numpy as np

#: the fewest steps a trainer takes: on data too small for ``epochs`` passes to reach it, it takes more passes
MIN_STEPS = 1500

#: power of the popularity in the negative sampler: q_j ~ (ratings of j + 1) ** SAMPLER_POWER
SAMPLER_POWER = 0.75


def sampler(counts: np.ndarray, power: float = SAMPLER_POWER) -> np.ndarray:
    """The negative sampler's probabilities over item indices (index 0, unknown, never drawn)."""
    q = (np.asarray(counts, "float64") + 1.0) ** power
    q[0] = 0.0
    return (q / q.sum()).astype("float32")


def sampled_log_partition(neg_logits, neg_log_q, count: int):
    """``log sum_j exp(o_j)`` estimated from ``count`` draws: ``neg_logits`` (..., count) are the drawn items'
    logits and ``neg_log_q`` (count,) the log of their sampling probabilities (jax arrays)."""
    import jax

    return jax.nn.logsumexp(neg_logits - neg_log_q - np.log(count), axis=-1)


def draw(key, cdf, count: int):
    """``count`` item indices drawn with replacement from the distribution whose cumulative sums are ``cdf`` (a jax
    array passed in, never a constant of the compiled step: XLA would fold its cumulative sum, slowly)."""
    import jax
    import jax.numpy as jnp

    u = jax.random.uniform(key, (count,), maxval=cdf[-1])
    return jnp.minimum(jnp.searchsorted(cdf, u, side="right"), cdf.shape[0] - 1).astype("int32")


def passes(steps: int, epochs: int, max_epochs: int | None = None) -> int:
    """How many passes a trainer makes over data of ``steps`` steps a pass: ``epochs``, or more on small data, up to
    :data:`MIN_STEPS` steps (at most ``max_epochs``)."""
    n = max(int(epochs), -(-MIN_STEPS // max(steps, 1)))
    return n if max_epochs is None else min(n, int(max_epochs))


@dataclasses.dataclass(frozen=True)
class Batch:
    """A step's users and their pairs, flat: ``users`` (B,) with 0 in unused slots; per pair (P,), ``slot`` (its
    user's place in ``users``, ascending), ``items`` (0 = padding) and each of ``values``."""

    users: np.ndarray
    slot: np.ndarray
    items: np.ndarray
    values: tuple[np.ndarray, ...]


class PackedSets:
    """Users' padded sets as flat pairs grouped by user, packed into steps of fixed shape: each step holds whole
    users, in a seeded random order, up to ``pairs`` pairs and ``users_per_step`` users (so one compiled shape, and
    no step spends work on padding beyond its last user's)."""

    def __init__(self, sets: np.ndarray, *values: np.ndarray, pairs: int) -> None:
        rows, cols = np.nonzero(sets)
        counts = np.bincount(rows, minlength=sets.shape[0])
        if counts.max(initial=0) > pairs:
            raise ValueError(f"a step holds {pairs} pairs, fewer than a user's set of {counts.max()}")
        self.items = sets[rows, cols].astype("int32")
        self.values = tuple(np.asarray(v, "float32")[rows, cols] for v in values)
        self.start = np.concatenate([[0], np.cumsum(counts)])
        self.counts = counts
        self.pairs = int(pairs)
        users = np.flatnonzero(counts)
        mean = counts[users].mean() if len(users) else 1.0
        # room for twice the users an average step holds (a power of two: few shapes across fits)
        self.users_per_step = int(min(self.pairs, 1 << int(np.ceil(np.log2(max(8.0, 2 * self.pairs / mean))))))

    def _bounds(self, order: np.ndarray) -> list[tuple[int, int]]:
        ends = np.cumsum(self.counts[order])
        bounds, at = [], 0
        while at < len(order):
            before = ends[at - 1] if at else 0
            end = min(int(np.searchsorted(ends, before + self.pairs, side="right")), at + self.users_per_step)
            bounds.append((at, end))
            at = end
        return bounds

    def _order(self, rng: np.random.Generator) -> np.ndarray:
        users = np.flatnonzero(self.counts)
        return users[rng.permutation(len(users))]

    def steps(self) -> int:
        """Steps in a pass."""
        return len(self._bounds(self._order(np.random.default_rng(0))))

    def batches(self, rng: np.random.Generator) -> Iterator[Batch]:
        """One pass over every user with a set, in steps (a seeded random order)."""
        order = self._order(rng)
        for a, b in self._bounds(order):
            users = order[a:b]
            lens = self.counts[users]
            total = int(lens.sum())
            offsets = np.cumsum(lens) - lens
            at = np.repeat(self.start[users] - offsets, lens) + np.arange(total)
            slot = np.zeros(self.pairs, "int32")
            slot[:total] = np.repeat(np.arange(len(users), dtype="int32"), lens)
            slot[total:] = len(users) - 1  # padding pairs (item 0, values 0) sit with the last user, ascending
            out_users = np.zeros(self.users_per_step, "int32")
            out_users[:len(users)] = users
            items = np.zeros(self.pairs, "int32")
            items[:total] = self.items[at]
            values = []
            for v in self.values:
                column = np.zeros(self.pairs, "float32")
                column[:total] = v[at]
                values.append(column)
            yield Batch(out_users, slot, items, tuple(values))


def _row_state(update, tables: dict) -> dict:
    import jax.numpy as jnp

    return {name: (update.table_slots(t), jnp.zeros(t.shape[0], "int32")) for name, t in tables.items()}


def fit_pick_and_rating(sets: np.ndarray, weights: np.ndarray, ratings: np.ndarray, tables: dict[str, np.ndarray],
                        *, global_mean: float, dropout: float, interaction_weight: float, l2: float,
                        negatives: int, epochs: int, learning_rate: float, seed: int | None,
                        pairs_per_step: int = 8192, optimizer: str = "adam",
                        on_pass: Callable[[int, int, float], None] | None = None
                        ) -> tuple[dict[str, np.ndarray], list[float]]:
    """The rating and pick heads of the implicit model over users' sets, by user batches (see the module).

    ``sets``/``weights``/``ratings``: padded (users, width) tables (item 0 = padding). ``tables``: the starting
    values of ``user`` (users, d), ``user_bias`` (users, 1), ``implicit`` (items, d), ``pick`` (items, d),
    ``pick_bias`` (items, 1), ``item`` (items, d), ``item_bias`` (items, 1). Returns the fitted tables and the
    mean training loss of each pass."""
    import jax
    import jax.numpy as jnp

    from ..optim import Update

    if not 0 < dropout < 1:
        raise ValueError(f"set_dropout must be in (0, 1) for the sampled trainer (it learns to pick the dropped "
                         f"items), got {dropout!r}")
    n_items = tables["implicit"].shape[0]
    counts = np.bincount(sets[sets > 0], minlength=n_items)
    q = sampler(counts)
    cdf, log_q = jnp.asarray(np.cumsum(q, dtype="float64").astype("float32")), jnp.log(jnp.maximum(q, 1e-30))
    update = Update(optimizer)
    d = tables["implicit"].shape[1]
    # one item table [implicit | item | pick | item_bias | pick_bias] and one user table [user | user_bias]: a step
    # reads and updates two tables by rows (a negative's occurrence has zero gradient outside its pick columns)
    ITEM_PARTS = (("implicit", d), ("item", d), ("pick", d), ("item_bias", 1), ("pick_bias", 1))
    params = {"items": jnp.asarray(np.concatenate([tables[k] for k, _ in ITEM_PARTS], axis=1), "float32"),
              "users": jnp.asarray(np.concatenate([tables["user"], tables["user_bias"]], axis=1), "float32")}
    state = _row_state(update, params)
    mu = float(global_mean)
    K = int(negatives)

    def loss(rows, user_rows, neg_rows, neg_log_q, slot, S, V, R, keep):
        n = user_rows.shape[0]
        per_user = functools.partial(jax.ops.segment_sum, segment_ids=slot, num_segments=n, indices_are_sorted=True)
        implicit, item, pick = rows[:, :d], rows[:, d:2 * d], rows[:, 2 * d:3 * d]
        item_bias, pick_bias = rows[:, 3 * d], rows[:, 3 * d + 1]
        user, user_bias = user_rows[:, :d], user_rows[:, d]
        present = (S > 0).astype("float32")
        held = present - keep
        n_pairs = jnp.maximum(jnp.sum(present), 1.0)
        user_ok = (per_user(present) > 0).astype("float32")
        n_users = jnp.maximum(jnp.sum(user_ok), 1.0)
        cnt = per_user(keep)
        rep = user + per_user((keep * V)[:, None] * implicit) / jnp.sqrt(jnp.maximum(cnt, 1.0))[:, None]
        rep_of_pair = rep[slot]
        pred = mu + user_bias[slot] + item_bias + jnp.sum(rep_of_pair * item, axis=1)
        rating = jnp.sum(present * (R - pred) ** 2) / n_pairs
        pos = jnp.sum(rep_of_pair * pick, axis=1) + pick_bias
        logz = sampled_log_partition(rep @ neg_rows[:, 2 * d:3 * d].T + neg_rows[:, 3 * d + 1], neg_log_q, K)
        pick_loss = -jnp.sum(held * V * (pos - logz[slot])) / n_pairs / dropout  # each pair once a pass
        reg = l2 * (jnp.sum(user_ok[:, None] * user_rows ** 2) / n_users
                    + jnp.sum(present[:, None] * rows ** 2) / n_pairs)
        return rating + interaction_weight * pick_loss + reg

    @functools.partial(jax.jit, donate_argnums=(0, 1))  # tables updated in place, not copied per step
    def train_step(params, state, users, slot, S, V, R, key, t, cdf, log_q):
        k_drop, k_neg = jax.random.split(key)
        present = (S > 0).astype("float32")
        keep = present * jax.random.bernoulli(k_drop, 1 - dropout, S.shape).astype("float32")
        negs = draw(k_neg, cdf, K)
        rows, user_rows, neg_rows = params["items"][S], params["users"][users], params["items"][negs]
        value, (g_rows, g_users, g_negs) = jax.value_and_grad(loss, argnums=(0, 1, 2))(
            rows, user_rows, neg_rows, log_q[negs], slot, S, V, R, keep)
        occurrences = {"items": (jnp.concatenate([S, negs]), jnp.concatenate([g_rows, g_negs])),
                       "users": (users, g_users)}
        new_params, new_state = {}, {}
        for name, (ids, grad) in occurrences.items():
            slots, row_map = state[name]
            table, slots, row_map = update.apply_rows(params[name], slots, ids, grad, t, learning_rate, row_map)
            new_params[name], new_state[name] = table, (slots, row_map)
        return new_params, new_state, value

    rng = np.random.default_rng(seed)
    key = jax.random.PRNGKey(0 if seed is None else seed)
    t = 0
    packed = PackedSets(sets, weights, ratings, pairs=max(pairs_per_step, sets.shape[1]))
    del sets, weights, ratings
    losses = []
    n_passes = passes(packed.steps(), epochs)
    for k in range(n_passes):
        values = []
        for batch in packed.batches(rng):
            t += 1
            key, sub = jax.random.split(key)
            params, state, value = train_step(params, state, batch.users, batch.slot, batch.items, *batch.values,
                                              sub, jnp.int32(t), cdf, log_q)
            values.append(value)
        losses.append(float(np.mean(np.asarray(values))) if values else 0.0)
        if on_pass is not None:
            on_pass(k + 1, n_passes, losses[-1])
        if not np.isfinite(losses[-1]):
            from ..errors import TrainingError

            raise TrainingError(f"the sampled training of the implicit model diverged (loss {losses[-1]}); lower "
                                f"sampled_learning_rate (now {learning_rate})")
    items, users = np.asarray(params["items"]), np.asarray(params["users"])
    out, at = {"user": users[:, :d], "user_bias": users[:, d:]}, 0
    for name, width in ITEM_PARTS:
        out[name], at = items[:, at:at + width], at + width
    return out, losses


def fit_set_model(sets: np.ndarray, weights: np.ndarray, n_items: int, hidden: int, epochs: int, l2: float,
                  dropout: float, seed: int | None, negatives: int, learning_rate: float = 1e-3,
                  pairs_per_step: int = 16384, max_epochs: int | None = None,
                  optimizer: str = "adam",
                  on_pass: Callable[[int, int, float], None] | None = None) -> list[np.ndarray]:
    """The set head (Mult-DAE, see :func:`ratecast.models.implicit.set_model`) over a large catalogue: the first
    layer reads the rows of the user's items (no users x items matrix), the output's log-likelihood uses the sampled
    softmax, and both item tables update by the rows a step read. Returns ``(W1, b1, W2, b2)`` as the dense head
    keeps them (``W2`` is hidden x items)."""
    import jax
    import jax.numpy as jnp

    from ..optim import Update

    sets = np.asarray(sets, "int32")
    values = np.where(sets > 0, np.asarray(weights, "float32"), np.float32(0))
    counts = np.bincount(sets[sets > 0], minlength=n_items)
    q = sampler(counts)
    cdf, log_q = jnp.asarray(np.cumsum(q, dtype="float64").astype("float32")), jnp.log(jnp.maximum(q, 1e-30))
    rng = np.random.default_rng(seed)
    scale = np.sqrt(2.0 / (n_items + hidden))  # Glorot
    h_ = hidden
    # one table [W1 | W2^T | b2], one row per item, updated by the rows a step read
    params = {"items": jnp.asarray(np.concatenate([rng.normal(0, scale, (n_items, 2 * hidden)),
                                                   np.zeros((n_items, 1))], axis=1).astype("float32"))}
    b1 = jnp.zeros(hidden, "float32")
    update = Update(optimizer, epsilon=1e-8)
    state = _row_state(update, params)
    b1_slots = update.slots(b1)
    K = int(negatives)

    def loss(rows, neg_rows, b1, neg_log_q, slot, S, V, key, n_slots):
        per_user = functools.partial(jax.ops.segment_sum, segment_ids=slot, num_segments=n_slots,
                                     indices_are_sorted=True)
        w1, w2, b2 = rows[:, :h_], rows[:, h_:2 * h_], rows[:, 2 * h_]
        kept = V * jax.random.bernoulli(key, 1 - dropout, V.shape) / (1 - dropout) if dropout else V
        norm = jnp.sqrt(jnp.maximum(per_user(kept * kept), 1e-12))
        h = jnp.tanh(per_user(kept[:, None] * w1) / norm[:, None] + b1)
        pos = jnp.sum(h[slot] * w2, axis=1) + b2
        logz = sampled_log_partition(h @ neg_rows[:, h_:2 * h_].T + neg_rows[:, 2 * h_], neg_log_q, K)
        present = (S > 0).astype("float32")
        n_users = jnp.maximum(jnp.sum(per_user(present) > 0), 1.0)
        return (-jnp.sum(V * (pos - logz[slot])) / n_users
                + l2 * jnp.sum(present[:, None] * rows[:, :2 * h_] ** 2) / n_users)

    @functools.partial(jax.jit, donate_argnums=(0, 1, 2, 3), static_argnums=(10,))  # updated in place
    def train_step(params, state, b1, b1_slots, slot, S, V, key, t, cdf, n_slots, log_q):
        k_drop, k_neg = jax.random.split(key)
        negs = draw(k_neg, cdf, K)
        rows, neg_rows = params["items"][S], params["items"][negs]
        value, (g_rows, g_negs, g_b1) = jax.value_and_grad(loss, argnums=(0, 1, 2))(
            rows, neg_rows, b1, log_q[negs], slot, S, V, k_drop, n_slots)
        slots, row_map = state["items"]
        table, slots, row_map = update.apply_rows(params["items"], slots, jnp.concatenate([S, negs]),
                                                  jnp.concatenate([g_rows, g_negs]), t, learning_rate, row_map)
        b1, b1_slots = update.apply(b1, g_b1, b1_slots, t, learning_rate)
        return {"items": table}, {"items": (slots, row_map)}, b1, b1_slots, value

    key = jax.random.PRNGKey(0 if seed is None else seed)
    t = 0
    packed = PackedSets(sets, values, pairs=max(pairs_per_step, sets.shape[1]))
    del sets, values
    n_passes = passes(packed.steps(), epochs, max_epochs)
    for k in range(n_passes):
        for batch in packed.batches(rng):
            t += 1
            key, sub = jax.random.split(key)
            params, state, b1, b1_slots, value = train_step(params, state, b1, b1_slots, batch.slot, batch.items,
                                                            *batch.values, sub, jnp.int32(t), cdf,
                                                            packed.users_per_step, log_q)
        if on_pass is not None and t:
            on_pass(k + 1, n_passes, float(value))
    if t and not np.isfinite(float(value)):
        from ..errors import TrainingError

        raise TrainingError(f"the sampled set head of the implicit model diverged (loss {float(value)})")
    items = np.asarray(params["items"])
    return [items[:, :hidden], np.asarray(b1), items[:, hidden:2 * hidden].T.copy(), items[:, 2 * hidden]]

"""Top-N evaluation over the whole catalogue (LensKit's and Cornac's protocol).

Each user's list ranks every item they did not rate in training; an item is relevant when the user's test rating is
at least ``threshold`` (callers pass the rating scale's ``liked_threshold``, 4 on 1-5, unless told otherwise). Accuracy metrics average over users with at least one relevant test item; coverage and
popularity bias are measured over the lists of every evaluated user. Everything is computed on arrays of lists
(``(n_users, k)`` item positions, ``-1`` where a list is short): no per-user Python loop.

* ``recall@k``: hits / min(relevant, k) (a full list of hits scores 1, as in LensKit);
* ``precision@k``: hits / k; ``hit@k``: share of users with at least one hit;
* ``ndcg@k``: binary gains, log2 discount, ideal list of min(relevant, k) hits;
* ``mrr@k``: 1 / rank of the first hit within the top k (0 when none);
* ``coverage@k``: share of the catalogue that appears in some list; ``distinct_items@k``: how many;
* ``mean_popularity@k``: mean training ratings of the recommended items; ``long_tail_share@k``: share of slots that
  go to items with fewer than ``long_tail`` training ratings.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

KS = (5, 10, 20)
LONG_TAIL = 10


def _pair_keys(rows: np.ndarray, items: np.ndarray, n_items: int) -> np.ndarray:
    """Sorted, distinct int64 keys of (row, item) pairs."""
    return np.unique(np.asarray(rows, "int64") * n_items + np.asarray(items, "int64"))


def _hits(lists: np.ndarray, keys: np.ndarray, n_items: int) -> np.ndarray:
    """Boolean (n_users, k): whether row r's listed item is among the relevant pair ``keys`` of row r."""
    if len(keys) == 0:
        return np.zeros(lists.shape, bool)
    probe = np.arange(len(lists), dtype="int64")[:, None] * n_items + np.maximum(lists, 0)
    found = np.minimum(np.searchsorted(keys, probe), len(keys) - 1)
    return (lists >= 0) & (keys[found] == probe)


def list_metrics(lists: np.ndarray, rel_rows: np.ndarray, rel_items: np.ndarray, popularity: np.ndarray, *,
                 ks=KS, long_tail: int = LONG_TAIL) -> dict[str, float | int | None]:
    """Top-N metrics of ``lists`` (n_users, >= max(ks)) of item positions, best first, -1 as padding.

    ``rel_rows``/``rel_items``: the relevant (list row, item position) pairs, where positions past the catalogue
    stand for relevant items the model never saw (they count as relevant and can never be hit); ``popularity``:
    training ratings per item position (its length is the catalogue size). Accuracy metrics are None when no user
    has a relevant item.
    """
    lists = np.asarray(lists, dtype="int64")
    ks = tuple(sorted(set(int(k) for k in ks)))
    if lists.ndim != 2 or lists.shape[1] < ks[-1]:
        raise ValueError(f"lists must have shape (n_users, >= {ks[-1]}), got {lists.shape}")
    n_items = len(popularity)
    rel_items = np.asarray(rel_items, "int64")
    span = max(n_items, int(rel_items.max()) + 1 if len(rel_items) else 0)
    keys = _pair_keys(rel_rows, rel_items, span)
    hits = _hits(lists, keys, span)
    n_rel = np.bincount(keys // span, minlength=len(lists))[:len(lists)]
    has = n_rel > 0
    out: dict[str, float | int | None] = {"users": int(has.sum())}
    discount = 1.0 / np.log2(np.arange(2, ks[-1] + 2))
    ideal = np.concatenate([[0.0], np.cumsum(discount)])
    for k in ks:
        h = hits[has, :k]
        if not has.any():
            out.update({f"{m}@{k}": None for m in ("recall", "precision", "ndcg", "mrr", "hit")})
            continue
        n_hits = h.sum(axis=1)
        first = np.where(h.any(axis=1), h.argmax(axis=1) + 1, 0)
        out[f"recall@{k}"] = float(np.mean(n_hits / np.minimum(n_rel[has], k)))
        out[f"precision@{k}"] = float(np.mean(n_hits / k))
        out[f"ndcg@{k}"] = float(np.mean((h * discount[:k]).sum(axis=1) / ideal[np.minimum(n_rel[has], k)]))
        out[f"mrr@{k}"] = float(np.mean(np.where(first > 0, 1.0 / np.maximum(first, 1), 0.0)))
        out[f"hit@{k}"] = float(np.mean(n_hits > 0))
    for k in ks:
        slots = lists[:, :k][lists[:, :k] >= 0]
        distinct = int(len(np.unique(slots)))
        pop = popularity[slots].astype("float64")
        out[f"distinct_items@{k}"] = distinct
        out[f"coverage@{k}"] = distinct / max(n_items, 1)
        out[f"mean_popularity@{k}"] = float(pop.mean()) if len(pop) else None
        out[f"long_tail_share@{k}"] = float((pop < long_tail).mean()) if len(pop) else None
    return out


def validation_monitor(model, fit_users: np.ndarray, fit_items: np.ndarray, val_users: np.ndarray,
                       val_items: np.ndarray, val_ratings: np.ndarray, *, threshold: float, k: int = 10,
                       max_users: int = 2000, seed: int | None = 0, distribution=None
                       ) -> Callable[[], dict[str, float]]:
    """A function that scores ``model``'s current lists on validation data: for (up to ``max_users``, a seeded
    sample of) the validation users with a relevant rating (>= ``threshold``), every item not in their fitting
    ratings is ranked. It returns ``val_recall@k``, ``val_ndcg@k`` and their sum ``val_top_n`` (what early stopping
    watches with ``monitor="val_top_n"``). Index arrays use the model's indices (0 = unknown)."""
    from .ranking import Scorer
    from .state import seen_matrix

    relevant = (np.asarray(val_ratings) >= threshold) & (np.asarray(val_items) > 0)
    users = np.unique(np.asarray(val_users)[relevant])
    if len(users) > max_users:
        users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))
    row_of = np.full(model.n_users, -1)
    row_of[users] = np.arange(len(users))
    rows = row_of[np.asarray(val_users)[relevant]]
    keep = rows >= 0
    rel_rows, rel_items = rows[keep], np.asarray(val_items)[relevant][keep] - 1
    allowed = ~seen_matrix(fit_users, fit_items, model.n_users, model.n_items)[users][:, 1:].toarray()
    popularity = np.bincount(fit_items, minlength=model.n_items)[1:]
    scorer = Scorer(model, distribution)

    def evaluate() -> dict[str, float]:
        lists, _ = scorer.top_k(users.astype("int32"), allowed, k)
        m = list_metrics(lists, rel_rows, rel_items, popularity, ks=(k,))
        recall, ndcg = m[f"recall@{k}"] or 0.0, m[f"ndcg@{k}"] or 0.0
        return {f"val_recall@{k}": recall, f"val_ndcg@{k}": ndcg, "val_top_n": recall + ndcg}

    return evaluate

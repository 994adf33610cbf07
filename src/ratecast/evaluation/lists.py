"""Per-user figures of recommendation lists, computed on arrays of lists with no per-user Python loop.

A batch of lists is an int array ``(n_users, depth)`` of item positions in the catalogue, best first, ``-1`` where
a list is shorter. Relevant items are given as (list row, item position) pairs; positions at or past the catalogue
size stand for relevant items the model never saw (they count as relevant and can never be hit).

* ``recall@k``: hits / min(relevant, k); ``precision@k``: hits / k; ``hit@k``: 1 when a relevant item is listed;
  ``ndcg@k``: binary gains, log2 discount, ideal list of min(relevant, k) hits. Undefined (NaN) for a user with no
  relevant test item.
* ``novelty@k``: mean self-information ``-log2(popularity / n_train_users)`` of the listed items (popularity: the
  item's training ratings, at least 1).
* ``diversity@k``: intra-list diversity, the mean of ``1 - cosine`` over the pairs of listed items' embeddings;
  ``genre_diversity@k`` the same over genre vectors (an item without a genre is unlike every other). Undefined for
  a list of fewer than 2 items. Embedding cosines can be negative, so diversity lies in 0..2 (1: orthogonal on
  average); genre vectors have no negative parts, so genre diversity lies in 0..1.
* ``popularity@k``: mean training popularity of the listed items.
* Catalogue figures of the exposure counts (how often each catalogue item is listed): ``gini@k`` (0: every item
  equally exposed, near 1: a few items take every slot) and ``coverage@k`` (share of the catalogue listed at all).
"""

from __future__ import annotations

import numpy as np

#: users handled at once (bounds memory: probe keys, embedding gathers)
USER_CHUNK = 16_384


def relevance_keys(rel_rows: np.ndarray, rel_items: np.ndarray, n_items: int) -> tuple[np.ndarray, int]:
    """Sorted distinct int64 keys ``row * span + item`` of the relevant pairs, and ``span``."""
    rel_items = np.asarray(rel_items, "int64")
    span = max(int(n_items), int(rel_items.max()) + 1 if len(rel_items) else 0, 1)
    return np.unique(np.asarray(rel_rows, "int64") * span + rel_items), span


def hits(lists: np.ndarray, first_row: int, keys: np.ndarray, span: int) -> np.ndarray:
    """Boolean like ``lists``: whether each listed item is relevant to its user (rows numbered from ``first_row``)."""
    if len(keys) == 0:
        return np.zeros(lists.shape, bool)
    probe = np.arange(first_row, first_row + len(lists), dtype="int64")[:, None] * span + np.maximum(lists, 0)
    found = np.minimum(np.searchsorted(keys, probe), len(keys) - 1)
    return (lists >= 0) & (keys[found] == probe)


def accuracy(hit: np.ndarray, n_relevant: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """recall, precision, hit and ndcg at ``k`` per user (NaN where the user has no relevant item)."""
    h = hit[:, :k]
    n_hits = h.sum(axis=1)
    has = n_relevant > 0
    ideal_n = np.minimum(n_relevant, k)
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.concatenate([[0.0], np.cumsum(discount)])
    with np.errstate(invalid="ignore", divide="ignore"):
        out = {
            f"recall@{k}": n_hits / ideal_n,
            f"precision@{k}": n_hits / k,
            f"hit@{k}": (n_hits > 0).astype("float64"),
            f"ndcg@{k}": (h * discount[:h.shape[1]]).sum(axis=1) / ideal[ideal_n],
        }
    return {name: np.where(has, v, np.nan) for name, v in out.items()}


def mean_over_list(lists: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Mean of per-item ``values`` over each list's items (NaN for an empty list)."""
    listed = lists >= 0
    n = listed.sum(axis=1)
    total = np.where(listed, values[np.maximum(lists, 0)], 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / n, np.nan)


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), float32."""
    v = np.asarray(vectors, dtype="float32")
    norm = np.linalg.norm(v, axis=1, keepdims=True)
    return np.divide(v, norm, out=np.zeros_like(v), where=norm > 0)


def intra_list_diversity(lists: np.ndarray, unit: np.ndarray) -> np.ndarray:
    """Mean ``1 - cosine`` over the pairs of each list's items, from unit item vectors (NaN below 2 items).

    The sum of the pairwise cosines is ``|sum of vectors|^2 - sum of |vector|^2``: linear in the list length."""
    listed = lists >= 0
    n = listed.sum(axis=1).astype("float64")
    v = unit[np.maximum(lists, 0)] * listed[:, :, None]
    total = v.sum(axis=1)
    pair_cos = np.einsum("ij,ij->i", total, total, dtype="float64") - np.einsum("ijk,ijk->i", v, v, dtype="float64")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n >= 2, 1.0 - pair_cos / (n * (n - 1)), np.nan)


def gini(exposure: np.ndarray, n_unlisted: int = 0) -> np.ndarray:
    """Gini coefficient of each row of exposure counts over the catalogue (NaN for a row of zeros); the catalogue
    also holds ``n_unlisted`` items of exposure 0 that the rows leave out."""
    x = np.sort(np.atleast_2d(np.asarray(exposure)), axis=1).astype("float64")
    n = x.shape[1] + n_unlisted
    weights = 2.0 * (n_unlisted + np.arange(1, x.shape[1] + 1)) - n - 1
    total = x.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (x @ weights) / (n * total), np.nan)


def coverage(exposure: np.ndarray, n_unlisted: int = 0) -> np.ndarray:
    """Share of the catalogue (the rows' items and ``n_unlisted`` more of exposure 0) with a non-zero exposure."""
    x = np.atleast_2d(np.asarray(exposure))
    return (x > 0).sum(axis=1) / max(x.shape[1] + n_unlisted, 1)

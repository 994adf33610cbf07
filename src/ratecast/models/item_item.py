"""The item-item head of model ``implicit``, a part fitted in closed form: EASE (Steck 2019), a ridge regression of
each item's column on the others with a zero diagonal, on the users' weighted item sets; and each user's mean and
standard deviation of its scores, by which the head is standardised before it joins the ranking key."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def item_item_weights(sets: np.ndarray, weights: np.ndarray, n_items: int, lam: float,
                      chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """EASE on the weighted sets: ``B = -P / diag(P)`` with ``P = (W^T W + l I)^-1`` and a zero diagonal, where ``l`` is
    ``lam`` times the mean number of ratings per item; and each user's mean and standard deviation of ``W B`` over
    the known items (index 0, unknown, is left out)."""
    users = np.repeat(np.arange(len(sets)), sets.shape[1])
    keep = sets.ravel() > 0
    W = sp.csr_matrix((weights.ravel()[keep].astype("float64"), (users[keep], sets.ravel()[keep])),
                      shape=(len(sets), n_items))
    G = (W.T @ W).toarray()
    G[np.diag_indices_from(G)] += lam * keep.sum() / max(n_items - 1, 1)
    P = np.linalg.inv(G)
    B = P / -np.diag(P)
    B[np.diag_indices_from(B)] = 0.0
    B[0, :] = B[:, 0] = 0.0
    stats = np.zeros((len(sets), 2), "float32")
    for start in range(0, len(sets), chunk):
        stats[start:start + chunk] = score_stats(np.asarray(W[start:start + chunk] @ B))
    return B.astype("float32"), stats


def score_stats(scores: np.ndarray) -> np.ndarray:
    """Per row of item-item scores (column 0, the unknown item, left out): (mean, standard deviation)."""
    return np.stack([scores[:, 1:].mean(axis=1), scores[:, 1:].std(axis=1)], axis=1)

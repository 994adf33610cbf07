"""The item-item head of model ``implicit`` (the layer :class:`ItemItemHead`), a part fitted in closed form: EASE
(Steck 2019), exact or diagonal-plus-low-rank, on the users' weighted item sets; and each user's mean and standard
deviation of its scores, by which the head is standardised before it joins the ranking key.

EASE regresses each item's column of the (users x items) matrix ``X`` of weighted sets on the other columns:
``B = -P / diag(P)`` with ``P = (X^T X + l I)^-1`` and a zero diagonal; a user's scores are ``x B``.

* exact: ``P`` as a dense inverse. It holds a few ``items x items`` matrices, so it is for catalogues up to the
  implicit model's ``item_item_max_items``; :func:`exact_bytes` says how much memory it takes.
* low rank (larger catalogues): ``X^T X ~ V S^2 V^T + E``, a rank-``r`` randomized SVD of ``X`` plus the diagonal
  ``E`` that it leaves out (each item's own count, which the regression's diagonal constraint needs). Woodbury's
  identity then gives ``P = D^-1 - U U^T`` with ``D = E + l I`` diagonal and ``U`` (items x r): every score and
  statistic is a product with ``U``, never an ``items x items`` matrix. With ``r`` at the catalogue's size it is
  the exact inverse.

Scores, in both forms, for a user's weighted set ``x``: ``s_j = x_j - (x P)_j / P_jj``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import keras
import numpy as np
import scipy.sparse as sp
from keras import ops

from .layers import standardise


def set_matrix(sets: np.ndarray, weights: np.ndarray, n_items: int) -> sp.csr_matrix:
    """The (users x items) sparse matrix of padded sets (item 0 = padding, left out)."""
    users, at = np.nonzero(sets)
    return sp.csr_matrix((weights[users, at].astype("float64"), (users, sets[users, at])), shape=(len(sets), n_items))


def ridge(X: sp.csr_matrix, lam: float) -> float:
    """The ridge penalty: ``lam`` times the mean number of ratings per known item."""
    return lam * X.nnz / max(X.shape[1] - 1, 1)


def exact_bytes(n_items: int) -> int:
    """Peak memory of :func:`exact_weights`: the Gram matrix, its inverse and the weights in float64, and a float32
    copy of the weights."""
    return n_items * n_items * (3 * 8 + 4)


def low_rank_bytes(n_users: int, n_items: int, rank: int) -> int:
    """Peak memory of :func:`low_rank_factors`: the randomized SVD's float64 bases of both sides (with its 10
    extra columns), twice over while they are orthonormalised."""
    return 2 * (n_users + n_items) * (rank + 10) * 8


def exact_weights(X: sp.csr_matrix, lam: float) -> np.ndarray:
    """Exact EASE: the (items x items) weights ``B`` (zero diagonal, row and column 0 zero), float64."""
    G = (X.T @ X).astype("float64").toarray()
    G[np.diag_indices_from(G)] += ridge(X, lam)
    P = np.linalg.inv(G)
    del G
    B = P / -np.diag(P)
    B[np.diag_indices_from(B)] = 0.0
    B[0, :] = B[:, 0] = 0.0
    return B


def exact_stats(X: sp.csr_matrix, B: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Per user: mean and standard deviation of ``x B`` over the known items (index 0 left out), float32."""
    stats = np.zeros((X.shape[0], 2), "float32")
    for start in range(0, X.shape[0], chunk):
        stats[start:start + chunk] = score_stats(np.asarray(X[start:start + chunk] @ B))
    return stats


def item_item_weights(sets: np.ndarray, weights: np.ndarray, n_items: int,
                      lam: float) -> tuple[np.ndarray, np.ndarray]:
    """Exact EASE on padded weighted sets: the weights ``B`` (float32) and each user's statistics of ``x B``."""
    X = set_matrix(sets, weights, n_items)
    B = exact_weights(X, lam)
    return B.astype("float32"), exact_stats(X, B)


def score_stats(scores: np.ndarray) -> np.ndarray:
    """Per row of item-item scores (column 0, the unknown item, left out): (mean, standard deviation)."""
    return np.stack([scores[:, 1:].mean(axis=1), scores[:, 1:].std(axis=1)], axis=1)


def low_rank_factors(X: sp.csr_matrix, lam: float, rank: int, seed: int | None,
                     power_iterations: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Diagonal-plus-low-rank EASE: ``(U, inv_d)`` with ``P = diag(inv_d) - U U^T`` (float32; row 0 zero)."""
    from sklearn.utils.extmath import randomized_svd

    n_items = X.shape[1]
    rank = int(min(rank, n_items - 1, X.shape[0]))
    _, s, Vt = randomized_svd(X.astype("float64"), rank, n_iter=power_iterations, random_state=seed or 0)
    V = Vt.T  # (items, r)
    counts = np.asarray(X.multiply(X).sum(axis=0)).ravel()  # diag(X^T X)
    residual = np.maximum(counts - (V * V) @ (s * s), 0.0)  # the diagonal the rank r leaves out
    d = residual + ridge(X, lam)
    A = V / d[:, None]
    M = np.diag(1.0 / np.maximum(s * s, 1e-12)) + V.T @ A  # (r, r): S^-2 + V^T D^-1 V
    L = np.linalg.cholesky(np.linalg.inv(M))
    U = A @ L
    U[0] = 0.0
    return U.astype("float32"), (1.0 / d).astype("float32")


def p_diagonal(U: np.ndarray, inv_d: np.ndarray) -> np.ndarray:
    """``diag(P)`` of the low-rank form, kept above zero."""
    return np.maximum(inv_d - np.einsum("ij,ij->i", U, U), 1e-12 * inv_d + 1e-30)


def low_rank_stats(X: sp.csr_matrix, U: np.ndarray, inv_d: np.ndarray, chunk: int = 65536,
                   nonzeros: int = 1 << 19) -> np.ndarray:
    """Per user: mean and standard deviation of the low-rank scores over the known items (index 0 left out),
    without forming them: the unseen items' part from ``z = x U`` through ``sum_j U_j / P_jj`` and
    ``sum_j U_j U_j^T / P_jj^2``, then each seen item's term corrected. Users go by chunks of at most ``chunk``
    users and ``nonzeros`` set entries (each entry holds two rows of ``U`` while its term is corrected)."""
    pd_ = p_diagonal(U, inv_d).astype("float64")
    U64 = U.astype("float64")
    m1 = (U64[1:] / pd_[1:, None]).sum(axis=0)
    W2 = U64[1:] / pd_[1:, None]
    m2 = W2.T @ W2
    n = X.shape[1] - 1
    stats = np.zeros((X.shape[0], 2), "float32")
    X = X.tocsr()
    starts = [0]
    while starts[-1] < X.shape[0]:
        at = starts[-1]
        end = int(np.searchsorted(X.indptr, X.indptr[at] + nonzeros, side="right")) - 1
        starts.append(min(max(end, at + 1), at + chunk, X.shape[0]))
    for start, stop in zip(starts, starts[1:]):
        Xc = X[start:stop].tocoo()
        z = np.asarray(X[start:stop] @ U64)  # (chunk, r)
        total = z @ m1
        squares = np.einsum("br,rs,bs->b", z, m2, z)
        a = np.einsum("kr,kr->k", z[Xc.row], U64[Xc.col]) / pd_[Xc.col]  # seen items' unseen-form scores
        c = Xc.data - Xc.data * inv_d[Xc.col] / pd_[Xc.col]  # what being seen adds to them
        total += np.bincount(Xc.row, c, minlength=len(z))
        squares += np.bincount(Xc.row, 2 * a * c + c * c, minlength=len(z))
        mean = total / n
        stats[start:stop] = np.stack([mean, np.sqrt(np.maximum(squares / n - mean * mean, 0.0))], axis=1)
    return stats


def low_rank_scores(x: np.ndarray, U: np.ndarray, inv_d: np.ndarray) -> np.ndarray:
    """Low-rank scores of dense weighted sets ``x`` (batch, items), every item (numpy; for tests and single users)."""
    z = x @ U
    return x - (x * inv_d - z @ U.T) / p_diagonal(U, inv_d)


class ItemItemHead(keras.layers.Layer):
    """The head's weights and each user's statistics of its scores, not trained (fitted by :meth:`fit`).

    ``rank`` None: exact EASE, ``weights_table`` (a variable named ``weights``) is ``B`` (n_items, n_items). Else
    low rank: ``weights_table`` is ``U`` (n_items, rank) and ``inv_d`` (n_items) is ``1/D``, with
    ``P = diag(1/D) - U U^T``. ``stats`` (n_users, 2):
    each user's mean and standard deviation of the scores over the known items, by which the head is
    standardised. ``lam``: the ridge penalty in training ratings per item (:func:`ridge`)."""

    #: the variables with one row per user (a model holding the layer gives them new rows as users come)
    per_user: ClassVar[tuple[str, ...]] = ("stats",)

    def __init__(self, n_users: int, n_items: int, lam: float, rank: int | None = None, seed: int | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        self.n_items, self.lam, self.rank, self.seed = int(n_items), float(lam), rank, seed
        shape = (n_items, n_items) if rank is None else (n_items, rank)
        self.weights_table = self.add_weight(shape=shape, initializer="zeros", trainable=False, name="weights")
        self.inv_d = None if rank is None else self.add_weight(shape=(n_items,), initializer="zeros",
                                                               trainable=False, name="inv_d")
        self.stats = self.add_weight(shape=(n_users, 2), initializer="zeros", trainable=False, name="stats")
        self.built = True  # every weight is made here

    @property
    def low_rank(self) -> bool:
        """Whether the head is the diagonal-plus-low-rank form (else exact EASE)."""
        return self.rank is not None

    def fit(self, table: np.ndarray, value: np.ndarray) -> None:
        """The weights and every user's statistics from their padded sets and weights."""
        X = set_matrix(table, value, self.n_items)
        if self.low_rank:
            U, inv_d = low_rank_factors(X, self.lam, self.rank, self.seed)
            full = np.zeros(tuple(self.weights_table.shape), "float32")
            full[:, :U.shape[1]] = U
            self.weights_table.assign(full)
            self.inv_d.assign(inv_d)
            self.stats.assign(low_rank_stats(X, full, inv_d))
        else:
            B = exact_weights(X, self.lam)
            self.weights_table.assign(B.astype("float32"))
            self.stats.assign(exact_stats(X, B))

    def stats_of(self, row: np.ndarray, value: np.ndarray) -> np.ndarray:
        """(len(row), 2) statistics of the scores of padded sets ``row`` with weights ``value`` (numpy)."""
        X = set_matrix(row, value, self.n_items)
        if self.low_rank:
            return low_rank_stats(X, np.asarray(self.weights_table.value), np.asarray(self.inv_d.value))
        return exact_stats(X, np.asarray(self.weights_table.value))

    def scores(self, chosen: Any, items: Any = None) -> Any:
        """The scores ``x B`` of the users' sets (a :class:`~ratecast.models.user_sets.Chosen`), for every known
        item (index 1..) or for ``items`` (batch, k): (batch, n_items - 1) or (batch, k)."""
        if not self.low_rank:
            B = self.weights_table
            if items is None:
                return chosen.times(B[:, 1:])
            column = ops.take(ops.transpose(B), items[:, 0], axis=0)  # (batch, items): one item each
            if chosen.dense is not None:
                return ops.sum(chosen.dense * column, axis=-1, keepdims=True)
            return ops.sum(chosen.mask * ops.take_along_axis(column, chosen.sets, 1), axis=-1, keepdims=True)
        U, inv_d = self.weights_table, self.inv_d
        p_diag = ops.maximum(inv_d - ops.sum(U * U, axis=1), 1e-12 * inv_d + 1e-30)  # 0 when unfitted
        z = chosen.times(U)  # (batch, rank)
        if items is None:
            a = ops.matmul(z, ops.transpose(U[1:])) / p_diag[None, 1:]
            x = chosen.matrix(self.n_items)[:, 1:]
            return a + x - x * inv_d[None, 1:] / p_diag[None, 1:]
        Ui, inv_i, p_i = ops.take(U, items, axis=0), ops.take(inv_d, items), ops.take(p_diag, items)
        x = chosen.value_of(items)
        return ops.einsum("br,bkr->bk", z, Ui) / p_i + x - x * inv_i / p_i

    def standardised(self, users: Any, scores: Any) -> Any:
        """``scores`` (batch, k) of ``users`` standardised by their statistics."""
        stats = ops.take(self.stats, users, axis=0)
        return standardise(scores, stats[:, :1], stats[:, 1:])

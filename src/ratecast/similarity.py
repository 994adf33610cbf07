"""Vectorised similarity and top-k selection over embedding and score matrices."""

from __future__ import annotations

import numpy as np

EPSILON = 1e-12


def cosine(a, b) -> float:
    """Cosine similarity of two vectors; 0.0 when either is the zero vector."""
    a, b = np.asarray(a, dtype="float64"), np.asarray(b, dtype="float64")
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na < EPSILON or nb < EPSILON:
        return 0.0
    return float(a @ b / (na * nb))


def cosine_similarities(matrix: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Cosine similarity of ``query`` to every row of ``matrix`` (rows or query of zeros give 0)."""
    m = np.asarray(matrix, dtype="float64")
    q = np.asarray(query, dtype="float64")
    norms = np.linalg.norm(m, axis=1) * np.linalg.norm(q)
    dots = m @ q
    out = np.zeros(len(m))
    ok = norms > EPSILON
    out[ok] = dots[ok] / norms[ok]
    return out


def top_k(keys: np.ndarray, k: int, allowed: np.ndarray | None = None) -> np.ndarray:
    """Positions of the ``k`` largest ``keys`` (best first, ties by position) among ``allowed`` positions.

    ``keys`` may be 1-D (one query) or 2-D (one row per query, then ``allowed`` is 2-D too and the result is
    ``(n_queries, k)`` padded with -1 where fewer than ``k`` positions are allowed).
    """
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k <= 0:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    keys = np.asarray(keys, dtype="float64")
    single = keys.ndim == 1
    keys2 = keys[None, :] if single else keys
    masked = keys2.copy()
    if allowed is not None:
        allowed2 = allowed[None, :] if single else allowed
        masked[~allowed2] = -np.inf
    n = masked.shape[1]
    kk = min(k, n)
    if kk < n:
        part = np.argpartition(-masked, kk - 1, axis=1)[:, :kk]
    else:
        part = np.broadcast_to(np.arange(n), masked.shape).copy()
    vals = np.take_along_axis(masked, part, axis=1)
    order = np.lexsort((part, -vals), axis=1)  # best first, ties by position
    idx = np.take_along_axis(part, order, axis=1)
    vals = np.take_along_axis(vals, order, axis=1)
    idx = np.where(np.isneginf(vals), -1, idx)
    return idx[0][idx[0] >= 0] if single else idx

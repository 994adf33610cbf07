"""Synthetic ratings in MovieLens' shape, for scale tests and benchmarks (MovieLens files are not redistributed).

:func:`movielens_like` draws users and items with power-law popularity over ML-25M's vocabulary by default, and
ratings from a low-rank model plus noise on ML-25M's half-star scale, so that a model has something to learn.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

ML25M_USERS, ML25M_ITEMS = 162_541, 59_047


def _power_law(rng: np.random.Generator, n_draws: int, n_values: int, exponent: float) -> np.ndarray:
    """Indices 0..n_values-1 drawn with probability proportional to (rank + 1) ** -exponent, in random rank order."""
    weights = np.arange(1, n_values + 1, dtype="float64") ** -exponent
    cdf = np.cumsum(weights)
    draws = np.searchsorted(cdf, rng.random(n_draws) * cdf[-1])
    return rng.permutation(n_values)[np.minimum(draws, n_values - 1)]


def movielens_like(n_ratings: int, n_users: int = ML25M_USERS, n_items: int = ML25M_ITEMS, *, seed: int = 0,
                   user_exponent: float = 0.6, item_exponent: float = 1.0, rank: int = 8) -> pd.DataFrame:
    """A ratings table with MovieLens' CSV columns (userId, movieId, rating, timestamp), 1-based ids."""
    if n_ratings < 1 or n_users < 1 or n_items < 1:
        raise ValueError(f"n_ratings, n_users and n_items must be positive, got {n_ratings}, {n_users}, {n_items}")
    rng = np.random.default_rng(seed)
    users = _power_law(rng, n_ratings, n_users, user_exponent).astype("int32")
    items = _power_law(rng, n_ratings, n_items, item_exponent).astype("int32")
    p = rng.normal(0, 0.5, (n_users, rank)).astype("float32")
    q = rng.normal(0, 0.5, (n_items, rank)).astype("float32")
    item_bias = rng.normal(0, 0.5, n_items).astype("float32")
    raw = 3.5 + item_bias[items] + np.einsum("ij,ij->i", p[users], q[items]) + rng.normal(0, 0.7, n_ratings)
    rating = np.clip(np.round(raw * 2) / 2, 0.5, 5.0).astype("float32")
    timestamp = rng.integers(789_652_009, 1_574_327_703, n_ratings)
    return pd.DataFrame({"userId": users + 1, "movieId": items + 1, "rating": rating, "timestamp": timestamp})

"""The bootstrap over users: resamples of the test users drawn as count vectors, shared by every statistic.

A statistic is a function of a ``(b, n_users)`` matrix of counts (how often each user is drawn in each of ``b``
resamples) that returns ``(b, m)`` figures; the observed figure is the same function of a row of ones. Statistics
that get the same ``random_state`` and number of users see the same resamples, which makes paired intervals (the
difference of two models' figures resample by resample) a matter of subtracting replicates.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from .lists import coverage, gini

Statistic = Callable[[np.ndarray], np.ndarray]

#: counts drawn per chunk (32 MiB of float64), whatever the number of users or resamples
COUNT_BUDGET = 1 << 22


def observed(n_users: int, statistics: Sequence[Statistic]) -> np.ndarray:
    """The statistics on the users as they are: one row of ones. Shape (m,)."""
    ones = np.ones((1, n_users))
    return np.concatenate([np.asarray(s(ones), "float64").reshape(1, -1) for s in statistics], axis=1)[0]


def replicates(n_users: int, statistics: Sequence[Statistic], n_resamples: int = 1000,
               random_state: int | None = 0) -> np.ndarray:
    """``(n_resamples, m)`` bootstrap replicates of the statistics (users drawn with replacement), in chunks of
    resamples so that memory stays bounded; the same ``random_state`` gives the same resamples."""
    rng = np.random.default_rng(random_state)
    rows = max(1, COUNT_BUDGET // max(n_users, 1))
    parts = []
    for start in range(0, n_resamples, rows):
        b = min(rows, n_resamples - start)
        draws = rng.integers(0, n_users, size=(b, n_users))
        draws += np.arange(b)[:, None] * n_users
        counts = np.bincount(draws.ravel(), minlength=b * n_users).reshape(b, n_users).astype("float64")
        del draws
        parts.append(np.concatenate([np.asarray(s(counts), "float64").reshape(b, -1) for s in statistics], axis=1))
    return np.concatenate(parts)


def ratio(numerator: np.ndarray, denominator: np.ndarray, transform: Callable | None = None) -> Statistic:
    """Statistic ``sum(count * numerator) / sum(count * denominator)`` per column (optionally transformed);
    NaN where a resample has no user with a non-zero denominator."""
    num, den = np.asarray(numerator, "float64"), np.asarray(denominator, "float64")

    def stat(counts: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            value = (counts @ num) / (counts @ den)
        return value if transform is None else transform(value)

    return stat


def subset(statistic: Statistic, users: np.ndarray) -> Statistic:
    """``statistic`` of some of the users only (a boolean mask or indices): it sees their columns of the counts."""
    return lambda counts: statistic(counts[:, users])


def catalogue(lists: np.ndarray, catalogue_size: int) -> Statistic:
    """Statistic (gini, coverage) of the exposure counts of the resampled users' ``lists`` (catalogue positions,
    -1: none) over a catalogue of ``catalogue_size`` items. Only items listed at all are counted per resample (the
    others are 0 in every resample): one weighted count of the list slots per resample."""
    lists = np.asarray(lists)
    rows, cols = np.nonzero(lists >= 0)
    listed, codes = np.unique(lists[rows, cols], return_inverse=True)
    unlisted = int(catalogue_size) - len(listed)

    def stat(counts: np.ndarray) -> np.ndarray:
        x = np.empty((len(counts), len(listed)), "float64")
        for r in range(len(counts)):  # one pass over the list slots per resample, never per user
            x[r] = np.bincount(codes, weights=counts[r, rows], minlength=len(listed))
        return np.column_stack([gini(x, unlisted), coverage(x, unlisted)])

    return stat


def interval(reps: np.ndarray, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of each column of replicates (resamples where a figure is undefined are left out)."""
    alpha = (1 - confidence) / 2
    reps = np.asarray(reps, "float64")
    low, high = np.full(reps.shape[1], np.nan), np.full(reps.shape[1], np.nan)
    ok = ~np.isnan(reps).all(axis=0)
    if ok.any():
        low[ok], high[ok] = np.nanquantile(reps[:, ok], [alpha, 1 - alpha], axis=0)
    return low, high

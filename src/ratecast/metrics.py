"""Evaluation: error metrics, bootstrap confidence intervals, ranking metrics and the random-initialisation baseline."""

from __future__ import annotations

import math
from numbers import Real
from typing import Callable

import numpy as np
import pandas as pd

from .datasets.scale import RatingScale


def _values(name: str, values) -> np.ndarray:
    if values is None or isinstance(values, (str, bytes)):
        raise TypeError(f"{name} must be a list or array of numbers, got {values!r}")
    try:
        arr = np.asarray(values, dtype="float64")
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a list or array of numbers") from None
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ValueError(f"{name} must hold finite numbers, got {arr[bad][0]} at position {int(np.flatnonzero(bad)[0])}")
    return arr


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    """Two 1-D arrays of finite numbers of one length, with at least one value."""
    t, p = _values("y_true", y_true), _values("y_pred", y_pred)
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred must have the same length, got {t.size} and {p.size}")
    if t.size == 0:
        raise ValueError("y_true and y_pred are empty: there is nothing to score")
    return t, p


def mae(y_true, y_pred) -> float:
    """Mean absolute error."""
    t, p = _pair(y_true, y_pred)
    return float(np.mean(np.abs(t - p)))


def mse(y_true, y_pred) -> float:
    """Mean squared error."""
    t, p = _pair(y_true, y_pred)
    return float(np.mean((t - p) ** 2))


def rmse(y_true, y_pred) -> float:
    return float(np.sqrt(mse(y_true, y_pred)))


ERROR_METRICS: dict[str, Callable] = {"mae": mae, "mse": mse, "rmse": rmse}


#: Resampled indices are drawn this many at a time (32 MiB of int64), whatever the number of ratings.
_CHUNK = 1 << 22


def _check_bootstrap_args(n_resamples, confidence, random_state) -> None:
    if isinstance(confidence, bool) or not isinstance(confidence, Real) or not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples!r}")
    if random_state is not None and (isinstance(random_state, bool) or not isinstance(random_state, (int, np.integer))
                                     or not 0 <= random_state < 2**32):
        raise ValueError(f"random_state must be an integer in [0, 2**32) or None, got {random_state!r}")


#: above this many ratings, the intervals of MAE, MSE and RMSE are the normal approximation of their bootstrap (the
#: mean error's sampling distribution is normal to well within the bootstrap's own resampling noise at that size,
#: and a bootstrap would cost n_resamples passes over every rating)
NORMAL_ABOVE = 200_000


def normal_cis(err: np.ndarray, names: list[str], confidence: float) -> dict[str, tuple[float, float]]:
    """Intervals of MAE, MSE and RMSE of errors ``err`` from the normal approximation: the mean of ``|e|`` (or
    ``e^2``) plus or minus z standard errors; RMSE's are the square roots of MSE's bounds."""
    from scipy.stats import norm

    z = float(norm.ppf(0.5 + confidence / 2))
    out = {}
    for name in names:
        values = np.abs(err) if name == "mae" else np.square(err)
        mean, half = float(values.mean()), z * float(values.std(ddof=1)) / np.sqrt(len(values))
        lo, hi = max(mean - half, 0.0), mean + half
        out[name] = (float(np.sqrt(lo)), float(np.sqrt(hi))) if name == "rmse" else (lo, hi)
    return out


def bootstrap_cis(y_true, y_pred, metrics=("mae", "mse", "rmse"), n_resamples: int = 1000,
                  confidence: float = 0.95, random_state: int | None = 0) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals of several metrics from the same resamples (see :func:`bootstrap_ci`). Above
    :data:`NORMAL_ABOVE` ratings, MAE, MSE and RMSE get the normal approximation (:func:`normal_cis`) instead."""
    _check_bootstrap_args(n_resamples, confidence, random_state)
    t, p = _pair(y_true, y_pred)
    names = [metrics] if isinstance(metrics, str) or callable(metrics) else list(metrics)
    for name in names:
        if not callable(name) and name not in ERROR_METRICS:
            raise ValueError(f"metric must be one of {list(ERROR_METRICS)} or a callable, got {name!r}")
    fns = {name: (ERROR_METRICS[name] if isinstance(name, str) else name) for name in names}
    err = t - p
    if t.size > NORMAL_ABOVE and all(name in ("mae", "mse", "rmse") for name in names):
        return normal_cis(err, names, confidence)
    want_abs = "mae" in names
    want_sq = "mse" in names or "rmse" in names
    stats = {name: np.empty(n_resamples) for name in names}
    rng = np.random.default_rng(random_state)
    # one row of indices per resample, drawn a bounded number of rows at a time: memory stays O(_CHUNK + n), and
    # the draws (hence the intervals) do not depend on the chunking
    rows = max(1, _CHUNK // t.size)
    for start in range(0, n_resamples, rows):
        stop = min(start + rows, n_resamples)
        idx = rng.integers(0, t.size, size=(stop - start, t.size))
        e = np.take(err, idx)  # one gather serves every error metric
        mean_abs = np.abs(e).mean(axis=1) if want_abs else None
        mean_sq = np.square(e, out=e).mean(axis=1) if want_sq else None
        del e
        for name in names:
            if name == "mae":
                stats[name][start:stop] = mean_abs
            elif name == "mse":
                stats[name][start:stop] = mean_sq
            elif name == "rmse":
                stats[name][start:stop] = np.sqrt(mean_sq)
            else:
                stats[name][start:stop] = [fns[name](t[i], p[i]) for i in idx]
        del idx
    alpha = (1 - confidence) / 2
    out = {}
    for name in names:
        lo, hi = np.quantile(stats[name], [alpha, 1 - alpha])
        out[name] = (float(lo), float(hi))
    return out


def bootstrap_ci(y_true, y_pred, metric: str | Callable = "mae", n_resamples: int = 1000, confidence: float = 0.95,
                 random_state: int | None = 0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of ``metric`` over resampled (rating, prediction) pairs.

    Resamples are drawn in bounded chunks, so memory does not grow with ``n_resamples`` (a few hundred MB at most
    for millions of ratings); the result is the same for the same ``random_state``.
    """
    return bootstrap_cis(y_true, y_pred, [metric], n_resamples, confidence, random_state)[metric]


def ranking_metrics(frame: pd.DataFrame, k: int = 10,
                    threshold: float = RatingScale(1, 5).liked_threshold) -> dict[str, float]:
    """Precision, recall and NDCG at ``k``, averaged over users.

    ``frame`` has columns user_id, rating, score: for each user, their test items are ranked by score; an item is
    relevant when its rating is >= ``threshold`` (default: the liked level of 1-5 ratings, 4; pass the data's
    ``rating_scale.liked_threshold`` for another scale). Users with no relevant test item are left out of recall
    and NDCG (they have nothing to find), and counted in precision; when no user has a relevant item, recall and
    NDCG are None (undefined), never NaN.
    """
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k <= 0:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if isinstance(threshold, bool) or not isinstance(threshold, Real) or not math.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number, got {threshold!r}")
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"frame must be a DataFrame with columns user_id, rating, score, got {type(frame).__name__}")
    missing = [c for c in ("user_id", "rating", "score") if c not in frame.columns]
    if missing:
        raise ValueError(f"frame must have columns user_id, rating, score; missing {missing}")
    if frame.empty:
        raise ValueError("frame is empty: there is nothing to rank")
    _values("frame['rating']", frame["rating"].to_numpy())
    _values("frame['score']", frame["score"].to_numpy())
    df = frame[["user_id", "rating", "score"]].copy()
    df["rel"] = (df["rating"] >= threshold).astype("float64")
    df = df.sort_values(["user_id", "score"], ascending=[True, False], kind="stable")
    df["rank"] = df.groupby("user_id").cumcount()
    top = df[df["rank"] < k]
    discount = 1.0 / np.log2(top["rank"].to_numpy() + 2.0)
    g = top.assign(dcg=top["rel"].to_numpy() * discount).groupby("user_id")
    hits, dcg = g["rel"].sum(), g["dcg"].sum()
    n_rel = df.groupby("user_id")["rel"].sum()
    n_items = df.groupby("user_id").size()
    ideal_len = np.minimum(n_rel, k).astype(int)
    cum = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(k) + 2.0))])
    idcg = pd.Series(cum[ideal_len.to_numpy()], index=n_rel.index)
    has_rel = n_rel > 0
    precision = (hits / np.minimum(n_items, k)).mean()
    if not has_rel.any():
        return {f"precision@{k}": float(precision), f"recall@{k}": None, f"ndcg@{k}": None}
    recall = (hits[has_rel] / n_rel[has_rel]).mean()
    ndcg = (dcg[has_rel] / idcg[has_rel]).mean()
    return {f"precision@{k}": float(precision), f"recall@{k}": float(recall), f"ndcg@{k}": float(ndcg)}


def error_report(y_true, y_pred, *, ci: bool = True, n_resamples: int = 1000, random_state: int | None = 0) -> dict:
    """MAE, MSE, RMSE (and their 95% bootstrap intervals) in one dict."""
    out = {name: fn(y_true, y_pred) for name, fn in ERROR_METRICS.items()}
    out["n"] = int(np.asarray(y_true).size)
    if ci:
        cis = bootstrap_cis(y_true, y_pred, list(ERROR_METRICS), n_resamples, random_state=random_state)
        for name in ERROR_METRICS:
            out[f"{name}_ci95"] = list(cis[name])
    return out

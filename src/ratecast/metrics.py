"""Evaluation: error metrics, bootstrap confidence intervals, ranking metrics and the random-initialisation baseline."""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype="float64").ravel()
    p = np.asarray(y_pred, dtype="float64").ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred must have the same length, got {t.size} and {p.size}")
    return t, p


def mae(y_true, y_pred) -> float:
    t, p = _pair(y_true, y_pred)
    return float(np.mean(np.abs(t - p))) if t.size else float("nan")


def mse(y_true, y_pred) -> float:
    t, p = _pair(y_true, y_pred)
    return float(np.mean((t - p) ** 2)) if t.size else float("nan")


def rmse(y_true, y_pred) -> float:
    return float(np.sqrt(mse(y_true, y_pred)))


ERROR_METRICS: dict[str, Callable] = {"mae": mae, "mse": mse, "rmse": rmse}


def bootstrap_ci(y_true, y_pred, metric: str | Callable = "mae", n_resamples: int = 1000, confidence: float = 0.95,
                 random_state: int | None = 0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of ``metric`` over resampled (rating, prediction) pairs."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if not isinstance(n_resamples, int) or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples!r}")
    t, p = _pair(y_true, y_pred)
    if t.size == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(random_state)
    name = metric if isinstance(metric, str) else None
    stats = np.empty(n_resamples)
    for start in range(0, n_resamples, 100):
        stop = min(start + 100, n_resamples)
        idx = rng.integers(0, t.size, size=(stop - start, t.size))
        err = t[idx] - p[idx]
        if name == "mae":
            stats[start:stop] = np.abs(err).mean(axis=1)
        elif name == "mse":
            stats[start:stop] = (err**2).mean(axis=1)
        elif name == "rmse":
            stats[start:stop] = np.sqrt((err**2).mean(axis=1))
        else:
            fn = ERROR_METRICS[metric] if isinstance(metric, str) else metric
            stats[start:stop] = [fn(t[i], p[i]) for i in idx]
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(stats, [alpha, 1 - alpha])
    return float(lo), float(hi)


def ranking_metrics(frame: pd.DataFrame, k: int = 10, threshold: float = 4.0) -> dict[str, float]:
    """Precision, recall and NDCG at ``k``, averaged over users.

    ``frame`` has columns user_id, rating, score: for each user, their test items are ranked by score; an item is
    relevant when its rating is >= ``threshold``. Users with no relevant test item are left out of recall and NDCG
    (they have nothing to find), and counted in precision.
    """
    if not isinstance(k, int) or isinstance(k, bool) or k <= 0:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if frame.empty:
        return {f"precision@{k}": float("nan"), f"recall@{k}": float("nan"), f"ndcg@{k}": float("nan")}
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
    recall = (hits[has_rel] / n_rel[has_rel]).mean()
    ndcg = (dcg[has_rel] / idcg[has_rel]).mean()
    return {f"precision@{k}": float(precision), f"recall@{k}": float(recall), f"ndcg@{k}": float(ndcg)}


def error_report(y_true, y_pred, *, ci: bool = True, n_resamples: int = 1000, random_state: int | None = 0) -> dict:
    """MAE, MSE, RMSE (and their 95% bootstrap intervals) in one dict."""
    out = {name: fn(y_true, y_pred) for name, fn in ERROR_METRICS.items()}
    out["n"] = int(np.asarray(y_true).size)
    if ci and out["n"]:
        for name in ERROR_METRICS:
            out[f"{name}_ci95"] = list(bootstrap_ci(y_true, y_pred, name, n_resamples, random_state=random_state))
    return out

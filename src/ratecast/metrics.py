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


#: Resampled indices are drawn this many at a time (32 MiB of int64), whatever the number of ratings.
_CHUNK = 1 << 22


def _check_bootstrap_args(n_resamples, confidence) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples!r}")


def bootstrap_cis(y_true, y_pred, metrics=("mae", "mse", "rmse"), n_resamples: int = 1000,
                  confidence: float = 0.95, random_state: int | None = 0) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals of several metrics from the same resamples (see :func:`bootstrap_ci`)."""
    _check_bootstrap_args(n_resamples, confidence)
    t, p = _pair(y_true, y_pred)
    names = list(metrics)
    if t.size == 0:
        return {name: (float("nan"), float("nan")) for name in names}
    fns = {name: (ERROR_METRICS[name] if isinstance(name, str) else name) for name in names}
    for name in names:
        if isinstance(name, str) and name not in ERROR_METRICS:
            raise ValueError(f"metric must be one of {list(ERROR_METRICS)} or a callable, got {name!r}")
    err = t - p
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
        cis = bootstrap_cis(y_true, y_pred, list(ERROR_METRICS), n_resamples, random_state=random_state)
        for name in ERROR_METRICS:
            out[f"{name}_ci95"] = list(cis[name])
    return out

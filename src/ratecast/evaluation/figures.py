"""From arrays of lists to the per-user table, and from the per-user table to summaries with bootstrap intervals.

The per-user table is the one record of an evaluation's figures: summaries, groups, popularity bands and paired
comparisons are all computed from it (and, for the catalogue figures, from the lists), so a saved table can be
summarised or compared again later.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import bootstrap as B
from .lists import (USER_CHUNK, accuracy, hits, intra_list_diversity, mean_over_list,
                    relevance_keys, unit_rows)

#: every list is this deep (the deepest metric, ndcg@100)
DEPTH = 100
#: the list length of the figures that describe lists rather than hits
K = 10
ACCURACY = ("recall@10", "recall@20", "ndcg@10", "ndcg@100", "precision@10", "hit@10")
ERRORS = ("rmse", "mae")
CATALOGUE = (f"gini@{K}", f"coverage@{K}")
#: the summary's metrics, in order (those the data cannot give, e.g. genre diversity without genres, are left out)
METRICS = (*ERRORS, *ACCURACY, f"novelty@{K}", f"diversity@{K}", f"genre_diversity@{K}", *CATALOGUE,
           f"popularity@{K}")
BANDS = ("head", "mid", "tail")
BAND_METRIC = f"recall@{K}"
#: per-user columns that are counts, not figures
COUNTS = ("n_test", "n_relevant")


def band_column(band: str) -> str:
    return f"{BAND_METRIC}[{band}]"


def popularity_bands(popularity: np.ndarray) -> np.ndarray:
    """Band per catalogue position: 0 head, 1 mid, 2 tail: terciles of the items ranked by training popularity
    (most rated first; ties in catalogue order)."""
    pop = np.asarray(popularity)
    order = np.argsort(-pop, kind="stable")
    band = np.empty(len(pop), "int64")
    band[order] = np.arange(len(pop)) * 3 // max(len(pop), 1)
    return band


def user_figures(lists: np.ndarray, rel_rows: np.ndarray, rel_items: np.ndarray, popularity: np.ndarray,
                 n_train_users: int, *, item_vectors: np.ndarray | None = None,
                 genre_vectors: np.ndarray | None = None, error_rows: np.ndarray | None = None,
                 errors: np.ndarray | None = None, user_ids=None) -> pd.DataFrame:
    """One row per list: the counts, and every per-user figure (NaN where undefined for that user; see
    :mod:`ratecast.evaluation.lists`). ``popularity``: training ratings per catalogue position (its length is the
    catalogue size); ``errors``: rating errors (truth - prediction) of list rows ``error_rows``."""
    lists = np.asarray(lists, "int64")
    n_users, n_items = len(lists), len(popularity)
    if lists.ndim != 2:
        raise ValueError(f"lists must be a 2-D array (users, ranks), got shape {lists.shape}")
    if lists.shape[1] < DEPTH:
        lists = np.concatenate([lists, np.full((n_users, DEPTH - lists.shape[1]), -1, "int64")], axis=1)
    if lists.max(initial=-1) >= n_items:
        raise ValueError(f"lists hold item position {int(lists.max())}, past the catalogue of {n_items} items")
    keys, span = relevance_keys(rel_rows, rel_items, n_items)
    key_rows, key_items = keys // span, keys % span
    n_relevant = np.bincount(key_rows, minlength=n_users)
    band = popularity_bands(popularity)
    key_band = np.where(key_items < n_items, band[np.minimum(key_items, n_items - 1)], 2)
    n_rel_band = np.bincount(key_rows * 3 + key_band, minlength=3 * n_users).reshape(n_users, 3)
    pop = np.asarray(popularity, "float64")
    novelty = -np.log2(np.maximum(pop, 1.0) / max(int(n_train_users), 1))
    unit = None if item_vectors is None else unit_rows(item_vectors)
    genre_unit = None if genre_vectors is None else unit_rows(genre_vectors)

    cols: dict[str, np.ndarray] = {name: np.empty(n_users) for name in
                                   (*ACCURACY, f"novelty@{K}", f"popularity@{K}", *map(band_column, BANDS))}
    if unit is not None:
        cols[f"diversity@{K}"] = np.empty(n_users)
    if genre_unit is not None:
        cols[f"genre_diversity@{K}"] = np.empty(n_users)
    for start in range(0, n_users, USER_CHUNK):
        stop = min(start + USER_CHUNK, n_users)
        chunk, nrel = lists[start:stop], n_relevant[start:stop]
        hit = hits(chunk, start, keys, span)
        for k in sorted({int(name.split("@")[1]) for name in ACCURACY}):
            for name, value in accuracy(hit, nrel, k).items():
                if name in cols:
                    cols[name][start:stop] = value
        top = chunk[:, :K]
        cols[f"novelty@{K}"][start:stop] = mean_over_list(top, novelty)
        cols[f"popularity@{K}"][start:stop] = mean_over_list(top, pop)
        if unit is not None:
            cols[f"diversity@{K}"][start:stop] = intra_list_diversity(top, unit)
        if genre_unit is not None:
            cols[f"genre_diversity@{K}"][start:stop] = intra_list_diversity(top, genre_unit)
        top_band = band[np.maximum(top, 0)]
        for b, name in enumerate(BANDS):
            n_b = np.minimum(n_rel_band[start:stop, b], K)
            got = (hit[:, :K] & (top_band == b)).sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                cols[band_column(name)][start:stop] = np.where(n_b > 0, got / n_b, np.nan)

    out = {"n_test": np.zeros(n_users, "int64"), "n_relevant": n_relevant}
    if errors is not None:
        rows, err = np.asarray(error_rows, "int64"), np.asarray(errors, "float64")
        n_test = np.bincount(rows, minlength=n_users)
        with np.errstate(invalid="ignore", divide="ignore"):
            out["rmse"] = np.sqrt(np.bincount(rows, err * err, minlength=n_users) / n_test)
            out["mae"] = np.bincount(rows, np.abs(err), minlength=n_users) / n_test
        out["n_test"] = n_test
    out.update(cols)
    index = pd.RangeIndex(n_users) if user_ids is None else pd.Index(user_ids, name="user_id")
    ordered = [c for c in (*COUNTS, *METRICS, *map(band_column, BANDS)) if c in out]
    return pd.DataFrame({c: out[c] for c in ordered}, index=index)


def user_metric_columns(per_user: pd.DataFrame) -> list[str]:
    """The per-user figures of a table, in the summary's order (the bands last)."""
    return [c for c in (*METRICS, *map(band_column, BANDS)) if c in per_user.columns]


def ratio_parts(per_user: pd.DataFrame, columns: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Numerators and denominators whose summed ratio is each column's summary: rating errors are weighted by the
    user's test ratings (rmse as mean squared error), every other figure is a mean over the users it is defined for."""
    num = np.zeros((len(per_user), len(columns)))
    den = np.zeros((len(per_user), len(columns)))
    n_test = per_user["n_test"].to_numpy("float64")
    for j, c in enumerate(columns):
        v = per_user[c].to_numpy("float64")
        ok = ~np.isnan(v)
        if c in ERRORS:
            num[ok, j] = (v[ok] ** 2 if c == "rmse" else v[ok]) * n_test[ok]
            den[ok, j] = n_test[ok]
        else:
            num[ok, j], den[ok, j] = v[ok], 1.0
    return num, den


def ratio_statistic(per_user: pd.DataFrame, columns: list[str]) -> B.Statistic:
    num, den = ratio_parts(per_user, columns)
    root = np.array([c == "rmse" for c in columns])

    def transform(value: np.ndarray) -> np.ndarray:
        value = value.copy()
        value[:, root] = np.sqrt(value[:, root])
        return value

    return B.ratio(num, den, transform if root.any() else None)


def catalogue_statistic(lists: np.ndarray, catalogue_size: int) -> B.Statistic:
    return B.catalogue(np.asarray(lists)[:, :K], catalogue_size)


def figures_table(index: pd.Index, value: np.ndarray, reps: np.ndarray, users: np.ndarray | None = None
                  ) -> pd.DataFrame:
    """Columns value, ci_low, ci_high (and users) over ``index``."""
    low, high = B.interval(reps)
    table = pd.DataFrame({"value": value, "ci_low": low, "ci_high": high}, index=index)
    if users is not None:
        table["users"] = users
    return table


def summarise(per_user: pd.DataFrame, lists: np.ndarray, catalogue_size: int, *, n_resamples: int = 1000,
              random_state: int | None = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The summary (metric -> value, ci_low, ci_high) and the popularity-band breakdown of recall, from one set of
    bootstrap resamples of the users. Metrics no user defines (e.g. recall when no user has a relevant item) are
    left out, never reported as NaN."""
    columns = user_metric_columns(per_user)
    stats = [ratio_statistic(per_user, columns), catalogue_statistic(lists, catalogue_size)]
    names = [*columns, *CATALOGUE]
    value = B.observed(len(per_user), stats)
    reps = B.replicates(len(per_user), stats, n_resamples, random_state)
    table = figures_table(pd.Index(names, name="metric"), value, reps)
    table = table[~table["value"].isna()]
    bands = [band_column(b) for b in BANDS]
    band_table = table.loc[[c for c in bands if c in table.index]]
    band_table.index = pd.Index([c[c.index("[") + 1:-1] for c in band_table.index], name="band")
    band_table["users"] = [int(per_user[band_column(b)].notna().sum()) for b in band_table.index]
    summary = table.loc[[m for m in METRICS if m in table.index]]
    return summary, band_table


def group_labels(per_user: pd.DataFrame, users: pd.DataFrame | None, by: str) -> pd.Series:
    """Each test user's group: the value of column ``by`` of the user table, ``"(missing)"`` where the table has no
    value. A numeric column of more than 8 distinct values is cut into bands (``age``: MovieLens-1M's age bands
    under 18, 18-24, 25-34, 35-44, 45-49, 50-55, 56+; any other: quartiles)."""
    if users is None:
        raise ValueError(f"by={by!r} needs a user table, and the data has none")
    if by not in users.columns:
        raise ValueError(f"by must name a column of the user table {list(users.columns)}, got {by!r}")
    column = users[by]
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column) and column.nunique() > 8:
        if by == "age":
            column = pd.cut(column, [-np.inf, 18, 25, 35, 45, 50, 56, np.inf], right=False,
                            labels=["under 18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+"])
        else:
            column = pd.qcut(column, 4, duplicates="drop")
    labels = column.astype(object).reindex(per_user.index)
    return labels.where(labels.notna(), "(missing)").astype(str)


def group_figures(per_user: pd.DataFrame, labels: pd.Series, *, n_resamples: int = 1000,
                  random_state: int | None = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each group's per-user metrics with intervals (index metric, group; columns value, ci_low, ci_high, users),
    and per metric the largest gap between groups of at least :data:`MIN_GAP_USERS` users (highest minus lowest
    group, with the interval of that difference over the same resamples; see :func:`largest_gaps`)."""
    columns = [c for c in user_metric_columns(per_user) if "[" not in c]
    groups = sorted(labels.unique())
    stats = [B.subset(ratio_statistic(per_user[(labels == g).to_numpy()], columns), (labels == g).to_numpy())
             for g in groups]
    value = B.observed(len(per_user), stats).reshape(len(groups), len(columns))
    reps = B.replicates(len(per_user), stats, n_resamples, random_state).reshape(-1, len(groups), len(columns))
    index = pd.MultiIndex.from_product([columns, groups], names=["metric", "group"])
    users = np.array([[int((per_user[c].notna() & (labels == g)).sum()) for g in groups] for c in columns])
    table = figures_table(index, value.T.ravel(), reps.transpose(0, 2, 1).reshape(len(reps), -1), users.ravel())
    table = table[~table["value"].isna()]
    return table, largest_gaps(columns, groups, value, reps, users.T)


GAP_COLUMNS = ["metric", "gap", "ci_low", "ci_high", "highest", "lowest"]
#: a group takes part in the largest gap of a metric only when that many of its users define the metric: the figure
#: of a handful of users (one doctor among the test users) is mostly noise, and its bootstrap interval is no guide
MIN_GAP_USERS = 10


def largest_gaps(metrics: list[str], groups: list[str], value: np.ndarray, reps: np.ndarray,
                 users: np.ndarray) -> pd.DataFrame:
    """Per metric the largest gap between groups: highest minus lowest group's figure, with the interval of that
    difference over the same resamples. ``value`` and ``users`` (how many users define each figure): ``(groups,
    metrics)``; ``reps``: ``(resamples, groups, metrics)``. Groups of fewer than :data:`MIN_GAP_USERS` users are
    left out; so are metrics that fewer than 2 groups then define."""
    rows = []
    for j, c in enumerate(metrics):
        v = np.where(users[:, j] >= MIN_GAP_USERS, value[:, j], np.nan)
        if (~np.isnan(v)).sum() < 2:
            continue
        hi, lo = int(np.nanargmax(v)), int(np.nanargmin(v))
        low, high = B.interval(reps[:, hi, j:j + 1] - reps[:, lo, j:j + 1])
        rows.append({"metric": c, "gap": v[hi] - v[lo], "ci_low": low[0], "ci_high": high[0],
                     "highest": groups[hi], "lowest": groups[lo]})
    return pd.DataFrame(rows, columns=GAP_COLUMNS).set_index("metric")


def band_gap(per_user: pd.DataFrame, *, n_resamples: int = 1000, random_state: int | None = 0) -> pd.DataFrame:
    """The largest gap in :data:`BAND_METRIC` between the item popularity bands (e.g. head minus tail), with its
    interval: a table like :func:`group_figures`' gaps (empty when fewer than 2 bands have relevant items)."""
    bands = [b for b in BANDS if band_column(b) in per_user.columns]
    stat = ratio_statistic(per_user, [band_column(b) for b in bands])
    value = B.observed(len(per_user), [stat]).reshape(len(bands), 1)
    reps = B.replicates(len(per_user), [stat], n_resamples, random_state).reshape(-1, len(bands), 1)
    users = np.array([[int(per_user[band_column(b)].notna().sum())] for b in bands])
    return largest_gaps([BAND_METRIC], bands, value, reps, users)

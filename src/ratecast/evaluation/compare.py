"""``compare``: paired differences between recommenders on the same test users, with intervals and tests.

For each pair (a, b) and metric: ``difference`` = a's figure - b's; its 95% interval from the bootstrap
replicates of both on the same resamples of the users; a paired test on the per-user figures:

* list metrics (recall, ndcg, precision, hit, novelty, diversity, popularity, bands): Wilcoxon signed-rank test on
  the per-user differences (users where both figures are defined);
* rating errors: paired t-test on the per-user mean squared error (rmse) and mean absolute error (mae);
* catalogue figures (gini, coverage), which have no per-user value: the bootstrap's two-sided p-value
  ``2 * min(share of resampled differences <= 0, share >= 0)`` (with the +1 correction).

``p_value`` is Holm-corrected across every row of the result (``p_raw`` before correction); ``significant`` is
true when the corrected p is below ``alpha``.
"""

from __future__ import annotations

from itertools import combinations
from typing import Mapping

import numpy as np
import pandas as pd
from scipy import stats

from . import bootstrap as B
from .core import Evaluation, check_resampling, evaluate
from .figures import CATALOGUE, ERRORS, METRICS, catalogue_statistic, ratio_statistic

COLUMNS = ["metric", "a", "b", "value_a", "value_b", "difference", "ci_low", "ci_high", "p_value", "p_raw",
           "test", "significant", "users"]


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjustment of p-values (controls the family-wise error rate)."""
    p = np.asarray(p_values, "float64")
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted
    return out


def _paired_p(metric: str, a: np.ndarray, b: np.ndarray) -> tuple[float, str, int]:
    """Raw p-value, test name and number of users of a paired test on per-user figures."""
    ok = ~np.isnan(a) & ~np.isnan(b)
    a, b = a[ok], b[ok]
    if metric in ERRORS:
        if metric == "rmse":
            a, b = a ** 2, b ** 2
        d = a - b
        if len(d) < 2 or np.ptp(d) == 0:  # no spread: the t statistic is undefined
            return (1.0 if len(d) == 0 or d[0] == 0 else 0.0), "paired t-test", int(len(d))
        return float(stats.ttest_rel(a, b).pvalue), "paired t-test", int(len(d))
    d = a - b
    if not np.any(d != 0):
        return 1.0, "wilcoxon", int(len(d))
    return float(stats.wilcoxon(d).pvalue), "wilcoxon", int(len(d))


def _aligned(evaluations: dict[str, Evaluation]) -> dict[str, Evaluation]:
    """The evaluations with per-user rows (and lists) in the first one's user order; refuses other test users."""
    names = list(evaluations)
    ref = evaluations[names[0]].per_user.index
    out = {}
    for name in names:
        ev = evaluations[name]
        index = ev.per_user.index
        if len(index) != len(ref) or not index.isin(ref).all():
            shared = int(index.isin(ref).sum())
            raise ValueError(f"compare: {name!r} was evaluated on other test users than {names[0]!r} "
                             f"({len(index)} and {len(ref)} users, {shared} shared); compare needs the same users")
        order = index.get_indexer(ref)
        out[name] = ev if (order == np.arange(len(order))).all() else Evaluation(
            ev.summary, ev.per_user.iloc[order], ev.bands, ev.lists[order], ev.catalogue_size, ev.groups, ev.gaps,
            ev.by, ev.n_resamples, ev.random_state)
    return out


def compare(models: Mapping, test=None, fold_in=None, *, alpha: float = 0.05, n_resamples: int = 1000,
            random_state: int | None = 0) -> pd.DataFrame:
    """Paired comparison of every pair of ``models`` (name -> fitted Recommender or :class:`Evaluation`) on the same
    test users: one row per metric and pair, columns ``metric, a, b, value_a, value_b, difference (a - b), ci_low,
    ci_high, p_value (Holm-corrected), p_raw, test, significant, users``. Recommenders are evaluated on ``test``
    (with ``fold_in``, see :func:`evaluate`); evaluations made on other test users are refused."""
    if not isinstance(models, Mapping) or len(models) < 2:
        raise ValueError(f"models must map at least two names to recommenders or evaluations, got {models!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    check_resampling(n_resamples, random_state)
    evaluations = {}
    for name, model in models.items():
        if isinstance(model, Evaluation):
            evaluations[str(name)] = model
        elif test is None:
            raise ValueError(f"compare: {name!r} is a recommender, so test must be given")
        else:
            evaluations[str(name)] = evaluate(model, test, fold_in, n_resamples=n_resamples,
                                              random_state=random_state)
    if test is not None:
        test_users = pd.Index(pd.unique(test.ratings["user_id"].to_numpy()))
        for name, ev in evaluations.items():
            if len(ev.per_user.index) != len(test_users) or not ev.per_user.index.isin(test_users).all():
                raise ValueError(f"compare: {name!r} was evaluated on other test users than those of test "
                                 f"({len(ev.per_user)} and {len(test_users)} users)")
    evaluations = _aligned(evaluations)
    n_users = len(next(iter(evaluations.values())).per_user)
    metrics = [m for m in METRICS if all(m in ev.summary.index for ev in evaluations.values())]
    user_metrics = [m for m in metrics if m not in CATALOGUE]
    catalogue = [m for m in CATALOGUE if m in metrics]
    names = [*user_metrics, *CATALOGUE]  # the statistics' columns
    value, reps = {}, {}
    for name, ev in evaluations.items():
        statistics = [ratio_statistic(ev.per_user, user_metrics), catalogue_statistic(ev.lists, ev.catalogue_size)]
        value[name] = B.observed(n_users, statistics)
        reps[name] = B.replicates(n_users, statistics, n_resamples, random_state)
    rows = []
    for a, b in combinations(evaluations, 2):
        diff_reps = reps[a] - reps[b]
        low, high = B.interval(diff_reps)
        for metric in [*user_metrics, *catalogue]:
            j = names.index(metric)
            if metric in CATALOGUE:
                d = diff_reps[:, j]
                d = d[~np.isnan(d)]
                p = min(1.0, 2 * (min((d <= 0).sum(), (d >= 0).sum()) + 1) / (len(d) + 1))
                test_name, users = "bootstrap", n_users
            else:
                p, test_name, users = _paired_p(metric, evaluations[a].per_user[metric].to_numpy("float64"),
                                                evaluations[b].per_user[metric].to_numpy("float64"))
            rows.append({"metric": metric, "a": a, "b": b, "value_a": value[a][j], "value_b": value[b][j],
                         "difference": value[a][j] - value[b][j], "ci_low": low[j], "ci_high": high[j],
                         "p_raw": p, "test": test_name, "users": users})
    out = pd.DataFrame(rows, columns=[c for c in COLUMNS if c not in ("p_value", "significant")])
    out["p_value"] = holm(out["p_raw"].to_numpy()) if len(out) else []
    out["significant"] = out["p_value"] < alpha
    return out[COLUMNS]

"""HTML of evaluations, self-contained and offline: the run report's Evaluation section, and the report that compares
saved runs (paired differences with intervals and corrected p-values, each run's figures, popularity bands and user
groups side by side). Tables and page helpers are those of :mod:`ratecast.report`; figures are inline PNGs."""

from __future__ import annotations

import html
import math
import os
import re
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from .errors import RatecastError
from .evaluation import METRICS, Evaluation
from .evaluation.figures import BAND_METRIC, band_gap
from .evaluation.plots import interval_chart, metric_grid
from .io import check_replaceable, write_text
from .report import MISSING, html_image, html_page, html_table
from .run_evaluation import (SavedEvaluation, compare_evaluations, group_tables, read_evaluation, saved_evaluations,
                             split_label)

ACCURACY = ("rmse", "mae", "recall@10", "recall@20", "ndcg@10", "ndcg@100", "precision@10", "hit@10")
BEYOND_ACCURACY = ("novelty@10", "diversity@10", "genre_diversity@10", "gini@10", "coverage@10", "popularity@10")
#: the figures shown per user group
GROUP_METRICS = ("rmse", "recall@10", "ndcg@10")
BANDS = ("head", "mid", "tail")
DESCRIPTIONS = {
    "rmse": "root mean squared rating error (lower is better)",
    "mae": "mean absolute rating error (lower is better)",
    "recall@10": "share of a user's liked test items in the top 10 (of at most 10)",
    "recall@20": "share of a user's liked test items in the top 20 (of at most 20)",
    "ndcg@10": "rank-discounted hits in the top 10, relative to the best possible list",
    "ndcg@100": "rank-discounted hits in the top 100, relative to the best possible list",
    "precision@10": "share of the top 10 that the user liked",
    "hit@10": "share of users with at least one liked item in the top 10",
    "novelty@10": "mean self-information of the listed items, -log2(popularity / users) (higher: less popular)",
    "diversity@10": "mean 1 - cosine between the listed items' embeddings (0..2)",
    "genre_diversity@10": "mean 1 - cosine between the listed items' genres (0..1)",
    "gini@10": "inequality of the catalogue's exposure in the lists (0: even, near 1: a few items everywhere)",
    "coverage@10": "share of the catalogue listed to at least one user",
    "popularity@10": "mean training ratings of the listed items",
}


def interval_text(low, high, digits: int = 3) -> str:
    """``[low, high]``, or a dash where the interval is not defined."""
    if all(isinstance(v, (int, float)) and math.isfinite(v) for v in (low, high)):
        return f"[{low:.{digits}f}, {high:.{digits}f}]"
    return MISSING


def p_text(p) -> str:
    """A p-value for reading: 3 digits, ``< 0.001`` below that."""
    if not isinstance(p, (int, float)) or not math.isfinite(p):
        return MISSING
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def figure_with_interval(row, digits: int = 3) -> str:
    """``value [low, high]`` of a row with ``value``, ``ci_low``, ``ci_high``."""
    value = row["value"]
    shown = f"{value:.{digits}f}" if isinstance(value, float) and math.isfinite(value) else MISSING
    return f"{shown} {interval_text(row['ci_low'], row['ci_high'], digits)}"


def summary_table(summary: pd.DataFrame, metrics: Sequence[str]) -> str:
    """The ``metrics`` of a summary: value, 95% interval and what each measures."""
    rows = [{"metric": m, "value": summary.loc[m, "value"],
             "95% CI": interval_text(summary.loc[m, "ci_low"], summary.loc[m, "ci_high"]),
             "what it measures": DESCRIPTIONS.get(m, "")} for m in metrics if m in summary.index]
    return html_table(pd.DataFrame(rows)) if rows else '<p class="muted">none of these figures applies here</p>'


def _bands_table(bands: pd.DataFrame) -> str:
    rows = [{"band": b, "recall@10": bands.loc[b, "value"],
             "95% CI": interval_text(bands.loc[b, "ci_low"], bands.loc[b, "ci_high"]),
             "users": int(bands.loc[b, "users"])} for b in BANDS if b in bands.index]
    return html_table(pd.DataFrame(rows))


def _gaps_table(gaps: pd.DataFrame) -> str:
    rows = [{"metric": m, "gap (highest - lowest)": g["gap"], "95% CI": interval_text(g["ci_low"], g["ci_high"]),
             "highest": g["highest"], "lowest": g["lowest"],
             "beyond noise": "yes" if g["ci_low"] > 0 else "no"} for m, g in gaps.iterrows()]
    return html_table(pd.DataFrame(rows))


def group_order(labels) -> list[str]:
    """Group labels in reading order: banded numbers by their lower end (``under 18`` first, then ``18-24``, ...),
    other labels as they come, ``(missing)`` last."""
    def key(label: str) -> tuple[float, float]:
        number = re.search(r"-?\d+(\.\d+)?", label)
        missing = float(label == "(missing)")
        if number is None:
            return missing, 0.0
        value = float(number.group())
        return missing, value - 0.5 if label.lower().startswith("under") else value

    return sorted(dict.fromkeys(str(g) for g in labels), key=key)


def _groups_table(groups: pd.DataFrame) -> str:
    """Every group's figures as ``value [low, high]`` (groups as rows, metrics as columns), with its users."""
    metrics = list(dict.fromkeys(groups.index.get_level_values("metric")))
    names = group_order(groups.index.get_level_values("group"))
    rows = []
    for g in names:
        row = {"group": g, "users": int(groups.loc[(metrics[0], g), "users"]) if (metrics[0], g) in groups.index
               else 0}
        for m in metrics:
            row[m] = figure_with_interval(groups.loc[(m, g)]) if (m, g) in groups.index else MISSING
        rows.append(row)
    return html_table(pd.DataFrame(rows))


BANDS_NOTE = ('<p class="muted">recall@10 of the liked test items by their popularity in training: head, mid and '
              "tail are the terciles of the catalogue (most rated first); liked items the model never saw count as "
              "tail. Each band averages over the users with a liked item in it.</p>")
INTERVALS_NOTE = ("95% percentile bootstrap intervals over test users ({n} resamples); list figures average over "
                  "the users they are defined for, rating errors over the test ratings.")


def evaluation_sections(run) -> list[str]:
    """The run report's "Evaluation" section (HTML fragments): accuracy and beyond-accuracy figures with intervals,
    recall by popularity band and the user groups with their gaps. A run that keeps no evaluation is evaluated now
    (and the section says so); where that is not possible, the section says why."""
    head = ["<h2>Evaluation</h2>"]
    try:
        saved = read_evaluation(run)
    except (RatecastError, ValueError, OSError) as exc:
        return head + [f"<p>evaluation not available: {html.escape(str(exc))}</p>"]
    ev = saved.evaluation()
    s = ev.summary
    where = (f"kept in {run.path / 'evaluation'}." if saved.saved else "evaluated now: this run was written before "
             "runs kept their evaluation.")
    out = head + [f'<p class="muted">The lists served to {len(ev.per_user)} test users (whole catalogue; a test '
                  f"rating at least 75% up the scale is liked), {html.escape(where)} "
                  f"{INTERVALS_NOTE.format(n=ev.n_resamples)}</p>",
                  "<h3>Accuracy</h3>", summary_table(s, ACCURACY),
                  "<h3>Beyond accuracy</h3>", summary_table(s, BEYOND_ACCURACY)]
    out += ["<h3>Recall by item popularity</h3>", BANDS_NOTE, '<div class="grid">', _bands_table(ev.bands),
            html_image(interval_chart({run.path.name: ev.bands}, "recall@10", categories=list(BANDS),
                                      title="recall@10 by popularity band"), "recall by popularity band"), "</div>",
            _gaps_table(band_gap(ev.per_user, n_resamples=ev.n_resamples, random_state=ev.random_state))]
    out += ["<h3>User groups</h3>"]
    if not saved.by:
        out += ['<p class="muted">the data has no user table (or no column to group users by)</p>']
    for by in saved.by:
        groups, gaps = group_tables(ev, saved.users, by)
        order = group_order(groups.index.get_level_values("group"))
        charts = [html_image(interval_chart({run.path.name: groups.xs(m, level="metric")}, m, categories=order,
                                            title=f"{m} by {by}"), f"{m} by {by}")
                  for m in GROUP_METRICS if m in groups.index.get_level_values("metric")]
        out += [f"<h4>by {html.escape(by)}</h4>", '<div class="grid">', *charts, "</div>",
                '<p class="muted">the largest gap between two groups per figure, with the interval of that '
                "difference; beyond noise: the interval lies above 0.</p>", _gaps_table(gaps),
                f"<details><summary>every figure by {html.escape(by)}</summary>{_groups_table(groups)}</details>"]
    return out


#: the list figures ``ratecast compare`` shows of each run, and the figure whose gaps between groups it shows
LIST_FIGURES = ("recall@20", "ndcg@100", "novelty@10", "diversity@10", "genre_diversity@10", "coverage@10")
GAP_METRIC = BAND_METRIC
POPULARITY_BAND = "popularity band"


def run_gaps(saved: SavedEvaluation, ev: Evaluation, metric: str = GAP_METRIC) -> pd.DataFrame:
    """The largest gap in ``metric`` between the groups of each of a run's user columns (e.g. gender, age,
    occupation) and, for recall@10, between the item popularity bands: index ``by`` (the column, or
    ``popularity band``), columns ``gap, ci_low, ci_high, highest, lowest``."""
    rows = {}
    for by in saved.by:
        gaps = group_tables(ev, saved.users, by)[1]
        if metric in gaps.index:
            rows[by] = gaps.loc[metric]
    if metric == BAND_METRIC:
        gaps = band_gap(ev.per_user, n_resamples=ev.n_resamples, random_state=ev.random_state)
        if metric in gaps.index:
            rows[POPULARITY_BAND] = gaps.loc[metric]
    table = pd.DataFrame(list(rows.values()), index=pd.Index(list(rows), name="by"),
                         columns=["gap", "ci_low", "ci_high", "highest", "lowest"])
    return table


# --- comparing runs -------------------------------------------------------------------------------------------
def readable_comparison(table: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """The rows of :func:`~ratecast.run_evaluation.compare_runs` (or :func:`ratecast.evaluation.compare`) as text
    for reading: the values, the difference with its 95% interval, the corrected p-value and a verdict
    (``significant`` or ``not significant``)."""
    def number(v) -> str:
        return f"{v:.{digits}f}" if isinstance(v, (int, float)) and math.isfinite(v) else MISSING

    rows = [{"metric": r["metric"], "a": r["a"], "b": r["b"], "a's value": number(r["value_a"]),
             "b's value": number(r["value_b"]), "difference (a - b)": number(r["difference"]),
             "95% CI": interval_text(r["ci_low"], r["ci_high"], digits), "p (Holm)": p_text(r["p_value"]),
             "test": r["test"], "verdict": "significant" if r["significant"] else "not significant"}
            for _, r in table.iterrows()]
    return pd.DataFrame(rows, columns=["metric", "a", "b", "a's value", "b's value", "difference (a - b)", "95% CI",
                                       "p (Holm)", "test", "verdict"])


def _side_by_side(tables: dict[str, pd.DataFrame], index: Sequence, label: str) -> str:
    """``value [low, high]`` of each run (columns) per row of ``index``."""
    rows = [{label: i, **{name: figure_with_interval(t.loc[i]) if i in t.index else MISSING
                          for name, t in tables.items()}} for i in index]
    return html_table(pd.DataFrame(rows))


def compare_sections(runs: Sequence, *, alpha: float = 0.05, step: Callable[[str], None] | None = None) -> list[str]:
    """The compare report's sections (HTML fragments) for saved runs on one test set."""
    step = step or (lambda message: None)
    step("reading the evaluations")
    runs, saved = saved_evaluations(runs)
    evaluations = {name: s.evaluation() for name, s in saved.items()}
    first = next(iter(saved.values()))
    step("paired comparison")
    table = compare_evaluations(evaluations, alpha=alpha)
    names = list(saved)
    listing = pd.DataFrame([{"run": name, "model": run.spec.model, "test set": split_label(run),
                             "evaluation": "kept in the run" if s.saved else "evaluated now (run written before "
                             "runs kept their evaluation)", "users": len(s.per_user), "path": str(run.path)}
                            for (name, s), run in zip(saved.items(), runs)])
    out = [f"<h1>ratecast comparison: {html.escape(' vs '.join(names))}</h1>",
           "<h2>Runs</h2>", html_table(listing, numbers=False),
           "<h2>Paired differences</h2>",
           f'<p class="muted">On the same {len(first.per_user)} test users: difference = a - b with its 95% '
           "interval from the same bootstrap resamples of the users for both; p from a paired test on the per-user "
           "figures (Wilcoxon signed-rank for list figures, paired t-test for rating errors, the bootstrap for gini "
           f"and coverage), Holm-corrected over every row; significant: corrected p &lt; {alpha:g}. A figure one "
           "run cannot give (e.g. diversity without item embeddings) is left out.</p>",
           html_table(readable_comparison(table))]
    step("figures of each run")
    metrics = [m for m in METRICS if any(m in ev.summary.index for ev in evaluations.values())]
    out += ["<h2>Each run with its intervals</h2>",
            html_image(metric_grid({n: ev.summary for n, ev in evaluations.items()}, metrics),
                       "each metric of each run with its 95% interval"),
            _side_by_side({n: ev.summary for n, ev in evaluations.items()}, metrics, "metric")]
    out += ["<h2>Recall by item popularity</h2>", BANDS_NOTE, '<div class="grid">',
            html_image(interval_chart({n: ev.bands for n, ev in evaluations.items()}, "recall@10",
                                      categories=list(BANDS), title="recall@10 by popularity band"),
                       "recall by popularity band, each run"),
            _side_by_side({n: ev.bands for n, ev in evaluations.items()}, BANDS, "band"), "</div>",
            "<h4>largest gap between bands (highest - lowest)</h4>",
            _side_by_side({n: band_gap(ev.per_user, n_resamples=ev.n_resamples, random_state=ev.random_state)
                          .rename(columns={"gap": "value"}) for n, ev in evaluations.items()}, [BAND_METRIC],
                          "metric")]
    step("user groups")
    out += _compare_groups(saved, evaluations)
    return out


def _compare_groups(saved: dict[str, SavedEvaluation], evaluations: dict) -> list[str]:
    out = ["<h2>User groups</h2>"]
    shared = [by for by in next(iter(saved.values())).by if all(by in s.by for s in saved.values())]
    if not shared:
        return out + ['<p class="muted">the runs share no user column to group users by</p>']
    for by in shared:
        tables = {n: group_tables(evaluations[n], s.users, by) for n, s in saved.items()}
        out += [f"<h3>by {html.escape(by)}</h3>", '<div class="grid">']
        for m in GROUP_METRICS:
            per_run = {n: g.xs(m, level="metric") for n, (g, _) in tables.items()
                       if m in g.index.get_level_values("metric")}
            if per_run:
                order = group_order(i for t in per_run.values() for i in t.index)
                out.append(html_image(interval_chart(per_run, m, categories=order, title=f"{m} by {by}"),
                                      f"{m} by {by}, each run"))
        out.append("</div>")
        for m in GROUP_METRICS:
            per_run = {n: g.xs(m, level="metric") for n, (g, _) in tables.items()
                       if m in g.index.get_level_values("metric")}
            if per_run:
                groups = group_order(i for t in per_run.values() for i in t.index)
                out += [f"<h4>{html.escape(m)}</h4>", _side_by_side(per_run, groups, by)]
        gaps = {n: gp.rename(columns={"gap": "value"}) for n, (_, gp) in tables.items()}
        metrics = list(dict.fromkeys(m for t in gaps.values() for m in t.index))
        out += ["<h4>largest gap between groups (highest - lowest)</h4>", _side_by_side(gaps, metrics, "metric")]
    return out


def build_compare_report(runs: Sequence, out: str | os.PathLike, *, alpha: float = 0.05, overwrite: bool = False,
                         on_step: Callable[[str], None] | None = None) -> Path:
    """Write the self-contained HTML report comparing saved runs (folders or :class:`~ratecast.runs.Run` objects,
    on one test set) to ``out`` and return its path. An existing ``out`` is replaced only if ratecast wrote it, or
    with ``overwrite``."""
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"--out must be an HTML file name ending in .html, got {str(out)!r}")
    check_replaceable(out, overwrite=overwrite)
    sections = compare_sections(runs, alpha=alpha, step=on_step)
    if on_step is not None:
        on_step("writing the report")
    return write_text(out, html_page("ratecast comparison", sections))

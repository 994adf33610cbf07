"""Figures of evaluations with their intervals, as PNG bytes for a self-contained page: one or more series (runs) of
figures over categories (metrics, groups, popularity bands), each figure a bar or a point with its 95% interval."""

from __future__ import annotations

import io
import math
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..io import PNG_METADATA  # noqa: E402

DPI = 100
#: figures that are shares of 0..1 (drawn as bars from 0); the others are drawn as points, on an axis that fits them
SHARES = ("recall", "ndcg", "precision", "hit", "coverage", "gini", "diversity", "genre_diversity")


def is_share(metric: str) -> bool:
    """Whether ``metric`` is a share of 0..1 (e.g. ``recall@10``), best read as a bar from 0."""
    return metric.split("@")[0] in SHARES


def png(fig) -> bytes:
    """The figure as PNG bytes (with ratecast's mark); the figure is closed."""
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=DPI, format="png", metadata=PNG_METADATA, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


#: more categories than this are drawn across (one row each), so that their names stay readable
ACROSS_FROM = 8


def _draw(ax, series: Mapping[str, pd.DataFrame], categories: Sequence, bars: bool, across: bool) -> None:
    """Each series' ``value`` with its ``ci_low``..``ci_high`` over ``categories``, side by side (``across``: the
    categories are rows, the first at the top)."""
    n = max(len(series), 1)
    width = 0.8 / n
    x = np.arange(len(categories))
    for k, (name, table) in enumerate(series.items()):
        t = table.reindex(categories)
        value = t["value"].to_numpy("float64")
        err = [np.clip(value - t["ci_low"].to_numpy("float64"), 0, None),
               np.clip(t["ci_high"].to_numpy("float64") - value, 0, None)]
        pos = x - 0.4 + width * (k + 0.5)
        style = {"capsize": 3, "label": name, "color": f"C{k}"}
        if bars and across:
            ax.barh(pos, value, width * 0.9, xerr=err, alpha=0.85, error_kw={"elinewidth": 1}, **style)
        elif bars:
            ax.bar(pos, value, width * 0.9, yerr=err, alpha=0.85, error_kw={"elinewidth": 1}, **style)
        else:
            ax.errorbar(*((value, pos) if across else (pos, value)), **{"xerr" if across else "yerr": err},
                        fmt="o", **style)
    labels = [str(c) for c in categories]
    if across:
        ax.set_yticks(x)
        ax.set_yticklabels(labels)
        ax.invert_yaxis()
        ax.grid(axis="x", alpha=0.3)
    else:
        ax.set_xticks(x)
        ax.set_xticklabels(labels, rotation=30 if len(labels) > 4 else 0, ha="right" if len(labels) > 4 else "center")
        ax.grid(axis="y", alpha=0.3)


def interval_chart(series: Mapping[str, pd.DataFrame], metric: str, *, title: str = "",
                   categories: Sequence | None = None) -> bytes:
    """One chart of ``metric`` over categories (the tables' index: groups, bands) for each series (e.g. runs):
    bars from 0 for shares, points otherwise, each with its 95% interval. Many categories are drawn as rows."""
    if categories is None:
        categories = list(dict.fromkeys(c for t in series.values() for c in t.index))
    n = len(categories) * max(len(series), 1)
    across = len(categories) > ACROSS_FROM
    size = (5.2, max(3.2, 0.22 * n + 1.2)) if across else (max(4.0, 0.5 * n + 2), 3.2)
    fig, ax = plt.subplots(figsize=size)
    _draw(ax, series, categories, is_share(metric), across)
    (ax.set_xlabel if across else ax.set_ylabel)(metric)
    ax.set_title(title or metric)
    if len(series) > 1:
        ax.legend(loc="best", fontsize="small")
    return png(fig)


def metric_grid(tables: Mapping[str, pd.DataFrame], metrics: Sequence[str], *, columns: int = 4) -> bytes:
    """One small panel per metric: each series' (run's) figure with its 95% interval. ``tables``: series name ->
    table indexed by metric with ``value``, ``ci_low``, ``ci_high``."""
    rows = max(1, math.ceil(len(metrics) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.6 * rows), squeeze=False)
    names = list(tables)
    for ax, metric in zip(axes.ravel(), metrics):
        for k, name in enumerate(names):
            if metric not in tables[name].index:
                continue
            row = tables[name].loc[metric]
            v = float(row["value"])
            err = [[max(v - float(row["ci_low"]), 0)], [max(float(row["ci_high"]) - v, 0)]]
            if is_share(metric):
                ax.bar([k], [v], 0.7, yerr=err, capsize=3, color=f"C{k}", alpha=0.85)
            else:
                ax.errorbar([k], [v], yerr=err, fmt="o", capsize=3, color=f"C{k}")
        ax.set_xticks(range(len(names)))
        ax.set_xlim(-0.6, len(names) - 0.4)
        ax.set_xticklabels(names, rotation=20 if len(names) > 2 else 0, fontsize="small")
        ax.set_title(metric, fontsize="medium")
        ax.grid(axis="y", alpha=0.3)
    for ax in axes.ravel()[len(metrics):]:
        ax.axis("off")
    fig.tight_layout()
    return png(fig)

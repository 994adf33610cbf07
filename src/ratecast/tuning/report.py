"""The HTML report of a search (offline: plotly.js inlined once): optimisation history, parameter importances,
parallel coordinates and slices (``optuna.visualization``), and the best configuration's validation and test
figures."""

from __future__ import annotations

import html
import os
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from ..io import HTML_MARKER, write_text
from ..report import CSS, html_table


def _figures(study) -> list[tuple[str, Any]]:
    """(title, plotly figure) for each plot the study has enough trials for."""
    import optuna
    from optuna import visualization as vis

    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    varying = {k for t in complete for k in t.params if len({str(u.params.get(k)) for u in complete}) > 1}
    plots = [("Optimisation history", vis.plot_optimization_history)]
    if len(complete) >= 2 and varying:
        plots += [("Parameter importances", vis.plot_param_importances),
                  ("Parallel coordinates", vis.plot_parallel_coordinate), ("Slices", vis.plot_slice)]
    if any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
        plots.append(("Per-epoch validation scores (what pruning watched)", vis.plot_intermediate_values))
    out = []
    for title, fn in plots:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            try:
                out.append((title, fn(study)))
            except (ValueError, RuntimeError, ZeroDivisionError) as exc:  # e.g. importances of a constant objective
                out.append((title, f"not shown: {exc}"))
    return out


def _text(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _pairs(d: dict) -> pd.DataFrame:
    """Two text columns (name, value): numbers keep their own form (64, not 64.000000)."""
    return pd.DataFrame({"": list(d), "value": [_text(v) for v in d.values()]})


def write_report(study, summary: dict, path: str | os.PathLike) -> Path:
    """Write the report of ``study`` to ``path``; ``summary`` is what ``tune.json`` holds."""
    title = f"ratecast tune: {summary['model']} on {summary['data']} ({summary['metric']})"
    counts = summary.get("trials", {})
    sections = [f"<h1>{html.escape(title)}</h1>",
                f"<p class='muted'>Study {html.escape(str(summary['study']))} in "
                f"{html.escape(str(summary['storage']))}; split {html.escape(str(summary['split']))}, seed "
                f"{summary['seed']}. Every trial was fitted and scored on a validation part carved from the "
                f"training set ({html.escape(summary['protocol'])}); the test set was scored once, after the "
                "search, by the best configuration refitted on the whole training set.</p>",
                "<h2>Trials</h2>", html_table(_pairs(counts), digits=0),
                "<h2>Best configuration</h2>", html_table(_pairs(summary["best_params"]), digits=6, numbers=False),
                "<h2>Best configuration: validation and test</h2>",
                html_table(pd.DataFrame([{"set": "validation (best trial)", **summary["validation"]},
                                     {"set": "test (once, after the search)", **summary["test_summary"]}]), digits=4)]
    first = True
    for name, fig in _figures(study):
        sections.append(f"<h2>{html.escape(name)}</h2>")
        if isinstance(fig, str):
            sections.append(f"<p class='muted'>{html.escape(fig)}</p>")
            continue
        sections.append(fig.to_html(include_plotlyjs=first, full_html=False))
        first = False
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'>{HTML_MARKER}<title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body>{''.join(sections)}</body></html>")
    return write_text(path, page)

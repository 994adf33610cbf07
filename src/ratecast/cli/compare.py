"""``ratecast compare``: runs side by side."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from .console import ci, detail, handle_errors, num, out, print_json, show, step_reporter
from .options import AsJson, Quiet, Verbose, open_run


@handle_errors
def compare(run_dirs: list[Path] = typer.Argument(..., help="Run directories."),
            out_file: Optional[Path] = typer.Option(None, "--out", help="Also write the HTML compare report "
                                                    "(paired differences, groups, lists), e.g. compare.html."),
            alpha: float = typer.Option(0.05, "--alpha", help="Significance level of the paired tests."),
            overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out file."),
            quiet: bool = Quiet, verbose: bool = Verbose, as_json: bool = AsJson) -> None:
    """A table of runs: model, data, split, epochs, test MAE/RMSE with intervals, recall@10 and NDCG@10 over the
    whole catalogue, fit time; each run's list figures (recall@20, NDCG@100, novelty, diversity, coverage) and its
    largest gaps in recall@10 between user groups and item popularity bands; for two runs or more, their paired
    differences on the common test set (95% interval, Holm-corrected p-value, * where significant). Runs of
    different test sets (data, split, seed) are refused."""
    if not (math.isfinite(alpha) and 0 < alpha < 1):
        raise ValueError(f"--alpha must be a number in (0, 1), got {alpha!r}")
    if out_file is not None:
        from ..io import check_replaceable

        if out_file.suffix.lower() not in (".html", ".htm"):
            raise ValueError(f"--out must be an HTML file name ending in .html, got {str(out_file)!r}")
        check_replaceable(out_file, overwrite=overwrite)  # refused before any work
    runs = [(p, open_run(p)) for p in run_dirs]
    rows = [{**comparison_row(run), "path": str(p)} for p, run in runs]
    distinct = _distinct_runs([run for _, run in runs])  # a folder named twice is compared once
    if out_file is not None and len(distinct) < 2:
        raise ValueError(f"--out writes a comparison of runs: give two different run folders or more, got "
                         f"{len(distinct)}")
    from ..run_evaluation import has_evaluation

    paired = figures = gaps = None
    if len(distinct) >= 2 or has_evaluation(distinct[0]):
        figures, gaps, paired = _evaluations(distinct, alpha)
    written = None
    if out_file is not None:
        from ..evaluation_report import build_compare_report

        written = build_compare_report(distinct, out_file, alpha=alpha, overwrite=overwrite,
                                       on_step=step_reporter())
    if as_json:
        return print_json({"runs": rows, "paired": [] if paired is None else paired.to_dict(orient="records"),
                           "lists": [] if figures is None else figures.to_dict(orient="records"),
                           "gaps": [] if gaps is None else gaps.to_dict(orient="records"),
                           **({"out": str(written)} if written is not None else {})})
    from rich import box

    # no vertical rules and cells that wrap at spaces: fits 80 columns without cutting a value
    table = Table(box=box.SIMPLE_HEAD)
    longest_model = max(len(r["model"]) for r in rows)
    table.add_column("run", overflow="fold", min_width=8)
    table.add_column("model", min_width=longest_model, no_wrap=True)
    table.add_column("data, split, seed", overflow="fold", min_width=7)
    table.add_column("epochs", justify="right", no_wrap=True)
    table.add_column("MAE [95% CI]", justify="right", overflow="fold", min_width=6)
    for name in ("RMSE", "recall@10", "NDCG@10", "fit s"):
        table.add_column(name, justify="right", no_wrap=True)
    for r in rows:
        table.add_row(r["path"], r["model"], f"{r['data']} {r['split']} seed {r['seed']}", str(r["epochs"]),
                      f"{num(r['mae'])} {ci(r['mae_ci95'], 3)}", num(r["rmse"]), num(r["recall@10"]),
                      num(r["ndcg@10"]), num(r["fit_s"], 1))
    show(table, "Runs")
    if figures is not None:
        _show_lists(figures, gaps)
    if paired is not None:
        _show_paired(paired, alpha)
    if written is not None:
        out.print(f"wrote {written}", highlight=False)


def _evaluations(runs: list, alpha: float):
    """Each run's list figures (long: run, metric, value, ci_low, ci_high), largest gaps between user groups and
    popularity bands (run, by, metric, gap, ...), and for two runs or more their paired comparison, all from the
    evaluations the runs keep (runs of different test sets are refused)."""
    import pandas as pd

    from ..evaluation_report import GAP_METRIC, LIST_FIGURES, run_gaps
    from ..run_evaluation import compare_evaluations, read_evaluation, run_names, saved_evaluations

    if len(runs) >= 2:
        detail("comparing the runs pair by pair")
        saved = saved_evaluations(runs)[1]
    else:
        saved = {run_names(runs)[0]: read_evaluation(runs[0])}
    evaluations = {name: s.evaluation() for name, s in saved.items()}
    paired = compare_evaluations(evaluations, alpha=alpha) if len(evaluations) >= 2 else None
    figures = pd.DataFrame([{"run": name, "metric": m, **ev.summary.loc[m, ["value", "ci_low", "ci_high"]]}
                            for name, ev in evaluations.items() for m in LIST_FIGURES if m in ev.summary.index],
                           columns=["run", "metric", "value", "ci_low", "ci_high"])
    gaps = pd.DataFrame([{"run": name, "by": by, "metric": GAP_METRIC, **g} for name, s in saved.items()
                         for by, g in run_gaps(s, evaluations[name]).iterrows()],
                        columns=["run", "by", "metric", "gap", "ci_low", "ci_high", "highest", "lowest"])
    return figures, gaps, paired


def _show_lists(figures, gaps) -> None:
    """Each run's list figures (one row per figure, one column per run: the table stays narrow), then the largest
    gaps between groups."""
    from rich import box

    from ..evaluation_report import GAP_METRIC

    metrics = list(dict.fromkeys(figures["metric"]))
    names = list(dict.fromkeys(figures["run"]))
    table = Table(box=box.SIMPLE_HEAD)
    table.add_column("figure", no_wrap=True)
    for name in names:
        table.add_column(name, justify="right", overflow="fold", min_width=6)
    values = figures.set_index(["run", "metric"])["value"]
    for m in metrics:
        table.add_row(m, *[num(values.get((name, m)), 3) for name in names])
    show(table, "Lists over the whole catalogue (95% intervals: --json or --out)")
    if gaps is None or gaps.empty:
        return
    table = Table(box=box.SIMPLE_HEAD)
    table.add_column("run", overflow="fold", min_width=8)
    table.add_column("by", overflow="fold", min_width=6)
    table.add_column("gap [95% CI]", justify="right", overflow="fold", min_width=8)
    table.add_column("highest vs lowest group", overflow="fold", min_width=8)
    table.add_column("", no_wrap=True)
    for _, g in gaps.iterrows():
        table.add_row(g["run"], g["by"], f"{num(g['gap'], 3)} {ci([g['ci_low'], g['ci_high']], 3)}",
                      f"{g['highest']} vs {g['lowest']}", "*" if g["ci_low"] > 0 else "")
    show(table, f"Largest gap in {GAP_METRIC} between groups")
    out.print("* the gap's interval lies above 0", highlight=False)


def _distinct_runs(runs: list) -> list:
    """``runs`` without a folder named again."""
    seen, distinct = set(), []
    for run in runs:
        folder = Path(run.path).resolve()
        if folder not in seen:
            seen.add(folder)
            distinct.append(run)
    return distinct


def _show_paired(paired, alpha: float) -> None:
    """The paired table, compact: each metric's difference a - b with its interval and p-value; * if significant."""
    from rich import box

    from ..evaluation_report import readable_comparison

    text = readable_comparison(paired)
    table = Table(box=box.SIMPLE_HEAD)
    table.add_column("metric", overflow="fold", min_width=6)
    table.add_column("a", overflow="fold", min_width=6)
    table.add_column("b", overflow="fold", min_width=6)
    table.add_column("a - b [95% CI]", justify="right", overflow="fold", min_width=8)
    table.add_column("p (Holm)", justify="right", overflow="fold", min_width=7)
    table.add_column("", no_wrap=True)
    for _, r in text.iterrows():
        table.add_row(r["metric"], r["a"], r["b"], f"{r['difference (a - b)']} {r['95% CI']}", r["p (Holm)"],
                      "*" if r["verdict"] == "significant" else "")
    show(table, "Paired differences on the common test set")
    out.print(f"* significant at alpha {alpha:g} (p-values corrected for the {len(text)} tests, Holm)",
              highlight=False)


def comparison_row(run) -> dict[str, Any]:
    """One run's numbers (plain numbers, for JSON; the table formats them)."""
    t = run.metrics["test"]
    ci = t.get("mae_ci95")
    return {"run": run.path.name, "model": run.spec.model, "data": run.info["dataset"], "split": run.spec.split,
            "seed": run.spec.seed, "epochs": run.info["epochs_run"], "mae": t.get("mae"),
            "mae_ci95": list(ci) if isinstance(ci, (list, tuple)) else None, "rmse": t.get("rmse"),
            "recall@10": t.get("recall@10"), "ndcg@10": t.get("ndcg@10"),
            "distinct_items@10": t.get("distinct_items@10"), "long_tail_share@10": t.get("long_tail_share@10"),
            "fit_s": run.info.get("fit_seconds")}


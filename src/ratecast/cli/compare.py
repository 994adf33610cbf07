"""``ratecast compare``: runs side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from .console import ci, handle_errors, num, print_json, show
from .options import AsJson, Quiet, Verbose, open_run


@handle_errors
def compare(run_dirs: list[Path] = typer.Argument(..., help="Run directories."), quiet: bool = Quiet,
            verbose: bool = Verbose, as_json: bool = AsJson) -> None:
    """A table of runs: model, data, split, epochs, test MAE/RMSE with intervals, recall@10 and NDCG@10 over the
    whole catalogue, fit time."""
    runs = [(p, open_run(p)) for p in run_dirs]
    rows = [{**comparison_row(run), "path": str(p)} for p, run in runs]
    if as_json:
        return print_json(rows)
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


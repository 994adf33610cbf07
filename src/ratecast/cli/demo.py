"""``ratecast demo``: the lab end to end (train, compare, write reports)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .compare import comparison_row
from .console import Verbosity, ci, handle_errors, num, out, print_frame, print_json, progress_line, verbosity
from .options import AsJson, DataHome, Quiet, Verbose, data_home_folder, positive


@handle_errors
def demo(out_dir: Path = typer.Option(Path("ratecast-demo"), "--out", help="Folder for the runs and reports."),
         data: str = typer.Option("ml-100k", "--data", help="MovieLens release or ratings file."),
         models: str = typer.Option("popularity,baseline,dot,deep,hybrid,classification", "--models",
                                     help="Comma-separated models to train."),
         epochs: Optional[int] = typer.Option(None, "--epochs", help="Override the lab's epochs (quick runs)."),
         data_home: Optional[Path] = DataHome, quiet: bool = Quiet, verbose: bool = Verbose,
         as_json: bool = AsJson) -> None:
    """The lab, end to end: train its four models and two reference models (popularity, damped biases) on ML-100k
    with its protocol, compare, write reports."""
    import pandas as pd
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from ..io import check_output_folder, lock_output, write_json, write_text
    from ..report import build_report
    from ..runs import RunSpec, load_data, load_run, train_run

    lab = {"popularity": {"embedding_dim": 1, "epochs": 10}, "baseline": {"embedding_dim": 1, "epochs": 10},
           "dot": {"embedding_dim": 64, "epochs": 10}, "biased_dot": {"embedding_dim": 64, "epochs": 10},
           "deep": {"embedding_dim": 64, "epochs": 10}, "hybrid": {"embedding_dim": 64, "epochs": 10},
           "classification": {"embedding_dim": 16, "epochs": 15}}
    names = [m.strip() for m in models.split(",") if m.strip()]
    bad = [m for m in names if m not in lab]
    if bad or not names:
        raise ValueError(f"--models must name models from {list(lab)}, got {bad or models!r}")
    positive("--epochs", epochs)
    home = data_home_folder(data_home)
    marker = "demo.json"
    with lock_output(out_dir):
        check_output_folder(out_dir, overwrite=True, marker=marker)  # a demo folder is refreshed, nothing else
        base = RunSpec(data=data, data_home=home)
        rows = []
        talk = verbosity() >= Verbosity.NORMAL
        live = talk and not as_json and out.is_terminal  # spinners on a terminal; elsewhere a plain line per step
        if talk and not as_json:
            out.print(f"[bold]ratecast demo[/]: {', '.join(names)} on {data}; lab protocol: holdout test_size=0.2 "
                      "random_state=0, batch 64, early stopping on a 10% validation split of train; each run is "
                      "then evaluated, plotted and written up as a report", highlight=False)
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=out,
                      transient=False, disable=not live) as progress:

            def say(task, description: str) -> None:
                progress.update(task, description=description)
                if not live:
                    progress_line(description)

            task = progress.add_task(f"loading {data}", total=None)
            ds = load_data(base, progress=talk)
            say(task, f"loaded {ds.name}: {len(ds.ratings)} ratings")
            progress.stop_task(task)
            out_dir.mkdir(parents=True, exist_ok=True)
            write_json(out_dir / marker, {"data": data, "models": names, "epochs": epochs})
            for name in names:
                params = {**lab[name], "batch_size": 64}
                if epochs is not None:
                    params["epochs"] = epochs
                spec = RunSpec(data=data, model=name, split="holdout", seed=0, params=params,
                               data_home=base.data_home)
                task = progress.add_task(f"{name}", total=None)

                def step(message: str, task=task, name=name) -> None:
                    say(task, f"{name}: {message}")

                run_dir = out_dir / name
                train_run(spec, run_dir, overwrite=True, dataset=ds, on_step=step,
                          verbose=verbosity() >= Verbosity.VERBOSE)
                run = load_run(run_dir)
                build_report(run, on_step=step)
                rows.append(comparison_row(run))
                say(task, f"{name}: done (test MAE {num(rows[-1]['mae'])})")
                progress.stop_task(task)
        table = pd.DataFrame(rows)
        write_text(out_dir / "results.csv", table.to_csv(index=False))
    reports = [str(out_dir / n / "report.html") for n in names]
    if as_json:
        return print_json({"out": str(out_dir), "runs": [{**r, "path": str(out_dir / n), "report": rep}
                                                         for r, n, rep in zip(rows, names, reports)],
                            "table": str(out_dir / "results.csv")})
    # the printed table fits 80 columns; results.csv and --json have every column
    shown = table.drop(columns=["run", "data", "split", "seed", "epochs", "distinct_items@10",
                                "long_tail_share@10"]).assign(
        mae_ci95=[ci(c, 3) for c in table["mae_ci95"]], fit_s=[num(v, 1) for v in table["fit_s"]])
    print_frame(shown, "Test results (lab split)", digits=4)
    out.print(f"reports: {', '.join(reports)}", highlight=False)
    out.print(f"table: {out_dir / 'results.csv'}", highlight=False)


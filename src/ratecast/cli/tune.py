"""``ratecast tune``: search a model's options with Optuna, then score the best once on the test set."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any, Optional

import typer

from ..options import read_toml, resolve
from .console import (EXIT_INTERRUPTED, Verbosity, err, fail, handle_errors, num, out, print_json, progress_line,
                      show_progress, step_reporter, verbosity)
from .options import (AsJson, DataHome, Encoding, ItemCol, ItemKey, Items, Quiet, RatingCol, Scale, Sep, Split, TimeCol,
                      TestSize, UserCol, UserKey, Users, Verbose, check_run_options, data_home_folder, data_options, finite)

TUNE_FLAGS = {"n_trials": "--trials", "timeout": "--timeout", "metric": "--metric", "cv": "--cv",
              "validation_split": "--validation-split", "n_jobs": "--workers", "pruner": "--pruner",
              "study_name": "--study", "search_space": "--space", "storage": "--storage", "model": "--model",
              "random_state": "--seed"}


def _flag_first(exc: Exception, flags: dict[str, str]) -> Exception:
    """``exc`` with the argument its message starts with (``n_trials must be ...``) named by its flag."""
    message = str(exc)
    m = re.match(r"([A-Za-z_]\w*)\b", message)
    if m and m.group(1) in flags:
        try:
            return type(exc)(flags[m.group(1)] + message[m.end():])
        except TypeError:  # an exception that takes other arguments: keep it as it is
            return exc
    return exc


def _read_space(path: Path) -> dict[str, Any]:
    """A search space from a TOML file: a [search_space] table, or options at the top level."""
    table = read_toml(path, "search space file")
    if set(table) == {"search_space"} and isinstance(table["search_space"], dict):
        table = table["search_space"]
    return table


@handle_errors
def tune(
    ctx: typer.Context,
    data: str = typer.Option("ml-100k", "--data", help="MovieLens release name or path to your ratings file."),
    model: str = typer.Option("deep", "--model", help="The model whose options are searched."),
    trials: Optional[int] = typer.Option(50, "--trials", help="Trials to run (more, when the study exists)."),
    timeout: Optional[float] = typer.Option(None, "--timeout", help="Stop starting trials after this many seconds."),
    metric: str = typer.Option("rmse", "--metric", help="rmse, mae, recall@K or ndcg@K (whole catalogue)."),
    storage: Optional[str] = typer.Option(None, "--storage", metavar="URL", help="Study storage shared by several "
                                          "machines, e.g. postgresql://user@host/db (default: OUT/study.db)."),
    study: Optional[str] = typer.Option(None, "--study", metavar="NAME", help="Study name (default MODEL-METRIC); "
                                        "the same name continues the study."),
    workers: int = typer.Option(1, "--workers", help="Worker processes on this machine."),
    space: Optional[Path] = typer.Option(None, "--space", metavar="FILE", help="TOML file overriding the model's "
                                         "search space (ranges, log scales, choices, fixed values)."),
    cv: Optional[int] = typer.Option(None, "--cv", help="Score each trial by k-fold cross-validation inside train."),
    validation_split: float = typer.Option(0.1, "--validation-split", help="Validation share of train per trial."),
    pruner: str = typer.Option("median", "--pruner", help="median, hyperband or none."),
    split: str = Split,
    seed: int = typer.Option(0, "--seed", help="Random seed (split, sampler and training)."),
    test_size: float = TestSize,
    set_: list[str] = typer.Option([], "--set", metavar="KEY=VALUE",
                                   help="Fix an option for every trial as KEY=VALUE (JSON values), repeatable."),
    out_dir: Path = typer.Option(..., "--out", help="Folder for best.toml, trials.csv, the study and report.html."),
    data_home: Optional[Path] = DataHome, user_col: Optional[str] = UserCol, item_col: Optional[str] = ItemCol,
    rating_col: Optional[str] = RatingCol, timestamp_col: Optional[str] = TimeCol, sep: Optional[str] = Sep,
    items: Optional[Path] = Items, users: Optional[Path] = Users, item_key: Optional[str] = ItemKey,
    user_key: Optional[str] = UserKey, encoding: Optional[str] = Encoding, rating_scale: Optional[str] = Scale,
    quiet: bool = Quiet, verbose: bool = Verbose, as_json: bool = AsJson,
) -> None:
    """Search a model's options (Optuna), then score the best once on the test set; resumable and shareable."""
    from ..runs import RunSpec
    from ..interrupts import SearchInterrupted
    from ..tuning.run import tune_run
    from ..tuning.storage import shown_url

    for option, value in (("--test-size", test_size), ("--validation-split", validation_split),
                          ("--timeout", timeout)):
        finite(option, value)
    check_run_options(split, data, seed, test_size)
    params = resolve(model, set_options=set_, check=False).params  # the search checks them
    search_space = _read_space(space) if space is not None else None
    spec = RunSpec(data=data, model=model, split=split, seed=seed, test_size=test_size, params=params,
                   data_options=data_options(user_col, item_col, rating_col, timestamp_col, sep, items, users,
                                             item_key, user_key, encoding, rating_scale),
                   data_home=data_home_folder(data_home))
    talk = verbosity() >= Verbosity.NORMAL
    from rich.progress import BarColumn, Progress, TextColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                   console=err, disable=not show_progress(), transient=False)
    task = bar.add_task("searching", total=trials)
    last_line = [0.0, -1]  # when the last plain line was printed, and after how many trials

    def progress(status: dict) -> None:
        best = "-" if status["best"] is None else f"{status['best']:.4f}"
        left = "" if status["left"] is None else f", about {status['left']:.0f} s left"
        text = (f"trials {status['done']}{'/' + str(trials) if trials else ''} (pruned {status['pruned']}, "
                f"failed {status['failed']}), best {status['metric']} {best}{left}")
        if show_progress():
            bar.update(task, completed=status["done"], description=text)
        elif verbose and status["done"] != last_line[1] or time.monotonic() - last_line[0] > 5:
            last_line[:] = [time.monotonic(), status["done"]]  # in logs: a line per trial (-v), else now and then
            progress_line(text)

    try:
        with bar:
            summary = tune_run(spec, out_dir, n_trials=trials, timeout=timeout, metric=metric, storage=storage,
                               study_name=study, workers=workers, search_space=search_space, cv=cv,
                               validation_split=validation_split, pruner=pruner,
                               progress=progress if talk else None, on_step=step_reporter())
    except (ValueError, OSError) as exc:
        raise _flag_first(exc, TUNE_FLAGS) from None
    except SearchInterrupted as exc:
        where = out_dir if storage is None else shown_url(storage)
        trials = f"{exc.finished} finished trial{'' if exc.finished == 1 else 's'}"
        fail(f"interrupted: {trials} kept in {where}; the same command continues the search" if exc.finished else
             "interrupted: no trial finished", EXIT_INTERRUPTED, as_json)
    if as_json:
        return print_json({"out": str(out_dir), **{k: summary[k] for k in (
            "model", "metric", "study", "storage", "trials", "best_trial", "best_value", "best_params", "validation",
            "test_summary", "search_seconds")}})
    t = summary["trials"]
    out.print(f"[bold]{model}[/]: {sum(t.values())} trials in study {summary['study']} ({t['complete']} complete, "
              f"{t['pruned']} pruned, {t['fail']} failed); best validation {summary['metric']} "
              f"{num(summary['best_value'])} (trial {summary['best_trial']})", highlight=False)
    test = summary["test_summary"]
    out.print(f"best options refitted on train, test (once): RMSE {num(test.get('rmse'))}, MAE "
              f"{num(test.get('mae'))}, recall@10 {num(test.get('recall@10'))}, NDCG@10 "
              f"{num(test.get('ndcg@10'))}", highlight=False)
    out.print(f"wrote {out_dir}/best.toml (ratecast train --config {out_dir}/best.toml), trials.csv, report.html",
              highlight=False)


"""The folder of ``ratecast tune``: a search on a run's training split, then the best configuration refitted and
scored once on the test split.

Layout of ``DIR``::

    tune.json     the spec, the search settings, the best options, their validation and test figures
    best.toml     model and options of the best trial (``ratecast train --config DIR/best.toml`` takes it)
    trials.csv    one row per trial
    study.db      the study (SQLite; unless --storage names another)
    report.html   optimisation history, importances, parallel coordinates, slices (offline)

Running the same command again continues the study in ``DIR`` (or in ``--storage``).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Mapping

from ..errors import OutputExistsError
from ..io import check_output_folder, lock_output, read_json_object, write_json, write_table, write_text
from ..runs import RunSpec, load_data, make_split, resolve_spec, test_metrics
from .search import check_options, tune
from .storage import open_storage, shown_url

MARKER = "tune.json"
STUDY_FILE = "study.db"
SPEC_KEYS = ("data", "model", "split", "seed", "test_size", "params", "data_options")


def toml_text(model: str, params: Mapping[str, Any]) -> str:
    """A TOML config (``model`` and options at the top level) as ``ratecast train --config`` reads it."""
    lines = ["# the best trial of a ratecast tune search", f"model = {json.dumps(model)}"]
    for key, value in params.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"option {key} is {value}: not a finite number")
        lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


def _check_folder(out: Path, spec: RunSpec, metric: str, study: str) -> bool:
    """True when ``out`` holds an earlier search of the same spec, metric and study (to continue); refuses
    anything else: one folder holds one search."""
    if (out / MARKER).is_file():
        info = read_json_object(out / MARKER)
        stored = {**info.get("spec", {}), "metric": info.get("metric"), "study": info.get("study")}
        mine = {**asdict(spec), "metric": metric, "study": study}
        differ = [k for k in (*SPEC_KEYS, "metric", "study") if stored.get(k) != mine.get(k)]
        if differ:
            raise OutputExistsError(f"--out {str(out)!r}: holds a search of another {', '.join(differ)} "
                                    f"({', '.join(f'{k}={stored.get(k)!r}' for k in differ)}); choose a new folder")
        return True
    check_output_folder(out, marker=MARKER)
    return False


def tune_run(spec: RunSpec, out: str | os.PathLike, *, n_trials: int | None = 50, timeout: float | None = None,
             metric: str = "rmse", storage: str | None = None, study_name: str | None = None, workers: int = 1,
             search_space: Mapping[str, Any] | None = None, cv: int | None = None, validation_split: float = 0.1,
             pruner: str = "median", progress: Callable[[dict], None] | None = None,
             on_step: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Search ``spec.model``'s options on the training part of ``spec``'s split, refit the best on it, score the
    test part once, and write ``out`` (see the module docstring). Returns what ``tune.json`` holds."""
    step = on_step or (lambda message: None)
    out = Path(out)
    spec = resolve_spec(spec)
    check_options(spec.model, metric, n_trials=n_trials, timeout=timeout, cv=cv, validation_split=validation_split,
                  n_jobs=workers, random_state=spec.seed, pruner=pruner, study_name=study_name,
                  search_space=search_space, params=spec.params)
    if storage is not None:
        open_storage(storage)  # an unreachable storage fails before anything is written
    name = study_name or f"{spec.model}-{metric}"
    with lock_output(out):
        again = _check_folder(out, spec, metric, name)
        step("loading data")
        dataset = load_data(spec, progress=progress is not None)
        split = make_split(dataset, spec)
        created = not out.exists()
        out.mkdir(parents=True, exist_ok=True)
        url = storage or f"sqlite:///{(out / STUDY_FILE).resolve()}"
        if not again:
            write_json(out / MARKER, {"spec": asdict(spec), "metric": metric, "study": name,
                                      "storage": shown_url(url)})
        step(f"searching ({'continuing the study' if again else 'new study'} {name})")
        started = time.perf_counter()
        try:
            result = tune(split.train, model=spec.model, n_trials=n_trials, timeout=timeout,
                          search_space=search_space, metric=metric, cv=cv, validation_split=validation_split,
                          storage=url, study_name=name, n_jobs=workers, random_state=spec.seed, pruner=pruner,
                          params=spec.params, progress=progress)
        except BaseException:
            if created and not _has_trials(url, name):  # nothing to continue: leave no folder behind
                for f in (out / MARKER, out / STUDY_FILE):
                    f.unlink(missing_ok=True)
                if not any(out.iterdir()):
                    out.rmdir()
            raise
        seconds = time.perf_counter() - started
        step("refitting the best options on the whole training set")
        rec = result.best_recommender()
        step("scoring the test set (once)")
        test = test_metrics(rec, split, spec.seed)[0]
        keep = ("rmse", "mae", "recall@10", "ndcg@10")
        summary = {
            "spec": asdict(spec), "model": spec.model, "data": dataset.name, "split": spec.split, "seed": spec.seed,
            "metric": result.metric, "study": name, "storage": shown_url(url),
            "protocol": (f"{cv}-fold cross-validation inside train" if cv else
                         f"validation = {validation_split:g} of train (seed {spec.seed})"),
            "trials": result.counts(), "best_trial": result.best_trial.number, "best_value": result.best_value,
            "best_params": result.best_params, "validation": result.best_validation,
            "test": test, "test_summary": {k: test.get(k) for k in keep}, "search_seconds": seconds,
        }
        step("writing the results")
        write_text(out / "best.toml", toml_text(spec.model, result.best_params))
        write_table(result.trials, out / "trials.csv")
        from .report import write_report

        write_report(result.study, summary, out / "report.html")
        write_json(out / MARKER, summary)
    return summary


def _has_trials(url: str, name: str) -> bool:
    import optuna

    try:
        study = optuna.load_study(study_name=name, storage=open_storage(url))
        return bool(study.get_trials(deepcopy=False))
    except Exception:  # no study, or no storage: nothing to keep
        return False

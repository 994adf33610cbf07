"""Hyperparameter search on Optuna: a seeded TPE sampler, pruning from per-epoch validation scores, resumable and
shared studies, and worker processes.

Every trial is fitted and scored on data carved from the training set given to :func:`tune` (a validation split,
or k folds); nothing else reaches a trial.
"""

from __future__ import annotations

import hashlib
import math
import multiprocessing
import os
import re
import socket
import time
import warnings
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from .. import search_space as S
from ..datasets import Dataset
from ..errors import RatecastError, TrainingError
from ..models import MODELS, TrainingConfig, split_params
from .. import interrupts as interrupt
from .storage import open_storage, shown_url

RATING_METRICS = ("rmse", "mae")
TOP_N_METRICS = ("recall", "ndcg")
PRUNERS = ("median", "hyperband", "none")
#: what the study records, so that a study is never continued with another model, metric, data or protocol
STUDY_KEYS = ("model", "metric", "search_space", "params", "data", "protocol")


class StudyMismatchError(RatecastError, ValueError):
    """An existing study was created for another model, metric, search space, data or protocol."""


@dataclass(frozen=True)
class Metric:
    """What a search optimises: a rating metric (``rmse``, ``mae``) or a whole-catalogue list metric at k."""

    name: str
    kind: str  # "rating" or "top_n"
    k: int | None = None

    @classmethod
    def parse(cls, text: Any) -> "Metric":
        if isinstance(text, str) and text in RATING_METRICS:
            return cls(text, "rating")
        m = re.fullmatch(r"(recall|ndcg)@([1-9][0-9]{0,3})", text) if isinstance(text, str) else None
        if m is None:
            raise ValueError(f"metric must be one of {list(RATING_METRICS)} or recall@K / ndcg@K (e.g. recall@10), "
                             f"got {text!r}")
        return cls(text, "top_n", int(m.group(2)))

    @property
    def direction(self) -> str:
        return "minimize" if self.kind == "rating" else "maximize"

    @property
    def epoch_key(self) -> str:
        """The per-epoch validation figure that pruning watches."""
        if self.kind == "rating":
            return f"val_rating_{self.name}"
        return f"val_{self.name.split('@')[0]}@10"


def _liked(train: Dataset) -> float:
    from ..datasets import RatingScale

    return (train.rating_scale or RatingScale.infer(train.ratings["rating"])).liked_threshold


def validation_scores(rec, validation: Dataset, metric: Metric, threshold: float) -> dict[str, float]:
    """The metric (and its companions) of a fitted recommender on validation ratings."""
    from .. import metrics as M

    v = validation.ratings
    if metric.kind == "rating":
        pred = rec.predict(v["user_id"], v["item_id"])
        return {"rmse": M.rmse(v["rating"], pred), "mae": M.mae(v["rating"], pred)}
    m = rec.top_n_metrics(validation, ks=(metric.k,), threshold=threshold)
    return {f"recall@{metric.k}": float(m[f"recall@{metric.k}"] or 0.0),
            f"ndcg@{metric.k}": float(m[f"ndcg@{metric.k}"] or 0.0)}


def data_fingerprint(train: Dataset) -> str:
    """sha256 over the training ratings (order-independent): a study holds trials of one data set only."""
    r = train.ratings[["user_id", "item_id", "rating"]]
    rows = np.sort(pd.util.hash_pandas_object(r, index=False).to_numpy())
    return hashlib.sha256(rows.tobytes()).hexdigest()


@dataclass
class Objective:
    """One trial: sample options, fit on each fitting part, score on its validation part."""

    model: str
    space: dict
    params: dict
    metric: Metric
    folds: list  # [(fit Dataset, validation Dataset)]
    random_state: int
    threshold: float

    def __call__(self, trial) -> float:
        try:
            return self._run(trial)
        finally:
            release_compiled_programs()

    def _run(self, trial) -> float:
        import optuna

        from ..recommender import Recommender

        options = {**self.params, **S.suggest(trial, self.space)}
        scores: list[dict[str, float]] = []
        epochs, seconds = [], 0.0
        for f, (fit, validation) in enumerate(self.folds):
            def report(epoch: int, logs: dict[str, float]) -> None:
                if interrupt.requested():  # Ctrl-C: this trial ends here, recorded as failed
                    trial.set_user_attr("interrupted", True)
                    optuna.logging.set_verbosity(optuna.logging.ERROR)  # no warning with a traceback for it
                    interrupt.check()
                value = logs.get(self.metric.epoch_key)
                if f > 0 or value is None or not math.isfinite(value):  # the first fold's scores decide pruning
                    return
                trial.report(float(value), epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned after epoch {epoch + 1}")

            rec = Recommender(self.model, random_state=self.random_state, verbose=False, **options)
            rec.fit(fit, validation=validation, on_epoch=report)
            scores.append(validation_scores(rec, validation, self.metric, self.threshold))
            history = rec.history_
            epochs.append(len(history.get("loss", [])))
            seconds += rec.fit_seconds_
        mean = {k: float(np.mean([s[k] for s in scores])) for k in scores[0]}
        for k, v in mean.items():
            trial.set_user_attr(f"val_{k}", v)
        trial.set_user_attr("epochs", int(np.mean(epochs)))
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")  # which process ran it
        trial.set_user_attr("fit_seconds", round(seconds, 3))
        value = mean[self.metric.name]
        if not math.isfinite(value):
            raise TrainingError(f"validation {self.metric.name} is {value}")
        return value


def release_compiled_programs() -> None:
    """Drop the programs JAX traced and compiled so far. A trial compiles programs for its own shapes (embedding
    and batch sizes) that later trials rarely share, and JAX keeps every one in its tracing and compilation caches,
    keyed by functions that live as long as the process: about 30 MB a trial on a small model, a search's memory
    growing with its trials. A later trial that needs one again compiles it anew (or reads it from JAX's
    compilation cache on disk, where that is on)."""
    import keras

    if keras.backend.backend() == "jax":
        import jax

        jax.clear_caches()


def _check_int(name: str, value: Any, minimum: int, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _resolve_space(model: str, search_space: Mapping[str, Any] | None, params: dict) -> dict:
    """The model's space with the user's overrides, each option and each range end checked against the model."""
    cls = MODELS[model].config_class
    space = S.merge(cls.search_space, S.parse(search_space))
    S.check_names(space, cls.field_names() | TrainingConfig.field_names(), model)
    for name, p in space.items():  # every value the search may try must be one the model accepts
        values = [p.value] if isinstance(p, S.Fixed) else list(p.values) if isinstance(p, S.Choice) else [p.low, p.high]
        for value in values:
            try:
                split_params(model, {**params, name: list(value) if isinstance(value, tuple) else value})
            except ValueError as exc:
                raise ValueError(f"search_space {name}: {exc}") from None
    return space


@dataclass
class TuneResult:
    """What a search found. ``study`` is the Optuna study (every trial, in its storage)."""

    study: Any
    model: str
    metric: str
    params: dict
    space: dict
    train: Dataset = field(repr=False)
    random_state: int = 0

    @property
    def best_trial(self):
        return self.study.best_trial

    @property
    def best_params(self) -> dict[str, Any]:
        """The options of the best trial (searched and fixed), as ``Recommender(model, **best_params)`` takes."""
        return {**self.params, **S.trial_params(self.space, self.best_trial.params)}

    @property
    def best_value(self) -> float:
        return float(self.study.best_value)

    @property
    def best_validation(self) -> dict[str, float]:
        """The best trial's validation figures."""
        return {k[4:]: v for k, v in self.best_trial.user_attrs.items() if k.startswith("val_")}

    @property
    def trials(self) -> pd.DataFrame:
        """One row per trial: number, state, value, params_*, user_attrs_* (validation figures, epochs, seconds)."""
        return self.study.trials_dataframe()

    def counts(self) -> dict[str, int]:
        """Trials per state (complete, pruned, fail, running)."""
        from collections import Counter

        c = Counter(t.state.name.lower() for t in self.study.get_trials(deepcopy=False))
        return {k: c.get(k, 0) for k in ("complete", "pruned", "fail", "running", "waiting")}

    def best_recommender(self, verbose: bool = False):
        """A Recommender with the best options, fitted on all of the training set given to :func:`tune` (its
        early stopping carves its own validation split from it, as every fit does)."""
        from ..recommender import Recommender

        return Recommender(self.model, random_state=self.random_state, verbose=verbose,
                           **self.best_params).fit(self.train)


def _protocol(cv, validation_split, random_state, threshold) -> dict:
    return {"cv": cv, "validation_split": None if cv else validation_split, "random_state": random_state,
            "threshold": threshold}


def _check_study(study, expected: dict) -> None:
    attrs = study.user_attrs
    if not attrs.get("ratecast"):
        if study.get_trials(deepcopy=False):
            raise StudyMismatchError(f"study {study.study_name!r} holds trials that ratecast did not make; choose "
                                     "another --study name")
        return
    for key in STUDY_KEYS:
        if attrs.get(key) != expected[key]:
            what = {"model": f"model {attrs.get(key)!r}", "metric": f"metric {attrs.get(key)!r}",
                    "search_space": "another search space", "params": "other fixed options",
                    "data": "other training data", "protocol": "another validation protocol"}[key]
            raise StudyMismatchError(f"study {study.study_name!r} was created for {what}; continue it with the "
                                     "same settings or choose another study name")


def _sampler(random_state: int, existing: int, worker: int):
    import optuna

    seed = int(np.random.SeedSequence([random_state, existing, worker]).generate_state(1)[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=8, multivariate=True)


def _pruner(name: str):
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=2)
    return optuna.pruners.NopPruner()


def _folds(train: Dataset, cv: int | None, validation_split: float, random_state: int) -> list:
    from .. import split

    if cv:
        return [(s.train, s.test) for s in split.kfold(train, n_splits=cv, random_state=random_state)]
    s = split.validation_split(train, validation_split, random_state=random_state)
    return [(s.train, s.test)]


def _stop_on_interrupt(study, trial) -> None:
    if interrupt.requested():
        study.stop()


def _optimize(study, objective: Objective, n_trials: int | None, timeout: float | None,
              callbacks: list | None = None) -> None:
    """Run trials; Ctrl-C ends the trial in progress at its next epoch (or when it ends) and then the search."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with interrupt.deferred_interrupts():
        try:
            study.optimize(objective, n_trials=n_trials, timeout=timeout, catch=(TrainingError,),
                           callbacks=[_stop_on_interrupt, *(callbacks or [])], gc_after_trial=True)
        except KeyboardInterrupt:  # the trial in progress stopped on Ctrl-C: the caller reads interrupt.requested()
            if not interrupt.requested():
                raise


def _worker(payload: dict) -> int:
    """One worker process: loads the shared study and runs its share of the trials."""
    import optuna

    storage = open_storage(payload["storage"])
    study = optuna.load_study(study_name=payload["study_name"], storage=storage,
                              sampler=_sampler(payload["random_state"], payload["existing"], payload["worker"]),
                              pruner=_pruner(payload["pruner"]))
    share, done = payload["n_trials"], []
    while share is None or len(done) < share:
        left = None if share is None else share - len(done)
        try:
            _optimize(study, payload["objective"], left, payload["timeout"],
                      callbacks=[lambda _, trial: done.append(trial.number)])
            break
        except optuna.exceptions.UpdateFinishedTrialError:
            # two workers claimed the same waiting trial (e.g. the defaults' trial; SQLite's claim is not atomic)
            # and the other finished it first: this copy is dropped, and the worker goes on with its share
            done.append(None)
    return payload["worker"]


def _shares(n_trials: int | None, n_jobs: int) -> list[int | None]:
    if n_trials is None:
        return [None] * n_jobs
    return [n_trials // n_jobs + (1 if w < n_trials % n_jobs else 0) for w in range(n_jobs)]


def check_options(model: str, metric: str, *, n_trials: int | None = 50, timeout: float | None = None,
                  cv: int | None = None, validation_split: float = 0.1, n_jobs: int = 1, random_state: int = 0,
                  pruner: str = "median", study_name: str | None = None, search_space: Mapping[str, Any] | None = None,
                  params: Mapping[str, Any] | None = None) -> tuple[Metric, dict, dict]:
    """Check the options of :func:`tune` before any data is read; returns (metric, fixed options, space)."""
    if not isinstance(model, str) or model not in MODELS:
        raise ValueError(f"model must be one of {sorted(MODELS)}, got {model!r}")
    m = Metric.parse(metric)
    if m.kind not in MODELS[model].config_class.tune_metrics:
        fits = [x for x in ("rating", "top_n") if x in MODELS[model].config_class.tune_metrics]
        raise ValueError(f"metric {metric!r} does not fit model {model!r}: it is selected on "
                         f"{' or '.join('rmse/mae' if x == 'rating' else 'recall@K/ndcg@K' for x in fits)} only")
    _check_int("n_trials", n_trials, 1, allow_none=True)
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, Real) or not math.isfinite(timeout)
                                or timeout <= 0):
        raise ValueError(f"timeout must be a number of seconds > 0 or None, got {timeout!r}")
    if n_trials is None and timeout is None:
        raise ValueError("n_trials and timeout are both None: the search would never end; give one of them")
    _check_int("cv", cv, 2, allow_none=True)
    if isinstance(validation_split, bool) or not isinstance(validation_split, Real) or not 0 < validation_split < 1:
        raise ValueError(f"validation_split must be a number in (0, 1), got {validation_split!r}")
    _check_int("n_jobs", n_jobs, 1)
    _check_int("random_state", random_state, 0)
    if pruner not in PRUNERS:
        raise ValueError(f"pruner must be one of {list(PRUNERS)}, got {pruner!r}")
    if study_name is not None and (not isinstance(study_name, str) or not study_name.strip()):
        raise ValueError(f"study_name must be a non-empty string, got {study_name!r}")
    base = {k: list(v) if isinstance(v, tuple) else v for k, v in dict(params or {}).items()}
    if m.kind == "top_n" and "monitor" not in base:
        base["monitor"] = "val_top_n"  # early stopping watches the lists the search is scored on
    split_params(model, base)  # unknown or bad fixed options fail here
    space = _resolve_space(model, search_space, base)
    return m, base, space


def tune(train: Dataset, model: str = "deep", n_trials: int | None = 50, timeout: float | None = None,
         search_space: Mapping[str, Any] | None = None, metric: str = "rmse", cv: int | None = None,
         validation_split: float = 0.1, storage: str | None = None, study_name: str | None = None,
         n_jobs: int = 1, random_state: int = 0, pruner: str = "median", params: Mapping[str, Any] | None = None,
         progress: Callable[[dict], None] | None = None) -> TuneResult:
    """Search ``model``'s options on ``train`` and return a :class:`TuneResult`.

    Each trial fits on ``train`` less a ``validation_split`` holdout (or on k-1 of ``cv`` folds) and is scored on
    the held-out part by ``metric``: ``rmse`` or ``mae`` of the predicted ratings, or ``recall@K`` / ``ndcg@K`` of
    whole-catalogue lists (relevant: a rating at or above the scale's ``liked_threshold``, 4 on 1-5, as in
    evaluation). The sampler is Optuna's
    TPE, seeded by ``random_state``; poor trials are pruned from their per-epoch validation scores (``pruner``:
    median, hyperband or none). The space is the model's ``search_space``, with ``search_space`` entries replacing
    or adding options (see :mod:`ratecast.search_space`); ``params`` fixes other options for every trial.

    ``storage`` (an Optuna storage URL, e.g. ``sqlite:///study.db`` or ``postgresql://host/db``) keeps the study:
    calling again with the same ``study_name`` continues it (``n_trials`` more), and processes on other machines can
    join it. ``n_jobs`` worker processes share the trials on this machine. A study created for another model,
    metric, space, data or protocol is refused.
    """
    import optuna

    from ..recommender import check_dataset

    check_dataset("train", train)
    train.check_ratings("train")
    m, base, space = check_options(model, metric, n_trials=n_trials, timeout=timeout, cv=cv,
                                   validation_split=validation_split, n_jobs=n_jobs, random_state=random_state,
                                   pruner=pruner, study_name=study_name, search_space=search_space, params=params)
    threshold = _liked(train)

    folds = _folds(train, cv, validation_split, random_state)
    objective = Objective(model, space, base, m, folds, random_state, threshold)
    expected = {"ratecast": True, "model": model, "metric": m.name, "search_space": S.describe(space),
                "params": base, "data": data_fingerprint(train),
                "protocol": _protocol(cv, validation_split, random_state, threshold)}

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    temp_dir = None
    if storage is None and n_jobs > 1:  # worker processes share the study through a file
        import tempfile

        temp_dir = tempfile.TemporaryDirectory(prefix="ratecast-tune-")
        storage = f"sqlite:///{temp_dir.name}/study.db"
    store = open_storage(storage) if storage is not None else None
    name = study_name or f"{model}-{m.name}"
    try:
        study = optuna.create_study(study_name=name, storage=store, direction=m.direction, load_if_exists=True,
                                    sampler=_sampler(random_state, 0, 0), pruner=_pruner(pruner))
    except Exception as exc:  # a storage that answers but is not an Optuna one, a direction clash, ...
        raise StudyMismatchError(f"study {name!r} in {shown_url(storage)}: cannot be used ({exc})") from None
    if study.direction.name.lower() != m.direction:
        raise StudyMismatchError(f"study {name!r} was created to {study.direction.name.lower()} another metric, not "
                                 f"{m.name!r}; choose another --study name")
    _check_study(study, expected)
    existing = len(study.get_trials(deepcopy=False))
    if not study.user_attrs.get("ratecast"):
        # the marker goes last: a process that sees it sees every other key (each write commits on its own)
        for key, value in sorted(expected.items(), key=lambda kv: kv[0] == "ratecast"):
            study.set_user_attr(key, value)
        _check_study(study, expected)  # did another process write other settings meanwhile?
    if existing == 0:  # the first trial starts from the model's defaults
        mcfg, tcfg = split_params(model, base)
        defaults = {**mcfg.to_dict(), **tcfg.to_dict()}
        start = S.default_values({k: p for k, p in space.items() if not isinstance(p, S.Fixed)}, defaults)
        if start:
            study.enqueue_trial(start, skip_if_exists=True)
    study.sampler = _sampler(random_state, existing, 0)

    started = time.monotonic()
    target = None if n_trials is None else existing + n_trials

    def status() -> dict:
        trials = study.get_trials(deepcopy=False)
        states = [t.state.name.lower() for t in trials]
        done = [t for t in trials[existing:] if t.state.is_finished()]
        complete = [t for t in trials if t.state.name == "COMPLETE"]
        best = None
        if complete:
            values = [t.value for t in complete]
            best = min(values) if m.direction == "minimize" else max(values)
        elapsed = time.monotonic() - started
        left = None
        if done and target is not None:
            left = elapsed / len(done) * max(0, target - existing - len(done))
        if timeout is not None:
            left = max(0.0, timeout - elapsed) if left is None else min(left, max(0.0, timeout - elapsed))
        return {"done": len(done), "n_trials": n_trials, "total": len(trials), "pruned": states.count("pruned"),
                "failed": states.count("fail"), "best": best, "elapsed": elapsed, "left": left, "metric": m.name}

    try:
        if n_jobs == 1:
            callbacks = [lambda s, t: progress(status())] if progress is not None else []
            _optimize(study, objective, n_trials, timeout, callbacks)
        else:
            _run_workers(study, objective, storage, name, n_trials, timeout, n_jobs, random_state, existing,
                         pruner, progress, status)
    except KeyboardInterrupt:
        if not interrupt.requested():
            raise
    finally:
        if temp_dir is not None:  # keep the trials in memory before the file goes
            study = _in_memory_copy(name, store)
            temp_dir.cleanup()
    if progress is not None:
        progress(status())
    if interrupt.requested():
        finished = sum(t.state.name in ("COMPLETE", "PRUNED") for t in study.get_trials(deepcopy=False))
        kept = (f"study {name!r} in {shown_url(storage)} keeps them; the same call continues it" if temp_dir is None
                and store is not None else "the study was in memory: give storage= to keep one")
        raise interrupt.SearchInterrupted(f"search interrupted after {finished} finished trial"
                                          f"{'' if finished == 1 else 's'}; {kept}",
                                          finished=finished)
    if not [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]:
        failed = [t for t in study.get_trials(deepcopy=False) if t.state.name == "FAIL"]
        why = failed[-1].system_attrs.get("fail_reason", "") if failed else ""
        raise TrainingError(f"no trial of study {name!r} completed{': ' + why.splitlines()[0] if why else ''}")
    return TuneResult(study, model, m.name, base, space, train, random_state)


def _in_memory_copy(name: str, store):
    import optuna

    memory = optuna.storages.InMemoryStorage()
    optuna.copy_study(from_study_name=name, from_storage=store, to_storage=memory, to_study_name=name)
    return optuna.load_study(study_name=name, storage=memory)


def _run_workers(study, objective, storage, name, n_trials, timeout, n_jobs, random_state, existing, pruner,
                 progress, status) -> None:
    ctx = multiprocessing.get_context("spawn")  # JAX does not survive fork
    stop = ctx.Event()  # Ctrl-C here reaches the workers' searches through it
    payloads = [{"storage": storage, "study_name": name, "random_state": random_state, "existing": existing,
                 "worker": w + 1, "pruner": pruner, "objective": objective, "n_trials": share, "timeout": timeout}
                for w, share in enumerate(_shares(n_trials, n_jobs)) if share != 0]
    with ctx.Pool(len(payloads), initializer=interrupt.share, initargs=(stop,)) as pool, \
            interrupt.deferred_interrupts():
        interrupt.share(stop)
        result = pool.map_async(_worker, payloads)
        try:
            while not result.ready():  # after a first Ctrl-C the workers end their trials in progress
                result.wait(2.0)
                if progress is not None:
                    progress(status())
            result.get()
        except BaseException:
            pool.terminate()
            raise
        finally:
            interrupt.share(None)

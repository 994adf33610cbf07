"""Run directories: one trained model with its resolved config, history, test metrics and plots.

Layout of ``RUN_DIR``::

    run.json        the resolved run spec (data, split, seed, model, options) and the model/training configs
    metrics.json    test (and train) metrics, with 95% bootstrap intervals and ranking metrics (NaN is null)
    history.json    per-epoch losses
    split.json      split report (sizes, users/items seen only in test)
    evaluation/     the served lists' evaluation on the test set, per user, with intervals and groups (see
                    :mod:`ratecast.run_evaluation`; runs written before it was kept have none)
    model/          the saved Recommender
    plots/          loss.png, predictions.png
    MANIFEST.json   sha256 of every file above, checked on load

Every path inside ``run.json`` is absolute, so a run folder works from any working directory. While a run trains,
``.RUN_DIR.partial/`` beside it holds the resolved spec and the per-epoch checkpoints; ``ratecast train --resume
RUN_DIR`` continues from there, and the folder is removed once the run is in place. The partial folder appears with its
spec already inside, and is renamed away before it is deleted, so a kill never leaves one without its spec.
"""

from __future__ import annotations

import math
import os
import re
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

from . import manifest
from . import split as S
from .datasets import Dataset, load_movielens, load_ratings
from .datasets.movielens import DATASETS
from .datasets.download import default_data_home
from .errors import (DataError, IntegrityError, MissingFileError, NotWritableError, OutputExistsError,
                     spelled)
from .io import (check_foreign_files, check_output_folder, discard_dir, lock_output, read_json_object, staged_dir,
                 temporary_target, write_json)
from .live_log import LOG_NAME, REFIT_NAME, read_log, write_ratings_log

SPLITS = ("holdout", "u1", "u2", "u3", "u4", "u5", "ua", "ub", "temporal", "last1", "held-out-users")
#: the split that holds whole users out of training (``test_size``: the share of users); see :func:`make_split`
HELD_OUT_USERS = "held-out-users"
#: share of each held-out user's ratings folded in (the rest is their test set)
FOLD_IN = 0.8
#: Suffixes of the ratings files ratecast reads (besides MovieLens releases, which are named).
RATINGS_SUFFIXES = (".csv", ".tsv", ".tab", ".txt", ".dat", ".data", ".parquet", ".pq")
#: Options of :func:`ratecast.datasets.load_ratings` that a run may store (``items``/``users`` are file paths).
DATA_OPTIONS = ("user_col", "item_col", "rating_col", "timestamp_col", "sep", "encoding", "item_key", "user_key",
                "rating_scale", "items", "users", "duplicates")
#: Options that apply to MovieLens releases too (the others name the columns and files of your own data).
RELEASE_OPTIONS = ("duplicates",)
_PATH_OPTIONS = ("items", "users")
RUN_MARKER = "run.json"
REQUIRED_FILES = ("run.json", "metrics.json", "history.json")
#: the run's saved model: a folder with its own manifest, whose checksums its readers verify
MODEL_FOLDER = "model"


@dataclass
class RunSpec:
    """What a run trains and how it is evaluated."""

    data: str = "ml-100k"
    model: str = "deep"
    split: str = "holdout"
    seed: int = 0
    test_size: float = 0.2
    params: dict[str, Any] = field(default_factory=dict)
    data_options: dict[str, Any] = field(default_factory=dict)  # user_col, item_col, ... for own files
    data_home: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.data, str) or not self.data:
            raise ValueError(f"data must be a dataset name or a file path, got {self.data!r}")
        if not isinstance(self.model, str):
            raise ValueError(f"model must be a model name, got {self.model!r}")
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {list(SPLITS)}, got {self.split!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        ts = self.test_size
        if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not math.isfinite(ts) or not 0 < ts < 1:
            raise ValueError(f"test_size must be a number in (0, 1), got {ts!r}")
        if not isinstance(self.params, dict):
            raise ValueError(f"params must be a mapping of options, got {self.params!r}")
        if not isinstance(self.data_options, dict):
            raise ValueError(f"data_options must be a mapping of options, got {self.data_options!r}")
        unknown = sorted(set(self.data_options) - set(DATA_OPTIONS))
        if unknown:
            raise ValueError(f"unknown data option(s) {unknown}; allowed: {list(DATA_OPTIONS)}")
        for key, value in self.data_options.items():
            ok = (isinstance(value, list) and 2 <= len(value) <= 3 and all(_finite_number(v) for v in value)
                  if key == "rating_scale" else isinstance(value, str))
            if not ok:
                raise ValueError(f"data option {key} has a wrong value: {value!r}")
        if self.data_home is not None and not isinstance(self.data_home, str):
            raise ValueError(f"data_home must be a folder path, got {self.data_home!r}")

    @classmethod
    def from_dict(cls, d: Any, where: str) -> "RunSpec":
        """A spec read from a file (``where``); anything malformed raises :class:`IntegrityError` naming it."""
        if not isinstance(d, dict):
            raise IntegrityError(f"{where}: 'spec' must be a JSON object, got {type(d).__name__}")
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise IntegrityError(f"{where}: unknown spec field(s) {unknown}")
        try:
            return cls(**d)
        except (TypeError, ValueError) as exc:
            raise IntegrityError(f"{where}: {exc}") from None


def _finite_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_ratings_file(path: str | os.PathLike, what: str = "ratings file") -> Path:
    """``path`` must be an existing regular file with a ratings suffix; returns it absolute.

    Raises :class:`MissingFileError` when it does not exist and :class:`DataError` otherwise; messages name the path
    and never quote the file.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise MissingFileError(f"{what} not found", path=str(path))
    if not p.is_file():
        raise DataError(f"{what} must be a regular file, not a folder or device", path=str(path))
    if p.suffix.lower() not in RATINGS_SUFFIXES:
        raise DataError(f"{what} must end in one of {', '.join(RATINGS_SUFFIXES)}", path=str(path))
    return p.resolve()


def _looks_like_path(data: str) -> bool:
    return os.sep in data or "/" in data or Path(data).suffix.lower() in RATINGS_SUFFIXES


def resolve_spec(spec: RunSpec) -> RunSpec:
    """``spec`` with every path made absolute and checked, so that it means the same from any working directory."""
    opts = dict(spec.data_options)
    if spec.data in DATASETS:
        data = spec.data
        own = sorted(set(opts) - set(RELEASE_OPTIONS))
        if own:
            raise ValueError(f"options {[spelled(k) for k in own]} apply to your own ratings file, not to "
                             f"the MovieLens release {spec.data!r}")
    elif _looks_like_path(spec.data) or Path(spec.data).exists():
        data = str(check_ratings_file(spec.data))
    else:
        raise DataError(f"not a known dataset name ({', '.join(DATASETS)}) nor an existing file", path=spec.data)
    for key in _PATH_OPTIONS:
        if key in opts:
            opts[key] = str(check_ratings_file(opts[key], what=f"{key} file"))
    home = str(Path(spec.data_home).expanduser().resolve()) if spec.data_home else None
    if home is None and data in DATASETS:
        # where the release is read ($RATECAST_DATA or the user cache), kept with the run: it works from any shell
        home = str(default_data_home().expanduser().resolve())
    return RunSpec(**{**asdict(spec), "data": data, "data_options": opts, "data_home": home})


def load_data(spec: RunSpec, progress: bool = True) -> Dataset:
    """A MovieLens release by name, or the user's own ratings file by path."""
    spec = resolve_spec(spec)
    if spec.data in DATASETS:
        return load_movielens(spec.data, data_home=spec.data_home, progress=progress,
                              **{k: v for k, v in spec.data_options.items() if k in RELEASE_OPTIONS})
    opts = dict(spec.data_options)
    if "rating_scale" in opts:
        opts["rating_scale"] = tuple(opts["rating_scale"])
    return load_ratings(spec.data, **opts)


def data_fingerprint(spec: RunSpec) -> dict[str, str]:
    """sha256 of each of the run's own data files (ratings, items, users); MovieLens releases are checksummed when
    they are downloaded."""
    files = [] if spec.data in DATASETS else [spec.data]
    files += [str(spec.data_options[k]) for k in _PATH_OPTIONS if k in spec.data_options]
    return {f: manifest.sha256(f) for f in files if Path(f).is_file()}


def check_data_unchanged(info: dict[str, Any], where: str) -> None:
    """Refuse data files that changed since the run was trained: its split would hold other ratings."""
    recorded = info.get("data_sha256") or {}
    if not isinstance(recorded, dict):
        raise IntegrityError(f"{where}: 'data_sha256' must be a JSON object")
    for path, digest in recorded.items():
        if Path(path).is_file() and manifest.sha256(path) != digest:
            raise IntegrityError(f"{path}: the data file changed since this run was trained (sha256 differs from "
                                 f"{where}); its split would hold other ratings; train again")


def load_stored_data(spec: RunSpec, where: str, progress: bool = False) -> Dataset:
    """The data of a stored run (spec read from ``where``), checked before it is read.

    The data must be a MovieLens name or an existing ratings file; errors name the path and the stored file, never
    the contents of the data file.
    """
    if spec.data_home is not None and not Path(spec.data_home).is_dir():
        spec = RunSpec(**{**asdict(spec), "data_home": None})  # moved to another machine: use the default
    try:
        resolved = resolve_spec(spec)
    except MissingFileError as exc:
        raise MissingFileError(f"{exc} (data of {where})") from None
    except (DataError, ValueError) as exc:
        raise IntegrityError(f"{where}: the stored data is not usable: {exc}") from None
    try:
        return load_data(resolved, progress=progress)
    except DataError as exc:
        line = f" (line {exc.line})" if getattr(exc, "line", None) else ""
        raise DataError(f"{resolved.data}: no longer reads as the ratings this run was trained on{line}; "
                        f"stored in {where}") from None


def make_split(ds: Dataset, spec: RunSpec) -> S.Split | S.HeldOutSplit:
    """The run's split of ``ds``. ``held-out-users`` holds out ``test_size`` of the users (drawn with ``seed``): none
    of their ratings is trained on, :data:`FOLD_IN` of each one's ratings are folded in and the rest scored (see
    :func:`ratecast.split.held_out_users` and :func:`fold_in_test_users`)."""
    if spec.split == HELD_OUT_USERS:
        return S.held_out_users(ds, users=spec.test_size, fold_in=FOLD_IN, random_state=spec.seed)
    if spec.split == "holdout":
        return S.holdout(ds, test_size=spec.test_size, random_state=spec.seed)
    if spec.split == "temporal":
        return S.temporal(ds, test_size=spec.test_size)
    if spec.split == "last1":
        return S.temporal_per_user(ds, n_test=1)
    return S.movielens_fold(ds, spec.split)


def fold_in_test_users(rec, split: S.Split | S.HeldOutSplit):
    """The recommender that serves ``split``'s test users: ``rec`` itself, or for held-out users a copy of ``rec``
    that knows them from their fold-in ratings (``rec`` is left as it is)."""
    if isinstance(split, S.HeldOutSplit):
        from .evaluation import fold_in_users

        return fold_in_users(rec, split.fold_in)
    return rec


def test_metrics(rec, split: S.Split | S.HeldOutSplit, seed: int | None, served=None):
    """The test figures of a run, as ``train`` records them and ``evaluate`` and ``tune`` report them: the rating
    errors over every test rating, and the whole-catalogue lists of at most
    :data:`~ratecast.run_evaluation.LIST_USERS` test users (a sample drawn with ``seed`` beyond that; the figures
    then hold ``top_n_users`` of ``test_users``). ``served``: :func:`fold_in_test_users` of ``rec`` when already
    made. Returns (metrics, the evaluation, what a run keeps of it)."""
    from . import run_evaluation

    served = fold_in_test_users(rec, split) if served is None else served
    metrics = served.evaluate(split.test, top_n=False)  # every test rating; the lists are made once, below
    # the held-out users (if any) are folded in as rc.evaluate does it
    evaluation, kept = run_evaluation.evaluate_test(
        rec, split.test, fold_in=split.fold_in if isinstance(split, S.HeldOutSplit) else None,
        limit=run_evaluation.LIST_USERS, random_state=seed)
    metrics.update(run_evaluation.list_metrics(served, split.test, evaluation))
    return metrics, evaluation, kept


# --- interrupted runs ---------------------------------------------------------------------------------------------
PARTIAL_SPEC = "spec.json"


def partial_dir(out: str | os.PathLike) -> Path:
    """Where a run being trained into ``out`` keeps its spec and checkpoints: ``.NAME.partial`` beside it."""
    out = Path(out)
    return out.parent / f".{out.name}.partial"


def _leftover(part: Path) -> bool:
    """Whether ``part`` is a partial folder without its spec that holds nothing but what training writes there (the
    checkpoint and temporaries): what a clean-up cut short by a kill left. Nothing in it can be resumed."""
    from .engine.checkpoint import FILE

    if not part.is_dir() or part.is_symlink() or (part / PARTIAL_SPEC).exists():
        return False
    for entry in part.iterdir():
        if entry.name == "checkpoint" and entry.is_dir() and not entry.is_symlink():
            if not all(_written_as(e, FILE) for e in entry.iterdir()):
                return False
        elif not _written_as(entry, PARTIAL_SPEC):
            return False
    return True


def _written_as(entry: Path, name: str) -> bool:
    """Whether file ``entry`` is ``name`` or a temporary of it (of this version, or ``.NAME-XXXXXXXX.SUFFIX`` of
    earlier ones)."""
    earlier = re.fullmatch(rf"\.{re.escape(name)}-[a-z0-9_]{{8}}{re.escape(Path(name).suffix)}", entry.name)
    return entry.is_file() and not entry.is_symlink() and (
        entry.name == name or temporary_target(entry.name) == name or earlier is not None)


def read_partial(out: str | os.PathLike) -> tuple[RunSpec, bool]:
    """The spec (and the overwrite choice) of the interrupted run of ``out``."""
    part = partial_dir(out)
    where = str(part / PARTIAL_SPEC)
    if not (part / PARTIAL_SPEC).is_file():
        if _leftover(part):
            raise MissingFileError(f"no interrupted run to resume: {part.name} beside it holds no {PARTIAL_SPEC} (a "
                                   f"clean-up was cut short); the next 'ratecast train --out {out}' removes it",
                                   path=str(out))
        if os.path.lexists(part):
            raise OutputExistsError(f"{part}: exists and was not written by ratecast; move it away")
        raise MissingFileError(f"no interrupted run to resume (no {part.name}/{PARTIAL_SPEC} beside it); start one "
                               "with 'ratecast train --out RUN'", path=str(out))
    state = read_json_object(part / PARTIAL_SPEC)
    overwrite = state.get("overwrite", False)
    if not isinstance(overwrite, bool):
        raise IntegrityError(f"{where}: 'overwrite' must be true or false")
    return RunSpec.from_dict(state.get("spec"), where), overwrite


def _finished_after(out: Path, part: Path) -> bool:
    """Whether run ``out`` was written after its partial folder was last started: the training finished and only
    the clean-up of the partial folder was cut short."""
    run, spec = out / RUN_MARKER, part / PARTIAL_SPEC
    return run.is_file() and spec.is_file() and run.stat().st_mtime_ns >= spec.stat().st_mtime_ns


# --- training -----------------------------------------------------------------------------------------------------
def train_run(spec: RunSpec | None, out: str | os.PathLike, *, overwrite: bool = False, resume: bool = False,
              verbose: int | str = 0, progress: bool = True, dataset: Dataset | None = None, distribution=None,
              on_step: Callable[[str], None] | None = None, extra_train=None) -> dict[str, Any]:
    """Load, split, fit, evaluate and write a run directory at ``out``; returns the test metrics.

    ``extra_train`` (a frame of user_id, item_id, rating, timestamp; see :func:`refit_run`) joins the training
    part of the split (a pair it holds replaces the data's rating) and is kept in the run as
    :data:`~ratecast.live_log.REFIT_NAME`.

    The lock of ``out`` is taken first: a second writer fails at once (:class:`~ratecast.errors.LockedError`). An
    existing ``out`` is refused unless it is a run folder and ``overwrite`` is set; a folder that ratecast did not
    write is never replaced. Training keeps its spec and per-epoch checkpoints in :func:`partial_dir`; with
    ``resume=True`` (and ``spec=None``) an interrupted run continues from there. ``out`` appears whole or not at all.
    """
    from .recommender import Recommender

    step = on_step or (lambda message: None)
    out = Path(out)
    part = partial_dir(out)
    with lock_output(out):
        if resume:
            spec, overwrite = read_partial(out)
            if _finished_after(out, part):
                discard_dir(part)
                raise MissingFileError(f"no interrupted run to resume: the run was written after its training "
                                       f"started (only the removal of {part.name} was cut short; it is now removed)",
                                       path=str(out))
        elif spec is None:
            raise ValueError("train_run needs a spec (or resume=True)")
        check_output_folder(out, overwrite=overwrite, marker=RUN_MARKER)
        if out.is_dir() and any(out.iterdir()):
            check_foreign_files(out)  # refused before training, not after
        spec = resolve_spec(spec)
        Recommender(spec.model, random_state=spec.seed, **spec.params)  # options are valid before any work
        state = {"spec": asdict(spec), "overwrite": overwrite}
        if resume:
            write_json(part / PARTIAL_SPEC, state)
        else:
            if os.path.lexists(part):
                if not (part / PARTIAL_SPEC).is_file() and not _leftover(part):
                    raise OutputExistsError(f"{part}: exists and was not written by ratecast; move it away")
                if (part / PARTIAL_SPEC).is_file() and not overwrite:
                    raise OutputExistsError(f"{out}: an interrupted run is waiting in {part.name}; continue it with "
                                            f"'ratecast train --resume {out}' or start again with --overwrite")
                if not discard_dir(part):  # an interrupted run given up (--overwrite), or a leftover
                    raise NotWritableError(f"{part}: cannot be removed (it cannot be renamed); move it away")
            with staged_dir(part, marker=PARTIAL_SPEC) as tmp:  # it appears with its spec inside
                if extra_train is not None:  # kept with the spec: a resumed run trains on them too
                    write_ratings_log(tmp / REFIT_NAME, extra_train)
                write_json(tmp / PARTIAL_SPEC, state)
        extra_train = read_log(part / REFIT_NAME) if (part / REFIT_NAME).is_file() else None
        try:
            if dataset is None and resume:  # a spec read from a file: its data is checked and never quoted
                step("loading data")
                dataset = load_stored_data(spec, str(part / PARTIAL_SPEC), progress=progress)
            metrics = _train_into(spec, out, part, overwrite=overwrite, verbose=verbose, progress=progress,
                                  dataset=dataset, step=step, distribution=distribution, extra_train=extra_train)
        except (KeyboardInterrupt, OSError, MemoryError) as exc:
            if not (resume or isinstance(exc, KeyboardInterrupt) or (part / "checkpoint").exists()):
                discard_dir(part)  # no epoch was kept (e.g. data not found): nothing to resume
            raise  # else keep the partial folder: the run can be resumed
        except BaseException:
            discard_dir(part)  # bad data, bad options or diverged: resuming cannot help
            raise
        discard_dir(part)
    return metrics


#: the most training ratings a run's training error is measured on (a sample, drawn with the run's seed, above it)
TRAIN_ERROR_RATINGS = 1_000_000


def training_error(rec, ratings: "pd.DataFrame", seed: int) -> dict[str, Any]:
    """The model's error on its training ratings (no intervals): on all of them, or on a sample of
    :data:`TRAIN_ERROR_RATINGS` drawn with ``seed`` when there are more, which the result says (``sampled_from``)."""
    import numpy as np

    from .metrics import error_report

    n = len(ratings)
    if n > TRAIN_ERROR_RATINGS:
        ratings = ratings.iloc[np.sort(np.random.default_rng(seed).choice(n, TRAIN_ERROR_RATINGS, replace=False))]
    out = error_report(ratings["rating"], rec.predict(ratings["user_id"], ratings["item_id"]), ci=False)
    return {**out, "sampled_from": n} if len(ratings) < n else out


def _train_into(spec: RunSpec, out: Path, part: Path, *, overwrite: bool, verbose, progress: bool,
                dataset: Dataset | None, step: Callable[[str], None], distribution=None,
                extra_train=None) -> dict[str, Any]:
    from .recommender import Recommender
    from .run_evaluation import LIST_USERS, write_evaluation
    from .viz import plot_loss_curves, plot_predictions

    if dataset is None:
        step("loading data")
        dataset = load_data(spec, progress=progress)
    step("splitting")
    sp = make_split(dataset, spec)
    if extra_train is not None:
        sp = S.Split(with_extra_ratings(sp.train, extra_train), sp.test)
    rec = Recommender(spec.model, random_state=spec.seed, verbose=verbose, distribution=distribution, **spec.params)
    step(f"training {spec.model}")
    t = time.perf_counter()
    rec.fit(sp.train, checkpoint_dir=part / "checkpoint")  # resumes from a checkpoint found there
    fit_s = time.perf_counter() - t
    step("evaluating")
    served = fold_in_test_users(rec, sp)
    metrics, evaluation, kept = test_metrics(rec, sp, spec.seed, served=served)
    tr, te = sp.train.ratings, sp.test.ratings
    train_metrics = training_error(rec, tr, spec.seed)
    test_pred = served.predict(te["user_id"], te["item_id"])
    with staged_dir(out, overwrite=overwrite, marker=RUN_MARKER) as tmp:
        step("writing the run")
        write_json(tmp / "run.json", {
            "spec": asdict(spec), "model_config": rec.model_config_.to_dict(),
            "training_config": rec.training_config_.to_dict(), "rating_scale": rec.rating_scale_.to_dict(),
            "dataset": dataset.name, "fit_seconds": fit_s, "epochs_run": len(rec.history_.get("loss", [])),
            "data_sha256": data_fingerprint(spec),
            **({} if extra_train is None else {"refit_ratings": len(extra_train)}),
        })
        if extra_train is not None:
            write_ratings_log(tmp / REFIT_NAME, extra_train)
        write_json(tmp / "metrics.json", {"test": metrics, "train": train_metrics,
                                          "untrained_on_train": rec.initial_train_metrics_})
        write_json(tmp / "history.json", rec.history_)
        write_json(tmp / "split.json", sp.report())
        write_evaluation(tmp, evaluation, kept, rec.item_index_.ids,
                         {"data": spec.data, "split": spec.split, "test_size": spec.test_size, "seed": spec.seed,
                          "test_users": int(sp.test.ratings["user_id"].nunique()), "list_users_limit": LIST_USERS})
        rec.save(tmp / MODEL_FOLDER)
        step("writing plots")
        plot_loss_curves(rec.history_, tmp / "plots" / "loss.png", title=f"{spec.model}: loss per epoch")
        plot_predictions(te["rating"], test_pred, tmp / "plots" / "predictions.png", title=f"{spec.model}: test set")
        manifest.write(tmp)
    return metrics


# --- refitting with the ratings given to a served run -------------------------------------------------------------
def with_extra_ratings(train: Dataset, extra) -> Dataset:
    """``train`` plus the rows of ``extra`` (user_id, item_id, rating, timestamp): for a pair in both, or given
    several times, the last rating counts (as a fold-in takes it)."""
    import pandas as pd

    extra = extra[list(train.ratings.columns.intersection(extra.columns))].copy()
    for column in ("user_id", "item_id"):  # integer ids stay integers where the data has them
        if train.ratings[column].dtype.kind in "iu" and all(type(v) is int for v in extra[column]):
            extra[column] = extra[column].astype(train.ratings[column].dtype)
    rows = pd.concat([train.ratings, extra], ignore_index=True)
    rows = rows.drop_duplicates(["user_id", "item_id"], keep="last")
    return train.with_ratings(rows, f"{train.name}+logged")


def logged_ratings(run_dir: str | os.PathLike):
    """Every rating given to the run beyond its data: those an earlier refit trained on
    (:data:`~ratecast.live_log.REFIT_NAME`), then its server's log (:data:`~ratecast.live_log.LOG_NAME`)."""
    import pandas as pd

    run_dir = Path(run_dir)
    return pd.concat([read_log(run_dir / REFIT_NAME), read_log(run_dir / LOG_NAME)], ignore_index=True)


def refit_run(run_dir: str | os.PathLike, out: str | os.PathLike, *, overwrite: bool = False,
              verbose: int | str = 0, progress: bool = True, on_step: Callable[[str], None] | None = None
              ) -> tuple[dict[str, Any], int]:
    """Train run ``run_dir``'s model again, with its options, split and seed, on its training data plus the ratings
    given to it while it was served (:func:`logged_ratings`), and write the new run at ``out`` (a folder other than
    ``run_dir``, written as :func:`train_run` writes one). Returns the test metrics and how many logged ratings
    were included."""
    run = load_run(run_dir)
    if Path(out).resolve() == Path(run_dir).resolve():
        raise OutputExistsError(f"--out {str(out)!r}: is the run being refitted; name a new folder (its ratings "
                                "log must stay until the new run is served)")
    extra = logged_ratings(run_dir)
    dataset = run.load_data(progress=progress)
    metrics = train_run(run.spec, out, overwrite=overwrite, verbose=verbose, progress=progress, dataset=dataset,
                        on_step=on_step, extra_train=extra)
    return metrics, len(extra)


# --- loading ------------------------------------------------------------------------------------------------------
@dataclass
class Run:
    """A run directory, loaded."""

    path: Path
    spec: RunSpec
    info: dict[str, Any]
    metrics: dict[str, Any]
    history: dict[str, list]
    _rec: Any = field(default=None, repr=False, compare=False)

    def recommender(self):
        """The run's fitted Recommender (loaded once)."""
        if self._rec is None:
            from .recommender import Recommender

            self._rec = Recommender.load(self.path / MODEL_FOLDER)
        return self._rec

    def load_data(self, spec: RunSpec | None = None, progress: bool = False) -> Dataset:
        """The run's data (or that of ``spec``, e.g. the same data under another split), checked first."""
        where = str(self.path / "run.json")
        if spec is None or spec.data == self.spec.data:
            check_data_unchanged(self.info, where)
        return load_stored_data(spec or self.spec, where, progress=progress)


def load_run(path: str | os.PathLike) -> Run:
    """Load and check a run directory: its manifest, and the types of what its JSON files hold."""
    path = Path(path)
    if not (path / "run.json").is_file():
        raise MissingFileError("not a ratecast run directory (no run.json); create one with "
                               "'ratecast train --out DIR'", path=str(path))
    manifest.verify(path, required=REQUIRED_FILES, sealed=(MODEL_FOLDER,))  # the model's loader checks its files
    info = read_json_object(path / "run.json")
    spec = RunSpec.from_dict(info.get("spec"), str(path / "run.json"))
    for key, kind in (("model_config", dict), ("training_config", dict), ("dataset", str),
                      ("fit_seconds", (int, float)), ("epochs_run", int)):
        if not isinstance(info.get(key), kind):
            raise IntegrityError(f"{path / 'run.json'}: field {key!r} is missing or of the wrong type")
    metrics = read_json_object(path / "metrics.json")
    for key in ("test", "train"):
        if not isinstance(metrics.get(key), dict):
            raise IntegrityError(f"{path / 'metrics.json'}: field {key!r} must be a JSON object")
    history = read_json_object(path / "history.json")
    return Run(path, spec, info, metrics, history)


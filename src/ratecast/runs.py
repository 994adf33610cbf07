"""Run directories: one trained model with its resolved config, history, test metrics and plots.

Layout of ``RUN_DIR``::

    run.json        the resolved run spec (data, split, seed, model, options) and the model/training configs
    metrics.json    test (and train) metrics, with 95% bootstrap intervals and ranking metrics
    history.json    per-epoch losses
    split.json      split report (sizes, users/items seen only in test)
    model/          the saved Recommender
    plots/          loss.png, predictions.png
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import split as S
from .datasets import Dataset, load_movielens, load_ratings
from .datasets.movielens import DATASETS
from .errors import DataError
from .io import make_temp_dir, replace_dir

SPLITS = ("holdout", "u1", "u2", "u3", "u4", "u5", "ua", "ub", "temporal", "last1")


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
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {list(SPLITS)}, got {self.split!r}")


def load_data(spec: RunSpec, progress: bool = True) -> Dataset:
    """A MovieLens release by name, or the user's own ratings file by path."""
    if spec.data in DATASETS:
        return load_movielens(spec.data, data_home=spec.data_home, progress=progress)
    path = Path(spec.data)
    if not path.exists():
        raise DataError(f"not a known dataset name ({', '.join(DATASETS)}) nor an existing file", path=spec.data)
    return load_ratings(path, **spec.data_options)


def make_split(ds: Dataset, spec: RunSpec) -> S.Split:
    if spec.split == "holdout":
        return S.holdout(ds, test_size=spec.test_size, random_state=spec.seed)
    if spec.split == "temporal":
        return S.temporal(ds, test_size=spec.test_size)
    if spec.split == "last1":
        return S.temporal_per_user(ds, n_test=1)
    return S.movielens_fold(ds, spec.split)


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, default=_jsonable))


def _jsonable(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def train_run(spec: RunSpec, out: str | os.PathLike, *, verbose: int | str = 0, progress: bool = True,
              dataset: Dataset | None = None) -> dict[str, Any]:
    """Load, split, fit, evaluate and write a run directory at ``out`` (atomically). Returns the test metrics."""
    from .metrics import error_report
    from .recommender import Recommender
    from .viz import plot_loss_curves, plot_predictions

    ds = dataset if dataset is not None else load_data(spec, progress=progress)
    sp = make_split(ds, spec)
    rec = Recommender(spec.model, random_state=spec.seed, verbose=verbose, **spec.params)
    t = time.perf_counter()
    rec.fit(sp.train)
    fit_s = time.perf_counter() - t
    metrics = rec.evaluate(sp.test)
    tr = sp.train.ratings
    train_metrics = error_report(tr["rating"], rec.predict(tr["user_id"], tr["item_id"]), ci=False)
    out = Path(out)
    tmp = make_temp_dir(out)
    try:
        _write_json(tmp / "run.json", {
            "spec": asdict(spec), "model_config": rec.model_config_.to_dict(),
            "training_config": rec.training_config_.to_dict(), "rating_scale": rec.rating_scale_.to_dict(),
            "dataset": ds.name, "fit_seconds": fit_s, "epochs_run": len(rec.history_.get("loss", [])),
        })
        _write_json(tmp / "metrics.json", {"test": metrics, "train": train_metrics,
                                       "untrained_on_train": rec.initial_train_metrics_})
        _write_json(tmp / "history.json", rec.history_)
        _write_json(tmp / "split.json", sp.report())
        rec.save(tmp / "model")
        (tmp / "plots").mkdir()
        plot_loss_curves(rec.history_, tmp / "plots" / "loss.png", title=f"{spec.model}: loss per epoch")
        te = sp.test.ratings
        plot_predictions(te["rating"], rec.predict(te["user_id"], te["item_id"]), tmp / "plots" / "predictions.png",
                         title=f"{spec.model}: test set")
        replace_dir(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return metrics


@dataclass
class Run:
    """A run directory, loaded."""

    path: Path
    spec: RunSpec
    info: dict[str, Any]
    metrics: dict[str, Any]
    history: dict[str, list]

    def recommender(self):
        from .recommender import Recommender

        return Recommender.load(self.path / "model")


def load_run(path: str | os.PathLike) -> Run:
    path = Path(path)
    if not (path / "run.json").exists():
        raise FileNotFoundError(f"{path} is not a ratecast run directory (no run.json); create one with "
                                "'ratecast train --out DIR'")
    info = json.loads((path / "run.json").read_text())
    spec = RunSpec(**info["spec"])
    metrics = json.loads((path / "metrics.json").read_text())
    history = json.loads((path / "history.json").read_text())
    return Run(path, spec, info, metrics, history)

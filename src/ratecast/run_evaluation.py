"""The evaluation kept in a run folder, and paired comparisons of saved runs.

A run's evaluation (:func:`ratecast.evaluation.evaluate` of its model on its test set) lives in ``RUN/evaluation/``::

    per_user.parquet   the per-user table, ``user_id`` first (ids keep their type): the record of every figure
    lists.parquet      the lists that were scored: ``user_id, rank, item_id``
    users.parquet      the test users' grouping columns (absent when the data has no user table)
    summary.json       what the figures were computed on (test set fingerprint, catalogue size, resampling), and the
                       summary, popularity bands, groups and gaps read from the tables, for reading without Python

The tables are the record: :func:`load_evaluation` rebuilds the :class:`~ratecast.evaluation.Evaluation` from them
(:meth:`Evaluation.from_per_user`), so a saved run is summarised, grouped and compared exactly as a fresh one. A run
written before runs kept their evaluation is evaluated on demand (its model on its data and split), and says so.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .datasets import Dataset
from .errors import DataError, IntegrityError, MissingFileError
from .evaluation import Evaluation, compare, evaluate
from .evaluation.figures import group_figures, group_labels
from .io import read_json_object, write_json, write_table

FOLDER = "evaluation"
PER_USER = f"{FOLDER}/per_user.parquet"
LISTS = f"{FOLDER}/lists.parquet"
USERS = f"{FOLDER}/users.parquet"
SUMMARY = f"{FOLDER}/summary.json"
#: a user column with more distinct values than this (and not numeric) is not a grouping (e.g. a zip code)
MAX_GROUPS = 32
#: a run's whole-catalogue lists (and the evaluation kept with it) cover at most this many test users: beyond it, a
#: sample of them drawn with the run's seed (every test rating still counts for the rating errors). The standard
#: error of recall@10 over 10,000 users is about 0.003.
LIST_USERS = 10_000
FORMAT = 1


def group_columns(users: pd.DataFrame | None) -> list[str]:
    """The user columns an evaluation is broken down by: numeric columns (cut into bands) and columns of at most
    :data:`MAX_GROUPS` distinct values; none without a user table."""
    if users is None:
        return []
    out = []
    for name in users.columns:
        column = users[name]
        numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
        if column.notna().any() and (numeric or column.nunique() <= MAX_GROUPS):
            out.append(str(name))
    return out


def test_fingerprint(test: Dataset) -> str:
    """sha256 of a test set's ratings (user, item, rating, in order): two evaluations are comparable when it is the
    same."""
    r = test.ratings[["user_id", "item_id", "rating"]]
    return hashlib.sha256(pd.util.hash_pandas_object(r, index=False).to_numpy().tobytes()).hexdigest()


def group_tables(ev: Evaluation, users: pd.DataFrame | None, by: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``ev``'s groups and gaps by user column ``by`` (the same figures as ``evaluate(..., by=by)``), computed from
    its per-user table without summarising it again."""
    labels = group_labels(ev.per_user, users, by)
    return group_figures(ev.per_user, labels, n_resamples=ev.n_resamples, random_state=ev.random_state)


@dataclass(frozen=True)
class SavedEvaluation:
    """A run's evaluation tables and what they were computed on.

    ``saved`` is False for a run written before runs kept their evaluation: the tables were computed just now."""

    per_user: pd.DataFrame
    lists: np.ndarray
    catalogue_size: int
    users: pd.DataFrame | None
    by: tuple[str, ...]
    test_sha256: str
    n_resamples: int
    random_state: int | None
    saved: bool = True

    def evaluation(self, by: str | None = None) -> Evaluation:
        """The :class:`Evaluation`, rebuilt from the tables (grouped by user column ``by`` if given)."""
        if by is not None and by not in self.by:
            raise ValueError(f"by must be one of the run's user columns {list(self.by)}, got {by!r}")
        return Evaluation.from_per_user(self.per_user, self.lists, self.catalogue_size, users=self.users, by=by,
                                        n_resamples=self.n_resamples, random_state=self.random_state)


def kept(ev: Evaluation, users: pd.DataFrame | None, test_sha256: str, *, saved: bool) -> SavedEvaluation:
    """What is kept of evaluation ``ev``: its tables, and the test users' rows of the grouping columns of
    ``users`` (see :func:`group_columns`)."""
    by = group_columns(users)
    kept_users = users.loc[users.index.isin(ev.per_user.index), by] if by else None
    return SavedEvaluation(ev.per_user, ev.lists, ev.catalogue_size, kept_users, tuple(by), test_sha256,
                           ev.n_resamples, ev.random_state, saved=saved)


def list_sample(test: Dataset, limit: int | None = LIST_USERS, random_state: int | None = 0) -> Dataset:
    """``test`` restricted to at most ``limit`` of its users (a sample drawn with ``random_state``, in the test set's
    order), or ``test`` itself when it has no more users than that (or ``limit`` is None)."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive integer or None, got {limit!r}")
    users = pd.unique(test.ratings["user_id"])
    if limit is None or len(users) <= limit:
        return test
    chosen = np.random.default_rng(random_state).choice(len(users), size=limit, replace=False)
    keep = test.ratings["user_id"].isin(users[np.sort(chosen)])
    return test.with_ratings(test.ratings.loc[keep].reset_index(drop=True))


def evaluate_test(rec, test: Dataset, *, limit: int | None = LIST_USERS, random_state: int | None = 0
                  ) -> tuple[Evaluation, SavedEvaluation]:
    """Evaluate ``rec`` on ``test`` (see :func:`ratecast.evaluation.evaluate`), on :func:`list_sample`'s users when
    the test set has more than ``limit``: the evaluation, and what a run keeps of it (its ``test_sha256`` is that of
    the whole test set, so runs of one split stay comparable)."""
    ev = evaluate(rec, list_sample(test, limit, random_state))
    users = test.users if test.users is not None else rec.users
    return ev, kept(ev, users, test_fingerprint(test), saved=False)


def list_metrics(rec, test: Dataset, ev: Evaluation) -> dict[str, Any]:
    """``rec.top_n_metrics(test)`` for the users ``ev`` evaluated (``test`` restricted to them), scored on the lists
    that ``ev`` holds instead of ranking the catalogue again; ``top_n_users`` of ``test_users`` were listed."""
    users = test.ratings["user_id"].isin(ev.per_user.index)
    sample = test if users.all() else test.with_ratings(test.ratings.loc[users].reset_index(drop=True))
    index = rec.user_index_.index(ev.per_user.index.to_numpy())
    known = np.flatnonzero(index > 0)  # list_metrics asks for known users only (the others get its fallback)
    rows = pd.Index(index[known])

    def top_positions(user_index: np.ndarray, depth: int) -> np.ndarray:
        return ev.lists[known[rows.get_indexer(user_index)], :depth]

    out = rec.list_metrics(sample, top_positions=top_positions)
    out["top_n_users"] = int(len(ev.per_user))
    out["test_users"] = int(test.ratings["user_id"].nunique())
    return out


def write_evaluation(folder: str | os.PathLike, ev: Evaluation, saved: SavedEvaluation, catalogue: np.ndarray,
                     split: dict[str, Any]) -> None:
    """Write evaluation ``ev`` (and ``saved``, what is kept of it) into ``folder/evaluation/``, each file
    atomically. ``catalogue``: the item ids the lists' positions index; ``split``: what the test set is."""
    folder = Path(folder)
    write_table(saved.per_user.rename_axis("user_id").reset_index(), folder / PER_USER)
    rows, ranks = np.nonzero(saved.lists >= 0)
    write_table(pd.DataFrame({"user_id": saved.per_user.index.to_numpy()[rows], "rank": ranks + 1,
                              "item_id": np.asarray(catalogue)[saved.lists[rows, ranks]]}), folder / LISTS)
    if saved.users is not None:
        write_table(saved.users.rename_axis("user_id").reset_index(), folder / USERS)
    groups = {by: group_tables(ev, saved.users, by) for by in saved.by}
    write_json(folder / SUMMARY, {
        "format": FORMAT, "test_sha256": saved.test_sha256, "split": split, "users": len(saved.per_user),
        "catalogue_size": saved.catalogue_size, "n_resamples": saved.n_resamples,
        "random_state": saved.random_state, "by": list(saved.by),
        "summary": ev.summary.reset_index().to_dict("records"),
        "bands": ev.bands.reset_index().to_dict("records"),
        "groups": {by: g.reset_index().to_dict("records") for by, (g, _) in groups.items()},
        "gaps": {by: gaps.reset_index().to_dict("records") for by, (_, gaps) in groups.items()},
    })


def has_evaluation(run) -> bool:
    """Whether run folder ``run`` keeps its evaluation."""
    return (Path(run.path) / SUMMARY).is_file()


def read_evaluation(run, *, on_demand: bool = True) -> SavedEvaluation:
    """The evaluation kept in ``run`` (a loaded :class:`~ratecast.runs.Run`). A run without one (written before
    runs kept their evaluation) is evaluated now on its data and split when ``on_demand``, else refused with
    :class:`MissingFileError`."""
    if not has_evaluation(run):
        if not on_demand:
            raise MissingFileError(f"the run keeps no evaluation (no {SUMMARY}: it was written before runs kept "
                                   "one); evaluate it on demand or train it again", path=str(run.path))
        from .runs import make_split

        return evaluate_test(run.recommender(), make_split(run.load_data(), run.spec).test,
                             random_state=run.spec.seed)[1]
    path = Path(run.path)
    info = read_json_object(path / SUMMARY)
    where = str(path / SUMMARY)
    for key, kind in (("test_sha256", str), ("catalogue_size", int), ("n_resamples", int), ("by", list)):
        if not isinstance(info.get(key), kind) or isinstance(info.get(key), bool):
            raise IntegrityError(f"{where}: field {key!r} is missing or of the wrong type")
    seed = info.get("random_state")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise IntegrityError(f"{where}: field 'random_state' must be an integer or null")
    per_user = _read(path / PER_USER, ("user_id", "n_test", "n_relevant")).set_index("user_id")
    lists = _read(path / LISTS, ("user_id", "rank", "item_id"))
    rows = per_user.index.get_indexer(lists["user_id"])
    ranks = lists["rank"].to_numpy()
    if (rows < 0).any() or (ranks < 1).any():
        raise IntegrityError(f"{path / LISTS}: holds users or ranks that {PER_USER} does not")
    codes, items = pd.factorize(lists["item_id"])
    if len(items) > info["catalogue_size"]:
        raise IntegrityError(f"{path / LISTS}: lists {len(items)} items, more than the catalogue's "
                             f"{info['catalogue_size']} ({where})")
    positions = np.full((len(per_user), max(int(ranks.max(initial=0)), 1)), -1, "int64")
    positions[rows, ranks - 1] = codes
    by = tuple(str(b) for b in info["by"])
    users = _read(path / USERS, ("user_id", *by)).set_index("user_id") if by else None
    return SavedEvaluation(per_user, positions, info["catalogue_size"], users, by, info["test_sha256"],
                           info["n_resamples"], seed, saved=True)


def _read(path: Path, columns: Sequence[str]) -> pd.DataFrame:
    if not path.is_file():
        raise MissingFileError("evaluation table not found", path=str(path))
    try:
        table = pd.read_parquet(path)
    except Exception as exc:  # the manifest vouched for the bytes: a table that does not read is corrupted
        raise IntegrityError(f"{path}: not a readable Parquet table ({type(exc).__name__})") from None
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise IntegrityError(f"{path}: column(s) {missing} missing")
    return table


def load_evaluation(run, by: str | None = None, *, on_demand: bool = True) -> Evaluation:
    """The :class:`~ratecast.evaluation.Evaluation` of run ``run`` (a :class:`~ratecast.runs.Run` or its folder),
    rebuilt from its saved tables (grouped by user column ``by`` if given); see :func:`read_evaluation` for runs
    that keep none."""
    return read_evaluation(_as_run(run), on_demand=on_demand).evaluation(by)


def _as_run(run):
    from .runs import Run, load_run

    return run if isinstance(run, Run) else load_run(run)


def run_names(runs: Sequence) -> list[str]:
    """A name per run: its folder's name, or its path where two folders share a name."""
    names = [Path(r.path).name for r in runs]
    return names if len(set(names)) == len(names) else [str(r.path) for r in runs]


def split_label(run) -> str:
    """What a run's test set is, in words (data, split, and the seed and size of a random hold-out)."""
    s = run.spec
    extra = f" test_size {s.test_size} seed {s.seed}" if s.split == "holdout" else ""
    return f"{run.info.get('dataset', s.data)} {s.split}{extra}"


def saved_evaluations(runs: Sequence) -> tuple[list, dict[str, SavedEvaluation]]:
    """The runs (loaded) and their evaluations by run name, refused with one line (:class:`DataError`) unless every
    run was evaluated on the same test set with the same resampling."""
    runs = [_as_run(r) for r in runs]
    if len(runs) < 2:
        raise ValueError(f"runs must name at least two run folders, got {len(runs)}")
    folders = [Path(r.path).resolve() for r in runs]
    twice = next((r.path for k, r in enumerate(runs) if folders[k] in folders[:k]), None)
    if twice is not None:
        raise ValueError(f"runs must be different run folders, got {str(twice)!r} twice")
    names = run_names(runs)
    saved = {name: read_evaluation(run) for name, run in zip(names, runs)}
    first, ref = runs[0], saved[names[0]]
    for name, run in zip(names[1:], runs[1:]):
        s = saved[name]
        if s.test_sha256 != ref.test_sha256:
            raise DataError(f"compare: run {run.path} was evaluated on another test set ({split_label(run)}) than "
                            f"{first.path} ({split_label(first)}); compare runs of the same data and split")
        if (s.n_resamples, s.random_state) != (ref.n_resamples, ref.random_state):
            raise DataError(f"compare: run {run.path} was resampled otherwise (n_resamples {s.n_resamples}, "
                            f"random_state {s.random_state}) than {first.path} ({ref.n_resamples}, "
                            f"{ref.random_state})")
    return runs, saved


def compare_evaluations(evaluations: dict[str, Evaluation], *, alpha: float = 0.05) -> pd.DataFrame:
    """:func:`ratecast.evaluation.compare` of evaluations of one test set, resampled as they were."""
    first = next(iter(evaluations.values()))
    return compare(evaluations, alpha=alpha, n_resamples=first.n_resamples, random_state=first.random_state)


def compare_runs(runs: Sequence, *, alpha: float = 0.05) -> pd.DataFrame:
    """Paired comparison of saved runs (:class:`~ratecast.runs.Run` objects or folders) on their common test set,
    through :func:`ratecast.evaluation.compare`: one row per metric and pair of runs (named by folder), with the
    difference, its 95% interval, the Holm-corrected p-value and ``significant``. Runs of different data or splits
    are refused with one line (:class:`DataError`)."""
    _, saved = saved_evaluations(runs)
    return compare_evaluations({name: s.evaluation() for name, s in saved.items()}, alpha=alpha)

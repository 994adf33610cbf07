"""Train/test splits. Every split returns a :class:`Split` (unpacks as ``train, test``) of :class:`Dataset` objects
that keep the full item/user metadata; users and items seen only in test are reported, not hidden."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np
import pandas as pd

from .datasets.dataset import Dataset
from .datasets.readers import read_delimited
from .datasets.validate import validate_ratings
from .errors import DataError, MissingFileError

log = logging.getLogger(__name__)

MOVIELENS_FOLDS = ("u1", "u2", "u3", "u4", "u5", "ua", "ub")


class Split(NamedTuple):
    """A train/test pair. ``cold_users``/``cold_items`` are ids found in test but never in train."""

    train: Dataset
    test: Dataset

    @property
    def cold_users(self) -> np.ndarray:
        return _only_in_test(self.test.ratings["user_id"], self.train.ratings["user_id"])

    @property
    def cold_items(self) -> np.ndarray:
        return _only_in_test(self.test.ratings["item_id"], self.train.ratings["item_id"])

    def report(self) -> dict:
        cu, ci = self.cold_users, self.cold_items
        test = self.test.ratings
        cold_rows = test["user_id"].isin(cu) | test["item_id"].isin(ci)
        return {
            "n_train": int(len(self.train.ratings)),
            "n_test": int(len(test)),
            "n_cold_users": int(len(cu)),
            "n_cold_items": int(len(ci)),
            "n_test_ratings_with_cold_id": int(cold_rows.sum()),
        }


def _only_in_test(test: pd.Series, train: pd.Series) -> np.ndarray:
    """Ids of ``test`` absent from ``train`` (first-seen order; works for mixed int and text ids)."""
    ids = pd.unique(test.to_numpy())
    return ids[~pd.Series(ids).isin(train.unique()).to_numpy()]


def _check_dataset(ds, name: str = "ds") -> None:
    if not isinstance(ds, Dataset):
        raise TypeError(f"{name} must be a ratecast Dataset, got {type(ds).__name__}")


def _check_seed(random_state) -> None:
    if random_state is not None and (isinstance(random_state, bool) or not isinstance(random_state, (int, np.integer))
                                     or not 0 <= random_state < 2**32):
        raise ValueError(f"random_state must be an integer in [0, 2**32) or None, got {random_state!r}")


def _make(ds: Dataset, train: pd.DataFrame, test: pd.DataFrame, label: str) -> Split:
    split = Split(ds.with_ratings(train, f"{ds.name}:{label}:train"), ds.with_ratings(test, f"{ds.name}:{label}:test"))
    rep = split.report()
    if rep["n_cold_users"] or rep["n_cold_items"]:
        log.info(
            "%s split: %d users and %d items appear only in test (%d test ratings)",
            label, rep["n_cold_users"], rep["n_cold_items"], rep["n_test_ratings_with_cold_id"],
        )
    return split


def _check_fraction(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ValueError(f"{name} must be a fraction in (0, 1), got {value!r}")


def _check_sizes(split: str, n: int, n_test: int, arg: str) -> None:
    """Refuse a split of ``n`` ratings with ``n_test`` of them to test that leaves either side empty."""
    if n < 2:
        raise DataError(f"{split} needs at least 2 ratings to split with {arg}, got {n}")
    for side, empty in (("test", n_test < 1), ("train", n_test >= n)):
        if empty:
            raise DataError(
                f"{split} with {arg} would leave the {side} set empty: {n} ratings, {n_test} of them to test"
            )


def holdout(ds: Dataset, test_size: float = 0.2, random_state: int | None = 0) -> Split:
    """Random holdout, row for row equal to the lab's ``train_test_split(all_ratings, test_size, random_state)``.

    The lab splits its merged ratings table, whose rows are ordered by item id (file order within an item), so the
    ratings are put in that order before the shuffle.
    """
    from sklearn.model_selection import train_test_split

    _check_dataset(ds)
    _check_seed(random_state)
    _check_fraction("test_size", test_size)
    n = len(ds.ratings)
    _check_sizes("holdout", n, math.ceil(test_size * n), f"test_size={test_size!r}")
    ordered = ds.ratings.sort_values("item_id", kind="stable").reset_index(drop=True)
    train, test = train_test_split(ordered, test_size=test_size, random_state=random_state)
    return _make(ds, train, test, "holdout")


def validation_split(train: Dataset, fraction: float = 0.1, random_state: int | None = 0) -> Split:
    """Hold out a random ``fraction`` of a training set for validation (early stopping, model selection), except that
    every user and every item keeps at least one rating in the fitting part (the first of its held-out ratings goes
    back): no training user or item becomes unknown to a model fitted on it, and none can then be recommended an item
    it rated."""
    from sklearn.model_selection import train_test_split

    _check_dataset(train, "train")
    _check_seed(random_state)
    _check_fraction("fraction", fraction)
    r = train.ratings
    n = len(r)
    _check_sizes("validation_split", n, math.ceil(fraction * n), f"fraction={fraction!r}")
    fit_rows, val_rows = train_test_split(np.arange(n), test_size=fraction, random_state=random_state)
    held = np.zeros(n, bool)
    held[val_rows] = True
    for column in ("user_id", "item_id"):
        codes = pd.factorize(r[column])[0]
        kept = np.bincount(codes[~held], minlength=codes.max() + 1) > 0
        lost = val_rows[held[val_rows] & ~kept[codes[val_rows]]]  # held out, of ids left without a fitting rating
        _, first = np.unique(codes[lost], return_index=True)
        held[lost[first]] = False
    back = val_rows[~held[val_rows]]  # in the split's order, after the fitting part it drew
    return _make(train, r.iloc[np.concatenate([fit_rows, back])], r.iloc[val_rows[held[val_rows]]], "validation")


def movielens_fold(ds: Dataset, fold: str, folder: str | Path | None = None) -> Split:
    """The canonical ML-100k folds ``u1``..``u5`` (5-fold) and ``ua``/``ub`` (10 ratings per user in test)."""
    _check_dataset(ds)
    if fold not in MOVIELENS_FOLDS:
        raise ValueError(f"fold must be one of {MOVIELENS_FOLDS}, got {fold!r}")
    base = Path(folder) if folder is not None else (Path(ds.source) if ds.source else None)
    if base is None or not (base / f"{fold}.base").exists():
        raise MissingFileError(f"canonical fold files {fold}.base/{fold}.test not found (pass folder=)", path=str(base))
    parts = []
    for suffix in ("base", "test"):
        path = base / f"{fold}.{suffix}"
        raw = read_delimited(path, sep="\t", names=["user_id", "item_id", "rating", "timestamp"])
        df, _ = validate_ratings(raw, path=str(path), rating_scale=ds.rating_scale)
        parts.append(df)
    return _make(ds, parts[0], parts[1], fold)


def kfold(ds: Dataset, n_splits: int = 5, random_state: int | None = 0, shuffle: bool = True) -> Iterator[Split]:
    """K random folds over the ratings; each rating is in exactly one test fold."""
    _check_dataset(ds)
    _check_seed(random_state)
    if isinstance(n_splits, bool) or not isinstance(n_splits, (int, np.integer)) or n_splits < 2:
        raise ValueError(f"n_splits must be an integer >= 2, got {n_splits!r}")
    from sklearn.model_selection import KFold

    r = ds.ratings
    if len(r) < n_splits:
        raise DataError(f"kfold needs at least n_splits={n_splits} ratings, got {len(r)}")
    kf = KFold(n_splits=n_splits, shuffle=shuffle, random_state=random_state if shuffle else None)
    for i, (tr, te) in enumerate(kf.split(r)):
        yield _make(ds, r.iloc[tr], r.iloc[te], f"fold{i + 1}")


def _timestamps(ds: Dataset) -> pd.Series:
    _check_dataset(ds)
    raw = ds.ratings["timestamp"]
    missing = raw.isna()
    if missing.any():
        raise DataError(f"temporal split needs a timestamp on every rating; {int(missing.sum())} are missing")
    ts = pd.to_numeric(raw, errors="coerce")
    if ts.isna().any():  # dates as text
        dates = pd.to_datetime(raw, errors="coerce", utc=True, format="mixed")
        bad = dates.isna().to_numpy()
        if bad.any():
            raise DataError(f"timestamp must be a number (seconds since 1970) or a date, got "
                            f"{raw.iloc[int(np.flatnonzero(bad)[0])]!r}")
        ts = (dates - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    return ts


def temporal(ds: Dataset, test_size: float = 0.2) -> Split:
    """Global time cut: the latest ``test_size`` fraction of ratings (by timestamp) form the test set."""
    _check_fraction("test_size", test_size)
    ts = _timestamps(ds)
    n = len(ds.ratings)
    n_test = int(round(n * test_size))
    _check_sizes("temporal", n, n_test, f"test_size={test_size!r}")
    order = np.argsort(ts.to_numpy(), kind="stable")
    test_rows = np.zeros(len(order), dtype=bool)
    test_rows[order[len(order) - n_test:]] = True
    r = ds.ratings
    return _make(ds, r[~test_rows], r[test_rows], "temporal")


def temporal_per_user(ds: Dataset, n_test: int = 1, min_train: int = 1) -> Split:
    """Leave-last-N-out: each user's ``n_test`` latest ratings go to test (users keep at least ``min_train``)."""
    if isinstance(n_test, bool) or not isinstance(n_test, int) or n_test < 1:
        raise ValueError(f"n_test must be an integer >= 1, got {n_test!r}")
    if not isinstance(min_train, int) or isinstance(min_train, bool) or min_train < 0:
        raise DataError(f"min_train must be an integer >= 0, got {min_train!r}")
    ts = _timestamps(ds)
    r = ds.ratings.assign(_ts=ts.to_numpy(), _row=np.arange(len(ds.ratings)))
    r = r.sort_values(["user_id", "_ts", "_row"], kind="stable")
    rank_from_end = r.groupby("user_id").cumcount(ascending=False)
    size = r.groupby("user_id")["_row"].transform("size")
    is_test = (rank_from_end < n_test) & (size - n_test >= min_train)
    test_rows = np.zeros(len(r), dtype=bool)
    test_rows[r["_row"].to_numpy()[is_test.to_numpy()]] = True
    args = f"n_test={n_test}, min_train={min_train}"
    if not test_rows.any():
        raise DataError(f"temporal_per_user with {args} would leave the test set empty: "
                        f"no user has {n_test + min_train} ratings")
    if test_rows.all():
        raise DataError(f"temporal_per_user with {args} would leave the train set empty: every rating goes to test")
    orig = ds.ratings
    return _make(ds, orig[~test_rows], orig[test_rows], f"last{n_test}")


class HeldOutSplit(NamedTuple):
    """Held-out users: ``train`` holds none of their ratings; ``fold_in`` holds what the model may learn about them
    (fold-in) and ``test`` what it is scored on. ``cold_items`` are ids rated only by held-out users (absent from
    ``train``), reported like :attr:`Split.cold_items`, never hidden."""

    train: Dataset
    fold_in: Dataset
    test: Dataset

    @property
    def held_out_users(self) -> np.ndarray:
        """Ids of the held-out users (first-seen order in the ratings)."""
        return pd.unique(pd.concat([self.fold_in.ratings["user_id"], self.test.ratings["user_id"]]).to_numpy())

    @property
    def cold_items(self) -> np.ndarray:
        held = pd.concat([self.fold_in.ratings["item_id"], self.test.ratings["item_id"]])
        return _only_in_test(held, self.train.ratings["item_id"])

    def report(self) -> dict:
        ci = self.cold_items
        test = self.test.ratings
        return {
            "n_train": int(len(self.train.ratings)),
            "n_fold_in": int(len(self.fold_in.ratings)),
            "n_test": int(len(test)),
            "n_held_out_users": int(len(self.held_out_users)),
            "n_cold_items": int(len(ci)),
            "n_test_ratings_with_cold_id": int(test["item_id"].isin(ci).sum()),
        }


def held_out_users(ds: Dataset, users: float | int = 0.1, fold_in: float = 0.8,
                   random_state: int | None = 0) -> HeldOutSplit:
    """Hold out whole users: ``users`` (a fraction of all users, or a count) drawn at random among the users with at
    least 2 ratings; none of their ratings is in ``train``. Each held-out user's ratings are shuffled and split:
    ``round(fold_in * n)`` of them (at least 1, at most n - 1) go to ``fold_in``, the rest to ``test``, so every
    held-out user has at least one rating on each side. Users with a single rating are never held out (they stay in
    ``train``): one rating cannot be both learned from and tested. Every rating lands in exactly one of the three.
    """
    _check_dataset(ds)
    _check_seed(random_state)
    _check_fraction("fold_in", fold_in)
    r = ds.ratings
    per_user = r.groupby("user_id", sort=False).size()
    n_all = len(per_user)
    if isinstance(users, bool) or not isinstance(users, (int, np.integer, float)):
        raise ValueError(f"users must be a fraction in (0, 1) or a count >= 1, got {users!r}")
    if isinstance(users, float):
        _check_fraction("users", users)
        n_held = max(1, int(round(users * n_all)))
    else:
        if users < 1:
            raise ValueError(f"users must be a fraction in (0, 1) or a count >= 1, got {users!r}")
        n_held = int(users)
    eligible = per_user.index[per_user.to_numpy() >= 2]
    if n_held > len(eligible) or n_held >= n_all:
        raise DataError(f"held_out_users with users={users!r} needs {n_held} users with at least 2 ratings and at "
                        f"least one user left to train on; the data has {len(eligible)} such users of {n_all}")
    rng = np.random.default_rng(random_state)
    chosen = eligible[np.sort(rng.choice(len(eligible), n_held, replace=False))]
    held = r["user_id"].isin(chosen).to_numpy()
    # a random order within each held-out user: the first round(fold_in * n) (clipped to 1..n-1) fold in
    rows = np.flatnonzero(held)
    keys = pd.DataFrame({"user": r["user_id"].to_numpy()[rows], "key": rng.random(len(rows))})
    rank = keys.groupby("user", sort=False)["key"].rank(method="first").to_numpy() - 1
    size = keys.groupby("user", sort=False)["key"].transform("size").to_numpy()
    n_fold = np.clip(np.round(fold_in * size), 1, size - 1)
    is_fold = np.zeros(len(r), dtype=bool)
    is_fold[rows[rank < n_fold]] = True
    is_test = held & ~is_fold
    split = HeldOutSplit(ds.with_ratings(r[~held], f"{ds.name}:held_out:train"),
                         ds.with_ratings(r[is_fold], f"{ds.name}:held_out:fold_in"),
                         ds.with_ratings(r[is_test], f"{ds.name}:held_out:test"))
    rep = split.report()
    if rep["n_cold_items"]:
        log.info("held_out_users split: %d items appear only in held-out users' ratings (%d test ratings)",
                 rep["n_cold_items"], rep["n_test_ratings_with_cold_id"])
    return split

"""Blending (stacking) fitted recommenders: ``rc.Blend([rc.Recommender("bayesian"), rc.Recommender("biased_dot")])``.

:meth:`Blend.fit` carves a validation share from the training set, fits every member on the rest, learns the blend
on the members' validation predictions (non-negative weights and an intercept, by least squares), then refits every
member on the whole training set. The test set never takes part: all of it happens inside ``fit(train)``.

A blend predicts ``intercept + sum_m weight_m * prediction_m`` (clipped to the rating scale), ranks every item a user
has not rated by that blended rating, and saves to and loads from a folder like a single recommender.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import nnls

from . import manifest, metrics as M
from .datasets.dataset import Dataset
from .errors import MissingFileError, NotFittedError
from .integrity import NoneType, check_fields, finite, require
from .io import read_json_object
from .recommender import Recommender, check_dataset, check_flag, id_array
from .split import validation_split
from .state import BLEND_META as META, META as RECOMMENDER_META
from .topn import KS as TOPN_KS, LONG_TAIL

FORMAT_VERSION = 2  # 1: saved before blends were checksummed (no format_version, no MANIFEST.json)
#: every key of blend.json and its JSON kinds
SCHEMA = {"kind": (str,), "format_version": (int,), "members": (int,), "weights": (list,), "intercept": (float,),
          "validation_split": (float,), "random_state": (int, NoneType), "refit": (bool,), "validation": (dict,),
          "fit_seconds": (float,)}


class Blend:
    """Recommenders whose predicted ratings are combined with weights learned on validation data (see the module
    docstring). ``members``: unfitted (or fitted: they are refitted) :class:`~ratecast.Recommender` objects."""

    def __init__(self, members: Sequence[Recommender], *, validation_split: float = 0.1,
                 random_state: int | None = None, refit: bool = True):
        if isinstance(members, (str, bytes)) or not hasattr(members, "__len__") or len(members) < 1:
            raise ValueError(f"members must be a non-empty list of ratecast Recommenders, got {members!r}")
        for k, m in enumerate(members):
            if not isinstance(m, Recommender):
                raise TypeError(f"members[{k}] must be a ratecast Recommender, got {type(m).__name__}")
        if isinstance(validation_split, bool) or not isinstance(validation_split, (int, float)) \
                or not 0 < validation_split < 1:
            raise ValueError(f"validation_split must be a number in (0, 1), got {validation_split!r}")
        check_flag("refit", refit)
        self.members = list(members)
        self.validation_split = float(validation_split)
        self.random_state = random_state
        self.refit = bool(refit)
        self.weights_: np.ndarray | None = None
        self.intercept_: float = 0.0
        self.validation_: dict[str, Any] = {}
        self.fit_seconds_: float = 0.0

    # --- fitting ------------------------------------------------------------------------------------------------
    def fit(self, train: Dataset) -> "Blend":
        """Fit the members and learn the blend on a validation share of ``train`` (see the module docstring)."""
        check_dataset("train", train)
        train.check_ratings("train")
        start = time.perf_counter()
        fit_part, val = validation_split(train, self.validation_split, random_state=self.random_state)
        fresh = [Recommender(m.model, random_state=m.random_state, verbose=m.verbose, **m.params)
                 for m in self.members]
        vr = val.ratings
        y = vr["rating"].to_numpy(dtype="float64")
        preds = np.column_stack([m.fit(fit_part).predict(vr["user_id"], vr["item_id"], vr["timestamp"])
                                 for m in fresh])
        weights, intercept = stack(preds, y)
        blended = np.clip(intercept + preds @ weights, *self._scale_of(fresh[0]))
        self.validation_ = {"n": int(len(y)), "rmse": M.rmse(y, blended), "mae": M.mae(y, blended),
                            "member_rmse": [M.rmse(y, p) for p in preds.T]}
        if self.refit:
            fresh = [Recommender(m.model, random_state=m.random_state, verbose=m.verbose, **m.params).fit(train)
                     for m in self.members]
        self.members, self.weights_, self.intercept_ = fresh, weights, intercept
        self.fit_seconds_ = time.perf_counter() - start
        return self

    @property
    def fitted(self) -> bool:
        return self.weights_ is not None

    def _check_fitted(self) -> None:
        if not self.fitted:
            raise NotFittedError("this Blend is not fitted yet: call fit(train) first")

    @staticmethod
    def _scale_of(member: Recommender) -> tuple[float, float]:
        s = member.state_.rating_scale
        return s.minimum, s.maximum

    # --- predicting ---------------------------------------------------------------------------------------------
    def predict(self, user_ids, item_ids, timestamps=None) -> np.ndarray:
        """Blended ratings for (user, item) pairs of raw ids (unknown ids: each member's fallback); ``timestamps``
        reach the members that use the day of a rating."""
        self._check_fitted()
        preds = np.column_stack([m.predict(user_ids, item_ids, timestamps) for m in self.members])
        return np.clip(self.intercept_ + preds @ self.weights_, *self._scale_of(self.members[0]))

    def predict_details(self, user_ids, item_ids, timestamps=None) -> pd.DataFrame:
        """Blended predictions with the flags of :meth:`Recommender.predict_details`: ``was_impossible`` where any
        member fell back to its baseline."""
        self._check_fitted()
        details = [m.predict_details(user_ids, item_ids, timestamps) for m in self.members]
        preds = np.column_stack([d["prediction"].to_numpy() for d in details])
        out = details[0].copy()
        out["prediction"] = np.clip(self.intercept_ + preds @ self.weights_, *self._scale_of(self.members[0]))
        out["was_impossible"] = np.logical_or.reduce([d["was_impossible"].to_numpy() for d in details])
        return out

    # --- folding in ----------------------------------------------------------------------------------------------
    def fold_in(self, ratings: pd.DataFrame) -> "Blend":
        """A NEW blend whose members each folded in ``ratings`` (see :meth:`Recommender.fold_in`), with the same
        blend weights; this one is left as it was."""
        self._check_fitted()
        return self._with_members([m.fold_in(ratings) for m in self.members])

    def update(self, ratings: pd.DataFrame) -> "Blend":
        """:meth:`fold_in` that also adds the ratings to every member's training data (:meth:`Recommender.update`)."""
        self._check_fitted()
        return self._with_members([m.update(ratings) for m in self.members])

    def _with_members(self, members: list[Recommender]) -> "Blend":
        import copy

        new = copy.copy(self)
        new.members = members
        return new

    def _scores(self, users: np.ndarray) -> np.ndarray:
        """Blended ratings of every known item (rows: the first member's user indices)."""
        first = self.members[0].state_
        items = first.item_index.ids
        raw_users = first.user_index.raw(users)
        return self.predict(np.repeat(raw_users, len(items)), np.tile(items, len(users))).reshape(len(users), -1)

    def _lists(self, users: np.ndarray, k: int, *, exclude_seen: bool = True, exclude=None,
               min_ratings: int | None = None, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
        first = self.members[0]
        pos, score = [], []
        for start in range(0, len(users), batch):
            chunk = users[start:start + batch]
            allowed = first.candidates.mask(chunk, exclude_seen=exclude_seen, exclude=exclude,
                                             min_ratings=min_ratings)
            s = np.where(allowed, self._scores(chunk), -np.inf)
            top = np.argsort(-s, axis=1, kind="stable")[:, :k]
            val = np.take_along_axis(s, top, axis=1)
            pos.append(np.where(np.isfinite(val), top, -1))
            score.append(np.where(np.isfinite(val), val, np.nan))
        if not pos:
            return np.zeros((0, k), "int64"), np.zeros((0, k))
        return np.concatenate(pos), np.concatenate(score)

    def recommend(self, user_id, k: int = 10, exclude_seen: bool = True, exclude=None,
                  min_ratings: int | None = None) -> pd.DataFrame:
        """Top-``k`` items by blended rating among those ``user_id`` has not rated (as :meth:`Recommender.recommend`,
        whose candidates, ``min_ratings`` rule and unknown-user fallback it shares)."""
        self._check_fitted()
        first = self.members[0]
        first.check_k(k)
        check_flag("exclude_seen", exclude_seen)
        u = int(first.state_.user_index.index(id_array("user_id", [user_id]))[0])
        if u == 0:
            return first.recommend(user_id, k, exclude_seen=exclude_seen, exclude=exclude, min_ratings=min_ratings)
        pos, score = self._lists(np.array([u]), k, exclude_seen=exclude_seen, exclude=exclude,
                                 min_ratings=min_ratings)
        keep = pos[0] >= 0
        return first.item_frame(pos[0][keep], score[0][keep], "score")

    # --- evaluating ---------------------------------------------------------------------------------------------
    def top_n_metrics(self, test: Dataset, *, ks=TOPN_KS, threshold: float | None = None,
                      long_tail: int = LONG_TAIL, min_ratings: int | None = None) -> dict[str, Any]:
        """Whole-catalogue list metrics of the blended ranking (the protocol of
        :meth:`Recommender.top_n_metrics`; ``threshold`` defaults to the scale's ``liked_threshold``)."""
        self._check_fitted()
        return self.members[0].list_metrics(
            test, ks=ks, threshold=threshold, long_tail=long_tail,
            top_positions=lambda users, depth: self._lists(users, depth, min_ratings=min_ratings)[0])

    def evaluate(self, test: Dataset, *, k: int = 10, threshold: float | None = None, ci: bool = True,
                 n_resamples: int = 1000, top_n: bool = True) -> dict[str, Any]:
        """Rating error (95% bootstrap intervals) and, with ``top_n``, whole-catalogue list metrics on ``test``."""
        self._check_fitted()
        check_dataset("test", test)
        test.check_ratings("test")
        r = test.ratings
        y = r["rating"].to_numpy(dtype="float64")
        out = M.error_report(y, self.predict(r["user_id"].to_numpy(), r["item_id"].to_numpy(), r["timestamp"]), ci=ci,
                             n_resamples=n_resamples, random_state=self.random_state)
        if top_n:
            out.update(self.top_n_metrics(test, ks=sorted({*TOPN_KS, int(k)}), threshold=threshold))
        return out

    # --- persistence --------------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write the blend to folder ``path``: ``blend.json`` and one saved recommender per member (atomically)."""
        from .io import output_dir, write_json

        self._check_fitted()
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a folder path, got {path!r}")
        check_flag("overwrite", overwrite)
        with output_dir(Path(path), overwrite=overwrite, marker=META, option="path",
                        overwrite_hint="pass overwrite=True") as tmp:
            for k, m in enumerate(self.members):
                m.state_.save(_member_dir(tmp, k, create=True))
            write_json(tmp / META, {"kind": "blend", "format_version": FORMAT_VERSION, "members": len(self.members),
                                    "weights": [float(w) for w in self.weights_], "intercept": float(self.intercept_),
                                    "validation_split": self.validation_split, "random_state": self.random_state,
                                    "refit": self.refit, "validation": self.validation_,
                                    "fit_seconds": self.fit_seconds_})
            manifest.write(tmp)
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Blend":
        """Load a blend written by :meth:`save`: ``blend.json`` and every file are verified against the folder's
        ``MANIFEST.json``, every key of ``blend.json`` is checked, and each member is loaded as
        :meth:`Recommender.load` does (:class:`~ratecast.errors.IntegrityError` when anything was corrupted)."""
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a folder path, got {path!r}")
        path = Path(path)
        meta = read_meta(path)
        members = [Recommender.load(_member_dir(path, k)) for k in range(meta["members"])]
        blend = cls(members, validation_split=meta["validation_split"], random_state=meta["random_state"],
                    refit=meta["refit"])
        blend.weights_ = np.asarray(meta["weights"], dtype="float64")
        blend.intercept_ = float(meta["intercept"])
        blend.validation_ = meta["validation"]
        blend.fit_seconds_ = float(meta["fit_seconds"])
        return blend


def read_meta(folder: Path) -> dict[str, Any]:
    """The checked contents of a saved blend's ``blend.json`` (verified against ``MANIFEST.json`` first).

    Format 1 (blends saved before they were checksummed) has neither ``format_version`` nor ``MANIFEST.json``; it is
    read with the same checks of every key, its members verified by their own manifests.
    """
    path = folder / META
    if not path.is_file():
        if (folder / RECOMMENDER_META).is_file():
            raise MissingFileError("a saved Recommender, not a Blend: load it with ratecast.Recommender.load",
                                   path=str(folder))
        raise MissingFileError(f"{META} missing: not a saved Blend", path=str(folder))
    sealed = (folder / manifest.MANIFEST).is_file()
    if sealed:
        manifest.verify(folder, required=(META,))
    meta = read_json_object(path)
    if not sealed:
        if "format_version" in meta:
            manifest.verify(folder)  # raises: the manifest of a checksummed blend is missing
        meta = {**meta, "format_version": 1}
    check_fields(meta, SCHEMA, path)
    require(meta["kind"] == "blend", path, f"field 'kind' must be 'blend', got {meta['kind']!r}")
    require(meta["format_version"] in (1, FORMAT_VERSION), path,
            f"format_version {meta['format_version']!r} is not supported (expected 1 or {FORMAT_VERSION})")
    n, weights = meta["members"], meta["weights"]
    require(n >= 1, path, f"field 'members' must be at least 1, got {n}")
    require(len(weights) == n, path, f"field 'weights' must hold one weight per member ({n}), got {len(weights)}")
    require(all(finite(w) and w >= 0 for w in weights), path,
            f"field 'weights' must hold finite numbers >= 0, got {weights}")
    require(finite(meta["intercept"]), path, f"field 'intercept' must be a finite number, got {meta['intercept']!r}")
    require(finite(meta["validation_split"]) and 0 < meta["validation_split"] < 1, path,
            f"field 'validation_split' must be a number in (0, 1), got {meta['validation_split']!r}")
    require(finite(meta["fit_seconds"]) and meta["fit_seconds"] >= 0, path,
            f"field 'fit_seconds' must be a finite number >= 0, got {meta['fit_seconds']!r}")
    return meta


def _member_dir(folder: Path, k: int, create: bool = False) -> Path:
    d = folder / "members" / str(k)
    if create:
        d.mkdir(parents=True)
    return d


def stack(predictions: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Non-negative weights and a free intercept minimising the squared error of ``intercept + predictions @ w``
    (columns centred, then non-negative least squares)."""
    p = np.asarray(predictions, dtype="float64")
    y = np.asarray(y, dtype="float64")
    if p.ndim != 2 or len(p) != len(y) or not len(y):
        raise ValueError(f"predictions must be (n, members) with n = len(y) > 0, got {p.shape} and {y.shape}")
    mean_p, mean_y = p.mean(axis=0), y.mean()
    w, _ = nnls(p - mean_p, y - mean_y)
    return w, float(mean_y - mean_p @ w)

"""The estimator: turns a training Dataset into a :class:`~ratecast.state.FittedState` and answers questions from it.

It orchestrates and never branches on a model's name: everything model-specific is asked of the model (see
:mod:`ratecast.models.base`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
import warnings
from collections.abc import Hashable
from functools import cached_property
from numbers import Integral, Real
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import pandas as pd

from . import metrics as M
from . import topn
from .datasets.dataset import Dataset, IdIndex
from .datasets.scale import RatingScale
from .datasets.validate import plain_value as _plain
from .errors import DataError, NotFittedError, UnknownIdError
from .features import FeatureEncoder, day_numbers
from .models import MODELS, split_params
from .models.fitting import Ratings, fit_after, reporting
from .ranking import Candidates, Scorer, check_min_ratings, popular

#: users ranked per part of :meth:`Recommender.recommend_all_parts` (and held at once on the host while ranking)
PART_USERS = 8192
from .similarity import cosine, cosine_similarities, top_k
from .split import validation_split as validation_share
from .topn import KS as TOPN_KS, LONG_TAIL
from .state import Baseline, FittedState, SeenRatings, seen_matrix



def _stderr_line(message: str) -> None:
    """One plain progress line on standard error."""
    import sys

    print(message, file=sys.stderr, flush=True)

class Recommender:
    """Rating-prediction recommender.

    ``Recommender(model="deep", embedding_dim=64, epochs=10, batch_size=64, random_state=0)``: options are the fields
    of the model's config (e.g. :class:`ratecast.models.DeepConfig`) and of
    :class:`ratecast.models.TrainingConfig`.

    Unknown ids: a (user, item) pair whose user or item was not in the training data is predicted by the baseline
    (global mean + the known side's bias) and flagged ``was_impossible`` in :meth:`predict_details`; predictions are
    never NaN and never raise for unknown ids.
    """

    def __init__(self, model: str = "deep", *, random_state: int | None = None, verbose: int | str | bool = "auto",
                 distribution=None, **params: Any):
        if not isinstance(model, str):
            raise ValueError(f"model must be one of {sorted(MODELS)}, got {model!r}")
        if random_state is not None and (isinstance(random_state, bool) or not isinstance(random_state, Integral)
                                         or not 0 <= random_state < 2**32):
            raise ValueError(f"random_state must be an integer in [0, 2**32) or None, got {random_state!r}")
        if verbose != "auto" and not isinstance(verbose, (bool, Integral)):
            raise ValueError(f"verbose must be 'auto', true/false or an integer, got {verbose!r}")
        from .distribution import is_distribution

        if distribution is not None and not is_distribution(distribution):
            raise ValueError("distribution must come from ratecast.distribution.data_parallel() or "
                             f"model_parallel() (a keras.distribution.Distribution), got {distribution!r}")
        self.distribution = distribution  # where fit, predict and recommend run; not saved with the model
        self.model = model
        self.random_state = None if random_state is None else int(random_state)
        self.verbose = verbose
        # numpy scalars become plain values, so configs stay JSON and Keras accepts them
        self.params = {k: [_plain(x) for x in v] if isinstance(v, (list, tuple)) else _plain(v)
                       for k, v in params.items()}
        split_params(model, self.params)  # fail early on unknown options or bad values (configs validate eagerly)

    @classmethod
    def from_preset(cls, name: str, *, model: str | None = None, random_state: int | None = None,
                    verbose: int | str | bool = "auto", distribution=None, **params: Any) -> "Recommender":
        """A recommender configured by preset ``name`` (see :mod:`ratecast.presets`); ``params`` override it."""
        from . import presets

        model, options = presets.resolve(name, model)
        return cls(model, random_state=random_state, verbose=verbose, distribution=distribution,
                   **{**options, **params})

    # --- the fitted state ---------------------------------------------------------------------------------------
    @property
    def state_(self) -> FittedState:
        """What the last fit produced (read-only)."""
        state = self.__dict__.get("_state")
        if state is None:
            raise NotFittedError("this Recommender is not fitted yet: call fit(train) first")
        return state

    def _set_state(self, state: FittedState) -> None:
        self.__dict__["_state"] = state
        for name in ("_scorer", "_candidates"):
            self.__dict__.pop(name, None)

    @cached_property
    def _scorer(self) -> Scorer:
        return Scorer(self.state_.model, self.distribution, self.state_.user_values)

    @cached_property
    def _candidates(self) -> Candidates:
        return Candidates(self.state_)

    # the pipeline's pieces (see :mod:`ratecast.ranking`), for what ranks or scores with this recommender's rules
    scorer = property(lambda self: self._scorer, doc="Model outputs on the device (:class:`~ratecast.ranking.Scorer`).")
    candidates = property(lambda self: self._candidates,
                          doc="Which items each user may be recommended (:class:`~ratecast.ranking.Candidates`).")

    # read-only views of the state ----------------------------------------------------------------------------------
    model_ = property(lambda self: self.state_.model, doc="The fitted Keras model.")
    model_config_ = property(lambda self: self.state_.model_config, doc="The resolved model config.")
    training_config_ = property(lambda self: self.state_.training_config, doc="The resolved training config.")
    rating_scale_ = property(lambda self: self.state_.rating_scale, doc="The rating scale of the training data.")
    baseline_ = property(lambda self: self.state_.baseline, doc="Global mean and damped biases (unknown ids).")
    encoder_ = property(lambda self: self.state_.encoder, doc="The metadata encoder (None when unused).")
    history_ = property(lambda self: self.state_.history, doc="Per-epoch losses and metrics.")
    fit_seconds_ = property(lambda self: self.state_.fit_seconds, doc="Seconds spent training.")
    initial_train_metrics_ = property(lambda self: self.state_.initial_train_metrics,
                                      doc="Errors of the untrained model on a sample of the training ratings.")
    user_index_ = property(lambda self: self.state_.user_index, doc="Known users (raw id <-> index).")
    item_index_ = property(lambda self: self.state_.item_index, doc="Known items (raw id <-> index).")
    user_index = user_index_
    item_index = item_index_
    items = property(lambda self: self.state_.items, doc="Item metadata the model was fitted with, or None.")
    users = property(lambda self: self.state_.users, doc="User metadata the model was fitted with, or None.")
    genres = property(lambda self: list(self.state_.genres), doc="Genre columns of the item metadata.")

    @property
    def item_popularity(self) -> pd.Series:
        """Number of training ratings per known item, indexed by raw item id."""
        s = self.state_
        return pd.Series(s.popularity[1:], index=pd.Index(s.item_index.ids, name="item_id"), name="popularity")

    @property
    def user_activity(self) -> pd.Series:
        """Number of training ratings per known user, indexed by raw user id."""
        s = self.state_
        return pd.Series(s.activity[1:], index=pd.Index(s.user_index.ids, name="user_id"), name="n_ratings")

    def titles(self, item_ids) -> np.ndarray:
        """Titles of raw ``item_ids`` (None where unknown or when there is no title)."""
        s = self.state_
        pos = s.item_index.index(np.asarray(item_ids)) - 1
        out = np.full(len(pos), None, dtype=object)
        out[pos >= 0] = s.title_array[pos[pos >= 0]]
        return out

    def seen_items(self, user_id) -> np.ndarray:
        """Raw ids of the items ``user_id`` rated in training (empty for an unknown user)."""
        s = self.state_
        u = int(s.user_index.index([user_id])[0])
        return s.item_index.ids[s.seen_positions(u)] if u else s.item_index.ids[:0]

    def seen_mask(self, user_ids, item_ids) -> np.ndarray:
        """For (user, item) pairs of raw ids: True where the pair was rated in training."""
        u, i = self._index_pairs(user_ids, item_ids)
        return np.asarray(self.state_.seen[u, i]).ravel().astype(bool) if len(u) else np.zeros(0, bool)

    # --- fitting ------------------------------------------------------------------------------------------------
    def fit(self, train: Dataset, validation: Dataset | None = None, validation_split: float | None = None, *,
            checkpoint_dir: str | os.PathLike | None = None,
            on_epoch: Callable[[int, dict[str, float]], None] | None = None) -> "Recommender":
        """Fit on ``train`` and return self.

        Validation (early stopping, the validation curve) is ``validation`` if given, else a random
        ``validation_split`` fraction of ``train`` (default from the training config) that leaves every user and
        item at least one rating to fit on; a model not trained by
        gradient (``bayesian``, sampled) has no epochs to stop, so it keeps all of ``train``: no share is carved,
        whatever ``validation_split`` says. With ``checkpoint_dir`` a
        checkpoint is written there after every epoch, and a fit with the same options and data resumes from it.
        ``on_epoch(epoch, logs)`` is called after every epoch (0-based) with its logs, which then also hold the
        validation RMSE and MAE of the predicted ratings (``val_rating_rmse``, ``val_rating_mae``) and, for models
        that watch their lists, ``val_recall@10`` and ``val_ndcg@10``; an exception it raises stops the fit.
        An interrupted or failed fit leaves the estimator as it was before the call.
        """
        _check_dataset("train", train)
        validation_given = validation is not None
        if validation is not None:
            _check_dataset("validation", validation)
        if validation_split is not None and (isinstance(validation_split, bool) or not isinstance(validation_split, Real)
                                             or not 0 <= validation_split < 1):
            raise ValueError(f"validation_split must be a number in [0, 1), got {validation_split!r}")
        if checkpoint_dir is not None:
            if not isinstance(checkpoint_dir, (str, os.PathLike)):
                raise TypeError(f"checkpoint_dir must be a folder path, got {checkpoint_dir!r}")
            if Path(checkpoint_dir).exists() and not Path(checkpoint_dir).is_dir():
                raise ValueError(f"checkpoint_dir {str(checkpoint_dir)!r} exists and is not a folder")
        train.check_ratings("train")
        mcfg, tcfg = split_params(self.model, self.params)
        scale = train.rating_scale or RatingScale.infer(train.ratings["rating"])
        if validation is not None:
            validation.check_ratings("validation")
            off = validation.off_scale(validation.ratings["rating"].to_numpy(dtype="float64"), scale)
            if off.any():
                bad = _plain(validation.ratings["rating"].iloc[int(np.flatnonzero(off)[0])])
                raise DataError(f"validation: rating {bad!r} is not on the training scale "
                                f"{scale.minimum:g}..{scale.maximum:g} (step {scale.step:g})")
        given = train.ratings  # everything the user rated: excluded from their recommendations
        # a model not trained by gradient has no epochs to stop early, so it keeps every training rating (and
        # indexes every user and item of train); a carved share would only lose the items seen in it alone
        by_gradient = MODELS[self.model].trained_by_gradient and MODELS[self.model].trained_by_gradient_at(
            mcfg, train.ratings["item_id"].nunique() + 1)
        if validation is None and by_gradient:
            frac = tcfg.validation_split if validation_split is None else validation_split
            if frac and len(train.ratings) >= 10:
                train, validation = validation_share(train, frac, self.random_state)
        r = train.ratings
        if "batch_size" not in self.params and by_gradient:
            tcfg = tcfg.with_batch_for(len(r))  # a default batch: enough steps an epoch on small data
        user_index, item_index = IdIndex(r["user_id"]), IdIndex(r["item_id"])
        u, i = user_index.index(r["user_id"]), item_index.index(r["item_id"])
        y = r["rating"].to_numpy(dtype="float64")  # finite and on the scale: train.check_ratings above
        baseline = Baseline.fit(u, i, y, user_index.size, item_index.size)
        gu, gi = user_index.index(given["user_id"]), item_index.index(given["item_id"])
        known = (gu > 0) & (gi > 0)
        seen = seen_matrix(gu[known], gi[known], user_index.size, item_index.size)
        seen_ratings = SeenRatings.of(seen, gu[known], gi[known], given["rating"].to_numpy(dtype="float64")[known])

        model_cls = MODELS[self.model]
        item_features, user_features = model_cls.cold_start.features(mcfg)
        encoder = None
        item_table = np.zeros((item_index.size, 0), "float32")
        user_table = np.zeros((user_index.size, 0), "float32")
        if item_features or user_features:
            encoder = FeatureEncoder(item_features, user_features)
            if model_cls.capabilities.features_where_available:
                encoder = encoder.available_only(train)
            if encoder.item_features or encoder.user_features:
                encoder.fit(train)
                item_table, user_table = encoder.tables(train, item_index, user_index)
            else:
                encoder = None
        model = model_cls(mcfg, user_index.size, item_index.size, rating_scale=scale, global_mean=baseline.mean,
                          item_feature_dim=item_table.shape[1], user_feature_dim=user_table.shape[1],
                          seed=self.random_state)
        model.build_now()
        model.set_feature_tables(item_table, user_table)
        for part in model.fitters:  # the parts fitted apart from the engine, before it
            part.before(model, Ratings(u, i, y))

        x = {"user": u, "item": i}
        val_data = None
        if validation is not None and len(validation.ratings):
            vr = validation.ratings
            vu, vi = user_index.index(vr["user_id"]), item_index.index(vr["item_id"])
            ok = (vu > 0) & (vi > 0)
            if ok.any():
                val_ratings = vr["rating"].to_numpy(dtype="float64")[ok]
                val_data = ({"user": vu[ok], "item": vi[ok]}, model.output_rule.targets(val_ratings))
            elif validation_given:
                raise DataError(f"validation: none of its {len(vr)} ratings is of a user and an item in train, so it "
                                "cannot validate the model")
        # the random-initialisation baseline: errors of the untrained model on a sample of the training ratings
        sample = np.random.default_rng(self.random_state).choice(len(y), size=min(len(y), 2048), replace=False)
        untrained = Scorer(model).ratings(u[sample], i[sample])  # one compiled program, not an op at a time
        initial = {"mae": M.mae(y[sample], untrained), "mse": M.mse(y[sample], untrained), "n": int(len(sample))}

        from .engine import train as train_model

        monitors = []
        if tcfg.monitor == "val_top_n" and val_data is not None:
            monitors.append(topn.validation_monitor(
                model, u, i, val_data[0]["user"], val_data[0]["item"], val_ratings, threshold=scale.liked_threshold,
                seed=self.random_state, distribution=self.distribution))
        if on_epoch is not None and val_data is not None:
            from .monitors import rating_monitor

            monitors.append(rating_monitor(model, val_data[0]["user"], val_data[0]["item"], val_ratings,
                                           distribution=self.distribution))
        monitor = (lambda: {k: v for m in monitors for k, v in m().items()}) if monitors else None
        start = time.perf_counter()
        history = {}
        if model.trained_by_gradient:
            history = train_model(model, x, model.output_rule.targets(y), val_data, tcfg, seed=self.random_state,
                                  verbose=self._verbose(), checkpoint_dir=checkpoint_dir,
                                  fingerprint=self._fingerprint(model, u, i, y, val_data),
                                  distribution=self.distribution,
                                  extra_validation=monitor, on_epoch=on_epoch)
        days = day_numbers(given["timestamp"])[known] if model.capabilities.uses_days else None
        every = Ratings(gu[known], gi[known], given["rating"].to_numpy(dtype="float64")[known], days)
        with reporting(_stderr_line if self._verbose() else None):  # and after it, on every rating given
            history = {**history, **fit_after(model.fitters, model, every)}
        seconds = time.perf_counter() - start
        self._set_state(FittedState(
            model_name=self.model, params=dict(self.params), random_state=self.random_state, model_config=mcfg,
            training_config=tcfg, rating_scale=scale, user_index=user_index, item_index=item_index,
            baseline=baseline, encoder=encoder, seen=seen, items=train.items, users=train.users,
            genres=tuple(train.genres), model=model, history=history, fit_seconds=seconds,
            initial_train_metrics=initial, n_train=len(y), seen_ratings=seen_ratings))
        return self

    def _verbose(self) -> bool:
        v = self.verbose
        if v == "auto":
            import sys

            return sys.stderr.isatty()
        return bool(v)

    def _fingerprint(self, model, u, i, y, val_data) -> str:
        """Identifies a fit's inputs, so a checkpoint is only resumed by the same model, options and data, and by a
        network whose variables are laid out as when it was written (checkpoints hold them in order)."""
        h = hashlib.sha256()
        h.update(json.dumps([self.model, self.params, self.random_state], sort_keys=True, default=str).encode())
        h.update(json.dumps([(v.name, list(v.shape), str(v.dtype)) for v in model.variables]).encode())
        for a in (u, i, y, *(() if val_data is None else (val_data[0]["user"], val_data[0]["item"], val_data[1]))):
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()

    # --- predicting ---------------------------------------------------------------------------------------------
    def _index_pairs(self, user_ids, item_ids) -> tuple[np.ndarray, np.ndarray]:
        users, items = _id_array("user_ids", user_ids), _id_array("item_ids", item_ids)
        if users.shape != items.shape or users.ndim != 1:
            raise ValueError(
                f"user_ids and item_ids must be 1-D and of the same length, got shapes {users.shape} and {items.shape}")
        return self._lookup("user_ids", users, stacklevel=4), self._lookup("item_ids", items, stacklevel=4)

    def _lookup(self, name: str, raw_ids, stacklevel: int = 3) -> np.ndarray:
        """Indices of raw user or item ids (0: unknown), with a warning when an unknown id names a known one once
        converted (text ``"5"`` against the integer id ``5``, or the reverse): ids keep their type."""
        index = self.state_.user_index if name.startswith("user") else self.state_.item_index
        return index.lookup(raw_ids, name, stacklevel=stacklevel)

    def _days(self, timestamps, n: int) -> np.ndarray | None:
        """Day numbers of the pairs' timestamps, for models that use them (else None); checked for every model."""
        if timestamps is None:
            return None
        ts = timestamps.to_numpy() if isinstance(timestamps, pd.Series) else np.asarray(timestamps)
        if ts.ndim != 1 or len(ts) != n:
            raise ValueError(f"timestamps must be 1-D with one entry per pair ({n}), got shape {ts.shape}")
        series = pd.Series(ts)
        if not pd.api.types.is_datetime64_any_dtype(series.dtype):
            seconds = pd.to_numeric(series, errors="coerce").to_numpy("float64", na_value=np.nan)
            bad = np.flatnonzero((np.isnan(seconds) & series.notna().to_numpy()) | np.isinf(seconds))
            if len(bad):
                raise ValueError(f"timestamps must be seconds since 1970 or datetimes (NaN or None for a pair "
                                 f"without one), got {_plain(ts[bad[0]])!r} at position {bad[0]}")
        return day_numbers(ts) if self.state_.model.capabilities.uses_days else None

    def _predict_index(self, u: np.ndarray, i: np.ndarray, days: np.ndarray | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
        s = self.state_
        known = (u > 0) & (i > 0)
        pred = s.rating_scale.clip(s.baseline.predict(u, i))
        if known.any():
            extra = None if days is None else {"day": days[known]}
            pred[known] = self._scorer.ratings(u[known], i[known], extra)
        return pred, ~known

    def predict(self, user_ids, item_ids, timestamps=None) -> np.ndarray:
        """Predicted ratings for (user, item) pairs given as raw ids. Unknown ids: see the class docstring.
        ``timestamps`` (seconds since 1970, or datetimes; one per pair) reach models that use the day of a rating
        (``bayesian``'s bias per user and day); other models ignore them."""
        u, i = self._index_pairs(user_ids, item_ids)
        return self._predict_index(u, i, self._days(timestamps, len(u)))[0]

    def predict_details(self, user_ids, item_ids, timestamps=None) -> pd.DataFrame:
        """Predictions with flags: ``known_user``, ``known_item``, ``was_impossible`` (baseline fallback used)."""
        u, i = self._index_pairs(user_ids, item_ids)
        pred, impossible = self._predict_index(u, i, self._days(timestamps, len(u)))
        return pd.DataFrame({"user_id": _id_array("user_ids", user_ids), "item_id": _id_array("item_ids", item_ids),
                             "prediction": pred, "known_user": u > 0, "known_item": i > 0,
                             "was_impossible": impossible})

    def predict_proba(self, user_ids, item_ids) -> np.ndarray:
        """Probabilities over ``rating_scale_.values`` for models whose output is a distribution."""
        u, i = self._index_pairs(user_ids, item_ids)
        model = self.state_.model
        model.output_rule.probabilities(np.zeros((0, *model.output_rule.shape)))  # raises for rating models
        unknown = (u == 0) | (i == 0)
        if unknown.any():
            k = int(np.flatnonzero(unknown)[0])
            raise UnknownIdError(f"predict_proba needs users and items seen in training; pair {k} "
                                 f"(user_id={_plain(np.asarray(user_ids).reshape(-1)[k])!r}, "
                                 f"item_id={_plain(np.asarray(item_ids).reshape(-1)[k])!r}) is unknown (predict() "
                                 "gives its baseline rating)")
        return np.asarray(model.output_rule.probabilities(self._scorer.pairs(u, i)[0]), dtype="float64")

    # --- evaluating ---------------------------------------------------------------------------------------------
    def evaluate(self, test: Dataset, *, k: int = 10, threshold: float | None = None, ci: bool = True,
                 n_resamples: int = 1000, top_n: bool = True) -> dict[str, Any]:
        """Rating error and recommendation-list quality on ``test``.

        * MAE/MSE/RMSE with 95% bootstrap intervals, and how many test ratings needed the unknown-id fallback;
        * with ``top_n``, :meth:`top_n_metrics` at 5, 10, 20 and ``k``: every item a user did not rate in training
          is ranked, and a test rating >= ``threshold`` is relevant (default: the training scale's
          :attr:`~ratecast.datasets.RatingScale.liked_threshold`, 4 on 1-5);
        * ``precision@k_within_test_items`` (and recall, ndcg): each user's own test items ranked by predicted
          rating, a re-ranking figure that is not comparable with top-N figures elsewhere.
        """
        _check_dataset("test", test)
        if len(test.ratings) == 0:
            raise DataError("test has no ratings: there is nothing to evaluate")
        test.check_ratings("test")
        threshold = self._threshold(threshold)
        self._check_k(k)
        _check_flag("top_n", top_n)
        r = test.ratings
        details = self.predict_details(r["user_id"].to_numpy(), r["item_id"].to_numpy(), r["timestamp"])
        y = r["rating"].to_numpy(dtype="float64")
        out = M.error_report(y, details["prediction"].to_numpy(), ci=ci, n_resamples=n_resamples,
                             random_state=self.random_state)
        out["n_unknown"] = int(details["was_impossible"].sum())
        if top_n:
            out.update(self.top_n_metrics(test, ks=sorted({*TOPN_KS, int(k)}), threshold=threshold))
        frame = pd.DataFrame({"user_id": r["user_id"].to_numpy(), "rating": y,
                              "score": details["prediction"].to_numpy()})
        within = M.ranking_metrics(frame, k=k, threshold=threshold)
        out.update({f"{name}_within_test_items": value for name, value in within.items()})
        return out

    def top_n_metrics(self, test: Dataset, *, ks=TOPN_KS, threshold: float | None = None,
                      long_tail: int = LONG_TAIL, min_ratings: int | None = None) -> dict[str, Any]:
        """Recommendation lists over the whole catalogue, scored against ``test`` (see :mod:`ratecast.topn`).

        Each test user's list ranks every known item they did not rate in training (users unknown to the model get
        the popular fallback); a test rating >= ``threshold`` (default: the training scale's ``liked_threshold``)
        is relevant, including ratings of items the model never saw (they can never be hit). Returns recall,
        precision, NDCG, MRR and hit rate at each of ``ks``, and coverage and popularity bias (items with fewer than
        ``long_tail`` training ratings are the long tail).
        ``min_ratings`` makes the lists as ``recommend(min_ratings=...)`` would (default: the model's
        ``min_support``)."""
        return self.list_metrics(test, ks=ks, threshold=threshold, long_tail=long_tail, min_ratings=min_ratings)

    def list_metrics(self, test: Dataset, *, threshold: float | None = None, ks=TOPN_KS, long_tail: int = LONG_TAIL,
                     min_ratings: int | None = None,
                     top_positions: Callable[[np.ndarray, int], np.ndarray] | None = None) -> dict[str, Any]:
        """The one evaluation path of recommendation lists (:meth:`top_n_metrics`, :meth:`evaluate`, tuning and
        :class:`~ratecast.Blend` all score through it): :meth:`top_n_metrics` for the lists made by
        ``top_positions(user indices, depth)`` (best item positions, -1 where short; default: this recommender's
        own ranking with ``min_ratings``), with this recommender's users, items, fallback and popularity."""
        if top_positions is None:
            def top_positions(users: np.ndarray, depth: int) -> np.ndarray:
                return self._top_positions(users, depth, min_ratings=min_ratings)[0]
        _check_dataset("test", test)
        threshold = self._threshold(threshold)
        if isinstance(ks, (str, bytes)) or not hasattr(ks, "__iter__") or not len(list(ks)) or any(
                isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0 for k in ks):
            raise ValueError(f"ks must be a non-empty list of positive integers, got {ks!r}")
        if isinstance(long_tail, bool) or not isinstance(long_tail, (int, np.integer)) or long_tail < 0:
            raise ValueError(f"long_tail must be an integer >= 0, got {long_tail!r}")
        ks = sorted({int(k) for k in ks})
        s = self.state_
        r = test.ratings
        codes, user_ids = pd.factorize(r["user_id"], sort=False)
        users = s.user_index.index(np.asarray(user_ids))
        n_items, depth = len(s.item_index), max(ks)
        lists = np.full((len(users), depth), -1, "int64")
        known = users > 0
        if known.any():
            found = top_positions(users[known], depth)  # fewer columns when the catalogue is shorter than depth
            lists[known, :found.shape[1]] = found
        if (~known).any():
            fallback, _ = popular(s, depth, np.ones(n_items, bool))
            lists[~known, :len(fallback)] = fallback
        relevant = r["rating"].to_numpy(dtype="float64") >= threshold
        items = s.item_index.index(r["item_id"].to_numpy()[relevant]) - 1
        unseen = items < 0  # items the model never saw: distinct positions past the catalogue
        items[unseen] = n_items + pd.factorize(r["item_id"].to_numpy()[relevant][unseen])[0]
        return topn.list_metrics(lists, codes[relevant], items, s.popularity[1:], ks=ks, long_tail=long_tail)

    # --- recommending -------------------------------------------------------------------------------------------
    def item_frame(self, pos: np.ndarray, values: np.ndarray, column: str = "score") -> pd.DataFrame:
        """A list as :meth:`recommend` returns it: columns item_id, title and ``column`` (``values``), for item
        positions ``pos`` (into ``item_index_.ids``)."""
        s = self.state_
        return pd.DataFrame({"item_id": s.item_index.ids[pos], "title": pd.Series(s.title_array[pos], dtype=object),
                             column: values})

    def _threshold(self, threshold: float | None) -> float:
        """``threshold`` checked, or where None the liked level of the training scale."""
        if threshold is None:
            return self.rating_scale_.liked_threshold
        _check_threshold(threshold)
        return float(threshold)

    @staticmethod
    def check_k(k) -> None:
        """Raise ``ValueError`` unless ``k`` (a list length) is a positive integer."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0:
            raise ValueError(f"k must be a positive integer, got {k!r}")

    _check_k, _item_frame = check_k, item_frame  # the names this class's methods use

    def recommend(self, user_id, k: int = 10, exclude_seen: bool = True, exclude=None,
                  min_ratings: int | None = None) -> pd.DataFrame:
        """Top-``k`` items for ``user_id``: columns item_id, title, score (the predicted rating), best first by the
        model's ranking key (the predicted rating for rating models; for ``implicit``, how likely the user is to pick
        and like the item, so scores need not fall down the list).

        Every known item the user did not rate in training is scored (``exclude``: more item ids to leave out;
        ``min_ratings``: only items with at least that many training ratings). An unknown user gets the items
        with the best damped mean rating (:meth:`recommend_popular`), with ``attrs['fallback'] = True``.
        """
        self._check_k(k)
        _check_flag("exclude_seen", exclude_seen)
        u = int(self._lookup("user_id", [_scalar_id("user_id", user_id, allow_missing=True)])[0])
        if u == 0:
            out = self.recommend_popular(k, exclude=exclude, min_ratings=min_ratings)
            out.attrs["fallback"] = True
            return out
        users = np.array([u])
        allowed = self._candidates.allowed(users, exclude_seen=exclude_seen, exclude=exclude, min_ratings=min_ratings)
        pos, score = self._scorer.top_k(users, allowed, k)
        keep = pos[0] >= 0
        return self._item_frame(pos[0][keep], score[0][keep], "score")

    def recommend_all(self, user_ids=None, k: int = 10, exclude_seen: bool = True, exclude=None,
                      min_ratings: int | None = None, batch_size: int | None = None) -> pd.DataFrame:
        """Top-``k`` for many users (default: every training user, in order of their ids): columns user_id, rank,
        item_id, title, score. Unknown users are left out (use :meth:`recommend` for the fallback). ``batch_size``
        users are scored at once (default: as many as fit a fixed memory budget)."""
        parts = list(self.recommend_all_parts(user_ids, k=k, exclude_seen=exclude_seen, exclude=exclude,
                                              min_ratings=min_ratings, batch_size=batch_size))
        return parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)

    def recommend_all_parts(self, user_ids=None, k: int = 10, exclude_seen: bool = True, exclude=None,
                            min_ratings: int | None = None, batch_size: int | None = None,
                            on_progress: Callable[[int, int], None] | None = None) -> Iterator[pd.DataFrame]:
        """:meth:`recommend_all` a part of the users at a time, for writing as it goes (memory stays bounded by a
        part): the frames, in order, that :meth:`recommend_all` concatenates (at least one, maybe empty). A part is
        ``batch_size`` users (default: :data:`PART_USERS`, scored in the scorer's batches).
        ``on_progress(users_done, users_total)`` is called after each part."""
        self._check_k(k)
        _check_flag("exclude_seen", exclude_seen)
        s = self.state_
        if user_ids is None:
            try:
                users = 1 + np.argsort(s.user_index.ids, kind="stable")
            except TypeError:  # ids of mixed kinds have no order: the training order
                users = np.arange(1, len(s.user_index) + 1)
        else:
            users = self._lookup("user_ids", _id_array("user_ids", user_ids))
            users = users[users > 0]
        part = self._user_batch(batch_size) if batch_size is not None else PART_USERS
        for start in range(0, max(len(users), 1), part):
            chunk = users[start:start + part]
            pos, score = self._top_positions(chunk, k, exclude_seen=exclude_seen, exclude=exclude,
                                             min_ratings=min_ratings, batch_size=batch_size)
            rows, cols = np.nonzero(pos >= 0)
            item_pos = pos[rows, cols]
            yield pd.DataFrame({
                "user_id": s.user_index.raw(chunk[rows]) if len(rows) else s.user_index.ids[:0],
                "rank": cols + 1, "item_id": s.item_index.ids[item_pos],
                "title": pd.Series(s.title_array[item_pos], dtype=object), "score": score[rows, cols]})
            if on_progress is not None:
                on_progress(min(start + part, len(users)), len(users))

    def _user_batch(self, batch_size: int | None) -> int:
        """``batch_size`` checked (a positive integer), or where None the scorer's batch for its memory budget."""
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                       or batch_size < 1):
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        return batch_size or self._scorer.user_batch()

    def _top_positions(self, users: np.ndarray, k: int, *, exclude_seen: bool = True, exclude=None,
                       min_ratings: int | None = None, batch_size: int | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
        """Best ``k`` item positions (-1 where fewer are allowed) and their scores for user indices, ``batch_size``
        users at a time (default: the scorer's batch) and :data:`PART_USERS` at most at once on the host: each
        part's candidates are built just before it is scored, so memory stays bounded."""
        batch = self._user_batch(batch_size)
        part = max(batch, PART_USERS // batch * batch)
        parts = []
        for start in range(0, len(users), part):
            chunk = users[start:start + part]
            allowed = self._candidates.allowed(chunk, exclude_seen=exclude_seen, exclude=exclude,
                                               min_ratings=min_ratings)
            parts.append(self._scorer.top_k(chunk, allowed, k, batch_size=batch))
        if not parts:
            return self._scorer.top_k(users, np.zeros((0, len(self.state_.item_index)), bool), k)
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def top_positions(self, users, k: int, *, exclude_seen: bool = True, min_ratings: int | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
        """Best ``k`` item positions (into ``item_index_.ids``; -1 where fewer are allowed) and their scores for
        user indices (``user_index_.index(...)``), ranked as :meth:`recommend` ranks them, without building frames:
        what a server precomputes for every user."""
        self._check_k(k)
        _check_flag("exclude_seen", exclude_seen)
        return self._top_positions(np.asarray(users), k, exclude_seen=exclude_seen, min_ratings=min_ratings)

    def recommend_popular(self, k: int = 10, exclude=None, min_ratings: int | None = None) -> pd.DataFrame:
        """Items with the best damped mean training rating: the fallback when nothing is known about the user."""
        self._check_k(k)
        allowed = self._candidates.mask(np.array([0]), exclude_seen=False, exclude=exclude,
                                        min_ratings=min_ratings)[0]
        pos, scores = popular(self.state_, k, allowed)
        return self._item_frame(pos, scores, "score")

    # --- cold start ---------------------------------------------------------------------------------------------
    def recommend_new_user(self, demographics: Mapping[str, Any] | None = None, k: int = 10, exclude=None,
                           min_ratings: int | None = None) -> pd.DataFrame:
        """Recommendations for a user with no ratings, from demographics (e.g. ``{"age": 31, "gender": "F",
        "occupation": "writer"}``) when the model supports cold-start users; otherwise (or with no demographics)
        :meth:`recommend_popular` with ``attrs['fallback'] = True``."""
        self._check_k(k)
        s = self.state_
        if demographics is not None and not isinstance(demographics, Mapping):
            raise ValueError(f"demographics must be a mapping such as {{'age': 31}}, got {demographics!r}")
        if not demographics or not s.model.cold_start.supports(s.model, "user"):
            out = self.recommend_popular(k, exclude=exclude, min_ratings=min_ratings)
            out.attrs["fallback"] = True
            return out
        feats = s.encoder.user_row(demographics)
        users = np.array([0])
        allowed = self._candidates.mask(users, exclude_seen=False, exclude=exclude, min_ratings=min_ratings)
        pos, score = self._scorer.top_k(users, allowed, k, user_features=feats)
        keep = pos[0] >= 0
        return self._item_frame(pos[0][keep], score[0][keep], "score")

    def predict_new_item(self, metadata: Mapping[str, Any], user_ids) -> np.ndarray:
        """Predicted ratings of a new item (not in training) for ``user_ids``: from its metadata (``release_year``,
        genre flags, optional ``popularity``) when the model supports cold-start items, else the baseline."""
        if not isinstance(metadata, Mapping):
            raise ValueError(f"metadata must be a mapping such as {{'release_year': 1998}}, got {metadata!r}")
        s = self.state_
        u = s.user_index.index(_id_array("user_ids", user_ids))
        if not s.model.cold_start.supports(s.model, "item"):
            return s.rating_scale.clip(s.baseline.predict(u, np.zeros_like(u)))
        feats = s.encoder.item_row(metadata)
        extra = {"item_features": np.repeat(feats, len(u), axis=0)}
        return self._scorer.ratings(u, np.zeros_like(u), extra)

    def fold_in(self, ratings, user_ratings=None, *, demographics: Mapping[str, Any] | None = None,
                epochs: int | None = None, learning_rate: float | None = None) -> "Recommender":
        """Users (re-)fitted from their ratings without retraining the model: ``rec.fold_in(frame)`` returns a NEW
        recommender and leaves ``rec`` as it was.

        ``frame`` has columns ``user_id``, ``item_id`` and ``rating`` (rows of several users, new or known). Each
        user's own weights are solved from their ratings with every item-side weight fixed (a known user from their
        stored ratings plus the new ones; see :mod:`ratecast.foldin`); the new ratings are excluded from their
        recommendations but are not training data (:meth:`update` adds them to it). Ratings of items unknown to the
        model are ignored; a user with none left is left out (with a warning). Other columns (e.g. ``timestamp``)
        are not read: a folded-in user has no day biases of their own (``bayesian``), a known user keeps theirs.

        The one-user form ``rec.fold_in(user_id, ratings, demographics=...)`` (``ratings`` a mapping item_id ->
        rating or a frame with item_id and rating) adds one NEW user to ``rec`` itself and returns it.
        ``epochs`` and ``learning_rate`` set the steps of the gradient solve (models not solved in closed form).
        """
        from . import foldin

        steps = foldin.STEPS if epochs is None else epochs
        lr = foldin.LEARNING_RATE if learning_rate is None else learning_rate
        if epochs is not None or learning_rate is not None:
            from .models import TrainingConfig

            TrainingConfig(epochs=steps, learning_rate=lr)  # validates both
        if user_ratings is None:
            if demographics is not None:
                raise ValueError("demographics applies to the one-user form fold_in(user_id, ratings, "
                                 "demographics=...)")
            return self._derived(self._folded(ratings, "ratings", trained=False, steps=steps, learning_rate=lr))
        s = self.state_
        user_id = _scalar_id("user_id", ratings)
        if user_id in s.user_index:
            raise ValueError(f"user_id {user_id!r} is already known to the model; fold_in(user_id, ratings) adds new "
                             "users only (fold_in(frame) re-solves known users)")
        if demographics is not None and not isinstance(demographics, Mapping):
            raise ValueError(f"demographics must be a mapping such as {{'age': 31}}, got {demographics!r}")
        if isinstance(user_ratings, Mapping):
            user_ratings = pd.DataFrame({"item_id": list(user_ratings.keys()), "rating": list(user_ratings.values())})
        if not isinstance(user_ratings, pd.DataFrame) or not {"item_id", "rating"} <= set(user_ratings.columns):
            raise ValueError("ratings must be a mapping item_id -> rating or a DataFrame with item_id and rating")
        frame = pd.DataFrame({"user_id": pd.Series([user_id] * len(user_ratings), dtype=object),
                              "item_id": user_ratings["item_id"].to_numpy(),
                              "rating": user_ratings["rating"].to_numpy()})
        rows = None
        if s.model.user_feature_dim:
            rows = {user_id: s.encoder.user_row(demographics or {})}
        self._set_state(self._folded(frame, "ratings", trained=False, feature_rows=rows, steps=steps,
                                     learning_rate=lr, single=True))
        return self

    def update(self, ratings: pd.DataFrame) -> "Recommender":
        """:meth:`fold_in` that also adds the ratings to the training data kept in the state, so that a later
        :meth:`refit` trains on them. Returns a NEW recommender; ``rec`` is left as it was."""
        return self._derived(self._folded(ratings, "ratings", trained=True))

    def refit(self) -> "Recommender":
        """A NEW recommender fitted again, with the same options, on this one's training data (the ratings it was
        fitted on plus those added by :meth:`update`; ratings only folded in are not training data) and metadata.
        Timestamps are not kept, so a model that uses the day of a rating refits without days."""
        from .datasets.dataset import Dataset

        s = self.state_
        if s.seen_ratings is None:
            raise DataError("refit needs the training ratings, and this model was saved by a version that kept none; "
                            "fit it again from the data")
        coo_rows = np.repeat(np.arange(s.seen.shape[0]), np.diff(s.seen.indptr))
        keep = s.seen_ratings.trained
        frame = pd.DataFrame({"user_id": s.user_index.raw(coo_rows[keep]),
                              "item_id": s.item_index.raw(s.seen.indices[keep]),
                              "rating": s.seen_ratings.ratings[keep].astype("float64"),
                              "timestamp": np.full(int(keep.sum()), np.nan)})
        data = Dataset(frame, items=s.items, users=s.users, name="refit", rating_scale=s.rating_scale,
                       genres=list(s.genres))
        fresh = Recommender(self.model, random_state=self.random_state, verbose=self.verbose,
                            distribution=self.distribution, **self.params)
        return fresh.fit(data)

    def _derived(self, state: FittedState) -> "Recommender":
        import copy

        new = copy.copy(self)
        new._set_state(state)
        return new

    def _fold_in_pairs(self, ratings, name: str, single: bool = False
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The usable pairs of a fold-in frame, checked: (raw user ids, item indices, ratings)."""
        s = self.state_
        if not isinstance(ratings, pd.DataFrame):
            raise TypeError(f"{name} must be a DataFrame with user_id, item_id and rating columns, got "
                            f"{type(ratings).__name__}")
        missing = [c for c in ("user_id", "item_id", "rating") if c not in ratings.columns]
        if missing:
            raise ValueError(f"{name} lacks the column(s) {missing}: it needs user_id, item_id and rating")
        if not len(ratings):
            raise ValueError(f"{name} has no rows: there is nothing to fold in")
        column = ratings["rating"]
        if column.dtype == bool or (column.dtype == object and any(isinstance(v, (bool, np.bool_)) for v in column)):
            raise ValueError(f"ratings must be numbers, got {column.tolist()[:5]}")
        y = pd.to_numeric(column, errors="coerce").to_numpy(dtype="float64")
        off = ~s.rating_scale.on_scale(y)
        if off.any():
            raise ValueError(f"ratings must lie on the scale {s.rating_scale.minimum:g}.."
                             f"{s.rating_scale.maximum:g}, got {y[off][:3].tolist()}")
        user_ids = ratings["user_id"].to_numpy()
        for v in pd.unique(user_ids):
            _scalar_id("user_id", v)
        items = self._lookup("item_ids", _id_array("item_id", ratings["item_id"].to_numpy()))
        usable = items > 0
        if not usable.any():
            raise ValueError(f"fold_in needs at least one rating of a known item; none of "
                             f"{ratings['item_id'].tolist()[:5]} is known")
        if not usable.all():
            dropped = len(pd.unique(user_ids)) - len(pd.unique(user_ids[usable]))
            if dropped and not single:
                warnings.warn(f"{name}: {dropped} user(s) rated no item the model knows and were left out",
                              UserWarning, stacklevel=4)
        return user_ids[usable], items[usable], y[usable]

    def _folded(self, ratings, name: str, *, trained: bool, feature_rows=None, steps: int | None = None,
                learning_rate: float | None = None, single: bool = False) -> FittedState:
        from . import foldin

        users, items, y = self._fold_in_pairs(ratings, name, single)
        return foldin.fold_in(self.state_, users, items, y, self._noise, trained=trained,
                              feature_rows=feature_rows, steps=foldin.STEPS if steps is None else steps,
                              learning_rate=foldin.LEARNING_RATE if learning_rate is None else learning_rate)

    def _noise(self) -> float:
        """The variance of the model's errors on (a sample of) its training ratings: the noise of the fold-in
        prior (asked once per model)."""
        from . import foldin

        s = self.state_
        scale = s.rating_scale
        fallback = ((scale.maximum - scale.minimum) / 4) ** 2
        if s.seen_ratings is None or not s.seen.nnz:
            return fallback
        rng = np.random.default_rng(0)
        pick = rng.choice(s.seen.nnz, size=min(s.seen.nnz, foldin.NOISE_SAMPLE), replace=False)
        users = np.searchsorted(s.seen.indptr, pick, side="right") - 1
        pred = self._predict_index(users, s.seen.indices[pick])[0]
        return float(np.mean((pred - s.seen_ratings.ratings[pick]) ** 2)) or fallback

    def explain(self, user_id, item_id, k: int = 3) -> pd.DataFrame:
        """Why ``user_id`` gets ``item_id``'s score: the ``k`` largest contributions, largest first, as a frame of
        ``item_id`` (a rated item; None for a feature), ``feature`` and ``contribution``. See
        :func:`ratecast.explain.explain` for how each model's score is decomposed; ``attrs`` holds ``score``,
        ``base`` (the part of the score the rows do not explain) and ``method``."""
        return self.explain_items(user_id, [_scalar_id("item_id", item_id)], k=k)[0]

    def explain_items(self, user_id, item_ids, k: int = 3) -> list[pd.DataFrame]:
        """:meth:`explain` for each of ``item_ids`` (e.g. a list :meth:`recommend` made), in their order: the user
        is solved once for them all, so a list costs about what one item does."""
        from .explain import explain

        self._check_k(k)
        s = self.state_
        u = int(self._lookup("user_id", [_scalar_id("user_id", user_id)])[0])
        if u == 0:
            raise UnknownIdError(f"unknown user_id {user_id!r}: fold it in first (fold_in) to explain its scores")
        raw = id_array("item_ids", item_ids)
        targets = self._lookup("item_id", raw)
        if (targets == 0).any():
            unknown = raw[np.flatnonzero(targets == 0)[0]]
            raise UnknownIdError(f"unknown item_id {_plain(unknown)!r}: the model has no score for it")
        if not len(targets):
            return []
        items, ratings = s.user_ratings(u)
        if not len(items):
            raise DataError("explain needs the user's ratings, and this model was saved by a version that kept none; "
                            "fit it again from the data")
        return explain(s, u, targets.astype("int64"), items, ratings, int(k), self._noise)

    # --- embeddings and similarity ------------------------------------------------------------------------------
    def _vectors(self, kind: str) -> np.ndarray:
        if kind not in ("item", "user"):
            raise ValueError(f"kind must be 'item' or 'user', got {kind!r}")
        m = self.state_.model
        if not m.capabilities.has_vectors:
            raise ValueError(f"model {self.model!r} learns no {kind} vectors (only biases), so it has no similar "
                             "items or embedding maps; use a factor model such as 'biased_dot'")
        if kind == "item":
            return m.item_vectors()
        s = self.state_
        if s.user_values is None and m.n_users == s.user_index.size:
            return m.user_vectors()
        return np.asarray(s.value(m.user_embedding.embeddings))[1:s.user_index.size]

    def _index_of(self, kind: str) -> IdIndex:
        return self.state_.item_index if kind == "item" else self.state_.user_index

    def item_embeddings(self, with_titles: bool = True) -> pd.DataFrame:
        """Learned item vectors, indexed by raw item id (title first when known)."""
        E = self._vectors("item")
        s = self.state_
        df = pd.DataFrame(E, index=pd.Index(s.item_index.ids, name="item_id"),
                          columns=[f"e{j}" for j in range(E.shape[1])])
        if with_titles and s.items is not None and "title" in s.items.columns:
            df.insert(0, "title", s.title_array)
        return df

    def user_embeddings(self) -> pd.DataFrame:
        """Learned user vectors, indexed by raw user id."""
        E = self._vectors("user")
        return pd.DataFrame(E, index=pd.Index(self.state_.user_index.ids, name="user_id"),
                            columns=[f"e{j}" for j in range(E.shape[1])])

    def _position(self, raw_id, kind: str) -> int:
        pos = int(self._index_of(kind).index([_scalar_id(f"{kind}_id", raw_id, allow_missing=True)])[0])
        if pos == 0:
            raise UnknownIdError(f"unknown {kind}_id {raw_id!r}: it has no learned embedding (not in the training "
                                 "data)")
        return pos - 1

    def similarity(self, a, b, kind: str = "item") -> float:
        """Cosine similarity of two items' (or users') embeddings."""
        E = self._vectors(kind)
        return cosine(E[self._position(a, kind)], E[self._position(b, kind)])

    def similarities(self, raw_id, kind: str = "item") -> pd.Series:
        """Cosine similarity of one item (or user) to all of them, indexed by raw id (the query included)."""
        E = self._vectors(kind)
        sims = cosine_similarities(E, E[self._position(raw_id, kind)])
        return pd.Series(sims, index=pd.Index(self._index_of(kind).ids, name=f"{kind}_id"), name="similarity")

    def _neighbours(self, raw_id, kind: str, k: int, min_ratings: int | None = None):
        self._check_k(k)
        E = self._vectors(kind)
        q = self._position(raw_id, kind)
        sims = cosine_similarities(E, E[q])
        allowed = np.ones(len(E), dtype=bool)
        allowed[q] = False
        if min_ratings is not None:
            check_min_ratings(min_ratings)
            counts = self.state_.popularity if kind == "item" else self.state_.activity
            allowed &= counts[1:] >= min_ratings
        pos = top_k(sims, k, allowed)
        return pos, sims[pos]

    def similar_items(self, item_id, k: int = 10, min_ratings: int | None = None) -> pd.DataFrame:
        """The ``k`` items most similar to ``item_id`` (cosine of embeddings; the query excluded; optionally only
        items with at least ``min_ratings`` training ratings): columns item_id, title, similarity."""
        pos, sims = self._neighbours(item_id, "item", k, min_ratings)
        return self._item_frame(pos, sims, "similarity")

    def similar_users(self, user_id, k: int = 10) -> pd.DataFrame:
        """The ``k`` users most similar to ``user_id``: columns user_id, similarity."""
        pos, sims = self._neighbours(user_id, "user", k)
        return pd.DataFrame({"user_id": self.state_.user_index.ids[pos], "similarity": sims})

    # --- introspection ------------------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """Parameter counts (total and per layer) and the resolved configuration."""
        s = self.state_
        layers = {w.path.split("/", 1)[-1]: int(np.prod(w.shape)) for w in s.model.weights}
        return {
            "model": self.model,
            "n_users": len(s.user_index),
            "n_items": len(s.item_index),
            "trainable_params": int(sum(np.prod(w.shape) for w in s.model.trainable_weights)),
            "total_params": int(sum(layers.values())),
            "weights": layers,
            "model_config": s.model_config.to_dict(),
            "training_config": s.training_config.to_dict(),
        }

    def get_params(self) -> dict[str, Any]:
        return {"model": self.model, "random_state": self.random_state, **self.params}

    # --- persistence --------------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write the fitted recommender to folder ``path`` (JSON, Keras weights, arrays, a checksummed manifest; no
        pickle). A non-empty folder that is not a saved model is refused; a saved model is replaced (atomically)
        only with ``overwrite=True``."""
        from .io import output_dir
        from .state import META

        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a folder path, got {path!r}")
        _check_flag("overwrite", overwrite)
        state = self.state_
        with output_dir(Path(path), overwrite=overwrite, marker=META, option="path",
                        overwrite_hint="pass overwrite=True") as tmp:
            state.save(tmp)
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Recommender":
        """Load a recommender written by :meth:`save`; it predicts exactly as the saved one did. Checksums, sizes and
        types are verified first (:class:`~ratecast.errors.IntegrityError` when anything was corrupted)."""
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a folder path, got {path!r}")
        state = FittedState.load(Path(path))
        # the saved configs define the model; the options given at fit are kept as a record, not checked against
        # today's options (a renamed or removed option must not stop a saved model from loading)
        rec = cls(state.model_name, random_state=state.random_state)
        rec.params = dict(state.params)
        rec._set_state(state)
        return rec


# --- argument checks ----------------------------------------------------------------------------------------------
def check_dataset(name: str, value: Any) -> None:
    """Raise ``TypeError`` naming argument ``name`` unless ``value`` is a ratecast :class:`Dataset`."""
    if not isinstance(value, Dataset):
        raise TypeError(f"{name} must be a ratecast Dataset, got {type(value).__name__}")


def _check_threshold(value) -> None:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ValueError(f"threshold must be a finite number, got {value!r}")


def check_flag(name: str, value: Any) -> None:
    """Raise ``ValueError`` naming argument ``name`` unless ``value`` is true or false (a bool)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be true or false, got {value!r}")


def _scalar_id(name: str, value, allow_missing: bool = False):
    """One raw id: an integer, a finite number or a text label (numpy scalars become plain values)."""
    value = _plain(value)
    if allow_missing and (value is None or (isinstance(value, float) and math.isnan(value))):
        return value
    ok = (isinstance(value, (Integral, str)) and not isinstance(value, bool)) or (
        isinstance(value, float) and math.isfinite(value))
    if not ok:
        raise TypeError(f"{name} must be one id (an integer or a text label), got {value!r}")
    return value


def id_array(name: str, values: Any) -> np.ndarray:
    """A 1-D array of raw ids from a list, array or Series (one id becomes a list of one)."""
    if isinstance(values, (set, frozenset, dict)) or (not isinstance(values, (str, bytes)) and
                                                    not hasattr(values, "__len__") and hasattr(values, "__iter__")):
        raise TypeError(f"{name} must be a list, array or Series of ids, got {type(values).__name__}")
    try:
        arr = np.asarray(values)
    except ValueError:
        raise TypeError(f"{name} must be a flat list of ids, got nested lists of different lengths") from None
    if arr.dtype.kind in "US" and isinstance(values, (list, tuple)) and not all(isinstance(v, str) for v in values):
        arr = np.array(list(values), dtype=object)  # mixed ints and labels stay what they are (numpy makes text)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.dtype == object and any(not isinstance(v, Hashable) for v in arr):
        raise TypeError(f"{name} must hold ids (integers or text), got a nested sequence")
    return arr


# the names this module's own code uses
_check_dataset, _check_flag, _id_array = check_dataset, check_flag, id_array

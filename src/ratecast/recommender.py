"""The estimator: ids, features, training, prediction, evaluation and persistence around a Keras rating model."""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd

from . import metrics as M
from .datasets.dataset import Dataset, IdIndex
from .datasets.scale import RatingScale
from .errors import NotFittedError
from .features import FeatureEncoder
from .inference import make_scorer
from .io import make_temp_dir, replace_dir
from .coldstart import ColdStartMixin
from .models import MODELS, split_params
from .retrieval import RetrievalMixin
from .split import validation_split as _validation_split

FORMAT_VERSION = 1
_LOSSES = {"mae": "mean_absolute_error", "mse": "mean_squared_error", "huber": "huber"}


class _Batches(keras.utils.PyDataset):
    """Mini-batches reshuffled every epoch from the estimator's own seeded generator (no global RNG)."""

    def __init__(self, x: dict, y: np.ndarray, batch_size: int, rng: np.random.Generator):
        super().__init__()
        self.x, self.y, self.batch_size, self.rng = x, y, batch_size, rng
        self.order = rng.permutation(len(y))

    def __len__(self) -> int:
        return math.ceil(len(self.y) / self.batch_size)

    def __getitem__(self, i: int):
        idx = self.order[i * self.batch_size:(i + 1) * self.batch_size]
        return {k: v[idx] for k, v in self.x.items()}, self.y[idx]

    def on_epoch_end(self) -> None:
        self.order = self.rng.permutation(len(self.y))


class Baseline:
    """Global mean + damped user and item biases, fitted in closed form: the fallback for unknown ids."""

    def __init__(self, mean: float, user_bias: np.ndarray, item_bias: np.ndarray):
        self.mean, self.user_bias, self.item_bias = mean, user_bias, item_bias

    @classmethod
    def fit(cls, users: np.ndarray, items: np.ndarray, ratings: np.ndarray, n_users: int, n_items: int,
            damping: float = 10.0) -> "Baseline":
        mu = float(ratings.mean())
        bi = np.bincount(items, ratings - mu, n_items) / (np.bincount(items, None, n_items) + damping)
        bu = np.bincount(users, ratings - mu - bi[items], n_users) / (np.bincount(users, None, n_users) + damping)
        bi[0] = bu[0] = 0.0
        return cls(mu, bu, bi)

    def predict(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        return self.mean + self.user_bias[u] + self.item_bias[i]


class Recommender(RetrievalMixin, ColdStartMixin):
    """Rating-prediction recommender.

    ``Recommender(model="deep", embedding_dim=64, epochs=10, batch_size=64, random_state=0)`` — options are the
    fields of the model's config (see :mod:`ratecast.models.config`) and of :class:`TrainingConfig`.

    Unknown ids: a (user, item) pair whose user or item was not in the training data is predicted by the baseline
    (global mean + the known side's bias) and flagged ``was_impossible`` in :meth:`predict_details`; predictions are
    never NaN and never raise for unknown ids.
    """

    def __init__(self, model: str = "deep", *, random_state: int | None = None, verbose: int | str = "auto",
                 **params: Any):
        self.model = model
        self.random_state = random_state
        self.verbose = verbose
        self.params = params
        split_params(model, params)  # fail early on unknown options (configs validate eagerly)

    # --- helpers ------------------------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError("this Recommender is not fitted yet: call fit(train) first")

    def _inputs(self, u: np.ndarray, i: np.ndarray) -> dict[str, np.ndarray]:
        x = {"user": u.astype("int32"), "item": i.astype("int32")}
        if self.item_table_.shape[1]:
            x["item_features"] = self.item_table_[i]
        if self.user_table_.shape[1]:
            x["user_features"] = self.user_table_[u]
        return x

    def _targets(self, ratings: np.ndarray) -> np.ndarray:
        if self.model == "classification":
            return self.rating_scale_.to_class(ratings)
        return ratings.astype("float32")

    def _to_rating(self, out: np.ndarray) -> np.ndarray:
        """Model outputs -> ratings on the scale (classification: by the configured prediction rule)."""
        if out.ndim == 2:
            values = self.rating_scale_.values
            rule = self.model_config_.prediction
            if rule == "argmax":
                return values[np.argmax(out, axis=1)]
            if rule == "median":
                return values[np.argmax(np.cumsum(out, axis=1) >= 0.5, axis=1)]
            return out.astype("float64") @ values
        return self.rating_scale_.clip(out)

    @property
    def _scorer(self):
        if "_scorer_cache" not in self.__dict__:
            self._scorer_cache = make_scorer(self.model_, self.item_table_, self.user_table_)
        return self._scorer_cache

    def _raw_scores(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        """Model outputs for index pairs, in fixed-size padded chunks so compiled shapes are reused."""
        n = len(u)
        out = []
        chunk = 1 << 16
        for start in range(0, n, chunk):
            uu, ii = u[start:start + chunk], i[start:start + chunk]
            m = len(uu)
            # multiples of 256 up to 4096 rows, powers of two beyond: few compiled shapes, little padding
            size = -(-m // 256) * 256 if m <= 4096 else 1 << (m - 1).bit_length()
            pad = size - m
            if pad:
                uu = np.concatenate([uu, np.zeros(pad, uu.dtype)])
                ii = np.concatenate([ii, np.zeros(pad, ii.dtype)])
            out.append(self._scorer(uu, ii)[:m])
        if not out:
            width = (self.rating_scale_.n_classes,) if self.model == "classification" else ()
            return np.zeros((0, *width), "float32")
        return np.concatenate(out)

    # --- fitting ------------------------------------------------------------------------------------------------
    def fit(self, train: Dataset, validation: Dataset | None = None, validation_split: float | None = None
            ) -> "Recommender":
        """Fit on ``train``. Validation (for early stopping and the validation curve) is ``validation`` if given,
        else a random ``validation_split`` fraction of ``train`` (default from the training config)."""
        if not isinstance(train, Dataset):
            raise TypeError(f"train must be a ratecast Dataset, got {type(train).__name__}")
        if len(train.ratings) == 0:
            raise ValueError("train has no ratings")
        mcfg, tcfg = split_params(self.model, self.params)
        self.model_config_, self.training_config_ = mcfg, tcfg
        given = train.ratings  # everything the user rated: excluded from their recommendations
        if validation is None:
            frac = tcfg.validation_split if validation_split is None else validation_split
            if frac:
                train, validation = _validation_split(train, frac, random_state=self.random_state)
        self.rating_scale_ = train.rating_scale or RatingScale.infer(train.ratings["rating"])
        r = train.ratings
        self.user_index_, self.item_index_ = IdIndex(r["user_id"]), IdIndex(r["item_id"])
        u, i = self.user_index_.index(r["user_id"]), self.item_index_.index(r["item_id"])
        y = r["rating"].to_numpy(dtype="float64")
        self.baseline_ = Baseline.fit(u, i, y, self.user_index_.size, self.item_index_.size)
        gu, gi = self.user_index_.index(given["user_id"]), self.item_index_.index(given["item_id"])
        known = (gu > 0) & (gi > 0)
        self.train_pairs_ = (gu[known], gi[known])
        self.train_popularity_ = np.bincount(self.train_pairs_[1], minlength=self.item_index_.size)

        if self.model == "hybrid":
            self.encoder_ = FeatureEncoder(mcfg.item_features, mcfg.user_features).fit(train)
            self.item_table_, self.user_table_ = self.encoder_.tables(train, self.item_index_, self.user_index_)
        else:
            self.encoder_ = None
            self.item_table_ = np.zeros((self.item_index_.size, 0), "float32")
            self.user_table_ = np.zeros((self.user_index_.size, 0), "float32")
        self.items_ = train.items
        self.users_ = train.users
        self.genres_ = list(train.genres)

        seed = self.random_state
        self.model_ = MODELS[self.model](
            mcfg.to_dict(), self.user_index_.size, self.item_index_.size, global_mean=self.baseline_.mean,
            n_classes=self.rating_scale_.n_classes if self.model == "classification" else 0,
            item_feature_dim=self.item_table_.shape[1], user_feature_dim=self.user_table_.shape[1],
            seed=seed,
        )
        self._compile(tcfg)
        data = _Batches(self._inputs(u, i), self._targets(y), tcfg.batch_size, np.random.default_rng(seed))
        val_data = None
        callbacks = []
        if validation is not None and len(validation.ratings):
            vr = validation.ratings
            vu, vi = self.user_index_.index(vr["user_id"]), self.item_index_.index(vr["item_id"])
            known = (vu > 0) & (vi > 0)
            vy = vr["rating"].to_numpy(dtype="float64")[known]
            val_data = (self._inputs(vu[known], vi[known]), self._targets(vy))
            if tcfg.early_stopping:
                callbacks.append(keras.callbacks.EarlyStopping(
                    monitor="val_loss", patience=tcfg.early_stopping, restore_best_weights=True))
        # the random-initialisation baseline: errors of the untrained model on (a sample of) the training ratings,
        # one eager call, so that no compilation is added to fit
        sample = np.random.default_rng(seed).choice(len(y), size=min(len(y), 2048), replace=False)
        untrained = self._to_rating(np.asarray(self.model_(self._inputs(u[sample], i[sample]), training=False)))
        self.initial_train_metrics_ = {"mae": M.mae(y[sample], untrained), "mse": M.mse(y[sample], untrained),
                                       "n": int(len(sample))}
        start = time.perf_counter()
        # shuffle=False: _Batches already reshuffles each epoch from our seeded generator (Keras would otherwise
        # reorder batches with the process-global RNG and break reproducibility)
        hist = self.model_.fit(data, validation_data=val_data, epochs=tcfg.epochs, callbacks=callbacks,
                               verbose=self.verbose, shuffle=False)
        self.fit_seconds_ = time.perf_counter() - start
        self.history_ = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
        self.n_train_ = len(y)
        self._clear_caches()
        return self

    def _compile(self, tcfg) -> None:
        opt_cls = {"adam": keras.optimizers.Adam, "adamw": keras.optimizers.AdamW, "sgd": keras.optimizers.SGD,
                   "rmsprop": keras.optimizers.RMSprop, "adagrad": keras.optimizers.Adagrad}[tcfg.optimizer]
        metrics = ["sparse_categorical_accuracy"] if self.model == "classification" else ["mae"]
        self.model_.compile(optimizer=opt_cls(learning_rate=tcfg.learning_rate), loss=self._keras_loss(),
                            metrics=metrics)

    def _keras_loss(self) -> str:
        if self.model == "classification":
            return "sparse_categorical_crossentropy"
        return _LOSSES[self.model_config_.loss]

    # --- predicting ---------------------------------------------------------------------------------------------
    def _index_pairs(self, user_ids, item_ids) -> tuple[np.ndarray, np.ndarray]:
        users, items = np.asarray(user_ids), np.asarray(item_ids)
        if users.ndim == 0:
            users = users.reshape(1)
        if items.ndim == 0:
            items = items.reshape(1)
        if users.shape != items.shape or users.ndim != 1:
            raise ValueError(
                f"user_ids and item_ids must be 1-D and of the same length, got shapes {users.shape} and {items.shape}")
        return self.user_index_.index(users), self.item_index_.index(items)

    def _predict_index(self, u: np.ndarray, i: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        known = (u > 0) & (i > 0)
        pred = self.rating_scale_.clip(self.baseline_.predict(u, i))
        if known.any():
            pred[known] = self._to_rating(self._raw_scores(u[known], i[known]))
        return pred, ~known

    def predict(self, user_ids, item_ids) -> np.ndarray:
        """Predicted ratings for (user, item) pairs given as raw ids. Unknown ids: see the class docstring."""
        self._check_fitted()
        u, i = self._index_pairs(user_ids, item_ids)
        return self._predict_index(u, i)[0]

    def predict_details(self, user_ids, item_ids) -> pd.DataFrame:
        """Predictions with flags: ``known_user``, ``known_item``, ``was_impossible`` (baseline fallback used)."""
        self._check_fitted()
        u, i = self._index_pairs(user_ids, item_ids)
        pred, impossible = self._predict_index(u, i)
        return pd.DataFrame({"user_id": np.asarray(user_ids).reshape(-1), "item_id": np.asarray(item_ids).reshape(-1),
                             "prediction": pred, "known_user": u > 0, "known_item": i > 0,
                             "was_impossible": impossible})

    def predict_proba(self, user_ids, item_ids) -> np.ndarray:
        """Class probabilities over ``rating_scale_.values`` (classification model only)."""
        self._check_fitted()
        if self.model != "classification":
            raise ValueError(f"predict_proba needs model='classification', this recommender is {self.model!r}")
        u, i = self._index_pairs(user_ids, item_ids)
        return self._raw_scores(u, i).astype("float64")

    # --- evaluating ---------------------------------------------------------------------------------------------
    def evaluate(self, test: Dataset, *, k: int = 10, threshold: float = 4.0, ci: bool = True,
                 n_resamples: int = 1000) -> dict[str, Any]:
        """MAE/MSE/RMSE (with 95% bootstrap intervals), ranking metrics at ``k`` over each user's test items
        (relevant: rating >= ``threshold``), and how many test ratings needed the unknown-id fallback."""
        self._check_fitted()
        r = test.ratings
        details = self.predict_details(r["user_id"].to_numpy(), r["item_id"].to_numpy())
        y = r["rating"].to_numpy(dtype="float64")
        out = M.error_report(y, details["prediction"].to_numpy(), ci=ci, n_resamples=n_resamples,
                             random_state=self.random_state)
        out["n_unknown"] = int(details["was_impossible"].sum())
        frame = pd.DataFrame({"user_id": r["user_id"].to_numpy(), "rating": y,
                              "score": details["prediction"].to_numpy()})
        out.update(M.ranking_metrics(frame, k=k, threshold=threshold))
        return out

    # --- read-only views of the fitted state (what viz, report, cli and serve use) --------------------------------
    @property
    def user_index(self) -> IdIndex:
        """Vocabulary of the users the model knows (raw id <-> index)."""
        self._check_fitted()
        return self.user_index_

    @property
    def item_index(self) -> IdIndex:
        """Vocabulary of the items the model knows (raw id <-> index)."""
        self._check_fitted()
        return self.item_index_

    @property
    def items(self) -> pd.DataFrame | None:
        """Item metadata the model was fitted with (indexed by raw item id), or None."""
        self._check_fitted()
        return self.items_

    @property
    def users(self) -> pd.DataFrame | None:
        """User metadata the model was fitted with (indexed by raw user id), or None."""
        self._check_fitted()
        return self.users_

    @property
    def genres(self) -> list[str]:
        """Genre columns of the item metadata."""
        self._check_fitted()
        return list(self.genres_)

    @property
    def item_popularity(self) -> pd.Series:
        """Number of training ratings per known item, indexed by raw item id."""
        self._check_fitted()
        return pd.Series(self.train_popularity_[1:], index=pd.Index(self.item_index_.ids, name="item_id"),
                         name="popularity")

    @property
    def user_activity(self) -> pd.Series:
        """Number of training ratings per known user, indexed by raw user id."""
        self._check_fitted()
        counts = np.bincount(self.train_pairs_[0], minlength=self.user_index_.size)[1:]
        return pd.Series(counts, index=pd.Index(self.user_index_.ids, name="user_id"), name="n_ratings")

    def titles(self, item_ids) -> np.ndarray:
        """Titles of raw ``item_ids`` (None where unknown or when there is no title)."""
        self._check_fitted()
        return self._titles(item_ids)

    def seen_items(self, user_id) -> np.ndarray:
        """Raw ids of the items ``user_id`` rated in training (empty for an unknown user)."""
        self._check_fitted()
        u = int(self.user_index_.index([user_id])[0])
        return self.item_index_.ids[self.train_pairs_[1][self.train_pairs_[0] == u] - 1] if u else \
            self.item_index_.ids[:0]

    def seen_mask(self, user_ids, item_ids) -> np.ndarray:
        """For (user, item) pairs of raw ids: True where the pair was rated in training."""
        self._check_fitted()
        u, i = self._index_pairs(user_ids, item_ids)
        seen = self._seen
        return np.asarray(seen[u, i]).ravel().astype(bool) if len(u) else np.zeros(0, bool)

    # --- introspection ------------------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """Parameter counts (total and per layer) and the resolved configuration."""
        self._check_fitted()
        layers = {w.path.split("/", 1)[-1]: int(np.prod(w.shape)) for w in self.model_.weights}
        return {
            "model": self.model,
            "n_users": len(self.user_index_),
            "n_items": len(self.item_index_),
            "trainable_params": int(sum(np.prod(w.shape) for w in self.model_.trainable_weights)),
            "total_params": int(sum(layers.values())),
            "weights": layers,
            "model_config": self.model_config_.to_dict(),
            "training_config": self.training_config_.to_dict(),
        }

    def get_params(self) -> dict[str, Any]:
        return {"model": self.model, "random_state": self.random_state, **self.params}

    # --- persistence --------------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted recommender to folder ``path`` (config JSON, Keras weights, arrays; no pickle).
        The folder is written beside its destination and renamed into place."""
        self._check_fitted()
        path = Path(path)
        tmp = make_temp_dir(path)
        try:
            meta = {
                "format_version": FORMAT_VERSION,
                "ratecast_version": _version(),
                "model": self.model,
                "params": self.params,
                "random_state": self.random_state,
                "model_config": self.model_config_.to_dict(),
                "training_config": self.training_config_.to_dict(),
                "rating_scale": self.rating_scale_.to_dict(),
                "history": self.history_,
                "fit_seconds": self.fit_seconds_,
                "initial_train_metrics": self.initial_train_metrics_,
                "n_train": self.n_train_,
                "encoder": self.encoder_.to_dict() if self.encoder_ is not None else None,
                "genres": self.genres_,
                "user_ids": self.user_index_.to_list(),
                "item_ids": self.item_index_.to_list(),
                "keras_config": self.model_.get_config(),
            }
            (tmp / "recommender.json").write_text(json.dumps(meta, indent=2))
            self.model_.save_weights(tmp / "model.weights.h5")
            np.savez_compressed(
                tmp / "arrays.npz", item_table=self.item_table_, user_table=self.user_table_,
                baseline_user=self.baseline_.user_bias, baseline_item=self.baseline_.item_bias,
                baseline_mean=np.array(self.baseline_.mean), train_users=self.train_pairs_[0],
                train_items=self.train_pairs_[1], train_popularity=self.train_popularity_)
            if self.items_ is not None:
                _save_frame(self.items_, tmp / "items.parquet")
            if self.users_ is not None:
                _save_frame(self.users_, tmp / "users.parquet")
            replace_dir(tmp, path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Recommender":
        """Load a recommender written by :meth:`save`; it predicts exactly as the saved one did."""
        from . import models  # noqa: F401  (registers the Keras classes)

        path = Path(path)
        meta_file = path / "recommender.json"
        if not meta_file.exists():
            raise FileNotFoundError(f"{path} is not a saved ratecast model (no recommender.json)")
        meta = json.loads(meta_file.read_text())
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{meta_file}: format_version {meta.get('format_version')!r} is not supported "
                             f"(expected {FORMAT_VERSION})")
        try:
            rec = cls(meta["model"], random_state=meta["random_state"], **meta["params"])
            rec.model_config_, rec.training_config_ = split_params(rec.model, meta["params"])
            rec.rating_scale_ = RatingScale(**meta["rating_scale"])
            rec.history_, rec.fit_seconds_, rec.n_train_ = meta["history"], meta["fit_seconds"], meta["n_train"]
            rec.initial_train_metrics_ = meta.get("initial_train_metrics", {})
            rec.user_index_, rec.item_index_ = IdIndex(meta["user_ids"]), IdIndex(meta["item_ids"])
            rec.genres_ = meta["genres"]
            arrays = np.load(path / "arrays.npz")
            rec.item_table_, rec.user_table_ = arrays["item_table"], arrays["user_table"]
            rec.baseline_ = Baseline(float(arrays["baseline_mean"]), arrays["baseline_user"], arrays["baseline_item"])
            rec.train_pairs_ = (arrays["train_users"], arrays["train_items"])
            rec.train_popularity_ = arrays["train_popularity"]
            rec.items_ = pd.read_parquet(path / "items.parquet") if (path / "items.parquet").exists() else None
            rec.users_ = pd.read_parquet(path / "users.parquet") if (path / "users.parquet").exists() else None
            if meta["encoder"] is not None:
                pop = pd.Series(rec.train_popularity_[1:], index=rec.item_index_.ids)
                rec.encoder_ = FeatureEncoder.from_dict(meta["encoder"], popularity=pop)
            else:
                rec.encoder_ = None
            model = MODELS[rec.model].from_config({**meta["keras_config"], "random_init": False})
            model(model.dummy_inputs(1))
            model.load_weights(path / "model.weights.h5")
            rec.model_ = model
            rec._clear_caches()
        except KeyError as exc:
            raise ValueError(f"{meta_file}: field {exc.args[0]!r} is missing: the folder is incomplete or was "
                             "written by another ratecast version") from None
        return rec


def _version() -> str:
    from . import __version__

    return __version__


def _save_frame(df: pd.DataFrame, path: Path) -> None:
    out = df.copy()
    out.columns = [str(c) for c in out.columns]
    out.to_parquet(path)

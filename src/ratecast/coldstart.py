"""Cold start for a fitted :class:`~ratecast.Recommender` (a mixin): new users from demographics, new items from
metadata, and folding in a user who rated a few items without retraining the model."""

from __future__ import annotations

from typing import Any, Mapping

import keras
import numpy as np
import pandas as pd

from .datasets.dataset import IdIndex
from .explore import top_k
from .models import MODELS


class ColdStartMixin:
    def recommend_new_user(self, demographics: Mapping[str, Any] | None = None, k: int = 10,
                           exclude=None, min_ratings: int | None = None) -> pd.DataFrame:
        """Recommendations for a user with no ratings.

        The hybrid model scores every item from the user's demographics (e.g. ``{"age": 31, "gender": "F",
        "occupation": "writer"}``) through its unknown-user path; other models, or no demographics, fall back to
        :meth:`recommend_popular` (``attrs['fallback'] = True``).
        """
        self._check_fitted()
        if self.model != "hybrid" or not demographics:
            out = self.recommend_popular(k, exclude=exclude, min_ratings=min_ratings)
            out.attrs["fallback"] = True
            return out
        feats = self.encoder_.transform_users(pd.DataFrame([dict(demographics)], index=[None]), [None])
        n = len(self.item_index_)
        items = np.arange(1, n + 1, dtype="int32")
        x = {"user": np.zeros(n, "int32"), "item": items, "item_features": self.item_table_[items],
             "user_features": np.repeat(feats, n, axis=0)}
        raw = np.asarray(self.model_.predict_on_batch(x))  # one-off: no compiled scorer needed
        score, key = self._scores_and_keys(raw[None, :])
        allowed = self._allowed(np.array([0]), False, exclude, min_ratings)
        pos = top_k(key[0], k, allowed[0])
        return self._item_frame(pos, score[0, pos], "score")

    def predict_new_item(self, metadata: Mapping[str, Any], user_ids) -> np.ndarray:
        """Predicted ratings of a new item (not in training) for ``user_ids``.

        The hybrid model uses the item's metadata (``release_year``, genre flags, optional ``popularity``) through
        its unknown-item path; other models return the baseline (global mean + user bias).
        """
        self._check_fitted()
        u = self.user_index_.index(np.asarray(user_ids).reshape(-1))
        if self.model != "hybrid":
            return self.rating_scale_.clip(self.baseline_.predict(u, np.zeros_like(u)))
        meta = pd.DataFrame([dict(metadata)], index=["new"])
        pop = pd.Series({"new": float(metadata.get("popularity", 0))})
        feats = self.encoder_.transform_items(meta, ["new"], popularity=pop)
        x = {"user": u.astype("int32"), "item": np.zeros(len(u), "int32"),
             "item_features": np.repeat(feats, len(u), axis=0), "user_features": self.user_table_[u]}
        return self._to_rating(np.asarray(self.model_.predict_on_batch(x)))

    def fold_in(self, user_id, ratings, *, demographics: Mapping[str, Any] | None = None, epochs: int = 50,
                learning_rate: float = 0.05) -> "ColdStartMixin":
        """Add a new user from a few ratings without retraining the model.

        ``ratings`` is a mapping item_id -> rating or a DataFrame with item_id and rating columns. Only the new
        user's embedding (and bias) is fitted, every other weight frozen; afterwards the user is known to
        ``predict``/``recommend`` like any training user. Items unknown to the model are ignored.
        """
        self._check_fitted()
        if user_id in self.user_index_:
            raise ValueError(f"user_id {user_id!r} is already known to the model; fold_in adds new users only")
        if isinstance(ratings, Mapping):
            ratings = pd.DataFrame({"item_id": list(ratings.keys()), "rating": list(ratings.values())})
        items = self.item_index_.index(ratings["item_id"].to_numpy())
        y = ratings["rating"].to_numpy(dtype="float64")
        keep = items > 0
        if not keep.any():
            raise ValueError(f"fold_in needs at least one rating of a known item; none of "
                             f"{ratings['item_id'].tolist()[:5]} is known")
        items, y = items[keep], y[keep]
        off = ~self.rating_scale_.on_scale(y)
        if off.any():
            raise ValueError(f"ratings must lie on the scale {self.rating_scale_.minimum:g}.."
                             f"{self.rating_scale_.maximum:g}, got {y[off][:3].tolist()}")
        old = self.model_
        new_n = old.n_users + 1
        cfg = {**old.get_config(), "n_users": new_n}
        model = MODELS[self.model].from_config(cfg)
        user_row = np.zeros((1, self.user_table_.shape[1]), "float32")
        if self.user_table_.shape[1] and demographics:
            user_row = self.encoder_.transform_users(pd.DataFrame([dict(demographics)], index=[None]), [None])
        user_table = np.vstack([self.user_table_, user_row])
        new_u = new_n - 1
        x = {"user": np.full(len(items), new_u, "int32"), "item": items.astype("int32")}
        if self.item_table_.shape[1]:
            x["item_features"] = self.item_table_[items]
        if user_table.shape[1]:
            x["user_features"] = user_table[np.full(len(items), new_u)]
        model(x)
        for w_new, w_old in zip(model.weights, old.weights):
            v = np.asarray(w_old)
            if w_new.shape != v.shape:  # the user tables: one more row, started at the mean user
                v = np.vstack([v, v[1:].mean(axis=0, keepdims=True) if "embedding" in w_new.path else
                               np.zeros((1, v.shape[1]), v.dtype)])
            w_new.assign(v)
        for layer in model.layers:
            layer.trainable = layer.name in ("user_embedding", "user_bias")
        model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=self._keras_loss())
        model.fit(x, self._targets(y), batch_size=len(y), epochs=epochs, verbose=0, shuffle=False)
        for layer in model.layers:
            layer.trainable = True
        # the estimator's state: vocabulary, feature table, baseline, training pairs
        self.model_ = model
        self.user_index_ = IdIndex(np.append(self.user_index_.ids, np.asarray([user_id], dtype=object)
                                             if isinstance(user_id, str) else user_id))
        self.user_table_ = user_table
        resid = y - self.baseline_.mean - self.baseline_.item_bias[items]
        self.baseline_.user_bias = np.append(self.baseline_.user_bias, resid.sum() / (len(y) + 10.0))
        self.train_pairs_ = (np.append(self.train_pairs_[0], np.full(len(items), new_u)),
                             np.append(self.train_pairs_[1], items))
        self._clear_caches()
        return self


"""Embeddings, similarity and recommendation for a fitted :class:`~ratecast.Recommender` (a mixin).

Recommendation is one scoring pass over every known item plus a masked top-k (seen items, excluded items and
rarely rated items masked), for one user or a batch.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .explore import cosine_similarities, top_k


class RetrievalMixin:
    # --- caches (cleared whenever the model or vocabularies change) --------------------------------------------
    def _clear_caches(self) -> None:
        for name in ("_seen_cache", "_dot_cache", "_scorer_cache", "_title_cache"):
            self.__dict__.pop(name, None)

    @property
    def _title_array(self) -> np.ndarray:
        """Titles aligned with the item index positions (None where unknown)."""
        if "_title_cache" not in self.__dict__:
            ids = self.item_index_.ids
            if self.items_ is None or "title" not in self.items_.columns:
                self._title_cache = np.full(len(ids), None, dtype=object)
            else:
                self._title_cache = self.items_["title"].reindex(ids).to_numpy(dtype=object)
        return self._title_cache

    @property
    def _seen(self) -> sp.csr_matrix:
        """Sparse (user index x item index) matrix of training ratings."""
        if "_seen_cache" not in self.__dict__:
            u, i = self.train_pairs_
            self._seen_cache = sp.csr_matrix(
                (np.ones(len(u), dtype=bool), (u, i)), shape=(self.user_index_.size, self.item_index_.size))
        return self._seen_cache

    def _dot_weights(self):
        """(U, V, user bias, item bias, offset) as numpy arrays for the dot-product models, else None."""
        if self.model not in ("dot", "biased_dot"):
            return None
        if "_dot_cache" not in self.__dict__:
            m = self.model_
            U, V = np.asarray(m.user_embedding.embeddings), np.asarray(m.item_embedding.embeddings)
            if self.model == "biased_dot":
                bu, bi = np.asarray(m.user_bias.embeddings)[:, 0], np.asarray(m.item_bias.embeddings)[:, 0]
                off = m.global_mean
            else:
                bu, bi = np.zeros(len(U), "float32"), np.zeros(len(V), "float32")
                off = m.global_mean if m.cfg.use_global_mean else 0.0
            self._dot_cache = (U, V, bu, bi, off)
        return self._dot_cache

    # --- scoring ----------------------------------------------------------------------------------------------
    def _score_items(self, u_idx: np.ndarray) -> np.ndarray:
        """Raw model outputs for users ``u_idx`` against every known item: (n_users, n_items[, n_classes])."""
        n_items = len(self.item_index_)
        items = np.arange(1, n_items + 1, dtype="int32")
        dot = self._dot_weights()
        if dot is not None:
            U, V, bu, bi, off = dot
            return U[u_idx] @ V[1:].T + bu[u_idx][:, None] + bi[1:][None, :] + off
        uu = np.repeat(u_idx.astype("int32"), n_items)
        ii = np.tile(items, len(u_idx))
        out = self._raw_scores(uu, ii)
        return out.reshape(len(u_idx), n_items, *out.shape[1:])

    def _scores_and_keys(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Ratings (as ``predict`` returns them) and a ranking key consistent with them: ordering by the key never
        puts a lower rating above a higher one, and breaks their ties (e.g. clipped at the top of the scale)."""
        flat = raw.reshape(-1, *raw.shape[2:]) if raw.ndim == 3 else raw.reshape(-1)
        score = self._to_rating(flat)
        if raw.ndim == 3:  # classification: tie-break by the expected rating, within half a step
            s = self.rating_scale_
            expected = flat.astype("float64") @ s.values
            key = score + 0.49 * s.step * (expected - s.minimum) / (s.maximum - s.minimum)
        else:
            key = flat.astype("float64")
        return score.reshape(raw.shape[:2]), key.reshape(raw.shape[:2])

    def _allowed(self, u_idx: np.ndarray, exclude_seen: bool, exclude, min_ratings: int | None) -> np.ndarray:
        n_items = len(self.item_index_)
        allowed = np.ones((len(u_idx), n_items), dtype=bool)
        if exclude_seen:
            seen = self._seen
            for row, u in enumerate(u_idx):
                allowed[row, seen.indices[seen.indptr[u]:seen.indptr[u + 1]] - 1] = False
        if exclude is not None:
            ex = self.item_index_.index(np.asarray(list(exclude)))
            allowed[:, ex[ex > 0] - 1] = False
        if min_ratings is not None:
            if not isinstance(min_ratings, (int, np.integer)) or min_ratings < 0:
                raise ValueError(f"min_ratings must be an integer >= 0, got {min_ratings!r}")
            allowed &= (self.train_popularity_[1:] >= min_ratings)[None, :]
        return allowed

    def _titles(self, item_ids) -> np.ndarray:
        """Titles of raw ``item_ids`` (None for ids the model does not know)."""
        pos = self.item_index_.index(np.asarray(item_ids)) - 1
        out = np.full(len(pos), None, dtype=object)
        out[pos >= 0] = self._title_array[pos[pos >= 0]]
        return out

    # --- recommendations --------------------------------------------------------------------------------------
    def recommend(self, user_id, k: int = 10, exclude_seen: bool = True, exclude=None,
                  min_ratings: int | None = None) -> pd.DataFrame:
        """Top-``k`` items for ``user_id``: columns item_id, title, score (the predicted rating), best first.

        Every known item the user did not rate in training is scored (``exclude``: more item ids to leave out;
        ``min_ratings``: only items with at least that many training ratings). An unknown user gets the items
        with the best damped mean rating (:meth:`recommend_popular`), with ``attrs['fallback'] = True``.
        """
        self._check_fitted()
        u = int(self.user_index_.index([user_id])[0])
        if u == 0:
            out = self.recommend_popular(k, exclude=exclude, min_ratings=min_ratings)
            out.attrs["fallback"] = True
            return out
        u_idx = np.array([u])
        score, key = self._scores_and_keys(self._score_items(u_idx))
        pos = top_k(key[0], k, self._allowed(u_idx, exclude_seen, exclude, min_ratings)[0])
        return self._item_frame(pos, score[0, pos], "score")

    def _item_frame(self, pos: np.ndarray, values: np.ndarray, column: str) -> pd.DataFrame:
        """item_id, title, ``column`` for item positions ``pos`` (title kept as a plain object column: cheap)."""
        return pd.DataFrame({"item_id": self.item_index_.ids[pos],
                             "title": pd.Series(self._title_array[pos], dtype=object),
                             column: values})

    def recommend_all(self, user_ids=None, k: int = 10, exclude_seen: bool = True, exclude=None,
                      min_ratings: int | None = None, batch_size: int = 256) -> pd.DataFrame:
        """Top-``k`` for many users (default: every training user): columns user_id, rank, item_id, title, score.
        Unknown users are left out (use :meth:`recommend` for the fallback)."""
        self._check_fitted()
        if user_ids is None:
            u_all = np.arange(1, len(self.user_index_) + 1)
        else:
            u_all = self.user_index_.index(np.asarray(user_ids))
            u_all = u_all[u_all > 0]
        parts = [self._recommend_index(u_all[s:s + batch_size], k, exclude_seen, exclude, min_ratings)
                 for s in range(0, len(u_all), batch_size)]
        if not parts:
            return pd.DataFrame(columns=["user_id", "rank", "item_id", "title", "score"])
        return pd.concat(parts, ignore_index=True)

    def _recommend_index(self, u_idx, k, exclude_seen, exclude, min_ratings) -> pd.DataFrame:
        score, key = self._scores_and_keys(self._score_items(u_idx))
        allowed = self._allowed(u_idx, exclude_seen, exclude, min_ratings)
        pos = top_k(key, k, allowed)  # (n_users, k), -1 padded
        rows, cols = np.nonzero(pos >= 0)
        item_pos = pos[rows, cols]
        return pd.DataFrame({
            "user_id": self.user_index_.raw(u_idx[rows]), "rank": cols + 1, "item_id": self.item_index_.ids[item_pos],
            "title": pd.Series(self._title_array[item_pos], dtype=object), "score": score[rows, item_pos],
        })

    def recommend_popular(self, k: int = 10, exclude=None, min_ratings: int | None = None) -> pd.DataFrame:
        """Items with the best damped mean training rating (mean + item bias, shrunk toward the global mean by
        10 pseudo-ratings): the fallback when nothing is known about the user."""
        self._check_fitted()
        scores = self.rating_scale_.clip(self.baseline_.mean + self.baseline_.item_bias[1:])
        allowed = self._allowed(np.array([0]), False, exclude, min_ratings)[0]
        pos = top_k(scores, k, allowed)
        return self._item_frame(pos, scores[pos], "score")

    # --- embeddings and similarity ----------------------------------------------------------------------------
    def _embedding_matrix(self, kind: str) -> np.ndarray:
        if kind not in ("item", "user"):
            raise ValueError(f"kind must be 'item' or 'user', got {kind!r}")
        layer = self.model_.item_embedding if kind == "item" else self.model_.user_embedding
        return np.asarray(layer.embeddings)[1:]

    def item_embeddings(self, with_titles: bool = True) -> pd.DataFrame:
        """Learned item vectors, indexed by raw item id (title first when known)."""
        self._check_fitted()
        E = self._embedding_matrix("item")
        df = pd.DataFrame(E, index=pd.Index(self.item_index_.ids, name="item_id"),
                          columns=[f"e{j}" for j in range(E.shape[1])])
        if with_titles and self.items_ is not None and "title" in self.items_.columns:
            df.insert(0, "title", self._titles(df.index))
        return df

    def user_embeddings(self) -> pd.DataFrame:
        """Learned user vectors, indexed by raw user id."""
        self._check_fitted()
        E = self._embedding_matrix("user")
        return pd.DataFrame(E, index=pd.Index(self.user_index_.ids, name="user_id"),
                            columns=[f"e{j}" for j in range(E.shape[1])])

    def _require(self, raw_id, kind: str) -> int:
        index = self.item_index_ if kind == "item" else self.user_index_
        pos = int(index.index([raw_id])[0])
        if pos == 0:
            raise KeyError(f"unknown {kind}_id {raw_id!r}: it has no learned embedding (not in the training data)")
        return pos - 1

    def similarity(self, a, b, kind: str = "item") -> float:
        """Cosine similarity of two items' (or users') embeddings."""
        from .explore import cosine

        E = self._embedding_matrix(kind)
        return cosine(E[self._require(a, kind)], E[self._require(b, kind)])

    def similarities(self, raw_id, kind: str = "item") -> pd.Series:
        """Cosine similarity of one item (or user) to all of them, indexed by raw id (the query included)."""
        self._check_fitted()
        E = self._embedding_matrix(kind)
        sims = cosine_similarities(E, E[self._require(raw_id, kind)])
        index = self.item_index_ if kind == "item" else self.user_index_
        return pd.Series(sims, index=pd.Index(index.ids, name=f"{kind}_id"), name="similarity")

    def _neighbours(self, raw_id, kind: str, k: int, min_ratings: int | None = None):
        """Positions and similarities of the ``k`` nearest neighbours of ``raw_id`` (itself excluded)."""
        self._check_fitted()
        E = self._embedding_matrix(kind)
        q = self._require(raw_id, kind)
        sims = cosine_similarities(E, E[q])
        allowed = np.ones(len(E), dtype=bool)
        allowed[q] = False
        if min_ratings is not None:
            allowed &= self.train_popularity_[1:] >= min_ratings
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
        return pd.DataFrame({"user_id": self.user_index_.ids[pos], "similarity": sims})

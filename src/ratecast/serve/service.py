"""One loaded run, ready to answer requests: the fitted recommender plus what the hot endpoints read without
touching the model (each known user's top items and the item map, computed once on load; id lookups; titles).

A :class:`ModelService` never changes after it is built; a reload builds a new one and swaps it in
(:class:`Holder`), so a request that started on the old model finishes on it. New ratings
(:meth:`ModelService.with_ratings`) make a new service too, sharing everything but what they change.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import json
import threading
import time
import warnings
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..datasets.dataset import id_from_text
from ..errors import RatecastError
from ..live_log import LOG_NAME, RatingsLog, read_log

#: top-k lists kept per known user, made at start-up when users x this stays under CACHE_SLOTS and users x items
#: (the scores computed to make them) under CACHE_WORK; beyond, each list is ranked when it is asked for (one user
#: against every item: a millisecond or two) and its answer kept in the JSON cache
CACHE_K = 100
CACHE_SLOTS = 20_000_000
CACHE_WORK = 1 << 30
#: answers of the hot endpoint kept as JSON bytes (the most recently asked users)
JSON_CACHE = 50_000


class NotFound(RatecastError, LookupError):
    """An id the model does not know, where the endpoint has no fallback."""


def _plain(value: Any) -> Any:
    """A JSON-ready scalar (numpy scalars become Python ones)."""
    return value.item() if isinstance(value, np.generic) else value


def _title(value: Any) -> str | None:
    return None if value is None or value != value else str(value)  # a missing title (None or NaN) is null


def id_as_stored(index, text: str) -> Any:
    """An id written as text (a URL segment, a JSON key), typed as ``index`` holds ids: the stored id when known,
    else the integer for integer ids when the text is one written plainly (``7``, not ``007``), the number for
    number ids, and the text itself otherwise (text ids stay text)."""
    raw = id_from_text(index, text)
    if raw in index:
        return _plain(raw)
    kind = index.dtype.kind  # a grown index is not joined for it
    try:
        if kind in "iu" and str(int(text)) == text:
            return int(text)
        if kind == "f" and np.isfinite(float(text)):
            return float(text)
    except ValueError:
        pass
    return text


def _rows(df, column: str) -> list[dict]:
    """JSON rows (item_id, title, ``column``) of a Recommender answer frame."""
    return [{"item_id": _plain(i), "title": _title(t), column: round(float(v), 6)}
            for i, t, v in zip(df["item_id"], df["title"], df[column])]


@dataclass(frozen=True)
class RatedService:
    """What :meth:`ModelService.with_ratings` made: the new service, the batch as it is logged (the user's id and
    the items' ids as the model holds them, the ratings) and the answer to the request."""

    service: "ModelService"
    user_id: Any
    items: list
    ratings: list[float]
    answer: dict


class ModelService:
    """A loaded run and its precomputed answers."""

    def __init__(self, run_dir: str | Path, cache_k: int = CACHE_K):
        from ..runs import load_run

        started = time.perf_counter()
        self.run_dir = Path(run_dir).resolve()
        self.run = load_run(self.run_dir)
        self.log = RatingsLog(self.run_dir / LOG_NAME)
        logged = read_log(self.log.path)
        self.rec = self.run.recommender()
        if len(logged):  # the ratings given to this run while it was served before: its users come back
            s = self.rec.state_
            usable = (s.item_index.index(logged["item_id"].to_numpy(dtype=object)) > 0) & \
                s.rating_scale.on_scale(logged["rating"].to_numpy(dtype="float64"))
            if not usable.all():
                warnings.warn(f"{self.log.path}: skipped {int((~usable).sum())} logged rating(s) of items the model "
                              "does not know or off its rating scale", UserWarning, stacklevel=2)
                logged = logged[usable]
            if len(logged):
                self.rec = self.rec.update(logged[["user_id", "item_id", "rating"]])
        self.logged_ratings = len(logged)
        s = self.rec.state_
        manifest = (self.run_dir / "MANIFEST.json").read_bytes()
        self.sha256 = hashlib.sha256(manifest).hexdigest()  # the manifest holds the sha256 of every artefact
        self.version = self.sha256[:12]
        self.model_name = self.run.spec.model
        self.item_ids = [_plain(v) for v in s.item_index.ids]
        self.titles = [_title(t) for t in s.title_array]
        self.popularity = np.asarray(s.popularity[1:])
        self._user_pos = {str(v): k + 1 for k, v in enumerate(s.user_index.ids)}
        self._item_pos = {str(v): k for k, v in enumerate(s.item_index.ids)}
        n_users = len(s.user_index)
        self.cache_k = min(cache_k, len(self.item_ids))
        self._top = None
        if n_users * self.cache_k <= CACHE_SLOTS and n_users * len(self.item_ids) <= CACHE_WORK:
            pos, score = self.rec.top_positions(np.arange(1, n_users + 1), self.cache_k)  # the default options
            self._top = (pos.astype("int32"), np.asarray(score, dtype="float64"))
        self._popular = _rows(self.rec.recommend_popular(self.cache_k), "score")
        self._live_pos: dict[str, int] = {}  # users added by add_ratings (id as text -> index)
        self._live_top: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # lists of users changed by add_ratings
        self._history: dict | None = None  # user index -> (item positions, ratings); None if the data is missing
        self._history_loaded = False
        self._history_lock = threading.Lock()
        self._json_cache = self._new_json_cache()
        self.item_map: str | None = None  # the item embedding map (plotly JSON), made by warm()
        self.no_item_map = "the item map is not made yet"  # why item_map is None
        self.item_map_pending = False  # being made in the background: ask again shortly
        self.loaded_at = time.time()
        self.load_seconds = time.perf_counter() - started

    # --- ids ------------------------------------------------------------------------------------------------------
    def user_index(self, text: str) -> int:
        """The model's index of a user id written as text (0: unknown)."""
        u = self._user_pos.get(text)
        if u is None:
            u = self._live_pos.get(text)
        if u is None:
            raw = id_from_text(self.rec.state_.user_index, text)
            u = int(self.rec.state_.user_index.index([raw])[0])
        return u

    def item_position(self, value: Any) -> int:
        """The position of an item id (text or a JSON value) among known items (-1: unknown)."""
        pos = self._item_pos.get(str(value))
        if pos is None and isinstance(value, str):
            raw = id_from_text(self.rec.state_.item_index, value)
            pos = int(self.rec.state_.item_index.index([raw])[0]) - 1
        return -1 if pos is None else pos

    def _item(self, pos: int, score: float) -> dict:
        return {"item_id": self.item_ids[pos], "title": self.titles[pos], "score": round(float(score), 6)}

    def _ranked(self, items: list[dict], k: int) -> list[dict]:
        return [{**item, "rank": r + 1} for r, item in enumerate(items[:k])]

    # --- answers --------------------------------------------------------------------------------------------------
    def recommend(self, user_text: str, k: int, exclude_seen: bool = True, min_ratings: int | None = None
                  ) -> dict:
        """Top-k for a user, exactly as ``Recommender.recommend`` answers (an unknown user gets the popular
        fallback). The precomputed lists answer only when the options are the ones they were built with (unseen
        items, the model's default support) and ``k`` is within their depth; any other option is computed."""
        u = self.user_index(user_text)
        precomputed = min_ratings is None and k <= self.cache_k
        if u == 0:  # the fallback does not depend on what the user has seen
            items = self._popular if precomputed else _rows(
                self.rec.recommend_popular(k, min_ratings=min_ratings), "score")
            return {"user_id": id_as_stored(self.rec.state_.user_index, user_text), "fallback": "popular",
                    "items": self._ranked(items, k)}
        uid = self.rec.state_.user_index.raw([u])[0]
        top = self._live_top.get(u)
        if top is None and self._top is not None:
            top = self._top[0][u - 1], self._top[1][u - 1]
        if precomputed and exclude_seen and top is not None:
            pos, score = top[0][:k], top[1][:k]
            items = [self._item(int(p), s) for p, s in zip(pos, score) if p >= 0]
        else:
            items = _rows(self.rec.recommend(uid, k=k, exclude_seen=exclude_seen, min_ratings=min_ratings), "score")
        return {"user_id": _plain(uid), "fallback": None, "items": self._ranked(items, k)}

    def recommend_explained(self, user_text: str, k: int, exclude_seen: bool = True, min_ratings: int | None = None,
                            explain_k: int = 3) -> dict:
        """:meth:`recommend` with each item's ``reasons`` and ``base`` (:func:`ratecast.reasons.explain_list`, so
        exactly what ``Recommender.explain`` finds); the popular fallback's items have none (empty, null)."""
        from ..reasons import explain_list

        answer = self.recommend(user_text, k, exclude_seen, min_ratings)
        if answer["fallback"] is not None:
            return {**answer, "items": [{**item, "reasons": [], "base": None} for item in answer["items"]]}
        explained = explain_list(self.rec, answer["user_id"], [item["item_id"] for item in answer["items"]],
                                 k=explain_k)
        return {**answer, "items": [{**item, **why.to_dict()} for item, why in zip(answer["items"], explained)]}

    def recommend_json(self, user_text: str, k: int) -> bytes:
        """:meth:`recommend` with the default options (unseen items, the model's default support) as JSON bytes,
        kept for the most asked users."""
        return self._json_cache(user_text, k)

    def _new_json_cache(self) -> Callable[[str, int], bytes]:
        """:meth:`_recommend_json` kept for the most asked users; the cache holds the service weakly, so that a
        service swapped out is freed at once (and with it what its model holds)."""
        method = weakref.WeakMethod(self._recommend_json)
        return functools.lru_cache(maxsize=JSON_CACHE)(lambda user_text, k: method()(user_text, k))

    def _recommend_json(self, user_text: str, k: int) -> bytes:
        return json.dumps(self.recommend(user_text, k)).encode()

    def similar(self, item_text: str, k: int, min_ratings: int | None = None) -> dict:
        pos = self.item_position(item_text)
        if pos < 0:
            raise NotFound(f"item {item_text!r} is not known to the model")
        if not self.rec.state_.model.capabilities.has_vectors:
            raise NotFound(f"model {self.model_name!r} learns no item vectors, so it has no similar items")
        item_id = self.item_ids[pos]
        df = self.rec.similar_items(item_id, k=k, min_ratings=min_ratings)
        return {"item_id": item_id, "title": self.titles[pos],
                "items": _rows(df, "similarity")}

    def predict(self, pairs: list[tuple[Any, Any]], timestamps: list[float | None] | None = None) -> dict:
        s = self.rec.state_
        users = [self._raw(s.user_index, self._user_pos, u, offset=0) for u, _ in pairs]
        items = [self._raw(s.item_index, self._item_pos, i, offset=1) for _, i in pairs]
        times = None if timestamps is None else np.array([np.nan if t is None else t for t in timestamps], "float64")
        details = self.rec.predict_details(np.array(users, dtype=object), np.array(items, dtype=object), times)
        echo = [(id_as_stored(s.user_index, str(u)), id_as_stored(s.item_index, str(i))) for u, i in pairs]
        return {"predictions": [{"user_id": u, "item_id": i, "rating": round(float(r), 6), "was_impossible": bool(w)}
                                for (u, i), r, w in zip(echo, details["prediction"], details["was_impossible"])]}

    @staticmethod
    def _raw(index, lookup: dict, value: Any, offset: int) -> Any:
        """The stored raw id for a JSON id (numbers and text both find it), or the value itself when unknown."""
        pos = lookup.get(str(value))
        if pos is not None:
            return index.ids[pos - 1 + offset]
        return id_from_text(index, value) if isinstance(value, str) else value

    def new_user(self, demographics: Mapping[str, Any] | None, ratings: Mapping[str, float] | None, k: int) -> dict:
        """Recommendations for someone the model has not seen, without changing the served model: fold-in from
        their ratings (on a copy), else cold start from demographics, else the popular fallback. Rated items the
        model does not know are left out and named in ``ignored_items``; if it knows none of them, ``ValueError``."""
        if ratings:
            s = self.rec.state_
            known, ignored = {}, []
            for item, rating in ratings.items():
                pos = self.item_position(item)
                if pos >= 0:
                    known[s.item_index.ids[pos]] = rating
                else:
                    ignored.append(id_as_stored(s.item_index, item))
            if not known:
                shown = ", ".join(repr(i) for i in ignored[:5]) + (", ..." if len(ignored) > 5 else "")
                raise ValueError(f"ratings: none of the {len(ignored)} rated items is known to the model, got "
                                 f"{shown}")
            new_id = "__new_user__"  # folded into a copy: the served recommender is left as it was
            folded = copy.copy(self.rec).fold_in(new_id, known, demographics=demographics or None)
            df = folded.recommend(new_id, k=k)
            return {"fallback": None, "method": "fold_in", "items": self._ranked(_rows(df, "score"), k),
                    "ignored_items": ignored}
        df = self.rec.recommend_new_user(demographics or None, k=k)
        fallback = "popular" if df.attrs.get("fallback") else None
        return {"fallback": fallback, "method": "popular" if fallback else "cold_start",
                "items": self._ranked(_rows(df, "score"), k), "ignored_items": []}

    def with_ratings(self, user_text: str, items: Sequence[Any], ratings: Sequence[float]) -> "RatedService":
        """A new service whose model has ``user_text``'s new ratings (``Recommender.update``: folded in, and part
        of the training data a refit starts from); this one is left as it was. Every item must be known and every
        rating on the scale, else ``ValueError`` naming the first offending entry (nothing is taken)."""
        s = self.rec.state_
        raw_items = []
        for k, item in enumerate(items):
            pos = self.item_position(item if isinstance(item, str) else _plain(item))
            if pos < 0:
                raise ValueError(f"ratings.{k}.item_id: the item is not known to the model, got {item!r}")
            raw_items.append(s.item_index.ids[pos])
        y = np.asarray(ratings, dtype="float64")
        off = np.flatnonzero(~s.rating_scale.on_scale(y))
        if len(off):
            scale = s.rating_scale
            raise ValueError(f"ratings.{off[0]}.rating: must lie on the rating scale {scale.minimum:g}.."
                             f"{scale.maximum:g} in steps of {scale.step:g}, got {ratings[off[0]]!r}")
        u = self.user_index(user_text)
        known = bool(u)
        user_id = _plain(s.user_index.raw([u])[0]) if known else id_as_stored(s.user_index, user_text)
        frame = pd.DataFrame({"user_id": pd.Series([user_id] * len(y), dtype=object),
                              "item_id": pd.Series(raw_items, dtype=object), "rating": y})
        rec = self.rec.update(frame)
        new = copy.copy(self).adopt(rec, user_id, None if known else user_text)
        u = new.user_index(user_text)
        count = int(rec.state_.seen.indptr[u + 1] - rec.state_.seen.indptr[u])
        return RatedService(new, user_id, [_plain(i) for i in raw_items], [float(r) for r in y],
                            {"user_id": user_id, "accepted": len(y), "rating_count": count,
                             "new_user": not known})

    def adopt(self, rec, user_id: Any, new_text: str | None) -> "ModelService":
        """Called by :meth:`with_ratings` on a fresh copy of the service, before anyone reads it: serve ``rec``,
        which holds ``user_id``'s new ratings (``new_text``: the id as written, for a user new to the model), with
        that user's list computed now and the other lists kept. Returns the copy."""
        self.rec = rec
        u = int(rec.state_.user_index.index(np.array([user_id], dtype=object))[0])
        if new_text is not None:
            self._live_pos = {**self._live_pos, new_text: u, str(user_id): u}
        pos, score = rec.top_positions(np.array([u]), self.cache_k)
        self._live_top = {**self._live_top, u: (pos[0].astype("int32"), np.asarray(score[0], dtype="float64"))}
        self._popular = _rows(rec.recommend_popular(self.cache_k), "score")
        self._json_cache = self._new_json_cache()
        return self

    def history(self, user_text: str, k: int) -> dict:
        """The user's own ratings (training, and those given to the server), best first (what the explorer shows
        beside the recommendations)."""
        u = self.user_index(user_text)
        if u == 0:
            raise NotFound(f"user {user_text!r} is not known to the model")
        s = self.rec.state_
        uid = s.user_index.raw([u])[0]
        ratings = None if s.seen_ratings is not None else self._training_ratings()
        if s.seen_ratings is not None:  # the model holds them (also those given to the server)
            i, values = s.user_ratings(u)
            mine = (i - 1, values.astype("float64"))
        elif ratings is None:  # the data is not at hand: the rated items, most popular first
            pos = s.seen_positions(u)
            pos = pos[np.argsort(-self.popularity[pos], kind="stable")][:k]
            return {"user_id": _plain(uid), "items": [{"item_id": self.item_ids[p], "title": self.titles[p],
                                                        "rating": None} for p in pos]}
        else:
            mine = ratings.get(u)
        if mine is None:
            return {"user_id": _plain(uid), "items": []}
        pos, values = mine
        order = np.lexsort((-self.popularity[pos], -values))[:k]
        return {"user_id": _plain(uid), "items": [{"item_id": self.item_ids[pos[o]], "title": self.titles[pos[o]],
                                                    "rating": float(values[o])} for o in order]}

    def _training_ratings(self) -> dict | None:
        with self._history_lock:
            if not self._history_loaded:
                self._history_loaded = True
                try:
                    from ..runs import make_split

                    split = make_split(self.run.load_data(), self.run.spec)
                    r = split.train.ratings
                    s = self.rec.state_
                    u = s.user_index.index(r["user_id"])
                    i = s.item_index.index(r["item_id"]) - 1
                    ok = (u > 0) & (i >= 0)
                    u, i, y = u[ok], i[ok], r["rating"].to_numpy(float)[ok]
                    order = np.argsort(u, kind="stable")
                    u, i, y = u[order], i[order], y[order]
                    starts = np.flatnonzero(np.r_[True, u[1:] != u[:-1]])
                    ends = np.r_[starts[1:], len(u)]
                    self._history = {int(u[a]): (i[a:b], y[a:b]) for a, b in zip(starts, ends)}
                except (RatecastError, OSError, ValueError):  # the data is not at hand
                    self._history = None
            return self._history

    def search(self, text: str, limit: int = 20) -> dict:
        """Items whose title contains ``text`` (case-insensitive), most rated first; the item whose id is ``text``
        comes first (so data without titles can be searched too)."""
        needle = text.casefold()
        hits = [p for p, t in enumerate(self.titles) if t and needle in t.casefold()]
        hits.sort(key=lambda p: -self.popularity[p])
        exact = self.item_position(text)
        if exact >= 0:
            hits = [exact] + [p for p in hits if p != exact]
        return {"query": text, "items": [{"item_id": self.item_ids[p], "title": self.titles[p],
                                          "ratings": int(self.popularity[p])} for p in hits[:limit]]}

    def info(self) -> dict:
        spec = self.run.spec
        return {"version": self.version, "sha256": self.sha256, "run_dir": str(self.run_dir),
                "model": self.model_name, "dataset": self.run.info.get("dataset"),
                "protocol": {"data": spec.data, "split": spec.split, "seed": spec.seed, "test_size": spec.test_size},
                "config": {"model": self.run.info.get("model_config"), "training": self.run.info.get("training_config")},
                "metrics": self.run.metrics.get("test"), "loaded_at": self.loaded_at,
                "rating_scale": dataclasses.asdict(self.rec.rating_scale_),
                "load_seconds": round(self.load_seconds, 3), "users": len(self._user_pos), "items": len(self.item_ids)}

    def warm(self, map_in_background: bool = False) -> None:
        """One call of each endpoint shape, so that the first requests do not compile anything, and the item map
        (see :mod:`ratecast.serve.item_map`), so that no request waits for it: made here, or with
        ``map_in_background`` in a thread of its own (start-up: a large catalogue's t-SNE must not hold readiness
        back; ``GET /v1/map`` answers 503 until it is made)."""
        first_user = next(iter(self._user_pos))
        self.recommend(first_user, 10)
        self.recommend(first_user, 10, min_ratings=10)
        self.recommend("\x00unknown", 10)
        if self.rec.state_.model.capabilities.has_vectors:
            self.similar(str(self.item_ids[0]), 10)
        self.predict([(first_user, self.item_ids[0])])
        self.warm_ratings(first_user)
        if map_in_background:
            self.item_map_pending = True
            threading.Thread(target=self.make_item_map, name="ratecast-item-map", daemon=True).start()
        else:
            self.make_item_map()

    def warm_ratings(self, known_user: str) -> None:
        """Ratings of a new user and of ``known_user`` taken in and thrown away (nothing logged, nothing kept), so
        that the first ratings posted pay for no fold-in set-up (e.g. ``bayesian``'s prior, the grown tables) and no
        compilation."""
        ids = self.rec.state_.user_index.ids
        kind = self.rec.state_.user_index.dtype.kind
        new_user = str(int(np.max(ids)) + 1) if kind in "iu" and len(ids) else "\x00warm-up user"
        top = float(self.rec.state_.rating_scale.maximum)
        # one rating at a time (as the explorer page posts them), ten at once, and a known user's one
        for user, count in ((new_user, 1), (new_user, 10), (known_user, 1)):
            items = self.item_ids[:count]
            self.with_ratings(user, items, [top] * len(items))

    def make_item_map(self) -> None:
        """Make :attr:`item_map` (or say in :attr:`no_item_map` why there is none): a map is a nice-to-have, so a
        model whose map cannot be made is served without one."""
        from .item_map import item_map_json

        try:
            if not self.rec.state_.model.capabilities.has_vectors:
                self.no_item_map = f"model {self.model_name!r} learns no item vectors, so it has no map"
                return
            self.item_map = item_map_json(self.rec, self.run_dir, self.sha256)
        except Exception as exc:  # e.g. too few items for t-SNE
            self.no_item_map = f"the item map could not be made ({type(exc).__name__}: {exc})"
        finally:
            self.item_map_pending = False

"""``evaluate``: a fitted recommender's served lists and predictions on a test set, as an :class:`Evaluation`."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from numbers import Integral

import numpy as np
import pandas as pd

from ..datasets.dataset import Dataset
from ..errors import DataError
from .figures import DEPTH, group_figures, group_labels, summarise, user_figures


def liked_threshold(scale) -> float:
    """The rating from which a test rating counts as liked (relevant): the package's one definition,
    :attr:`ratecast.datasets.RatingScale.liked_threshold` (4 on 1..5)."""
    return float(scale.liked_threshold)


@dataclass(frozen=True, eq=False)
class Evaluation:
    """What :func:`evaluate` (or :func:`score_lists`) measured.

    * ``summary``: metric -> ``value``, ``ci_low``, ``ci_high`` (95% percentile bootstrap over test users);
    * ``per_user``: one row per test user (index ``user_id``): ``n_test``, ``n_relevant``, each per-user figure
      (NaN where it is undefined for that user: no relevant test item, or a list of fewer than 2 items for the
      diversities), ``recall@10[head|mid|tail]`` and, from :func:`evaluate`, ``fallback`` (the user was unknown to
      the model and got the popular list);
    * ``bands``: recall@10 by popularity band of the relevant items (terciles of the catalogue by training ratings;
      relevant items the model never saw are tail), with intervals and the users each is defined for;
    * ``groups``/``gaps``: None unless ``by`` named a user column; then each group's per-user metrics with intervals
      (index metric, group) and per metric the largest gap between groups with its interval;
    * ``lists``: the lists scored, ``(n_users, depth)`` catalogue positions in ``per_user`` order (-1: short);
      ``catalogue_size``: how many items the lists were drawn from.
    """

    summary: pd.DataFrame
    per_user: pd.DataFrame
    bands: pd.DataFrame
    lists: np.ndarray
    catalogue_size: int
    groups: pd.DataFrame | None = None
    gaps: pd.DataFrame | None = None
    by: str | None = None
    n_resamples: int = 1000
    random_state: int | None = 0

    @classmethod
    def from_per_user(cls, per_user: pd.DataFrame, lists, catalogue_size: int, *, users: pd.DataFrame | None = None,
                      by: str | None = None, n_resamples: int = 1000, random_state: int | None = 0) -> "Evaluation":
        """An evaluation rebuilt from a saved ``per_user`` table and ``lists`` (e.g. of an earlier run), with its
        summary, bands and groups computed again; :func:`compare` takes it like a fresh one."""
        check_resampling(n_resamples, random_state)
        lists = np.asarray(lists)
        if not isinstance(per_user, pd.DataFrame) or "n_test" not in per_user.columns or len(lists) != len(per_user):
            raise ValueError("per_user must be an Evaluation's per-user table, with one row per list")
        return _evaluation(per_user, lists, catalogue_size, users, by, n_resamples, random_state)


def check_resampling(n_resamples, random_state) -> None:
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, Integral) or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples!r}")
    if random_state is not None and (isinstance(random_state, bool) or not isinstance(random_state, Integral)
                                     or not 0 <= random_state < 2**32):
        raise ValueError(f"random_state must be an integer in [0, 2**32) or None, got {random_state!r}")


def score_lists(lists, rel_rows, rel_items, popularity, n_train_users: int, *, user_ids=None,
                item_vectors=None, genre_vectors=None, error_rows=None, errors=None,
                users: pd.DataFrame | None = None, by: str | None = None, n_resamples: int = 1000,
                random_state: int | None = 0) -> Evaluation:
    """Score arrays of lists (every metric, vectorised): the engine under :func:`evaluate`.

    ``lists``: ``(n_users, depth)`` catalogue positions, best first, -1 where short; ``rel_rows``/``rel_items``:
    the relevant (list row, position) pairs (positions past the catalogue: relevant items the model never saw);
    ``popularity``: training ratings per catalogue position; ``n_train_users``: users in training (novelty);
    ``item_vectors``/``genre_vectors``: per-position rows for the diversities (None: that diversity is left out);
    ``errors``: rating errors of list rows ``error_rows`` (None: no rmse/mae); ``users``/``by``: the user table and
    the column to group by."""
    check_resampling(n_resamples, random_state)
    lists, popularity = np.asarray(lists), np.asarray(popularity)
    _check_arrays(lists, rel_rows, rel_items, popularity, n_train_users, item_vectors, genre_vectors, error_rows,
                  errors, user_ids)
    per_user = user_figures(lists, rel_rows, rel_items, popularity, n_train_users, item_vectors=item_vectors,
                            genre_vectors=genre_vectors, error_rows=error_rows, errors=errors, user_ids=user_ids)
    return _evaluation(per_user, np.asarray(lists), len(popularity), users, by, n_resamples, random_state)


def _check_arrays(lists, rel_rows, rel_items, popularity, n_train_users, item_vectors, genre_vectors, error_rows,
                  errors, user_ids) -> None:
    """One-line errors for arrays that do not fit together."""
    if lists.ndim != 2 or lists.dtype.kind not in "iu":
        raise ValueError(f"lists must be a 2-D integer array (users, ranks), got {lists.dtype} of shape {lists.shape}")
    n_users, n_items = lists.shape[0], len(popularity)
    if popularity.ndim != 1 or popularity.dtype.kind not in "iuf" or (popularity < 0).any():
        raise ValueError("popularity must be a 1-D array of training ratings per item (>= 0)")
    if lists.size and (lists.min() < -1 or lists.max() >= n_items):
        raise ValueError(f"lists must hold item positions 0..{n_items - 1} (or -1), got {lists.min()}..{lists.max()}")
    if isinstance(n_train_users, bool) or not isinstance(n_train_users, Integral) or n_train_users < 1:
        raise ValueError(f"n_train_users must be an integer >= 1, got {n_train_users!r}")
    pairs = {"rel_rows/rel_items": (rel_rows, rel_items)}
    if errors is not None or error_rows is not None:
        pairs["error_rows/errors"] = (error_rows, errors)
    for names, (row_values, values) in pairs.items():
        r, v = np.asarray(row_values), np.asarray(values)
        if r.ndim != 1 or v.ndim != 1 or len(r) != len(v):
            raise ValueError(f"{names} must be 1-D arrays of one length, got shapes {r.shape} and {v.shape}")
        if len(r) and (r.dtype.kind not in "iu" or r.min() < 0 or r.max() >= n_users):
            raise ValueError(f"{names}: rows must be list rows 0..{n_users - 1}, got {r.min()}..{r.max()}")
        if names.startswith("error") and len(v) and not np.isfinite(v.astype("float64")).all():
            raise ValueError("errors must be finite numbers")
        if names.startswith("rel") and len(v) and (v.dtype.kind not in "iu" or v.min() < 0):
            raise ValueError("rel_items must be item positions >= 0")
    for name, vectors in (("item_vectors", item_vectors), ("genre_vectors", genre_vectors)):
        if vectors is not None and (np.ndim(vectors) != 2 or len(vectors) != n_items):
            raise ValueError(f"{name} must have one row per catalogue item ({n_items}), got shape "
                             f"{np.shape(vectors)}")
    if user_ids is not None and len(user_ids) != n_users:
        raise ValueError(f"user_ids must have one id per list ({n_users}), got {len(user_ids)}")


def _evaluation(per_user: pd.DataFrame, lists: np.ndarray, catalogue_size: int, users, by, n_resamples,
                random_state) -> Evaluation:
    if len(per_user) == 0:
        raise DataError("there are no test users to evaluate")
    summary, bands = summarise(per_user, lists, catalogue_size, n_resamples=n_resamples, random_state=random_state)
    groups = gaps = None
    if by is not None:
        labels = group_labels(per_user, users, by)
        groups, gaps = group_figures(per_user, labels, n_resamples=n_resamples, random_state=random_state)
    return Evaluation(summary, per_user, bands, lists, int(catalogue_size), groups, gaps, by, int(n_resamples),
                      random_state)


def fold_in_users(rec, fold_in: Dataset):
    """A copy of ``rec`` that also knows the users of ``fold_in`` (their ratings folded in, the model's other weights
    untouched); ``rec`` itself is left as it was. A user none of whose fold-in items the model knows cannot be
    folded in and stays unknown (served the popular list). All users at once, through ``Recommender.fold_in``."""
    r = fold_in.ratings
    known_user = rec.user_index_.index(r["user_id"].to_numpy()) > 0
    if known_user.any():
        user = r["user_id"].iloc[int(np.flatnonzero(known_user)[0])]
        user = user.item() if isinstance(user, np.generic) else user
        raise ValueError(f"fold_in: user_id {user!r} is already "
                         "known to the model (it was in training); fold_in must hold held-out users only")
    usable = r[rec.item_index_.index(r["item_id"].to_numpy()) > 0]
    if usable.empty:
        return copy.copy(rec)
    return rec.fold_in(usable[["user_id", "item_id", "rating"]])  # every user at once; rec keeps its own state


def served_lists(rec, user_ids: np.ndarray, depth: int = DEPTH) -> tuple[np.ndarray, np.ndarray]:
    """The lists ``rec`` serves to ``user_ids`` (``recommend_all``; users it does not know get
    ``recommend_popular``, as ``recommend`` gives them), as ``(n_users, depth)`` catalogue positions (-1: short),
    and which users got the fallback."""
    user_ids = np.asarray(user_ids)
    known = rec.user_index_.index(user_ids) > 0
    lists = np.full((len(user_ids), depth), -1, "int64")
    if known.any():
        frame = rec.recommend_all(user_ids=user_ids[known], k=depth)
        rows = pd.Index(user_ids).get_indexer(frame["user_id"].to_numpy())
        lists[rows, frame["rank"].to_numpy() - 1] = rec.item_index_.index(frame["item_id"].to_numpy()) - 1
    if (~known).any():
        popular = rec.item_index_.index(rec.recommend_popular(k=depth)["item_id"].to_numpy()) - 1
        lists[np.ix_(~known, np.arange(len(popular)))] = popular
    return lists, ~known


def evaluate(rec, test: Dataset, fold_in: Dataset | None = None, by: str | None = None, *,
             n_resamples: int = 1000, random_state: int | None = 0) -> Evaluation:
    """Rating errors and the served lists of a fitted recommender on ``test``, with bootstrap intervals over users.

    Each test user's list ranks every item of the catalogue they did not rate in training (or fold-in), as
    ``recommend`` serves it; a test rating >= :func:`liked_threshold` of the model's scale is relevant. With
    ``fold_in`` (known ratings of held-out users, e.g. ``split.held_out_users(...).fold_in``) those users are folded
    into a copy of ``rec`` first; ``rec`` is not changed. ``by``: a column of the user table (e.g. ``gender``,
    ``age``, ``occupation``) to break the figures down by. Popularity, novelty and the popularity bands use the
    training popularity of ``rec``."""
    if not isinstance(test, Dataset):
        raise TypeError(f"test must be a ratecast Dataset, got {type(test).__name__}")
    if fold_in is not None and not isinstance(fold_in, Dataset):
        raise TypeError(f"fold_in must be a ratecast Dataset or None, got {type(fold_in).__name__}")
    if by is not None and not isinstance(by, str):
        raise ValueError(f"by must be the name of a user column, got {by!r}")
    check_resampling(n_resamples, random_state)
    if len(test.ratings) == 0:
        raise DataError("test has no ratings: there is nothing to evaluate")
    test.check_ratings("test")
    catalogue = rec.item_index_.ids  # also fails early (NotFittedError) for an unfitted recommender
    served = rec
    if fold_in is not None:
        fold_in.check_ratings("fold_in")
        served = fold_in_users(rec, fold_in)
    r = test.ratings
    rows, user_ids = pd.factorize(r["user_id"], sort=False)
    lists, fallback = served_lists(served, np.asarray(user_ids))
    rating = r["rating"].to_numpy("float64")
    relevant = rating >= liked_threshold(rec.rating_scale_)
    item_pos = rec.item_index_.index(r["item_id"].to_numpy()[relevant]) - 1
    unseen = item_pos < 0  # relevant items the model never saw: distinct positions past the catalogue
    item_pos[unseen] = len(catalogue) + pd.factorize(r["item_id"].to_numpy()[relevant][unseen])[0]
    errors = rating - served.predict(r["user_id"].to_numpy(), r["item_id"].to_numpy(), r["timestamp"])
    vectors = (rec.item_embeddings(with_titles=False).to_numpy("float32")
               if rec.model_.capabilities.has_vectors else None)
    genre_vectors = None
    if rec.items is not None and rec.genres:
        genre_vectors = rec.items[rec.genres].reindex(catalogue).fillna(0).to_numpy("float32")
    users = next((d.users for d in (test, fold_in) if d is not None and d.users is not None), rec.users)
    per_user = user_figures(lists, rows[relevant], item_pos, rec.item_popularity.to_numpy(), len(rec.user_index_),
                            item_vectors=vectors, genre_vectors=genre_vectors, error_rows=rows, errors=errors,
                            user_ids=user_ids)
    per_user.insert(2, "fallback", fallback)
    return _evaluation(per_user, lists, len(catalogue), users, by, n_resamples, random_state)

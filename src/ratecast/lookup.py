"""Lookups answered from a saved model's stored tables with NumPy alone, without loading Keras: a user's
recommendations, an item's similar items and, for models whose rating is linear in their tables, predictions.

When a fitted state is saved (:data:`ratecast.state.STORED`), :func:`write` adds ``lookup.npz`` to the folder::

    depth            K (:data:`DEPTH`), the length of the stored lists
    default_support  the minimum support the lists were made under (0: none)
    top_items        (n_users, K) int32: every training user's list under the default options (item positions,
                     -1 where shorter), best first, as ``Recommender.recommend`` ranks them
    top_scores       (n_users, K) float32: their predicted ratings
    popularity       (n_items,) int64: training ratings per item
    popular_scores   (n_items,) float64: every item's damped mean rating (the list of an unknown user)
    baseline_user, baseline_item, baseline_mean: the baseline that predicts pairs of unknown ids (row 0: unknown)
    has_vectors      whether item_vectors holds the model's item vectors (similar items; not when over the size cap)
    item_vectors     (n_items, d) float32: the item vectors, or the item factors of a linear model (d may be 0)
    linear           whether rating = clip(offset + user_bias + item_bias + <user_factors, item_vectors>)
    offset, user_bias, item_bias, user_factors: those tables (users and items from index 1), when linear

:class:`SavedLookup` reads them (checksums and sizes checked first) and answers exactly as the loaded
``Recommender`` would, or says (``None``) that it cannot: options the stored lists do not cover (``k`` past what a
list holds, ``min_ratings`` below the default support, seen items kept), a model without linear tables for
predictions, a folder saved without the file. :func:`answer_recommend`, :func:`answer_similar` and
:func:`answer_predict` do a command's work on a run directory.

Size: 8 bytes per user and list entry, so K = 50 costs 65 MB for ML-25M's 162,541 users (0.4 MB for ML-100k), plus
the linear tables and item vectors (4 bytes a value: 57 MB at 64 factors), which are left out past
:data:`MAX_TABLE_BYTES`.
"""

from __future__ import annotations

import math
import os
import zipfile
from numbers import Integral
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import manifest
from .datasets.dataset import IdIndex, id_from_text
from .errors import IntegrityError, MissingFileError, UnknownIdError
from .integrity import ArrayHeader, finite, is_kind, npz_headers, require
from .io import read_json_object
from .similarity import cosine_similarities, top_k

FILE = "lookup.npz"
META = "recommender.json"  # as ratecast.state writes it
ITEMS = "items.parquet"
FORMATS = (3, 4)  # the recommender.json formats whose ids and scale a lookup reads (4 changed only weights)
DEPTH = 50  # entries of every stored list: answers k <= 50 (any k when a user's list is the whole catalogue)
#: lists are stored only where ranking every item for every user at save time stays cheap (users x items pairs; ML-10M
#: has 0.7e9, ML-25M 9.6e9): beyond it a save stores none (depth 0) and recommend asks the full model
MAX_LIST_PAIRS = 1 << 30
MAX_WIDTH = 1 << 16  # widest vectors a model stores (bayesian: embedding_dim * samples * chains)
#: vectors and linear tables larger than this are not copied (similar items and predictions then load the model):
#: ML-25M's 162,541 users and 59,047 items at 64 factors take 57 MB; bayesian's default 6,400 columns (25.6 kB a
#: row) stay in the weights alone past about 10,000 users and items
MAX_TABLE_BYTES = 1 << 28
#: a table may hold at most this many times its parquet file's size once read (as ratecast.state bounds it)
MAX_EXPANSION = 1000


# --- writing (at save time; Keras is loaded then) --------------------------------------------------------------------
def lookup_arrays(state) -> dict[str, np.ndarray]:
    """Everything ``lookup.npz`` holds for a fitted state (see the module docstring)."""
    from .ranking import Candidates, Scorer, popular

    n_users, n_items = len(state.user_index), len(state.item_index)
    candidates, scorer = Candidates(state), Scorer(state.model)
    depth = DEPTH if n_users * n_items <= MAX_LIST_PAIRS else 0  # larger: lists are left to the full model
    top_items = np.full((n_users, depth), -1, "int32")
    top_scores = np.zeros((n_users, depth), "float32")
    batch = scorer.user_batch()
    for start in range(0, n_users if depth else 0, batch):  # as Recommender.recommend_all ranks them
        users = np.arange(start + 1, min(start + batch, n_users) + 1)
        allowed = candidates.allowed(users, exclude_seen=True, min_ratings=None)
        pos, score = scorer.top_k(users, allowed, depth, batch_size=batch)
        top_items[start:start + len(users), :pos.shape[1]] = pos
        top_scores[start:start + len(users), :pos.shape[1]] = np.where(pos >= 0, score, 0.0)
    ranked, ranked_scores = popular(state, n_items, np.ones(n_items, bool))
    popular_scores = np.empty(n_items, "float64")
    popular_scores[ranked] = ranked_scores  # every item, in position order
    model = state.model
    has_vectors = bool(model.capabilities.has_vectors)
    vectors = np.asarray(model.item_vectors(), "float32") if has_vectors else np.zeros((n_items, 0), "float32")
    tables = model.linear_tables()
    if tables is not None and has_vectors and not np.array_equal(tables["item_factors"], vectors):
        tables = None  # the similarity vectors are not the factors: no place for them here
    width = vectors.shape[1] if tables is None else tables["item_factors"].shape[1]
    if 4 * width * (n_items + (0 if tables is None else n_users)) > MAX_TABLE_BYTES:
        tables, vectors, has_vectors = None, np.zeros((n_items, 0), "float32"), False  # left to the full model
    out = {"depth": np.asarray(depth), "default_support": np.asarray(candidates.default_support or 0),
           "top_items": top_items, "top_scores": top_scores, "popularity": np.asarray(state.popularity[1:], "int64"),
           "popular_scores": popular_scores, "baseline_user": state.baseline.user_bias,
           "baseline_item": state.baseline.item_bias, "baseline_mean": np.asarray(state.baseline.mean),
           "has_vectors": np.asarray(has_vectors), "linear": np.asarray(tables is not None)}
    if tables is not None:
        vectors = tables.pop("item_factors")
        out.update(tables)
    out["item_vectors"] = vectors
    return out


def write(state, folder: Path) -> None:
    """Write ``lookup.npz`` for ``state`` into the (new) model folder ``folder``."""
    np.savez(folder / FILE, **lookup_arrays(state))  # uncompressed: a lookup reads it without inflating


# --- checking -------------------------------------------------------------------------------------------------------
def check_headers(path: Path, n_users: int, n_items: int) -> dict[str, ArrayHeader]:
    """The arrays of ``lookup.npz`` by name, once their headers show the kinds and shapes of a model of ``n_users``
    users and ``n_items`` items (nothing is read but headers)."""
    heads = npz_headers(path)
    depth = heads["top_items"].shape[1] if "top_items" in heads and len(heads["top_items"].shape) == 2 else 0
    width = heads["item_vectors"].shape[1] if "item_vectors" in heads and len(heads["item_vectors"].shape) == 2 else 0
    expected = {"depth": ("iu", ()), "default_support": ("iu", ()), "top_items": ("i", (n_users, depth)),
                "top_scores": ("f", (n_users, depth)), "popularity": ("iu", (n_items,)),
                "popular_scores": ("f", (n_items,)), "baseline_user": ("f", (n_users + 1,)),
                "baseline_item": ("f", (n_items + 1,)), "baseline_mean": ("f", ()), "has_vectors": ("b", ()),
                "linear": ("b", ()), "item_vectors": ("f", (n_items, width))}
    linear = {"offset": ("f", ()), "user_bias": ("f", (n_users,)), "item_bias": ("f", (n_items,)),
              "user_factors": ("f", (n_users, width))}
    if "offset" in heads:
        expected.update(linear)
    for name, (kinds, shape) in expected.items():
        head = heads.get(name)
        require(head is not None, path, f"array {name!r} is missing")
        require(head.dtype.kind in kinds, path, f"array {name!r} has dtype {head.dtype}, expected kind {kinds!r}")
        require(head.shape == shape, path, f"array {name!r} has shape {head.shape}, expected {shape}")
    require(0 <= depth <= DEPTH and width <= MAX_WIDTH, path, f"lists of {depth} items and vectors of {width} "
                                                              f"values: expected at most {DEPTH} items and "
                                                              f"{MAX_WIDTH} values")
    extra = sorted(set(heads) - set(expected))
    require(not extra, path, f"unexpected array(s) {extra}")
    return heads


def check_saved(folder: Path, n_users: int, n_items: int) -> None:
    """A model folder's ``lookup.npz``, if it has one (folders saved before it was kept have none), is listed in the
    manifest (whose checksums the loader has verified) and declares the sizes of the model's ``n_users`` users and
    ``n_items`` items."""
    if (folder / FILE).exists():
        manifest.verify(folder, required=(FILE,), only=())  # listed; its checksum was verified with the others
        check_headers(folder / FILE, n_users, n_items)


# --- reading --------------------------------------------------------------------------------------------------------
class SavedLookup:
    """A saved model's lookup tables, read with NumPy alone; answers as the loaded ``Recommender`` would, or None."""

    def __init__(self, folder: Path, user_index: IdIndex, item_index: IdIndex, scale: tuple[float, float],
                 heads: dict[str, ArrayHeader]):
        self.folder, self.user_index, self.item_index = folder, user_index, item_index
        self.scale, self.heads = scale, heads
        self._arrays: dict[str, np.ndarray] = {}
        self._titles: np.ndarray | None = None

    @classmethod
    def open(cls, path: str | os.PathLike) -> "SavedLookup | None":
        """The lookup of a run directory (checked as any command checks a run) or of a saved model folder; None when
        the folder was saved without one or in another format. Checksums of the files it reads are verified."""
        path = Path(path)
        if (path / "run.json").is_file():
            from .runs import load_run

            path = load_run(path).path / "model"
        if not path.is_dir():
            raise MissingFileError("no such folder: expected a saved ratecast model", path=str(path))
        if not (path / META).is_file():
            raise MissingFileError(f"not a saved ratecast model (no {META})", path=str(path))
        if not (path / FILE).is_file():
            return None
        read = (META, FILE, ITEMS) if (path / ITEMS).exists() else (META, FILE)
        manifest.verify(path, required=(META, FILE), only=read)
        meta = read_json_object(path / META)
        if meta.get("format_version") not in FORMATS:
            return None  # an older format: the full loader migrates it
        where = path / META
        users, items = _index(meta, "user_ids", where), _index(meta, "item_ids", where)
        scale = meta.get("rating_scale")
        require(isinstance(scale, dict) and finite(scale.get("minimum")) and finite(scale.get("maximum")), where,
                "rating_scale must be an object with finite minimum and maximum")
        heads = check_headers(path / FILE, len(users), len(items))
        return cls(path, users, items, (float(scale["minimum"]), float(scale["maximum"])), heads)

    # --- arrays, checked as they are read ---------------------------------------------------------------------
    def _array(self, name: str) -> np.ndarray:
        if name not in self._arrays:
            path = self.folder / FILE
            try:
                with np.load(path, allow_pickle=False) as npz:
                    value = npz[name]
            except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
                raise IntegrityError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None
            if value.dtype.kind == "f":
                require(bool(np.isfinite(value).all()), path, f"{name} holds non-finite values")
            elif name == "top_items":
                require(value.size == 0 or (value.min() >= -1 and value.max() < len(self.item_index)), path,
                        "top_items holds positions of items that do not exist")
            elif value.dtype.kind in "iu":
                require(bool((value >= 0).all()), path, f"{name} holds negative values")
            self._arrays[name] = value
        return self._arrays[name]

    @property
    def default_support(self) -> int:
        """The minimum support the stored lists were made under (0: none)."""
        return int(self._array("default_support"))

    def _flag(self, name: str) -> bool:
        return bool(self._array(name))

    def titles(self, positions: np.ndarray) -> np.ndarray:
        """Titles of item positions (None where unknown), as the saved model's item metadata gives them."""
        if self._titles is None:
            self._titles = self._read_titles()
        return self._titles[positions]

    def _read_titles(self) -> np.ndarray:
        ids = self.item_index.ids
        path = self.folder / ITEMS
        if not path.exists():
            return np.full(len(ids), None, dtype=object)
        try:
            import pyarrow.parquet as pq

            info = pq.read_metadata(path)
            cells, size = info.num_rows * max(info.num_columns, 1), path.stat().st_size
            require(8 * cells <= MAX_EXPANSION * size, path, f"declares {info.num_rows} rows of {info.num_columns} "
                                                             f"columns, more than a file of {size} bytes can hold")
            if "title" not in info.schema.names:
                return np.full(len(ids), None, dtype=object)
            frame = pd.read_parquet(path, columns=["title"])
        except IntegrityError:
            raise
        except Exception as exc:  # pyarrow raises several unrelated types
            raise IntegrityError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None
        return frame["title"].reindex(ids).astype(object).where(lambda s: s.notna(), None).to_numpy(dtype=object)

    def _frame(self, pos: np.ndarray, values: np.ndarray, column: str) -> pd.DataFrame:
        return pd.DataFrame({"item_id": self.item_index.ids[pos], "title": pd.Series(self.titles(pos), dtype=object),
                             column: values})

    def _found(self, index: IdIndex, name: str, raw_id) -> int:
        """The index of one raw id (0: unknown), warning as the Recommender does when it names a known id of the
        other kind."""
        one = np.empty(1, dtype=object)
        one[0] = raw_id
        return int(index.lookup(one, name, stacklevel=3)[0])

    # --- answers ----------------------------------------------------------------------------------------------
    def recommend(self, user_id, k: int = 10, min_ratings: int | None = None, exclude_seen: bool = True
                  ) -> pd.DataFrame | None:
        """``Recommender.recommend(user_id, k, exclude_seen, min_ratings=min_ratings)``, or None where the stored
        lists do not hold the answer (or an argument is invalid: the Recommender then says why)."""
        if not (_count(k, 1) and exclude_seen is True and (min_ratings is None or _count(min_ratings, 0))):
            return None
        raw = _scalar(user_id)
        if raw is _INVALID:
            return None
        u = self._found(self.user_index, "user_id", raw)
        support = self.default_support
        popularity = self._array("popularity")
        if u == 0:
            threshold = support if min_ratings is None else min_ratings
            pos = top_k(self._array("popular_scores"), k, popularity >= threshold)
            out = self._frame(pos, self._array("popular_scores")[pos], "score")
            out.attrs["fallback"] = True
            return out
        if min_ratings is not None and min_ratings < support:
            return None  # items the stored lists left out would qualify
        row, scores = self._array("top_items")[u - 1], self._array("top_scores")[u - 1]
        listed = row >= 0
        complete = not listed.all()  # a list shorter than K holds every candidate
        keep = listed & (True if min_ratings is None else popularity[np.maximum(row, 0)] >= min_ratings)
        pos, values = row[keep], scores[keep]
        if len(pos) < k and not complete:
            return None
        return self._frame(pos[:k].astype("int64"), values[:k].astype("float64"), "score")

    def similar(self, item_id, k: int = 10, min_ratings: int | None = None) -> pd.DataFrame | None:
        """``Recommender.similar_items(item_id, k, min_ratings)``, or None for a model without item vectors (or an
        invalid argument: the Recommender then says why)."""
        if not (self._flag("has_vectors") and _count(k, 1) and (min_ratings is None or _count(min_ratings, 0))):
            return None
        raw = _scalar(item_id)
        if raw is _INVALID:
            return None
        i = int(self.item_index.index(np.array([raw], dtype=object))[0])
        if i == 0:
            raise UnknownIdError(f"unknown item_id {item_id!r}: it has no learned embedding (not in the training "
                                 "data)")
        vectors = self._array("item_vectors")
        sims = cosine_similarities(vectors, vectors[i - 1])
        allowed = np.ones(len(vectors), dtype=bool)
        allowed[i - 1] = False
        if min_ratings is not None:
            allowed &= self._array("popularity") >= min_ratings
        pos = top_k(sims, k, allowed)
        return self._frame(pos, sims[pos], "similarity")

    def predict_details(self, user_ids, item_ids, timestamps=None) -> pd.DataFrame | None:
        """``Recommender.predict_details(user_ids, item_ids)`` for a model whose rating is linear in its tables,
        else None (also with ``timestamps``, which some models use, or ids not given as 1-D arrays)."""
        if timestamps is not None or not self._flag("linear"):
            return None
        users, items = (_ids(v) for v in (user_ids, item_ids))
        if users is None or items is None or users.shape != items.shape:
            return None
        u, i = self._indices(self.user_index, "user_ids", users), self._indices(self.item_index, "item_ids", items)
        low, high = self.scale
        pred = np.clip(self._array("baseline_mean") + self._array("baseline_user")[u] + self._array("baseline_item")[i],
                       low, high)
        known = (u > 0) & (i > 0)
        if known.any():
            uk, ik = u[known] - 1, i[known] - 1
            dots = np.einsum("ij,ij->i", self._array("user_factors")[uk], self._array("item_vectors")[ik])
            out = self._array("offset") + self._array("user_bias")[uk] + self._array("item_bias")[ik] + dots
            pred[known] = np.clip(out.astype("float32"), np.float32(low), np.float32(high)).astype("float64")
        return pd.DataFrame({"user_id": users, "item_id": items, "prediction": pred, "known_user": u > 0,
                             "known_item": i > 0, "was_impossible": ~known})

    def _indices(self, index: IdIndex, name: str, raw: np.ndarray) -> np.ndarray:
        return index.lookup(raw, name, stacklevel=4).astype("int64")


# --- what a command does --------------------------------------------------------------------------------------------
def open_run(run_dir: str | os.PathLike) -> SavedLookup | None:
    """The lookup of a run directory, which is checked as every command checks a run (the same errors for a missing
    or corrupted run); None when its model was saved without one."""
    from .runs import load_run

    return SavedLookup.open(load_run(run_dir).path / "model")


def answer_recommend(run_dir: str | os.PathLike, user: str, k: int = 10, min_ratings: int | None = None
                     ) -> pd.DataFrame | None:
    """``ratecast recommend RUN --user USER``'s list from the run's stored tables, or None where the full model is
    needed. An id the model does not know raises :class:`UnknownIdError`."""
    lookup = open_run(run_dir)
    if lookup is None:
        return None
    uid = id_from_text(lookup.user_index, user)
    if uid not in lookup.user_index:
        raise UnknownIdError(f"unknown user id {user!r}: not in this model's training data")
    return lookup.recommend(uid, k=k, min_ratings=min_ratings)


def answer_similar(run_dir: str | os.PathLike, item: str, k: int = 10, min_ratings: int | None = None
                   ) -> tuple[pd.DataFrame, Any] | None:
    """``ratecast similar RUN --item ITEM``'s list and the name to head it with (the item's title, else its id), or
    None where the full model is needed. An id the model does not know raises :class:`UnknownIdError`."""
    lookup = open_run(run_dir)
    if lookup is None:
        return None
    iid = id_from_text(lookup.item_index, item)
    if iid not in lookup.item_index:
        raise UnknownIdError(f"unknown item id {item!r}: not in this model's training data")
    df = lookup.similar(iid, k=k, min_ratings=min_ratings)
    if df is None:
        return None
    position = int(lookup.item_index.index(np.array([iid], dtype=object))[0]) - 1
    return df, lookup.titles(np.array([position]))[0] or iid


def answer_predict(run_dir: str | os.PathLike, pairs: pd.DataFrame, user_col: str = "user_id",
                   item_col: str = "item_id", timestamp_col: str | None = None) -> pd.DataFrame | None:
    """``ratecast predict RUN --pairs FILE``'s table for the pairs read from the file (ids written as text matched
    as the command matches them), or None where the full model is needed."""
    if timestamp_col is not None:
        return None
    lookup = open_run(run_dir)
    if lookup is None:
        return None

    def ids(index: IdIndex, column: pd.Series) -> np.ndarray:  # text as --user reads it; Parquet ids as stored
        return column.map({v: id_from_text(index, v) if isinstance(v, str) else v
                           for v in column.unique()}).to_numpy(object)

    return lookup.predict_details(ids(lookup.user_index, pairs[user_col]), ids(lookup.item_index, pairs[item_col]))


# --- argument checks --------------------------------------------------------------------------------------------------
_INVALID = object()


def _count(value, least: int) -> bool:
    return not isinstance(value, (bool, np.bool_)) and isinstance(value, (int, np.integer)) and value >= least


def _scalar(value):
    """One raw id as a plain value (None or NaN: missing, i.e. unknown), or ``_INVALID``."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return value
    if isinstance(value, bool) or not (isinstance(value, (Integral, str)) or finite(value)):
        return _INVALID
    return value


def _ids(values) -> np.ndarray | None:
    """Raw ids given as a 1-D array or Series of hashable values, else None."""
    if isinstance(values, pd.Series):
        values = values.to_numpy()
    if not isinstance(values, np.ndarray) or values.ndim != 1:
        return None
    if values.dtype == object and not all(isinstance(v, (Integral, str, float)) for v in values):
        return None
    return values


def _index(meta: dict[str, Any], key: str, where: Path) -> IdIndex:
    ids = meta.get(key)
    require(isinstance(ids, list) and len(ids) > 0, where, f"{key} must be a non-empty list")
    require(all(is_kind(v, (int, str)) or finite(v) for v in ids), where, f"{key} must hold integer, number or "
                                                                          "text ids")
    index = IdIndex(ids)
    require(len(index) == len(ids), where, f"{key} holds duplicate ids")
    return index

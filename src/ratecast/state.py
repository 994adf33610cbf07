"""What a fit produces, as one frozen object, and how it is saved and loaded field by field.

A saved state is a folder::

    recommender.json   format version, the resolved model and training configs, scale, vocabularies, encoder,
                       history (plain JSON)
    model.weights.h5   the Keras weights (feature tables included)
    arrays.npz         baseline biases, the training (user, item) pairs and their ratings
    lookup.npz         recommendation lists and tables answered without Keras (ratecast.lookup; optional)
    items.parquet      item metadata (optional)
    users.parquet      user metadata (optional)
    MANIFEST.json      sha256 and size of every file, verified on load

:data:`STORED` says where each field of :class:`FittedState` goes; saving, loading and the schema of
``recommender.json`` all follow it. A model loads from its saved configs alone, so a later change of a default never
changes or refuses a saved model; older formats are brought to the current one by :func:`migrate`.

Nothing is unpickled, and every size a folder declares is checked against what its files hold (array shapes read
from their headers) before any memory is allocated for it.
"""

from __future__ import annotations

import json
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from . import lookup, manifest, memory
from .datasets.dataset import IdIndex
from .datasets.scale import RatingScale
from .errors import IntegrityError, MissingFileError
from .features import FeatureEncoder
from .integrity import (ArrayHeader, NoneType, check_fields, finite, h5_headers, is_kind, npz_headers,
                        require)
from .io import read_json_object
from .models import MODELS, ModelConfig, RatingModel, TrainingConfig, split_params

FORMAT_VERSION = 4  # older formats load through migrate()
META = "recommender.json"
BLEND_META = "blend.json"  # what a saved Blend holds instead (ratecast.blend)
WEIGHTS = "model.weights.h5"
ARRAYS = "arrays.npz"


@dataclass(frozen=True, eq=False)
class Baseline:
    """Global mean + damped user and item biases, fitted in closed form: the fallback for unknown ids."""

    mean: float
    user_bias: np.ndarray
    item_bias: np.ndarray

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


def seen_matrix(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> sp.csr_matrix:
    """Sparse (user index x item index) matrix of the training pairs (row by row, items ascending)."""
    seen = sp.csr_matrix((np.ones(len(users), dtype=bool), (users, items)), shape=(n_users, n_items))
    seen.sort_indices()
    return seen


@dataclass(frozen=True, eq=False)
class SeenRatings:
    """The rating of every pair of ``seen``, in its stored order (row by row, items ascending): what a fold-in
    re-solves a known user from, and a refit trains on. ``trained``: the pair is training data (fitted on, or added
    by ``update``); False for ratings a ``fold_in`` only used."""

    ratings: np.ndarray  # float32 (nnz,)
    trained: np.ndarray  # bool (nnz,)

    def __eq__(self, other) -> bool:
        return (isinstance(other, SeenRatings) and np.array_equal(self.ratings, other.ratings)
                and np.array_equal(self.trained, other.trained))

    __hash__ = None

    @classmethod
    def of(cls, seen: sp.csr_matrix, users: np.ndarray, items: np.ndarray, ratings: np.ndarray) -> "SeenRatings":
        """The ratings of (users, items, ratings) laid out as ``seen`` (which must hold exactly these pairs)."""
        order = np.lexsort((items, users))
        values = np.asarray(ratings, "float32")[order]
        if len(values) != seen.nnz:
            raise ValueError(f"{len(values)} ratings for {seen.nnz} seen pairs: the pairs must be distinct")
        return cls(values, np.ones(len(values), bool))


@dataclass(frozen=True, eq=False)
class FittedState:
    """Everything a fit produced. ``fold_in`` derives a new state (:mod:`ratecast.foldin`); nothing mutates one."""

    model_name: str
    params: dict[str, Any]
    random_state: int | None
    model_config: ModelConfig
    training_config: TrainingConfig
    rating_scale: RatingScale
    user_index: IdIndex
    item_index: IdIndex
    baseline: Baseline
    encoder: FeatureEncoder | None
    seen: sp.csr_matrix
    items: pd.DataFrame | None
    users: pd.DataFrame | None
    genres: tuple[str, ...]
    model: RatingModel
    history: dict[str, list[float]] = field(default_factory=dict)
    fit_seconds: float = 0.0
    initial_train_metrics: dict[str, Any] = field(default_factory=dict)
    n_train: int = 0
    seen_ratings: SeenRatings | None = None  # None: saved by a version that kept no ratings
    #: new arrays for the model's per-user weights (``model.user_variables()``, by variable path) after a fold-in;
    #: the model's own variables hold the state it was derived from, and every other weight is shared
    user_values: dict[str, Any] | None = None

    # --- derived views (computed once) ----------------------------------------------------------------------
    @cached_property
    def popularity(self) -> np.ndarray:
        """Training ratings per item index (index 0, unknown, has none)."""
        return np.asarray(self.seen.sum(axis=0)).ravel().astype("int64")

    @cached_property
    def activity(self) -> np.ndarray:
        """Training ratings per user index."""
        return np.diff(self.seen.indptr).astype("int64")

    @cached_property
    def title_array(self) -> np.ndarray:
        """Titles aligned with item positions (index - 1), None where unknown."""
        ids = self.item_index.ids
        if self.items is None or "title" not in self.items.columns:
            return np.full(len(ids), None, dtype=object)
        return self.items["title"].reindex(ids).astype(object).where(lambda s: s.notna(), None).to_numpy(dtype=object)

    def seen_positions(self, u: int) -> np.ndarray:
        """Item positions (index - 1) that user index ``u`` rated in training."""
        return self.seen.indices[self.seen.indptr[u]:self.seen.indptr[u + 1]] - 1

    def user_ratings(self, u: int) -> tuple[np.ndarray, np.ndarray]:
        """(item indices, ratings) that user index ``u`` gave (training and folded in); ratings are empty when the
        state was saved without them."""
        sl = slice(self.seen.indptr[u], self.seen.indptr[u + 1])
        items = self.seen.indices[sl]
        if self.seen_ratings is None:
            return items[:0], np.zeros(0, "float32")
        return items, self.seen_ratings.ratings[sl]

    def value(self, variable) -> Any:
        """The value of one of the model's variables in this state (its per-user arrays after a fold-in)."""
        if self.user_values is not None and variable.path in self.user_values:
            return self.user_values[variable.path]
        return variable.value

    def materialized(self) -> "FittedState":
        """The same state with a model of exactly its users' rows holding its values (what is saved)."""
        if self.user_values is None and self.model.n_users == self.user_index.size:
            return self
        model = self.model.resized(self.user_index.size, [self.value(v) for v in self.model.variables])
        return replace(self, model=model, user_values=None)

    # --- persistence ------------------------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        """Write every field into the (new, empty) ``folder`` as :data:`STORED` says, then its manifest."""
        from . import __version__

        state = self.materialized()
        out = Target(folder, {"format_version": FORMAT_VERSION, "ratecast_version": __version__}, {})
        for name, stored in STORED.items():
            stored.save(state if isinstance(stored, DerivedFile) else getattr(state, name), out)
        (folder / META).write_text(json.dumps(out.meta, indent=1, allow_nan=False), encoding="utf-8")
        np.savez_compressed(folder / ARRAYS, **out.arrays)
        manifest.write(folder)

    @classmethod
    def load(cls, folder: Path) -> "FittedState":
        """Read a state written by :meth:`save` (or by an older format, see :func:`migrate`), verifying checksums,
        types and every declared size before anything is allocated for it."""
        if not folder.is_dir():
            raise MissingFileError("no such folder: expected a saved ratecast model", path=str(folder))
        if not (folder / META).is_file():
            if (folder / BLEND_META).is_file():
                raise MissingFileError("a saved Blend, not a single recommender: load it with ratecast.Blend.load",
                                       path=str(folder))
            raise MissingFileError(f"not a saved ratecast model (no {META})", path=str(folder))
        manifest.verify(folder, required=(META, WEIGHTS, ARRAYS))
        saved = read_json_object(folder / META)
        meta = migrate(saved, folder / META)
        check_fields(meta, meta_schema(), folder / META)
        src = Source(folder, meta, {}, saved_format=saved["format_version"])
        # the model last: everything it is built from is checked first
        is_model = {name: isinstance(stored, Weights) for name, stored in STORED.items()}
        for name in [n for n in STORED if not is_model[n]]:
            src.loaded[name] = STORED[name].load(src)
        extra = sorted(set(src.npz_headers) - src.arrays_read)
        require(not extra, folder / ARRAYS, f"unexpected array(s) {extra}")
        for name in [n for n in STORED if is_model[n]]:
            src.loaded[name] = STORED[name].load(src)
        return cls(**{f.name: src.loaded[f.name] for f in fields(cls)})


# --- how each field is stored --------------------------------------------------------------------------------------
@dataclass
class Target:
    """What :meth:`FittedState.save` writes: the folder, the JSON of ``META`` and the arrays of ``ARRAYS``."""

    folder: Path
    meta: dict[str, Any]
    arrays: dict[str, np.ndarray]


@dataclass
class Source:
    """What :meth:`FittedState.load` reads from: the folder, its (checked) JSON and the fields loaded so far."""

    folder: Path
    meta: dict[str, Any]
    loaded: dict[str, Any]
    arrays_read: set[str] = field(default_factory=set)
    saved_format: int = FORMAT_VERSION  # the format the folder was written in (``meta`` is migrated to the current)

    @property
    def path(self) -> Path:
        return self.folder / META

    @cached_property
    def npz_headers(self) -> dict[str, ArrayHeader]:
        return npz_headers(self.folder / ARRAYS)

    def array(self, name: str, kinds: str, shape: tuple[int, ...] | None = None, max_len: int = 0) -> np.ndarray:
        """Array ``name`` of ``ARRAYS``, once its header shows a dtype of ``kinds`` (numpy kind letters) and either
        ``shape`` or a vector of at most ``max_len`` values."""
        path = self.folder / ARRAYS
        head = self.npz_headers.get(name)
        require(head is not None, path, f"array {name!r} is missing")
        require(head.dtype.kind in kinds, path, f"array {name!r} has dtype {head.dtype}, expected kind {kinds!r}")
        if shape is not None:
            require(head.shape == shape, path, f"array {name!r} has shape {head.shape}, expected {shape}")
        else:
            require(len(head.shape) == 1 and head.shape[0] <= max_len, path,
                    f"array {name!r} has shape {head.shape}, expected a vector of at most {max_len} values")
        try:
            with np.load(path, allow_pickle=False) as npz:
                value = npz[name]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
            raise IntegrityError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None
        self.arrays_read.add(name)
        return value


class Json:
    """A field stored under ``key`` of ``META``, a JSON value of ``kinds``; ``dump`` turns the field into that
    value and ``load(value, source)`` checks it and turns it back."""

    def __init__(self, key: str, kinds: tuple[type, ...], dump: Callable[[Any], Any] = lambda v: v,
                 load: Callable[[Any, Source], Any] = lambda v, src: v):
        self.key, self.kinds, self.dump, self.read = key, kinds, dump, load

    def schema(self) -> dict[str, tuple[type, ...]]:
        return {self.key: self.kinds}

    def save(self, value: Any, out: Target) -> None:
        out.meta[self.key] = None if value is None else self.dump(value)

    def load(self, src: Source) -> Any:
        value = src.meta[self.key]
        return None if value is None else self.read(value, src)


class Arrays:
    """A field stored as arrays of ``ARRAYS``: ``dump`` gives them by name, ``load(source)`` reads them back."""

    def __init__(self, dump: Callable[[Any], dict[str, np.ndarray]], load: Callable[[Source], Any]):
        self.dump, self.load = dump, load

    def schema(self) -> dict[str, tuple[type, ...]]:
        return {}

    def save(self, value: Any, out: Target) -> None:
        out.arrays.update(self.dump(value))


class Unsaved:
    """A field that is not saved: :meth:`FittedState.save` folds it into the others first (it must be None then),
    and it loads as None."""

    def schema(self) -> dict[str, tuple[type, ...]]:
        return {}

    def save(self, value: Any, out: Target) -> None:
        if value is not None:  # pragma: no cover - FittedState.save materialises first
            raise RuntimeError("a derived field must be folded into the saved fields before saving")

    def load(self, src: Source) -> None:
        return None


class Frame:
    """An optional table stored as the parquet file ``name``."""

    #: a table may hold at most this many times its file's size once read (8 bytes a cell): a bound far above what
    #: parquet's encodings reach on metadata tables, far below what a crafted file could declare
    MAX_EXPANSION = 1000

    def __init__(self, name: str):
        self.name = name

    def schema(self) -> dict[str, tuple[type, ...]]:
        return {}

    def save(self, value: pd.DataFrame | None, out: Target) -> None:
        if value is not None:
            frame = value.copy()
            frame.columns = [str(c) for c in frame.columns]
            frame.to_parquet(out.folder / self.name)

    def load(self, src: Source) -> pd.DataFrame | None:
        path = src.folder / self.name
        if not path.exists():
            return None
        try:
            import pyarrow.parquet as pq

            info = pq.read_metadata(path)
            cells, size = info.num_rows * max(info.num_columns, 1), path.stat().st_size
            require(8 * cells <= self.MAX_EXPANSION * size, path,
                    f"declares {info.num_rows} rows of {info.num_columns} columns, more than a file of {size} bytes "
                    "can hold")
            return pd.read_parquet(path)
        except IntegrityError:
            raise
        except Exception as exc:  # pyarrow raises several unrelated types
            raise IntegrityError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None


class DerivedFile:
    """A file made from the whole state when it is saved, which no field holds: ``write(state, folder)`` writes it;
    on load, ``check(folder, n_users, n_items)`` verifies it (if the folder has it) and nothing is kept."""

    def __init__(self, write: Callable[[Any, Path], None], check: Callable[[Path, int, int], None]):
        self.write, self.check = write, check

    def schema(self) -> dict[str, tuple[type, ...]]:
        return {}

    def save(self, state: "FittedState", out: Target) -> None:
        self.write(state, out.folder)

    def load(self, src: Source) -> None:
        self.check(src.folder, len(src.loaded["user_index"]), len(src.loaded["item_index"]))


class Weights:
    """The Keras model: its weights in ``WEIGHTS``, and under ``keras_config`` of ``META`` the network settings that
    no other field holds (the model config, vocabulary sizes and rating scale come from their own fields)."""

    #: network settings rebuilt from other fields on load
    DERIVED = ("config", "n_users", "n_items", "rating_scale", "random_init")
    #: the saved network settings and their JSON kinds
    SETTINGS = {"global_mean": (float,), "item_feature_dim": (int,), "user_feature_dim": (int,),
                "seed": (int, NoneType), "name": (str,)}
    MAX_FEATURE_DIM = 100_000

    def schema(self) -> dict[str, tuple[type, ...]]:
        return {"keras_config": (dict,)}

    def save(self, model: RatingModel, out: Target) -> None:
        out.meta["keras_config"] = {k: v for k, v in model.get_config().items() if k not in self.DERIVED}
        model.save_weights(out.folder / WEIGHTS)

    def load(self, src: Source) -> RatingModel:
        path, loaded = src.path, src.loaded
        settings = src.meta["keras_config"]
        check_fields(settings, self.SETTINGS, path, where="keras_config key")
        require(finite(settings["global_mean"]), path, f"keras_config global_mean must be finite, got "
                                                       f"{settings['global_mean']!r}")
        for key in ("item_feature_dim", "user_feature_dim"):
            v = settings[key]
            require(0 <= v <= self.MAX_FEATURE_DIM, path,
                    f"keras_config {key} must be an integer in [0, {self.MAX_FEATURE_DIM}], got {v!r}")
        config = {**settings, "config": loaded["model_config"].to_dict(), "n_users": loaded["user_index"].size,
                  "n_items": loaded["item_index"].size, "rating_scale": loaded["rating_scale"].to_dict(),
                  "random_init": False}
        name = loaded["model_name"]
        layout = check_weight_shapes(src.folder, name, config, src.saved_format)
        try:
            model = build_model(name, config)
            if layout is None:
                model.load_weights(src.folder / WEIGHTS)
            else:
                read_weights(src.folder / WEIGHTS, {path: None if k is None else model.weights[k]
                                                    for path, k in layout.items()})
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise IntegrityError(f"{src.folder / WEIGHTS}: weights do not fit the saved model ({exc})") from None
        bad = [w.path for w in model.weights if not np.isfinite(np.asarray(w)).all()]
        require(not bad, src.folder / WEIGHTS, f"weights {bad[:3]} hold NaN or infinite values")
        for variable in model.item_index_variables():
            held = np.asarray(variable)
            low, high = int(held.min(initial=0)), int(held.max(initial=0))
            require(0 <= low and high < model.n_items, src.folder / WEIGHTS,
                    f"weights {variable.path} hold item indices in [{low}, {high}], outside [0, {model.n_items})")
        return model


def build_model(name: str, config: dict[str, Any]) -> RatingModel:
    """The model ``name`` built from its Keras ``config``, every weight allocated (zeros)."""
    return MODELS[name].from_config(config).build_now()


def declared_weights(name: str, config: dict[str, Any], version: int = FORMAT_VERSION
                     ) -> tuple[list[tuple[tuple[int, ...], str]], dict[str, int | None] | None]:
    """(shape, dtype) of every weight the model ``name`` built from ``config`` would have, found by tracing its
    construction abstractly: nothing is allocated. With them, where a weights file of format ``version`` holds each
    one (:meth:`~ratecast.models.base.RatingModel.weights_saved_by`: dataset path -> position among the weights,
    None for a dataset left unread), or None where the file is laid out as Keras lays out the model today."""
    import jax

    layout: list[dict[str, int | None] | None] = [None]

    def weights():
        model = MODELS[name].from_config(config).build_now()
        where = model.weights_saved_by(version)
        if where is not None:
            position = {id(w): k for k, w in enumerate(model.weights)}
            layout[0] = {path: None if w is None else position[id(w)] for path, w in where.items()}
        return [w.value for w in model.weights]

    with memory.declaring_only():
        shapes = jax.eval_shape(weights)
    return [(tuple(int(s) for s in w.shape), str(w.dtype)) for w in shapes], layout[0]


def read_weights(path: Path, where: dict[str, Any]) -> None:
    """Assign each variable of ``where`` (dataset path -> variable, None: left unread) its dataset of the HDF5 file
    ``path`` (a weights file laid out by an older format; shapes checked by :func:`check_weight_shapes`)."""
    import h5py

    with h5py.File(path, "r") as f:
        for name, variable in where.items():
            if variable is not None:
                variable.assign(np.asarray(f[name]))


def check_weight_shapes(folder: Path, name: str, config: dict[str, Any], version: int = FORMAT_VERSION
                        ) -> dict[str, int | None] | None:
    """The weights the saved settings declare are exactly the datasets ``WEIGHTS`` holds (shapes from the file's
    headers), so that building the model allocates no more than the file holds. A file of an older layout
    (``version``, see :func:`declared_weights`) holds each weight at its path there, and nothing else: that layout
    is returned (dataset path -> position among the model's weights), None for today's."""
    path = folder / META
    headers = h5_headers(folder / WEIGHTS)
    held = Counter((h.shape, str(h.dtype)) for h in headers.values())
    try:
        shapes, layout = declared_weights(name, config, version)
    except (ValueError, TypeError, KeyError) as exc:
        raise IntegrityError(f"{path}: invalid model settings ({exc})") from None
    if layout is not None:
        check_layout(folder / WEIGHTS, headers, shapes, layout)
        return layout
    declared = Counter(shapes)
    if declared != held:
        sizes = {k: config[k] for k in ("n_users", "n_items", "item_feature_dim", "user_feature_dim")}
        sizes.update({k: v for k, v in config["config"].items() if isinstance(v, int) and not isinstance(v, bool)})
        def largest_first(c: Counter) -> list:
            return sorted(c.elements(), key=lambda w: (-int(np.prod(w[0], dtype=object)), w))

        missing, extra = largest_first(declared - held), largest_first(held - declared)
        raise IntegrityError(
            f"{path}: the saved sizes ({', '.join(f'{k}={v}' for k, v in sizes.items())}) declare weights "
            f"{_shapes(missing)} that {WEIGHTS} does not hold (it holds {_shapes(extra) or 'no others'} instead)")
    return None


def check_layout(path: Path, headers: dict[str, ArrayHeader], shapes: list[tuple[tuple[int, ...], str]],
                 layout: dict[str, int | None]) -> None:
    """The weights file ``path`` of an older layout holds exactly the datasets of ``layout`` (path -> position in
    ``shapes``, None: a dataset left unread), each of its weight's shape and dtype."""
    missing, extra = sorted(set(layout) - set(headers)), sorted(set(headers) - set(layout))
    require(not missing, path, f"the saved model's layout has datasets {missing} that the file does not hold")
    require(not extra, path, f"the file holds {extra}, which the saved model's layout does not have")
    for dataset, k in layout.items():
        if k is not None:
            held = (headers[dataset].shape, str(headers[dataset].dtype))
            require(held == shapes[k], path, f"dataset {dataset!r} holds {_shapes([held])} where the saved sizes "
                                             f"declare {_shapes([shapes[k]])}")
    placed = sorted(k for k in layout.values() if k is not None)
    require(placed == list(range(len(shapes))), path, "the saved model's layout does not place every weight once")


def _shapes(items: list[tuple[tuple[int, ...], str]]) -> str:
    listed = ", ".join(f"{shape} {dtype}" for shape, dtype in items[:4])
    return listed + (f" and {len(items) - 4} more" if len(items) > 4 else "")


def _model_name(value: str, src: Source) -> str:
    require(value in MODELS, src.path, f"unknown model {value!r} (expected one of {sorted(MODELS)})")
    return value


def _resolved(make: Callable[[dict], Any], names: set[str], value: dict[str, Any], src: Source, key: str):
    missing = sorted(names - set(value))
    require(not missing, src.path, f"{key} lacks the option(s) {missing}: the model was saved by a ratecast version "
                                   "without them; retrain and save it with this version")
    try:
        return make(value)
    except (TypeError, ValueError) as exc:
        raise IntegrityError(f"{src.path}: invalid {key} ({exc})") from None


def _model_config(value: dict, src: Source) -> ModelConfig:
    cls = MODELS[src.loaded["model_name"]].config_class
    ids = src.meta.get("item_ids")
    if isinstance(value, dict) and isinstance(ids, list):  # options added since it was saved (see saved_before)
        value = cls.saved_before(value, len(ids))
    return _resolved(cls.from_dict, cls.field_names(), value, src, "model_config")


def _training_config(value: dict, src: Source) -> TrainingConfig:
    return _resolved(lambda d: TrainingConfig(**d), TrainingConfig.field_names(), value, src, "training_config")


def _rating_scale(value: dict, src: Source) -> RatingScale:
    try:
        return RatingScale(**value)
    except (TypeError, ValueError) as exc:
        raise IntegrityError(f"{src.path}: invalid rating_scale ({exc})") from None


def _index(what: str) -> Callable[[list, Source], IdIndex]:
    def load(ids: list, src: Source) -> IdIndex:
        require(len(ids) > 0, src.path, f"{what} is empty")
        require(set(map(type, ids)) <= {int, str} or all(is_kind(v, (int, str)) or finite(v) for v in ids),
                src.path, f"{what} must hold integer, number or text ids")  # the common case at C speed
        index = IdIndex(ids)
        require(len(index) == len(ids), src.path, f"{what} holds duplicate ids")
        return index
    return load


def _encoder(value: dict, src: Source) -> FeatureEncoder:
    try:
        return FeatureEncoder.from_dict(value)
    except (KeyError, TypeError, ValueError) as exc:
        raise IntegrityError(f"{src.path}: invalid encoder ({exc})") from None


def _number(key: str, minimum: float, cast: type) -> Callable[[Any, Source], Any]:
    def load(value, src: Source):
        require(finite(value) and value >= minimum, src.path, f"{key} must be a finite number >= {minimum}, got "
                                                              f"{value!r}")
        return cast(value)
    return load


def _baseline(src: Source) -> Baseline:
    n_users, n_items = src.loaded["user_index"].size, src.loaded["item_index"].size
    user = src.array("baseline_user", "f", (n_users,))
    item = src.array("baseline_item", "f", (n_items,))
    mean = src.array("baseline_mean", "f", ())
    for key, value in (("baseline_user", user), ("baseline_item", item), ("baseline_mean", mean)):
        require(bool(np.isfinite(value).all()), src.folder / ARRAYS, f"{key} holds non-finite values")
    return Baseline(float(mean), user, item)


def _seen(src: Source) -> sp.csr_matrix:
    n_users, n_items = src.loaded["user_index"].size, src.loaded["item_index"].size
    most = (n_users - 1) * (n_items - 1)  # one per known (user, item) pair
    su = src.array("seen_users", "iu", max_len=most)
    si = src.array("seen_items", "iu", (len(su),))
    require(len(su) == 0 or (su.min() >= 1 and su.max() < n_users and si.min() >= 1 and si.max() < n_items),
            src.folder / ARRAYS, "seen pairs index users or items that do not exist")
    return seen_matrix(su, si, n_users, n_items)


def _seen_ratings(src: Source) -> SeenRatings | None:
    if "seen_ratings" not in src.npz_headers:  # saved before ratings were kept
        return None
    n = src.loaded["seen"].nnz
    ratings = src.array("seen_ratings", "f", (n,))
    trained = src.array("seen_trained", "b", (n,))
    scale = src.loaded["rating_scale"]
    require(bool(np.isfinite(ratings).all()) and (len(ratings) == 0 or (
        ratings.min() >= scale.minimum and ratings.max() <= scale.maximum)), src.folder / ARRAYS,
        f"seen_ratings must be finite and within the rating scale {scale.minimum:g}..{scale.maximum:g}")
    return SeenRatings(ratings.astype("float32"), trained.astype(bool))


def _seen_ratings_arrays(value: SeenRatings | None) -> dict[str, np.ndarray]:
    if value is None:
        return {}
    return {"seen_ratings": value.ratings.astype("float32"), "seen_trained": value.trained.astype(bool)}


def _seen_arrays(seen: sp.csr_matrix) -> dict[str, np.ndarray]:
    coo = seen.tocoo()
    return {"seen_users": coo.row.astype("int32"), "seen_items": coo.col.astype("int32")}


#: how every field of :class:`FittedState` is stored, in the order of its fields, and the files derived from them
STORED: dict[str, Json | Arrays | Frame | Weights | DerivedFile | Unsaved] = {
    "model_name": Json("model", (str,), load=_model_name),
    "params": Json("params", (dict,)),  # the options as given: a record only, never read back into a config
    "random_state": Json("random_state", (int, NoneType)),
    "model_config": Json("model_config", (dict,), dump=lambda c: c.to_dict(), load=_model_config),
    "training_config": Json("training_config", (dict,), dump=lambda c: c.to_dict(), load=_training_config),
    "rating_scale": Json("rating_scale", (dict,), dump=lambda s: s.to_dict(), load=_rating_scale),
    "user_index": Json("user_ids", (list,), dump=lambda i: i.to_list(), load=_index("user_ids")),
    "item_index": Json("item_ids", (list,), dump=lambda i: i.to_list(), load=_index("item_ids")),
    "baseline": Arrays(lambda b: {"baseline_user": b.user_bias, "baseline_item": b.item_bias,
                                  "baseline_mean": np.array(b.mean)}, _baseline),
    "encoder": Json("encoder", (dict, NoneType), dump=lambda e: e.to_dict(), load=_encoder),
    "seen": Arrays(_seen_arrays, _seen),
    "items": Frame("items.parquet"),
    "users": Frame("users.parquet"),
    "genres": Json("genres", (list,), dump=list, load=lambda v, src: tuple(str(g) for g in v)),
    "model": Weights(),
    "lookup": DerivedFile(lookup.write, lookup.check_saved),  # not a field: answers read without Keras
    "history": Json("history", (dict,)),
    "fit_seconds": Json("fit_seconds", (float,), load=_number("fit_seconds", 0, float)),
    "initial_train_metrics": Json("initial_train_metrics", (dict,)),
    "n_train": Json("n_train", (int,), load=_number("n_train", 0, int)),
    "seen_ratings": Arrays(_seen_ratings_arrays, _seen_ratings),
    "user_values": Unsaved(),
}
if [n for n, s in STORED.items() if not isinstance(s, DerivedFile)] != [f.name for f in fields(FittedState)]:
    raise RuntimeError("state.STORED must list every field of FittedState, in order")


def meta_schema() -> dict[str, tuple[type, ...]]:
    """Every key of ``META`` in the current format and its JSON kinds (derived from :data:`STORED`)."""
    schema = {"format_version": (int,), "ratecast_version": (str,)}
    for stored in STORED.values():
        schema.update(stored.schema())
    return schema


# --- older formats ------------------------------------------------------------------------------------------------
def migrate(meta: dict[str, Any], path: Path) -> dict[str, Any]:
    """The contents of a ``META`` of any supported format, as the current format writes them.

    * Format 4 (current): as format 3; a model whose weights moved into layers of their own (``implicit``'s heads)
      lays them out as Keras does today.
    * Format 3: the resolved model and training configs are saved; loading reads them alone. Its weights file lays
      out some models' weights as they were then (:meth:`~ratecast.models.base.RatingModel.weights_saved_by` says
      where each dataset goes).
    * Format 2 kept the resolved model config in ``keras_config["config"]`` (with the vocabulary sizes and rating
      scale, which format 3 takes from their own fields) and no training config. Its training config is resolved from
      the saved ``params`` with this version's training defaults, as format 2 itself did on load: a record of how the
      model was fitted, which no prediction reads.
    """
    version = meta.get("format_version")
    if version == FORMAT_VERSION:
        return meta
    if version == 3:
        return {**meta, "format_version": FORMAT_VERSION}
    require(version == 2, path, f"format_version {version!r} is not supported (expected 2, 3 or {FORMAT_VERSION}); "
                                "retrain and save the model with this ratecast version")
    kc = meta.get("keras_config")
    require(isinstance(kc, dict) and isinstance(kc.get("config"), dict), path,
            "keras_config config must be an object (format 2)")
    name, params = meta.get("model"), meta.get("params")
    require(name in MODELS and isinstance(params, dict), path, f"model {name!r} and its params do not describe a "
                                                               "ratecast model")
    try:
        _, training = split_params(name, params)
    except ValueError as exc:
        raise IntegrityError(f"{path}: invalid params ({exc})") from None
    return {**meta, "format_version": FORMAT_VERSION, "model_config": kc["config"],
            "training_config": training.to_dict(),
            "keras_config": {k: v for k, v in kc.items() if k not in Weights.DERIVED}}

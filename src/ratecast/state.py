"""What a fit produces, as one frozen object, and how it is saved and loaded field by field.

A saved state is a folder::

    recommender.json   configs, scale, vocabularies, encoder, history (plain JSON)
    model.weights.h5   the Keras weights (feature tables included)
    arrays.npz         baseline biases and the training (user, item) pairs
    items.parquet      item metadata (optional)
    users.parquet      user metadata (optional)
    MANIFEST.json      sha256 and size of every file, verified on load

Nothing is unpickled, and everything read is checked against bounds derived from the saved arrays before any memory
is allocated for it.
"""

from __future__ import annotations

import json
import math
import zipfile
from dataclasses import dataclass, field, replace
from functools import cached_property
from numbers import Integral
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from . import manifest
from .datasets.dataset import IdIndex
from .datasets.scale import RatingScale
from .errors import IntegrityError, MissingFileError
from .features import FeatureEncoder
from .models import MODELS, ModelConfig, RatingModel, TrainingConfig, split_params

FORMAT_VERSION = 2
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

    def with_user(self, items: np.ndarray, ratings: np.ndarray, damping: float = 10.0) -> "Baseline":
        """The baseline with one more user, whose bias is fitted on ``ratings`` of item indices ``items``."""
        resid = ratings - self.mean - self.item_bias[items]
        return replace(self, user_bias=np.append(self.user_bias, resid.sum() / (len(ratings) + damping)))


def seen_matrix(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> sp.csr_matrix:
    """Sparse (user index x item index) matrix of the training pairs."""
    return sp.csr_matrix((np.ones(len(users), dtype=bool), (users, items)), shape=(n_users, n_items))


@dataclass(frozen=True, eq=False)
class FittedState:
    """Everything a fit produced. ``fold_in`` derives a new state; nothing mutates one."""

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

    # --- derivation -------------------------------------------------------------------------------------------
    def with_new_user(self, user_id, model: RatingModel, items: np.ndarray, ratings: np.ndarray) -> "FittedState":
        """This state plus one user (``fold_in``): vocabulary, baseline, seen pairs and the grown model."""
        ids = self.user_index.ids
        same_kind = {"O": isinstance(user_id, str), "i": isinstance(user_id, Integral),
                     "u": isinstance(user_id, Integral), "f": isinstance(user_id, float)}.get(ids.dtype.kind, False)
        # an id of another type keeps every id as it was (no int -> float or text conversion of the others)
        new_ids = np.append(ids, user_id) if same_kind else np.array([*ids.tolist(), user_id], dtype=object)
        n_users = len(new_ids) + 1
        coo = self.seen.tocoo()
        u = np.concatenate([coo.row, np.full(len(items), n_users - 1)])
        i = np.concatenate([coo.col, items])
        return replace(self, user_index=IdIndex(new_ids), model=model,
                       baseline=self.baseline.with_user(items, ratings),
                       seen=seen_matrix(u, i, n_users, self.item_index.size))

    # --- persistence ------------------------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        """Write every field into the (new, empty) ``folder``, then its manifest."""
        from . import __version__

        meta = {
            "format_version": FORMAT_VERSION,
            "ratecast_version": __version__,
            "model": self.model_name,
            "params": self.params,
            "random_state": self.random_state,
            "rating_scale": self.rating_scale.to_dict(),
            "history": self.history,
            "fit_seconds": self.fit_seconds,
            "initial_train_metrics": self.initial_train_metrics,
            "n_train": self.n_train,
            "encoder": self.encoder.to_dict() if self.encoder is not None else None,
            "genres": list(self.genres),
            "user_ids": self.user_index.to_list(),
            "item_ids": self.item_index.to_list(),
            "keras_config": self.model.get_config(),
        }
        (folder / META).write_text(json.dumps(meta, indent=1, allow_nan=False), encoding="utf-8")
        self.model.save_weights(folder / WEIGHTS)
        coo = self.seen.tocoo()
        np.savez_compressed(folder / ARRAYS, baseline_user=self.baseline.user_bias,
                            baseline_item=self.baseline.item_bias, baseline_mean=np.array(self.baseline.mean),
                            seen_users=coo.row.astype("int32"), seen_items=coo.col.astype("int32"))
        for frame, name in ((self.items, "items.parquet"), (self.users, "users.parquet")):
            if frame is not None:
                out = frame.copy()
                out.columns = [str(c) for c in out.columns]
                out.to_parquet(folder / name)
        manifest.write(folder)

    @classmethod
    def load(cls, folder: Path) -> "FittedState":
        """Read a state written by :meth:`save`, verifying checksums and bounds first."""
        if not folder.is_dir():
            raise MissingFileError("no such folder: expected a saved ratecast model", path=str(folder))
        if not (folder / META).is_file():
            if (folder / BLEND_META).is_file():
                raise MissingFileError("a saved Blend, not a single recommender: load it with ratecast.Blend.load",
                                       path=str(folder))
            raise MissingFileError(f"not a saved ratecast model (no {META})", path=str(folder))
        manifest.verify(folder, required=(META, WEIGHTS, ARRAYS))
        meta = _read_meta(folder / META)
        return _state_from(folder, meta)


# --- loading, with every field checked --------------------------------------------------------------------------
def _read_meta(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise IntegrityError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise IntegrityError(f"{path}: expected a JSON object, got {type(meta).__name__}")
    if meta.get("format_version") != FORMAT_VERSION:
        raise IntegrityError(f"{path}: format_version {meta.get('format_version')!r} is not supported "
                             f"(expected {FORMAT_VERSION}); retrain and save the model with this ratecast version")
    expected = {"model": str, "params": dict, "rating_scale": dict, "history": dict, "fit_seconds": (int, float),
                "initial_train_metrics": dict, "n_train": int, "genres": list, "user_ids": list, "item_ids": list,
                "keras_config": dict}
    for name, kind in expected.items():
        if name not in meta:
            raise IntegrityError(f"{path}: field {name!r} is missing: the folder is incomplete or was written by "
                                 "another ratecast version")
        if not isinstance(meta[name], kind) or isinstance(meta[name], bool):
            raise IntegrityError(f"{path}: field {name!r} must be {_kind(kind)}, got {type(meta[name]).__name__}")
    return meta


def _kind(kind) -> str:
    names = {str: "a string", dict: "an object", list: "a list", int: "an integer"}
    return names.get(kind, "a number")


def _check(cond: bool, path: Path, message: str) -> None:
    if not cond:
        raise IntegrityError(f"{path}: {message}")


def _index(ids: list, path: Path, what: str) -> IdIndex:
    _check(len(ids) > 0, path, f"{what} is empty")
    _check(all((isinstance(v, (int, str)) and not isinstance(v, bool)) or (isinstance(v, float) and math.isfinite(v))
               for v in ids), path, f"{what} must hold integer, number or text ids")
    index = IdIndex(ids)
    _check(len(index) == len(ids), path, f"{what} holds duplicate ids")
    return index


def _state_from(folder: Path, meta: dict[str, Any]) -> FittedState:
    path = folder / META
    name = meta["model"]
    _check(name in MODELS, path, f"unknown model {name!r} (expected one of {sorted(MODELS)})")
    try:
        mcfg, tcfg = split_params(name, meta["params"])
        scale = RatingScale(**meta["rating_scale"])
    except (TypeError, ValueError) as exc:
        raise IntegrityError(f"{path}: invalid configuration ({exc})") from None
    users, items = _index(meta["user_ids"], path, "user_ids"), _index(meta["item_ids"], path, "item_ids")
    kc = dict(meta["keras_config"])
    # sizes come from the saved vocabularies, never from the config alone
    for key, value in (("n_users", users.size), ("n_items", items.size)):
        _check(kc.get(key) == value, path, f"keras_config {key}={kc.get(key)!r} does not match the {value - 1} "
                                           "saved ids")
    saved, current = kc.get("config"), mcfg.to_dict()
    if isinstance(saved, dict) and saved != current:
        newer = sorted(set(current) - set(saved))
        _check(not newer, path, f"the model was saved by a ratecast version without the option(s) {newer}; retrain "
                                "and save it with this version")
    _check(saved == current, path, "keras_config config differs from the saved params")
    for key in ("item_feature_dim", "user_feature_dim"):
        v = kc.get(key)
        _check(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 100_000, path,
               f"keras_config {key} must be an integer in [0, 100000], got {v!r}")
    weights_bytes = (folder / WEIGHTS).stat().st_size
    needed = 4 * (users.size + items.size) * mcfg.embedding_dim
    _check(needed <= weights_bytes, path, f"the config needs at least {needed} bytes of embeddings but "
                                          f"{WEIGHTS} holds {weights_bytes}")
    encoder = None
    if meta.get("encoder") is not None:
        try:
            encoder = FeatureEncoder.from_dict(meta["encoder"])
        except (KeyError, TypeError, ValueError) as exc:
            raise IntegrityError(f"{path}: invalid encoder ({exc})") from None
    arrays = _read_arrays(folder / ARRAYS, users.size, items.size)
    try:
        model = MODELS[name].from_config({**kc, "random_init": False, "rating_scale": scale.to_dict()})
        model.build_now()
        model.load_weights(folder / WEIGHTS)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise IntegrityError(f"{folder / WEIGHTS}: weights do not fit the saved model ({exc})") from None
    bad = [w.path for w in model.weights if not np.isfinite(np.asarray(w)).all()]
    _check(not bad, folder / WEIGHTS, f"weights {bad[:3]} hold NaN or infinite values")
    return FittedState(
        model_name=name, params=meta["params"], random_state=meta.get("random_state"), model_config=mcfg,
        training_config=tcfg, rating_scale=scale, user_index=users, item_index=items,
        baseline=Baseline(float(arrays["baseline_mean"]), arrays["baseline_user"], arrays["baseline_item"]),
        encoder=encoder, seen=seen_matrix(arrays["seen_users"], arrays["seen_items"], users.size, items.size),
        items=_read_frame(folder / "items.parquet"), users=_read_frame(folder / "users.parquet"),
        genres=tuple(str(g) for g in meta["genres"]), model=model, history=meta["history"],
        fit_seconds=float(meta["fit_seconds"]), initial_train_metrics=meta["initial_train_metrics"],
        n_train=int(meta["n_train"]),
    )


def _read_arrays(path: Path, n_users: int, n_items: int) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in ("baseline_user", "baseline_item", "baseline_mean", "seen_users",
                                          "seen_items")}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
        raise IntegrityError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None
    _check(arrays["baseline_user"].shape == (n_users,), path, "baseline_user does not match the user ids")
    _check(arrays["baseline_item"].shape == (n_items,), path, "baseline_item does not match the item ids")
    _check(arrays["baseline_mean"].shape == () and np.isfinite(arrays["baseline_mean"]), path,
           "baseline_mean must be one finite number")
    for key in ("baseline_user", "baseline_item"):
        _check(bool(np.isfinite(arrays[key]).all()), path, f"{key} holds non-finite values")
    su, si = arrays["seen_users"], arrays["seen_items"]
    _check(su.shape == si.shape and su.ndim == 1 and su.dtype.kind in "iu" and si.dtype.kind in "iu", path,
           "seen_users and seen_items must be integer vectors of one length")
    _check(len(su) == 0 or (su.min() >= 1 and su.max() < n_users and si.min() >= 1 and si.max() < n_items), path,
           "seen pairs index users or items that do not exist")
    return arrays


def _read_frame(path: Path) -> pd.DataFrame | None:
    if not path.exists():
        return None
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types
        raise IntegrityError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None

"""The model interface every rating model implements, and the registry of models by name.

A model is a ``keras.Model`` over ``keras.ops`` only. Besides the network, it owns everything that is specific to it,
so the estimator never asks for a model by name:

* what its outputs mean (:attr:`RatingModel.output_rule`, :mod:`ratecast.models.outputs`): training targets and
  loss, output to rating (clipped to the scale) and ranking key;
* scoring: :meth:`RatingModel.score_items` scores every item for a batch of users on the device;
* features: ``item_feature_dim``/``user_feature_dim`` (tables held as non-trainable weights, row 0 = unknown);
* cold start: :attr:`RatingModel.cold_start` (:mod:`ratecast.models.cold_start`: the metadata it reads, whether a
  new side can be scored from it) and the ``user_features``/``item_features`` input overrides.
* what it can do (vectors worth comparing, features where available, days, rating by user): one record,
  :attr:`RatingModel.capabilities` (:class:`ratecast.models.capabilities.Capabilities`).

Inputs are dicts: ``user`` and ``item`` int32 index vectors (0 = unknown), optionally ``user_features`` /
``item_features`` rows that replace the table lookups (used for users and items the model has never seen).
"""

from __future__ import annotations

import contextlib
import dataclasses
from contextvars import ContextVar
from typing import Any, ClassVar, Iterator, Mapping

import keras
import numpy as np
from keras import ops

from ..datasets.scale import RatingScale
from .capabilities import Capabilities
from .cold_start import ColdStart
from .config import ModelConfig, TrainingConfig
from .fitting import Fitter, trained_by_gradient
from .layers import embedding, l2_penalty, take_rows
from .outputs import Outputs, RatingOutput

#: the known rows (1.., without row 0 for unknown ids) of per-item tables, by variable path, that a ranking program
#: is given (made once per ranking, not once per batch of users): read by :meth:`RatingModel.known_rows`
KNOWN_ROWS: ContextVar[Mapping[str, Any]] = ContextVar("known_rows", default={})


@contextlib.contextmanager
def given_known_rows(known: Mapping[str, Any]) -> Iterator[None]:
    """:data:`KNOWN_ROWS` set to ``known`` (variable path -> rows 1.. of that table) inside the block."""
    token = KNOWN_ROWS.set(known)
    try:
        yield
    finally:
        KNOWN_ROWS.reset(token)


class RatingModel(keras.Model):
    """User and item embeddings (plus optional feature tables) behind the model interface."""

    config_class: ClassVar[type[ModelConfig]] = ModelConfig
    #: layers that hold one row per user (fitted alone by ``fold_in``)
    user_layers: ClassVar[tuple[str, ...]] = ("user_embedding",)
    #: what the model can do (similar items, features where available, days, rating by user): one record, declared
    #: by a model class only where it differs from the default
    capabilities: ClassVar[Capabilities] = Capabilities()
    #: how the model meets users and items it has never seen (the metadata it reads): declared once per class
    cold_start: ClassVar[ColdStart] = ColdStart()
    #: the parts fitted apart from the training engine, in order (:mod:`ratecast.models.fitting`)
    fitters: ClassVar[tuple[Fitter, ...]] = ()
    #: whether the training engine fits the model (derived from :attr:`fitters` when the class is registered; an
    #: instance may decide otherwise by its size, see :meth:`trained_by_gradient_at`)
    trained_by_gradient: ClassVar[bool] = True

    def __init__(self, config: dict[str, Any] | ModelConfig, n_users: int, n_items: int,
                 rating_scale: dict[str, float] | RatingScale, global_mean: float = 0.0, item_feature_dim: int = 0,
                 user_feature_dim: int = 0, seed: int | None = None, random_init: bool = True, **kwargs):
        super().__init__(**kwargs)
        # random_init=False builds with zero initialisers: loading saved weights then skips compiling initialisers
        self.random_init = bool(random_init)
        self.cfg = self.config_class.from_dict(config) if isinstance(config, dict) else config
        for name, n in (("n_users", n_users), ("n_items", n_items)):
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise ValueError(f"{name} must be a positive integer, got {n!r}")
        for name, n in (("item_feature_dim", item_feature_dim), ("user_feature_dim", user_feature_dim)):
            if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {n!r}")
        self.n_users, self.n_items = int(n_users), int(n_items)
        self.scale = rating_scale if isinstance(rating_scale, RatingScale) else RatingScale(**rating_scale)
        #: what the network's outputs mean: targets, loss, output to rating, ranking key
        self.output_rule = self.make_output_rule()
        self.global_mean = float(global_mean)
        self.item_feature_dim, self.user_feature_dim = int(item_feature_dim), int(user_feature_dim)
        self.seed = seed
        d = self.table_width()
        self.user_embedding = embedding(n_users, d, "user_embedding", self.seed_for(1), zeros=not self.random_init)
        self.item_embedding = embedding(n_items, d, "item_embedding", self.seed_for(2), zeros=not self.random_init)
        self.item_feature_table = self._table("item_feature_table", n_items, item_feature_dim)
        self.user_feature_table = self._table("user_feature_table", n_users, user_feature_dim)

    def table_width(self) -> int:
        """Columns of the user and item tables (the embedding size unless the model stores more per row)."""
        return self.cfg.embedding_dim

    def _table(self, name: str, rows: int, width: int):
        if not width:
            return None
        return self.add_weight(shape=(rows, width), initializer="zeros", trainable=False, name=name)

    def _glorot(self, k: int):
        return keras.initializers.GlorotUniform(seed=self.seed_for(k)) if self.random_init else "zeros"

    def seed_for(self, k: int) -> int | None:
        """The seed of the model's ``k``-th random part (initialisers, dropout, a fitted part's own loop)."""
        return None if self.seed is None else (self.seed * 1000 + k) % (1 << 32)  # any random_state < 2**32

    # --- features ---------------------------------------------------------------------------------------------
    def set_feature_tables(self, item_table: np.ndarray, user_table: np.ndarray) -> None:
        """Fill the feature tables (one row per index, row 0 = the fill values used for unknown ids)."""
        for var, table in ((self.item_feature_table, item_table), (self.user_feature_table, user_table)):
            if var is not None:
                var.assign(np.asarray(table, dtype="float32"))

    def item_features(self, inputs):
        if "item_features" in inputs:
            return ops.cast(inputs["item_features"], "float32")
        return take_rows(self.item_feature_table, inputs["item"])

    def user_features(self, inputs):
        if "user_features" in inputs:
            return ops.cast(inputs["user_features"], "float32")
        return take_rows(self.user_feature_table, inputs["user"])

    def embed(self, inputs):
        u = self.user_embedding(inputs["user"])
        v = self.item_embedding(inputs["item"])
        if self.cfg.l2:
            self.add_loss(l2_penalty(self.cfg.l2, u, v))
        return u, v

    # --- the network ------------------------------------------------------------------------------------------
    def call(self, inputs, training=None):
        return self.score(inputs, training=training)

    def score(self, inputs, training=None):  # pragma: no cover - abstract
        """Outputs for (user, item) pairs."""
        raise NotImplementedError

    def score_ratings(self, inputs):
        """Ratings on the scale for (user, item) pairs: :meth:`score`'s outputs through the output rule; models whose
        other outputs cost more than the rating (normalised over the catalogue) override it."""
        return self.output_rule.to_rating(self.score(inputs, training=False))

    #: per-item layers whose table :meth:`score_items` takes whole for the known items (:meth:`known_rows`)
    known_row_tables: ClassVar[tuple[str, ...]] = ()

    def known_row_variables(self) -> list:
        """The table variables of :attr:`known_row_tables`, whose known rows a ranking may pass in."""
        return [getattr(self, name).embeddings for name in self.known_row_tables]

    def known_rows(self, variable):
        """Rows 1.. of a per-item table ``variable`` (the known items): those a ranking program was given
        (:data:`KNOWN_ROWS`), else a slice of the variable. A compiled product cannot read a slice in place, so a
        slice made inside the program is a copy of the table per call."""
        given = KNOWN_ROWS.get().get(variable.path)
        return variable[1:] if given is None else given

    def item_product_table(self):
        """The item side, rows 1.. (n_items - 1, width), of a model whose :meth:`score_items` is a product,
        ``user_product_rows(users) @ table.T``: a ranking makes it once and scores each batch of users against it.
        None (the default) for a model scored otherwise."""
        return None

    def user_product_rows(self, users, user_features=None):
        """The user side (batch, width) of the product of :meth:`item_product_table`."""
        raise NotImplementedError(f"{type(self).__name__} has no product form")

    def score_items(self, users, user_features=None):
        """Outputs for every known item (indices 1..n_items-1) for a batch of user indices: (batch, n_items - 1, ...).

        The default pairs every user with every item through :meth:`score`; models override it with a faster
        factorised form. ``user_features`` (batch, width) replaces the table rows (cold start)."""
        n = self.n_items - 1
        b = ops.shape(users)[0]
        x = {"user": ops.repeat(users, n), "item": ops.tile(ops.arange(1, n + 1, dtype="int32"), [b])}
        if user_features is not None:
            x["user_features"] = ops.repeat(user_features, n, axis=0)
        out = self.score(x, training=False)
        return ops.reshape(out, (b, n, *ops.shape(out)[1:]))

    # --- training targets and loss ----------------------------------------------------------------------------
    # --- what the outputs mean (see :mod:`ratecast.models.outputs`) -------------------------------------------
    def make_output_rule(self) -> Outputs:
        """The model's :class:`~ratecast.models.outputs.Outputs` rule (one rating per pair by default)."""
        return RatingOutput(self.scale, self.cfg.loss, self.cfg.name)

    @classmethod
    def trained_by_gradient_at(cls, cfg: ModelConfig, n_items: int) -> bool:
        """Whether the training engine fits a model of this config over ``n_items`` item rows (index 0 included)."""
        return cls.trained_by_gradient

    # --- fold-in hooks (see :mod:`ratecast.foldin`) --------------------------------------------------------------
    def user_tables(self) -> dict[str, Any]:
        """Other per-user weights (one row per user index), by name, that ``fold_in`` fills from a user's ratings
        through :meth:`fold_in_rows` rather than fitting them: by default those the model's part layers declare (a
        layer's ``per_user``: the attribute names of its variables with one row per user), named by their paths."""
        return {variable.path: variable for layer in self.layers for variable in
                (getattr(layer, name) for name in getattr(layer, "per_user", ()))}

    def user_variables(self) -> list:
        """Every weight with one row per user index: the :attr:`user_layers` tables, the user feature table and the
        :meth:`user_tables`. ``fold_in`` gives a new state new arrays for these only."""
        out = [getattr(self, name).embeddings for name in self.user_layers]
        if self.user_feature_table is not None:
            out.append(self.user_feature_table)
        return out + list(self.user_tables().values())

    def fold_in_rows(self, items: np.ndarray, ratings: np.ndarray, known: bool) -> dict[str, np.ndarray]:
        """Rows of :meth:`user_tables` for a user with these ratings (item indices, ratings), by name; ``known``:
        the user has rows already (a table left out keeps its row). Nothing by default."""
        return {}

    def fold_in_design(self, items: np.ndarray, rows: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray] | None:
        """For a model whose rating is linear in the user's :attr:`user_layers` rows (concatenated, ``theta``):
        ``(X, offset)`` with ``rating(u, i) = offset[u, j] + X[u, j] . theta_u`` for the item indices ``items``
        (users, ratings), given the users' :meth:`fold_in_rows` stacked by name. ``fold_in`` then solves ``theta`` in
        closed form (a ridge regression). None (the default): the model is not linear in the user side, and
        ``fold_in`` takes gradient steps of its own loss instead."""
        return None

    def fold_in_blocks(self) -> int:
        """How many independent fits the first user layer's columns hold side by side, averaged in the rating
        (``bayesian``: one per posterior sample). A closed-form fold-in fits each alone with its own copy of the
        other user columns (e.g. the bias), as the model's own posterior mean does. 1 by default."""
        return 1

    def resized(self, n_users: int, values: list | None = None) -> "RatingModel":
        """A copy of this model with ``n_users`` user rows, built once: every weight copied from ``values`` (the
        model's variables' values in order; default: their own), per-user weights cut or padded with zero rows."""
        clone = type(self).from_config({**self.get_config(), "n_users": int(n_users), "random_init": False})
        clone.build_now()
        per_user = {id(v) for v in clone.user_variables()}
        values = [v.value for v in self.variables] if values is None else values
        for new, value in zip(clone.variables, values):
            value = np.asarray(value)
            if id(new) in per_user and value.shape[0] != n_users:
                if value.shape[0] > n_users:
                    value = value[:n_users]
                else:
                    # spare rows: a fold-in writes a user's rows before any score reads them
                    value = np.concatenate([value, np.zeros((n_users - value.shape[0], *value.shape[1:]),
                                                            value.dtype)])
            new.assign(value)
        return clone

    @property
    def pair_cost(self) -> int:
        """Floats held per (user, item) pair while scoring all items (sizes the user batches)."""
        return 1 + int(np.prod(self.output_rule.shape, dtype=int))

    @property
    def pair_row_floats(self) -> int:
        """Floats :meth:`score` holds per pair beyond its outputs (sizes the chunks of pairs scored at once): 0, or
        whole-catalogue rows for models whose pair outputs are normalised over every item."""
        return 0

    @property
    def rating_row_floats(self) -> int:
        """Floats :meth:`score_ratings` holds per pair (sizes the chunks of pairs rated at once)."""
        return self.pair_row_floats

    def linear_tables(self) -> dict[str, np.ndarray] | None:
        """For a model whose rating of a pair (without a day) is ``clip(offset + user_bias + item_bias +
        <user_factors, item_factors>)``: those tables (rows of indices 1..), so that a saved model can predict with
        NumPy alone (:mod:`ratecast.lookup`); None for any other model (the default)."""
        return None

    @staticmethod
    def table_rows(layer) -> np.ndarray:
        """A row table's rows of the known ids (indices 1..), as float32."""
        return np.asarray(layer.embeddings, "float32")[1:]

    # --- saved weights ----------------------------------------------------------------------------------------
    def item_index_variables(self) -> list:
        """Weights that hold item indices (each in ``[0, n_items)``, 0 = none), checked when a saved model loads.
        None by default (an empty list)."""
        return []

    def weights_saved_by(self, version: int) -> dict[str, Any] | None:
        """For a weights file written by saved-model format ``version``: the variable each of its datasets (by
        path) goes to, None for a dataset of a part that no longer exists (left unread). None (the default): the
        file is laid out as the model's own Keras weights are today (a model whose layout changes says here how
        older files were laid out)."""
        return None

    # --- embeddings -------------------------------------------------------------------------------------------
    def item_vectors(self) -> np.ndarray:
        """One vector per known item (rows 1..), for similarity and maps."""
        return np.asarray(self.item_embedding.embeddings)[1:]

    def user_vectors(self) -> np.ndarray:
        return np.asarray(self.user_embedding.embeddings)[1:]

    # --- config ------------------------------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        return {
            "config": self.cfg.to_dict(),
            "n_users": self.n_users,
            "n_items": self.n_items,
            "rating_scale": self.scale.to_dict(),
            "global_mean": self.global_mean,
            "item_feature_dim": self.item_feature_dim,
            "user_feature_dim": self.user_feature_dim,
            "seed": self.seed,
            "random_init": self.random_init,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]):
        return cls(**config)

    def dummy_inputs(self, n: int = 1) -> dict:
        return {"user": ops.zeros((n,), "int32"), "item": ops.zeros((n,), "int32")}

    def build_now(self) -> "RatingModel":
        """Create every weight: one symbolic call (traced, not computed, so that no program is compiled)."""
        self({"user": keras.KerasTensor((1,), "int32"), "item": keras.KerasTensor((1,), "int32")})
        return self


MODELS: dict[str, type[RatingModel]] = {}


def register(name: str, config: type[ModelConfig]):
    """Class decorator: register a model class under ``name`` with its config class."""

    def deco(cls):
        cls.config_class = config
        cls.trained_by_gradient = trained_by_gradient(cls.fitters)
        MODELS[name] = keras.saving.register_keras_serializable(package="ratecast")(cls)
        return cls

    return deco


def split_params(model: str, params: dict[str, Any]) -> tuple[ModelConfig, TrainingConfig]:
    """Build (model config, training config) from one flat dict of options, rejecting unknown keys. Training
    options the dict leaves out come from the model's ``training`` defaults, then :class:`TrainingConfig`'s."""
    if model not in MODELS:
        raise ValueError(f"model must be one of {sorted(MODELS)}, got {model!r}")
    if not isinstance(params, dict):
        raise ValueError(f"options must be a mapping, got {type(params).__name__}")
    cls = MODELS[model].config_class
    model_keys, train_keys = cls.field_names(), TrainingConfig.field_names()
    unknown = sorted(set(params) - model_keys - train_keys)
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for model {model!r}; allowed: {sorted(model_keys | train_keys)}")
    if not MODELS[model].trained_by_gradient:
        ignored = sorted(set(params) & train_keys - model_keys)
        if ignored:
            raise ValueError(f"option(s) {ignored} do not apply to model {model!r}: it is not trained by gradient "
                             f"(no epochs, batches or learning rate); its options are {sorted(model_keys)}")
    try:
        mcfg = cls.from_dict({k: v for k, v in params.items() if k in model_keys})
        defaults = dict(cls.training)
        if "optimizer" in params or params.get("engine") == "keras":  # goes with its optimizer and engine
            defaults.pop("table_optimizer", None)
            defaults.pop("table_learning_rate", None)
        tcfg = TrainingConfig(**{**defaults, **{k: v for k, v in params.items() if k in train_keys}})
    except TypeError as exc:  # e.g. a list where a number belongs
        raise ValueError(f"bad option value for model {model!r}: {exc}") from None
    return mcfg, tcfg


def config_fields(model: str) -> list[dataclasses.Field]:
    """The model's own config fields (for documentation and the command line)."""
    return list(dataclasses.fields(MODELS[model].config_class))

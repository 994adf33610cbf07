"""The base Keras model: integer user/item indices (0 = unknown) in, ratings (or class probabilities) out."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from .config import CONFIGS, ModelConfig
from .layers import embedding, l2_penalty


class RatingModel(keras.Model):
    """Shared constructor, config round trip and embeddings. Subclasses implement ``score(inputs, training)``.

    Inputs are a dict: ``user`` and ``item`` int32 index vectors, plus ``item_features``/``user_features`` float
    matrices for models that use metadata.
    """

    config_class: type[ModelConfig] = ModelConfig

    def __init__(self, config: dict[str, Any], n_users: int, n_items: int, global_mean: float = 0.0,
                 n_classes: int = 0, item_feature_dim: int = 0, user_feature_dim: int = 0,
                 seed: int | None = None, random_init: bool = True, **kwargs):
        super().__init__(**kwargs)
        # random_init=False builds with zero initialisers: loading saved weights then skips the cost of compiling
        # one random initialiser per variable
        self.random_init = bool(random_init)
        self.cfg = self.config_class.from_dict(config) if isinstance(config, dict) else config
        for name, n in (("n_users", n_users), ("n_items", n_items)):
            if not isinstance(n, int) or n < 1:
                raise ValueError(f"{name} must be a positive integer, got {n!r}")
        self.n_users, self.n_items = int(n_users), int(n_items)
        self.global_mean = float(global_mean)
        self.n_classes = int(n_classes)
        self.item_feature_dim, self.user_feature_dim = int(item_feature_dim), int(user_feature_dim)
        self.seed = seed
        d = self.cfg.embedding_dim
        self.user_embedding = embedding(n_users, d, "user_embedding", self._seed(1), zeros=not self.random_init)
        self.item_embedding = embedding(n_items, d, "item_embedding", self._seed(2), zeros=not self.random_init)

    def _glorot(self, k: int):
        return keras.initializers.GlorotUniform(seed=self._seed(k)) if self.random_init else "zeros"

    def _seed(self, k: int) -> int | None:
        return None if self.seed is None else self.seed * 1000 + k

    def embed(self, inputs):
        u = self.user_embedding(inputs["user"])
        v = self.item_embedding(inputs["item"])
        if self.cfg.l2:
            self.add_loss(l2_penalty(self.cfg.l2, u, v))
        return u, v

    def call(self, inputs, training=None):
        return self.score(inputs, training=training)

    def score(self, inputs, training=None):  # pragma: no cover - abstract
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {
            "config": self.cfg.to_dict(),
            "n_users": self.n_users,
            "n_items": self.n_items,
            "global_mean": self.global_mean,
            "n_classes": self.n_classes,
            "item_feature_dim": self.item_feature_dim,
            "user_feature_dim": self.user_feature_dim,
            "seed": self.seed,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]):
        return cls(**config)

    def dummy_inputs(self, n: int = 1) -> dict:
        x = {"user": ops.zeros((n,), "int32"), "item": ops.zeros((n,), "int32")}
        if self.item_feature_dim:
            x["item_features"] = ops.zeros((n, self.item_feature_dim))
        if self.user_feature_dim:
            x["user_features"] = ops.zeros((n, self.user_feature_dim))
        return x


MODELS: dict[str, type[RatingModel]] = {}


def register(name: str):
    def deco(cls):
        cls.config_class = CONFIGS[name]
        MODELS[name] = keras.saving.register_keras_serializable(package="ratecast")(cls)
        return cls

    return deco

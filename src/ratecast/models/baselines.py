"""Reference models that every comparison should include: damped biases, and popularity.

* ``baseline``: rating = global mean + user bias + item bias. The biases are the model's one-wide user and item
  tables, shrunk toward zero by per-row L2 (Surprise's BaselineOnly, fitted by SGD).
* ``popularity``: the same ratings, but lists rank items by their number of training ratings (ties broken by the
  predicted rating), the list every recommender has to beat.

Neither learns item or user vectors, so they have no similar items and no embedding maps.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from keras import ops

from ..search_space import Float
from .base import RatingModel, register
from .capabilities import Capabilities
from .config import Count, Dim, Loss, ModelConfig, NonNegative, config
from .fitting import Fitter, Ratings
from .outputs import CountOutput


@config
class BaselineConfig(ModelConfig):
    """Global mean + damped user and item biases."""

    name: ClassVar[str] = "baseline"
    training: ClassVar[dict] = {"optimizer": "sgd", "learning_rate": 0.01, "batch_size": 1024, "epochs": 20}
    embedding_dim: Dim = 1  # the bias tables are the model's one-wide user and item tables
    loss: Loss = "mse"
    l2: NonNegative = 0.05  # per example and row, as in biased_dot: the damping of the biases
    min_support: Count = 50  # lists: chosen on validation (benchmarks/topn.py --tune-support)
    search_space: ClassVar[dict] = {"l2": Float(1e-3, 1.0, log=True), "learning_rate": Float(2e-3, 5e-2, log=True)}

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.embedding_dim != 1:
            raise ValueError(f"embedding_dim for model {self.name!r} must be 1 (its tables hold biases), "
                             f"got {self.embedding_dim!r}")


@config
class PopularityConfig(BaselineConfig):
    """Lists by training popularity; ratings from damped biases."""

    name: ClassVar[str] = "popularity"
    # its lists are popularity itself; its ratings are the baseline's (tune "baseline" for those)
    tune_metrics: ClassVar[tuple[str, ...]] = ("top_n",)
    min_support: Count = 0  # its lists are the most rated items: no minimum needed


@register("baseline", BaselineConfig)
class BaselineModel(RatingModel):
    """rating = global mean + user bias + item bias."""

    user_layers = ("user_embedding",)
    capabilities: ClassVar[Capabilities] = Capabilities(has_vectors=False)

    def score(self, inputs, training=None):
        bu, bi = self.embed(inputs)
        return self.global_mean + bu[:, 0] + bi[:, 0]

    def score_items(self, users, user_features=None):
        bu = ops.take(self.user_embedding.embeddings[:, 0], users, axis=0)
        return self.global_mean + bu[:, None] + self.item_embedding.embeddings[None, 1:, 0]

    def linear_tables(self) -> dict[str, np.ndarray]:
        """(The one-wide tables are the biases; a popularity model's ratings are the same.)"""
        users, items = self.table_rows(self.user_embedding), self.table_rows(self.item_embedding)
        return {"offset": np.asarray(self.global_mean, "float32"), "user_bias": users[:, 0],
                "item_bias": items[:, 0], "user_factors": np.zeros((len(users), 0), "float32"),
                "item_factors": np.zeros((len(items), 0), "float32")}

    def fold_in_design(self, items, rows):
        """theta = [user bias]: X = 1, offset = mean + item bias."""
        offset = self.global_mean + np.asarray(self.item_embedding.embeddings)[items, 0]
        return np.ones((*items.shape, 1), "float32"), offset.astype("float64")


class ItemCounts(Fitter):
    """The training popularity of each item, counted before gradient training."""

    def before(self, model: "PopularityModel", fit: Ratings) -> None:
        model.item_count.assign(np.bincount(fit.items, minlength=model.n_items).astype("float32"))


@register("popularity", PopularityConfig)
class PopularityModel(BaselineModel):
    """Outputs (rating, training popularity) per pair; lists rank by popularity, then by rating."""

    fitters = (ItemCounts(),)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.item_count = self.add_weight(shape=(self.n_items,), initializer="zeros", trainable=False,
                                          name="item_count")


    def score(self, inputs, training=None):
        rating = super().score(inputs, training=training)
        return ops.stack([rating, ops.take(self.item_count, inputs["item"], axis=0)], axis=-1)

    def score_items(self, users, user_features=None):
        rating = super().score_items(users, user_features)
        count = ops.broadcast_to(self.item_count[None, 1:], ops.shape(rating))
        return ops.stack([rating, count], axis=-1)

    def make_output_rule(self) -> CountOutput:
        return CountOutput(self.scale, self.cfg.loss, self.cfg.name)

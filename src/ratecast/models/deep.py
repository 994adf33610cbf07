"""The deep model: user and item embeddings concatenated, through a dense tower, to one rating."""

from __future__ import annotations

from typing import ClassVar

from ..search_space import Choice, Float, Int
from .base import register
from .config import Count, config
from .tower import TowerConfig, TowerModel


@config
class DeepConfig(TowerConfig):
    """Concatenated embeddings -> dropout -> dense stack -> one output."""

    name: ClassVar[str] = "deep"
    # row-wise Adagrad for the tables beside Adam for the tower: the same validation error as Adam everywhere
    # (RMSE 0.9465 against 0.9474, MAE 0.7238 against 0.7236, three validation splits of the lab training set) in
    # 60% of the epoch time
    training: ClassVar[dict] = {"optimizer": "adam", "learning_rate": 3e-3, "batch_size": 1024, "epochs": 40,
                                "table_optimizer": "adagrad", "table_learning_rate": 0.05}
    min_support: Count = 10  # lists: chosen on validation (benchmarks/topn.py --tune-support)
    search_space: ClassVar[dict] = {
        "embedding_dim": Int(8, 128, log=True), "hidden": Choice(((64,), (128,), (128, 64), (256, 128))),
        "dropout": Float(0.0, 0.7), "l2": Float(1e-7, 1e-3, log=True), "loss": Choice(("mae", "mse", "huber")),
        "learning_rate": Float(3e-4, 1e-2, log=True), "batch_size": Choice((256, 512, 1024, 2048))}


@register("deep", DeepConfig)
class DeepModel(TowerModel):
    """The lab's corrected deep model: concat -> Dropout(0.5) -> Dense(64, relu) -> Dense(1)."""

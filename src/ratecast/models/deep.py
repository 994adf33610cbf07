"""The deep model: user and item embeddings concatenated, through a dense tower, to one rating."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .base import register
from .tower import TowerConfig, TowerModel


@dataclass(frozen=True)
class DeepConfig(TowerConfig):
    """Concatenated embeddings -> dropout -> dense stack -> one output."""

    name: ClassVar[str] = "deep"
    training: ClassVar[dict] = {"optimizer": "adam", "learning_rate": 3e-3, "batch_size": 1024, "epochs": 40}


@register("deep", DeepConfig)
class DeepModel(TowerModel):
    """The lab's corrected deep model: concat -> Dropout(0.5) -> Dense(64, relu) -> Dense(1)."""

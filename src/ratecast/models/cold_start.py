"""How a model meets users and items it has never seen, declared apart from its network (a model class's
``cold_start``): the metadata it reads, whether training replaces ids by 0 (unknown) to learn to score without
them, and whether a new user or item can be scored from metadata alone. The default reads no metadata: a new user
gets the popular items and a new item its baseline rating."""

from __future__ import annotations

from typing import Any


class ColdStart:
    """No metadata, no cold start."""

    def features(self, cfg: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(item features, user features) the model reads from metadata."""
        return (), ()

    def substitutes_unknown_ids(self, cfg: Any) -> bool:
        """Whether training replaces some user or item ids by 0 (unknown)."""
        return False

    def supports(self, model: Any, side: str) -> bool:
        """Whether a new ``side`` ('user' or 'item') can be scored by ``model`` from metadata alone."""
        return False


class NamedFeatures(ColdStart):
    """Reads the metadata its config names (``item_features``, ``user_features``) for the ids it knows."""

    def features(self, cfg: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return tuple(cfg.item_features), tuple(cfg.user_features)


class LearnedFromFeatures(NamedFeatures):
    """Also learns to score ids it has never seen from their metadata: training replaces a share
    (``cold_start_rate``) of the ids by 0, so a new side with features can be scored."""

    def substitutes_unknown_ids(self, cfg: Any) -> bool:
        return cfg.cold_start_rate > 0

    def supports(self, model: Any, side: str) -> bool:
        width = model.user_feature_dim if side == "user" else model.item_feature_dim
        return bool(width) and model.cfg.cold_start_rate > 0

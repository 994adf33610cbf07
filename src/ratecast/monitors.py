"""Per-epoch validation figures computed from the model as it stands (besides the engine's validation loss)."""

from __future__ import annotations

from typing import Callable

import numpy as np


def rating_monitor(model, val_users: np.ndarray, val_items: np.ndarray, val_ratings: np.ndarray, *,
                   distribution=None) -> Callable[[], dict[str, float]]:
    """A function returning the RMSE and MAE of ``model``'s predicted ratings (``val_rating_rmse``,
    ``val_rating_mae``) on validation pairs given as the model's indices: the same figures for every model, whatever
    its training loss."""
    from .ranking import Scorer

    scorer = Scorer(model, distribution)
    truth = np.asarray(val_ratings, dtype="float64")
    users, items = np.asarray(val_users), np.asarray(val_items)

    def evaluate() -> dict[str, float]:
        predicted = scorer.ratings(users, items)
        err = predicted - truth
        return {"val_rating_rmse": float(np.sqrt(np.mean(err ** 2))), "val_rating_mae": float(np.mean(np.abs(err)))}

    return evaluate

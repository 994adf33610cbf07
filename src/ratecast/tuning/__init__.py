"""Hyperparameter search: :func:`tune` (Optuna), its result, and the ``ratecast tune`` run folder."""

from .search import Metric, StudyMismatchError, TuneResult, tune
from .storage import StorageError

__all__ = ["tune", "TuneResult", "Metric", "StudyMismatchError", "StorageError"]

"""ratecast: explicit-feedback neural recommender systems."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

from .errors import DataError, DownloadError, NotFittedError, RatecastError  # noqa: E402

__version__ = "0.1.0"

__all__ = ["datasets", "split", "Dataset", "DataError", "DownloadError", "NotFittedError", "RatecastError"]


def __getattr__(name: str):
    # Submodules load on first use: the estimator pulls in Keras, the data layer pandas, and a command line that
    # only prints its help or answers from a run's stored tables needs neither.
    if name == "Dataset":
        from .datasets import Dataset

        return Dataset
    if name == "Recommender":
        from .recommender import Recommender

        return Recommender
    if name == "Blend":
        from .blend import Blend

        return Blend
    if name in ("evaluate", "compare", "Evaluation"):
        from . import evaluation

        return getattr(evaluation, name)
    if name == "tune":
        from .tuning import tune

        return tune
    if name in ("datasets", "split", "metrics", "models", "features", "viz", "report", "recommender", "io",
                "similarity", "ranking", "state", "engine", "manifest", "blend", "distribution", "presets", "tuning",
                "search_space", "evaluation", "showcase"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'ratecast' has no attribute {name!r}")

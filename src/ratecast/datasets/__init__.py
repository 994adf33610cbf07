"""Datasets: MovieLens releases and your own ratings, parsed and validated into :class:`Dataset`."""

from .dataset import Dataset, IdIndex
from .movielens import available_datasets, load_movielens
from .readers import load_ratings
from .scale import RatingScale
from .stats import item_stats, popularity, rating_distribution, release_year_histogram, user_activity

__all__ = [
    "Dataset",
    "IdIndex",
    "RatingScale",
    "available_datasets",
    "item_stats",
    "load_movielens",
    "load_ratings",
    "popularity",
    "rating_distribution",
    "release_year_histogram",
    "user_activity",
]

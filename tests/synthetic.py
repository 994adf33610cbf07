"""Small synthetic datasets the tests build themselves (with item and user metadata)."""

import numpy as np
import pandas as pd

from ratecast.datasets import Dataset, RatingScale


def make_dataset(n_users=30, n_items=24, density=0.5, seed=0, half_stars=False) -> Dataset:
    rng = np.random.default_rng(seed)
    pu, qi = rng.normal(size=(n_users, 2)), rng.normal(size=(n_items, 2))
    rows = [(u, i) for u in range(n_users) for i in range(n_items) if rng.random() < density]
    u = np.array([r[0] for r in rows]) + 1
    i = np.array([r[1] for r in rows]) + 101
    raw = 3 + (pu[u - 1] * qi[i - 101]).sum(1) + rng.normal(scale=0.3, size=len(rows))
    step = 0.5 if half_stars else 1.0
    rating = np.clip(np.round(raw / step) * step, step if half_stars else 1, 5)
    ratings = pd.DataFrame({"user_id": u, "item_id": i, "rating": rating, "timestamp": np.arange(len(rows))})
    genres = ["Action", "Comedy", "Drama"]
    items = pd.DataFrame(
        {"title": [f"Movie {k} ({1980 + k})" for k in range(n_items)],
         "release_year": pd.array([1980 + k if k != 3 else None for k in range(n_items)], dtype="Int64")},
        index=pd.Index(np.arange(n_items) + 101, name="item_id"),
    )
    for g_i, g in enumerate(genres):
        items[g] = ((np.arange(n_items) + g_i) % 3 == 0).astype("int8")
    users = pd.DataFrame(
        {"age": 18 + np.arange(n_users) % 50, "gender": np.where(np.arange(n_users) % 2, "M", "F"),
         "occupation": np.array(["writer", "student", "doctor"])[np.arange(n_users) % 3]},
        index=pd.Index(np.arange(n_users) + 1, name="user_id"),
    )
    scale = RatingScale(0.5, 5, 0.5) if half_stars else RatingScale(1, 5, 1)
    return Dataset(ratings, items, users, name="synthetic", rating_scale=scale, genres=genres)

"""The lab's plots as PNG files: loss curves, true vs predicted, similarity histogram, rating distribution,
release years, popularity. Each function writes ``path`` atomically and returns it."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..io import PNG_METADATA, atomic_path  # noqa: E402

SIZE = (6.4, 4.8)
DPI = 100


def _save(fig, path: str | os.PathLike) -> Path:
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, dpi=DPI, format="png", metadata=PNG_METADATA)
    plt.close(fig)
    return Path(path)


def plot_loss_curves(history: dict, path: str | os.PathLike, title: str = "Loss") -> Path:
    """Training and validation loss per epoch (and MAE where recorded)."""
    fig, ax = plt.subplots(figsize=SIZE)
    same = "mae" in history and np.allclose(history.get("mae", []), history.get("loss", []))
    for key, label in (("loss", "train loss"), ("val_loss", "validation loss"), ("mae", "train MAE"),
                       ("val_mae", "validation MAE")):
        if key in history and not (same and key in ("mae", "val_mae")):  # MAE loss: one curve each, not two
            ax.plot(np.arange(1, len(history[key]) + 1), history[key], marker="o", label=label,
                    linestyle="--" if "mae" in key else "-")
    ax.set_xlabel("epoch")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend(loc="best")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_predictions(y_true, y_pred, path: str | os.PathLike, title: str = "True vs predicted") -> Path:
    """Predicted against true ratings, with the mean prediction per true rating."""
    t, p = np.asarray(y_true, float), np.asarray(y_pred, float)
    fig, ax = plt.subplots(figsize=(4.8, 4.8))
    jitter = np.random.default_rng(0).uniform(-0.15, 0.15, len(t))
    ax.scatter(t + jitter, p, s=6, alpha=0.05)
    levels = np.unique(t)
    ax.plot(levels, [p[t == v].mean() for v in levels], color="C3", marker="o", label="mean prediction")
    lo, hi = float(min(t.min(), p.min())) - 0.5, float(max(t.max(), p.max())) + 0.5
    ax.plot([lo, hi], [lo, hi], color="grey", linewidth=1, label="ideal")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("true rating")
    ax.set_ylabel("predicted rating")
    ax.set_title(title)
    ax.legend(loc="upper left")
    return _save(fig, path)


def plot_similarity_histogram(similarities, path: str | os.PathLike, title: str = "Cosine similarities") -> Path:
    fig, ax = plt.subplots(figsize=SIZE)
    ax.hist(np.asarray(similarities, float), bins=30)
    ax.set_xlabel("cosine similarity")
    ax.set_ylabel("items")
    ax.set_title(title)
    return _save(fig, path)


def plot_rating_distribution(ratings: pd.DataFrame, path: str | os.PathLike) -> Path:
    counts = ratings["rating"].value_counts().sort_index()
    fig, ax = plt.subplots(figsize=SIZE)
    ax.bar(counts.index.astype(float), counts.to_numpy(), width=0.4)
    ax.set_xlabel("rating")
    ax.set_ylabel("ratings")
    ax.set_title("Rating distribution")
    return _save(fig, path)


def plot_release_years(items: pd.DataFrame, path: str | os.PathLike, bins: int = 50) -> Path:
    years = pd.to_numeric(items.get("release_year"), errors="coerce").dropna()
    fig, ax = plt.subplots(figsize=SIZE)
    ax.hist(years.to_numpy(float), bins=bins)
    ax.set_xlabel("release year")
    ax.set_ylabel("items")
    ax.set_title(f"Release years ({len(items) - len(years)} unknown, not shown)")
    return _save(fig, path)


def plot_popularity(ratings: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Number of ratings per item, most popular first (log scale)."""
    pop = ratings.groupby("item_id").size().sort_values(ascending=False).to_numpy()
    fig, ax = plt.subplots(figsize=SIZE)
    ax.plot(np.arange(1, len(pop) + 1), pop)
    ax.set_yscale("log")
    ax.set_xlabel("item rank by popularity")
    ax.set_ylabel("ratings (log)")
    ax.set_title("Popularity")
    return _save(fig, path)

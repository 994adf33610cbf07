"""Plots (matplotlib PNG) and embedding maps (t-SNE/UMAP; static PNG and interactive self-contained HTML)."""

from .maps import color_columns, embedding_map, map_figure, map_html, map_png, project
from .plots import (
    plot_loss_curves,
    plot_popularity,
    plot_predictions,
    plot_rating_distribution,
    plot_release_years,
    plot_similarity_histogram,
)

__all__ = [
    "color_columns", "embedding_map", "map_figure", "map_html", "map_png", "project", "plot_loss_curves",
    "plot_popularity", "plot_predictions", "plot_rating_distribution", "plot_release_years",
    "plot_similarity_histogram",
]

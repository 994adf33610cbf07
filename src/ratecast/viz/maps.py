"""2-D maps of embeddings: t-SNE (scikit-learn) or UMAP (umap-learn), as a static PNG or an interactive,
self-contained HTML page (plotly, works offline) with title, release year, popularity and genres on hover."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import atomic_path, write_text


def project(vectors: np.ndarray, method: str = "tsne", perplexity: float = 30.0, random_state: int = 0
            ) -> np.ndarray:
    """2-D coordinates of ``vectors`` with ``method`` 'tsne' or 'umap'."""
    x = np.asarray(vectors, dtype="float64")
    if method == "tsne":
        from sklearn.manifold import TSNE

        if not 0 < perplexity < len(x):
            raise ValueError(f"perplexity must be in (0, n_points={len(x)}), got {perplexity!r}")
        return TSNE(n_components=2, perplexity=perplexity, random_state=random_state, init="pca").fit_transform(x)
    if method == "umap":
        try:
            import umap
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ImportError("method='umap' needs umap-learn: pip install 'ratecast[maps]'") from exc
        n_neighbors = int(min(15, max(2, len(x) - 1)))
        return umap.UMAP(n_components=2, n_neighbors=n_neighbors, random_state=random_state).fit_transform(x)
    raise ValueError(f"method must be 'tsne' or 'umap', got {method!r}")


def embedding_map(rec, kind: str = "item", method: str = "tsne", perplexity: float = 30.0,
                  random_state: int = 0) -> pd.DataFrame:
    """Map frame for a fitted recommender: id, x, y plus title, release_year, popularity, genres for items."""
    if kind == "item":
        emb = rec.item_embeddings(with_titles=False)
    elif kind == "user":
        emb = rec.user_embeddings()
    else:
        raise ValueError(f"kind must be 'item' or 'user', got {kind!r}")
    xy = project(emb.to_numpy(), method, perplexity=min(perplexity, len(emb) - 1), random_state=random_state)
    df = pd.DataFrame({"id": emb.index.to_numpy(), "x": xy[:, 0], "y": xy[:, 1]})
    if kind == "item":
        df["title"] = rec._titles(df["id"].to_numpy())
        df["popularity"] = rec.train_popularity_[1:]
        items = rec.items_
        if items is not None:
            meta = items.reindex(df["id"].to_numpy())
            if "release_year" in meta:
                df["release_year"] = pd.to_numeric(meta["release_year"], errors="coerce").to_numpy()
            genre_cols = [g for g in rec.genres_ if g in meta.columns]
            if genre_cols:
                g = meta[genre_cols].fillna(0).to_numpy(bool)
                df["genres"] = ["|".join(np.array(genre_cols)[row]) for row in g]
                df["genre"] = [np.array(genre_cols)[row][-1] if row.any() else "unknown" for row in g]
    else:
        u = rec.train_pairs_[0]
        df["n_ratings"] = np.bincount(u, minlength=rec.user_index_.size)[1:]
        users = rec.users_
        if users is not None:
            meta = users.reindex(df["id"].to_numpy())
            for col in ("age", "gender", "occupation"):
                if col in meta:
                    df[col] = meta[col].to_numpy()
    return df


def map_png(df: pd.DataFrame, path: str | os.PathLike, color: str = "popularity", title: str = "Embedding map"
            ) -> Path:
    """Static scatter of a map frame, coloured by a numeric column (log scale for popularity)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 8))
    if color in df and not pd.api.types.is_numeric_dtype(df[color]):  # categories (e.g. genre): one colour each
        values = df[color].astype(str)
        top = values.value_counts().index[:10]
        for k, cat in enumerate(top):
            m = (values == cat).to_numpy()
            ax.scatter(df["x"][m], df["y"][m], s=8, alpha=0.8, color=plt.cm.tab10(k), label=cat)
        rest = (~values.isin(top)).to_numpy()
        if rest.any():
            ax.scatter(df["x"][rest], df["y"][rest], s=8, alpha=0.5, color="lightgrey", label="other")
        ax.legend(loc="best", fontsize=8, markerscale=2)
    else:
        c = None
        if color in df:
            c = np.log1p(df[color].to_numpy(float)) if color in ("popularity", "n_ratings") else df[color]
        sc = ax.scatter(df["x"], df["y"], c=c, s=8, cmap="viridis", alpha=0.8)
        if c is not None:
            fig.colorbar(sc, ax=ax, label=f"log(1 + {color})" if color in ("popularity", "n_ratings") else color)
    ax.set_xticks(())
    ax.set_yticks(())
    ax.set_title(title)
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return Path(path)


def map_figure(df: pd.DataFrame, color: str = "popularity", title: str = "Embedding map"):
    import plotly.express as px

    hover = [c for c in ("id", "title", "release_year", "popularity", "genres", "age", "gender", "occupation",
                         "n_ratings") if c in df]
    color_col = color if color in df else None
    fig = px.scatter(df, x="x", y="y", color=color_col, hover_data=hover, title=title,
                     color_continuous_scale="Viridis", render_mode="svg")
    fig.update_traces(marker={"size": 6})
    fig.update_layout(xaxis={"visible": False}, yaxis={"visible": False}, height=700)
    return fig


def map_html(df: pd.DataFrame, path: str | os.PathLike, color: str = "popularity", title: str = "Embedding map"
             ) -> Path:
    """Interactive map as one self-contained HTML file (plotly.js inlined: works offline)."""
    fig = map_figure(df, color, title)
    return write_text(path, fig.to_html(include_plotlyjs=True, full_html=True))

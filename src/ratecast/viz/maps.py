"""2-D maps of embeddings: t-SNE (openTSNE when installed, else scikit-learn) or UMAP (umap-learn), as a static
PNG or an interactive, self-contained HTML page (plotly, works offline) with title, release year, popularity and
genres on hover."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import HTML_MARKER, PNG_METADATA, atomic_path, write_text


METHODS = ("tsne", "umap")
#: Colour columns of a map frame, by kind (each present when the model has the metadata behind it).
COLORS = {"item": ("popularity", "genre", "release_year"), "user": ("n_ratings", "age", "gender", "occupation")}


#: From this many points on, openTSNE's FFT-interpolated gradients beat Barnes-Hut (which has no fixed cost).
FFT_FROM = 4000


def _tsne(x: np.ndarray, perplexity: float, random_state: int) -> np.ndarray:
    """t-SNE with openTSNE when installed (Barnes-Hut gradients for small sets, FFT-interpolated ones for large,
    all cores), else scikit-learn's Barnes-Hut with PCA initialisation, 500 iterations and all cores."""
    try:
        import openTSNE
    except ImportError:
        openTSNE = None
    if openTSNE is not None and len(x) > 3 * perplexity:
        tsne = openTSNE.TSNE(n_components=2, perplexity=perplexity, initialization="pca", random_state=random_state,
                             negative_gradient_method="fft" if len(x) >= FFT_FROM else "bh", n_jobs=-1,
                             verbose=False)
        return np.asarray(tsne.fit(x))
    from sklearn.manifold import TSNE

    return TSNE(n_components=2, perplexity=perplexity, random_state=random_state, init="pca", max_iter=500,
                n_jobs=-1).fit_transform(x)


def project(vectors: np.ndarray, method: str = "tsne", perplexity: float = 30.0, random_state: int = 0
            ) -> np.ndarray:
    """2-D coordinates of ``vectors`` with ``method`` 'tsne' or 'umap'."""
    x = np.asarray(vectors, dtype="float64")
    if method not in METHODS:
        raise ValueError(f"method must be 'tsne' or 'umap', got {method!r}")
    if not np.isfinite(x).all():
        raise ValueError("vectors must be finite numbers (the embeddings hold NaN or infinity)")
    if method == "tsne":
        if not (np.isfinite(perplexity) and 0 < perplexity < len(x)):
            raise ValueError(f"perplexity must be in (0, n_points={len(x)}), got {perplexity!r}")
        return _tsne(x, float(perplexity), random_state)
    try:
        import umap
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("method='umap' needs umap-learn: pip install 'ratecast[maps]'") from exc
    n_neighbors = int(min(15, max(2, len(x) - 1)))
    with warnings.catch_warnings():
        # a fixed random_state makes umap run single-threaded, and it says so on every call
        warnings.filterwarnings("ignore", message=r"n_jobs value .* overridden", category=UserWarning)
        return umap.UMAP(n_components=2, n_neighbors=n_neighbors, random_state=random_state).fit_transform(x)


def color_columns(rec, kind: str = "item") -> list[str]:
    """The columns a map of ``rec``'s ``kind`` embeddings can be coloured by (depends on its metadata)."""
    if kind == "item":
        items = rec.items
        out = ["popularity"]
        if items is not None and rec.genres:
            out.append("genre")
        if items is not None and "release_year" in items and items["release_year"].notna().any():
            out.append("release_year")
        return out
    if kind == "user":
        users = rec.users
        return ["n_ratings"] + [c for c in ("age", "gender", "occupation")
                                if users is not None and c in users and users[c].notna().any()]
    raise ValueError(f"kind must be 'item' or 'user', got {kind!r}")


def check_perplexity(perplexity: float, n_points: int) -> None:
    """A map's perplexity suits ``n_points`` points: a number in (0, max(n_points, 51)) (a small catalogue's map
    lowers it to what the points allow)."""
    if isinstance(perplexity, bool) or not isinstance(perplexity, (int, float)) or not np.isfinite(perplexity) \
            or not 0 < perplexity < max(n_points, 51):
        raise ValueError(f"perplexity must be a number in (0, {max(n_points, 51)}) for {n_points} points, "
                         f"got {perplexity!r}")


def embedding_map(rec, kind: str = "item", method: str = "tsne", perplexity: float = 30.0,
                  random_state: int = 0, limit: int | None = None) -> pd.DataFrame:
    """Map frame for a fitted recommender: id, x, y plus title, release_year, popularity, genres for items.
    ``limit``: at most that many points, the most rated items (or most active users) first; None: every one."""
    if kind == "item":
        emb = rec.item_embeddings(with_titles=False)
        activity = rec.item_popularity
    elif kind == "user":
        emb = rec.user_embeddings()
        activity = rec.user_activity
    else:
        raise ValueError(f"kind must be 'item' or 'user', got {kind!r}")
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 2:
            raise ValueError(f"limit must be an integer >= 2 or None, got {limit!r}")
        if len(emb) > limit:
            counts = activity.reindex(emb.index).fillna(0).to_numpy()
            emb = emb.iloc[np.sort(np.argsort(-counts, kind="stable")[:limit])]
    check_perplexity(perplexity, len(emb))
    # small catalogues: the default perplexity is lowered to what the points allow
    xy = project(emb.to_numpy(), method, perplexity=min(perplexity, len(emb) - 1), random_state=random_state)
    ids = emb.index.to_numpy()
    df = pd.DataFrame({"id": ids, "x": xy[:, 0], "y": xy[:, 1]})
    if kind == "item":
        df["title"] = rec.titles(ids)
        df["popularity"] = rec.item_popularity.reindex(ids).fillna(0).astype("int64").to_numpy()
        items = rec.items
        if items is not None:
            meta = items.reindex(ids)
            if "release_year" in meta:
                df["release_year"] = pd.to_numeric(meta["release_year"], errors="coerce").to_numpy()
            genre_cols = [g for g in rec.genres if g in meta.columns]
            if genre_cols:
                g = meta[genre_cols].fillna(0).to_numpy(bool)
                df["genres"] = ["|".join(np.array(genre_cols)[row]) for row in g]
                df["genre"] = [np.array(genre_cols)[row][-1] if row.any() else "unknown" for row in g]
    else:
        df["n_ratings"] = rec.user_activity.reindex(ids).fillna(0).astype("int64").to_numpy()
        users = rec.users
        if users is not None:
            meta = users.reindex(ids)
            for col in ("age", "gender", "occupation"):
                if col in meta:
                    df[col] = meta[col].to_numpy()
    return df


#: categories that get a colour of their own in a static map (the rest are grey)
MAX_CATEGORIES = 26


def category_colours(n: int) -> list[str]:
    """``n`` distinct colours (hex) for categories such as genres: Plotly's 10 up to 10, then its 24- and
    26-colour sequences, so that no two of up to 26 categories share a colour."""
    from plotly.express import colors

    for palette in (colors.qualitative.Plotly, colors.qualitative.Dark24, colors.qualitative.Alphabet):
        if n <= len(palette):
            return list(palette[:max(n, 1)])
    return list(colors.qualitative.Alphabet)


def map_png(df: pd.DataFrame, path: str | os.PathLike, color: str = "popularity", title: str = "Embedding map"
            ) -> Path:
    """Static scatter of a map frame, coloured by a numeric column (log scale for popularity)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 8))
    if color in df and not pd.api.types.is_numeric_dtype(df[color]):  # categories (e.g. genre): one colour each
        values = df[color].astype(str)
        top = values.value_counts().index[:MAX_CATEGORIES]
        for k, cat in enumerate(top):
            m = (values == cat).to_numpy()
            ax.scatter(df["x"][m], df["y"][m], s=8, alpha=0.8, color=category_colours(len(top))[k], label=cat)
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
        fig.savefig(tmp, dpi=100, format="png", metadata=PNG_METADATA)
    plt.close(fig)
    return Path(path)


def map_figure(df: pd.DataFrame, color: str = "popularity", title: str = "Embedding map"):
    import plotly.express as px

    hover = [c for c in ("id", "title", "release_year", "popularity", "genres", "age", "gender", "occupation",
                         "n_ratings") if c in df]
    color_col = color if color in df else None
    n = df[color_col].nunique() if color_col and not pd.api.types.is_numeric_dtype(df[color_col]) else 0
    fig = px.scatter(df, x="x", y="y", color=color_col, hover_data=hover, title=title,
                     color_continuous_scale="Viridis", render_mode="svg",
                     color_discrete_sequence=category_colours(min(n, MAX_CATEGORIES)) if n else None)
    fig.update_traces(marker={"size": 6})
    fig.update_layout(xaxis={"visible": False}, yaxis={"visible": False}, height=700)
    return fig


def map_html(df: pd.DataFrame, path: str | os.PathLike, color: str = "popularity", title: str = "Embedding map"
             ) -> Path:
    """Interactive map as one self-contained HTML file (plotly.js inlined: works offline)."""
    fig = map_figure(df, color, title)
    page = fig.to_html(include_plotlyjs=True, full_html=True)
    return write_text(path, page.replace("<head>", f"<head>{HTML_MARKER}", 1))

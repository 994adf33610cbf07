"""Plots and maps are real files: PNGs decode at the expected size, HTML holds the points and titles."""

import json
import re
import sys
import warnings

import matplotlib.image as mpimg
import numpy as np
import pytest

import ratecast as rc
from ratecast import viz
from synthetic import make_dataset


@pytest.fixture(scope="module")
def rec():
    return rc.Recommender("hybrid", random_state=0, embedding_dim=4, epochs=2, batch_size=32, verbose=0).fit(
        make_dataset(n_users=40, n_items=30))


def png_shape(path):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return mpimg.imread(path).shape


def test_lab_plots(rec, tmp_path):
    ds = make_dataset()
    assert png_shape(viz.plot_loss_curves(rec.history_, tmp_path / "loss.png"))[:2] == (480, 640)
    y = ds.ratings["rating"].to_numpy()
    assert png_shape(viz.plot_predictions(y, y + 0.3, tmp_path / "pred.png"))[:2] == (480, 480)
    assert png_shape(viz.plot_similarity_histogram(rec.similarities(101), tmp_path / "sim.png"))[:2] == (480, 640)
    assert png_shape(viz.plot_rating_distribution(ds.ratings, tmp_path / "dist.png"))[:2] == (480, 640)
    assert png_shape(viz.plot_release_years(ds.items, tmp_path / "years.png"))[:2] == (480, 640)
    assert png_shape(viz.plot_popularity(ds.ratings, tmp_path / "pop.png"))[:2] == (480, 640)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["loss.png", "pred.png", "sim.png", "dist.png", "years.png", "pop.png"])  # no temp files left


@pytest.mark.parametrize("method", ["tsne", pytest.param("umap", marks=pytest.mark.slow)])
def test_item_maps(rec, tmp_path, method):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = viz.embedding_map(rec, "item", method=method, perplexity=5)
    assert not [w for w in caught if "n_jobs" in str(w.message)]  # umap's note on n_jobs stays inside
    assert len(df) == len(rec.item_index) and np.isfinite(df[["x", "y"]].to_numpy()).all()
    assert {"title", "release_year", "popularity", "genres"} <= set(df.columns)
    png = viz.map_png(df, tmp_path / "map.png")
    assert png_shape(png)[:2] == (800, 800)
    by_genre = mpimg.imread(viz.map_png(df, tmp_path / "genre.png", color="genre"))
    assert by_genre.shape[:2] == (800, 800) and not np.array_equal(by_genre, mpimg.imread(png))
    html = viz.map_html(df, tmp_path / "map.html", title="Items").read_text()
    assert "<script" in html and "cdn.plot.ly" not in html.split("<body>")[0]  # plotly.js inlined: offline
    assert "Movie 0 (1980)" in html and "Movie 29 (2009)" in html
    # every point is in the figure data
    data = json.loads(re.search(r'Plotly\.newPlot\(\s*"[^"]+",\s*(\[.*?\]),\s*\{', html, re.S).group(1))
    assert sum(n_points(trace["x"]) for trace in data) == len(df)


def n_points(values):
    """plotly writes arrays as lists or as base64 typed arrays ({"dtype": ..., "bdata": ...})."""
    if isinstance(values, dict):
        import base64

        return len(np.frombuffer(base64.b64decode(values["bdata"]), dtype=np.dtype(values["dtype"])))
    return len(values)


def test_user_map_and_bad_method(rec, tmp_path):
    df = viz.embedding_map(rec, "user", perplexity=5)
    assert {"age", "gender", "occupation", "n_ratings"} <= set(df.columns)
    assert "occupation" in viz.map_html(df, tmp_path / "u.html", color="age").read_text()
    with pytest.raises(ValueError, match="method must be 'tsne' or 'umap', got 'pca'"):
        viz.project(np.zeros((5, 2)), "pca")
    with pytest.raises(ValueError, match=r"perplexity must be in \(0, n_points=5\), got 30"):
        viz.project(np.random.default_rng(0).normal(size=(5, 2)), "tsne", perplexity=30)


def test_map_uses_public_views_only(rec):
    df = viz.embedding_map(rec, "item", perplexity=5)
    pop = rec.item_popularity
    assert df["popularity"].tolist() == pop.reindex(df["id"]).tolist() and df["popularity"].sum() > 0
    assert df["title"].tolist() == list(rec.titles(df["id"].to_numpy()))
    users = viz.embedding_map(rec, "user", perplexity=5)
    assert users["n_ratings"].tolist() == rec.user_activity.reindex(users["id"]).tolist()
    assert viz.color_columns(rec, "item") == ["popularity", "genre", "release_year"]
    assert viz.color_columns(rec, "user") == ["n_ratings", "age", "gender", "occupation"]


@pytest.mark.parametrize("opentsne", [True, False])
def test_tsne_with_and_without_opentsne(monkeypatch, opentsne):
    x = np.random.default_rng(0).normal(size=(60, 8))
    if opentsne:
        pytest.importorskip("openTSNE")
    else:
        monkeypatch.setitem(sys.modules, "openTSNE", None)  # as if not installed: scikit-learn's t-SNE
    xy = viz.project(x, "tsne", perplexity=10)
    assert xy.shape == (60, 2) and np.isfinite(xy).all() and xy.std() > 0
    assert np.array_equal(xy, viz.project(x, "tsne", perplexity=10))  # same seed, same map
    with pytest.raises(ValueError, match="finite"):
        viz.project(np.full((20, 2), np.nan), "tsne", perplexity=5)


def test_map_perplexity_is_checked(rec):
    from ratecast.viz import embedding_map

    with pytest.raises(ValueError, match=r"perplexity must be a number in \(0, \d+\) for \d+ points, got 1000000000.0"):
        embedding_map(rec, "item", perplexity=1e9)


def test_a_map_gives_each_of_19_genres_its_own_colour():
    import pandas as pd

    from ratecast.viz.maps import map_figure

    genres = [f"genre {k}" for k in range(19)]
    df = pd.DataFrame({"x": range(38), "y": range(38), "genres": genres * 2, "id": range(38)})
    fig = map_figure(df, "genres")
    colours = {trace.name: trace.marker.color for trace in fig.data}
    assert len(colours) == 19 and len(set(colours.values())) == 19

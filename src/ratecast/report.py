"""One self-contained HTML report per run: protocol, metrics with confidence intervals, loss curves, prediction
scatter, the interactive embedding map, most-similar examples and sample recommendations. Works offline."""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path

import numpy as np
import pandas as pd

from .io import write_text
from .runs import Run, load_run

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
h1{margin-bottom:.2rem} h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0} td,th{border:1px solid #ddd;padding:.25rem .6rem;text-align:left}
th{background:#f4f4f4} .num{text-align:right;font-variant-numeric:tabular-nums} .muted{color:#666}
.grid{display:flex;flex-wrap:wrap;gap:1rem} .grid img{max-width:520px;border:1px solid #eee}
.cards{display:flex;flex-wrap:wrap;gap:1rem} .card{flex:1 1 320px;border:1px solid #ddd;border-radius:6px;padding:.6rem}
"""


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _table(df: pd.DataFrame, float_fmt: str = "{:.3f}") -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    rows = []
    for _, row in df.iterrows():
        cells = []
        for v in row:
            if isinstance(v, (float, np.floating)):
                cells.append(f'<td class="num">{float_fmt.format(v)}</td>')
            elif isinstance(v, (int, np.integer)):
                cells.append(f'<td class="num">{v}</td>')
            else:
                cells.append(f"<td>{html.escape('' if v is None else str(v))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _metrics_table(metrics: dict) -> str:
    rows = []
    for name in ("mae", "mse", "rmse"):
        test = metrics["test"]
        ci = test.get(f"{name}_ci95")
        rows.append({"metric": name.upper(), "test": test[name],
                     "test 95% CI": f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "",
                     "train": metrics["train"][name]})
    if "untrained_on_train" in metrics:
        u = metrics["untrained_on_train"]
        rows.append({"metric": "MAE of the untrained model (random init)", "test": float("nan"), "test 95% CI": "",
                     "train": u["mae"]})
    ranking = [k for k in metrics["test"] if "@" in k]
    for k in ranking:
        rows.append({"metric": k, "test": metrics["test"][k], "test 95% CI": "", "train": ""})
    return _table(pd.DataFrame(rows))


def build_report(run: Run | str | os.PathLike, out: str | os.PathLike | None = None, *, map_method: str = "tsne",
                 n_examples: int = 4) -> Path:
    """Write the report of a run directory (default ``RUN_DIR/report.html``) and return its path."""
    from .viz.maps import embedding_map, map_figure

    run = run if isinstance(run, Run) else load_run(run)
    out = Path(out) if out is not None else run.path / "report.html"
    rec = run.recommender()
    spec, info, tcfg = run.spec, run.info, run.info["training_config"]
    protocol = pd.DataFrame([
        {"": "data", "value": f"{info['dataset']} ({spec.data})"},
        {"": "split", "value": f"{spec.split}" + (f" (test_size={spec.test_size}, random_state={spec.seed})"
                                                  if spec.split == "holdout" else "")},
        {"": "model", "value": spec.model},
        {"": "seed", "value": str(spec.seed)},
        {"": "epochs", "value": f"{info['epochs_run']} run of {tcfg['epochs']} (early stopping patience "
                                f"{tcfg['early_stopping']} on a {tcfg['validation_split']:.0%} validation split "
                                "of train; the test set is used for these numbers only)"},
        {"": "batch size / learning rate", "value": f"{tcfg['batch_size']} / {tcfg['learning_rate']}"},
        {"": "model config", "value": ", ".join(f"{k}={v}" for k, v in info["model_config"].items())},
        {"": "fit time", "value": f"{info['fit_seconds']:.1f} s"},
    ])
    split = (run.path / "split.json").read_text() if (run.path / "split.json").exists() else "{}"

    sections = [f"<h1>ratecast run: {html.escape(spec.model)} on {html.escape(info['dataset'])}</h1>",
                f'<p class="muted">{html.escape(str(run.path))}</p>',
                "<h2>Protocol</h2>", _table(protocol), f'<p class="muted">split: {html.escape(split)}</p>',
                "<h2>Metrics</h2>", _metrics_table(run.metrics),
                '<p class="muted">95% percentile bootstrap intervals over test ratings; ranking metrics rank each '
                "user's test items by predicted rating, relevant = rating &ge; 4.</p>",
                "<h2>Training</h2>", '<div class="grid">',
                _img(run.path / "plots" / "loss.png", "loss curves"),
                _img(run.path / "plots" / "predictions.png", "true vs predicted"), "</div>"]

    # embedding map
    try:
        df = embedding_map(rec, "item", method=map_method)
        fig = map_figure(df, "popularity", f"Item embeddings ({map_method}), coloured by training popularity")
        sections += ["<h2>Item embedding map</h2>", fig.to_html(include_plotlyjs=True, full_html=False)]
    except Exception as exc:  # a map is a nice-to-have; the report still renders
        sections += ["<h2>Item embedding map</h2>", f"<p>map not available: {html.escape(str(exc))}</p>"]

    # similar items for the best-known items
    popular = np.argsort(-rec.train_popularity_[1:], kind="stable")[:n_examples]
    cards = []
    for pos in popular:
        item = rec.item_index_.ids[pos]
        sim = rec.similar_items(item, k=5, min_ratings=20)
        cards.append(f'<div class="card"><b>{html.escape(str(rec._titles([item])[0]))}</b>'
                     f"{_table(sim[['title', 'similarity']])}</div>")
    sections += ["<h2>Most similar items</h2>",
                 '<p class="muted">cosine similarity of item embeddings; neighbours with at least 20 training '
                 "ratings.</p>", '<div class="cards">', *cards, "</div>"]

    # sample recommendations
    cards = []
    seen_u, seen_i = rec.train_pairs_
    for u_pos in range(1, min(3, len(rec.user_index_)) + 1):
        user = rec.user_index_.ids[u_pos - 1]
        liked = rec.item_index_.ids[seen_i[seen_u == u_pos] - 1][:5]
        top = rec.recommend(user, k=5)
        cards.append(f'<div class="card"><b>user {html.escape(str(user))}</b> '
                     f'<span class="muted">rated {int((seen_u == u_pos).sum())} items, e.g. '
                     f"{html.escape('; '.join(str(t) for t in rec._titles(liked)))}</span>"
                     f"{_table(top[['title', 'score']])}</div>")
    sections += ["<h2>Sample recommendations</h2>", '<div class="cards">', *cards, "</div>"]
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>ratecast report: {html.escape(spec.model)}"
            f"</title><style>{CSS}</style></head><body>{''.join(sections)}</body></html>")
    return write_text(out, page)

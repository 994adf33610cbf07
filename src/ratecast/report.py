"""One self-contained HTML report per run: protocol, metrics with confidence intervals, loss curves, prediction
scatter, the interactive embedding map, most-similar examples and sample recommendations. Works offline."""

from __future__ import annotations

import base64
import html
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from .io import HTML_MARKER, check_replaceable, write_text
from .models import MODELS
from .runs import Run, load_run

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
h1{margin-bottom:.2rem} h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0} td,th{border:1px solid #ddd;padding:.25rem .6rem;text-align:left}
th{background:#f4f4f4} td{font-variant-numeric:tabular-nums} .nums td+td{text-align:right} .muted{color:#666}
.grid{display:flex;flex-wrap:wrap;gap:1rem} .grid img{max-width:520px;border:1px solid #eee}
.cards{display:flex;flex-wrap:wrap;gap:1rem} .card{flex:1 1 320px;border:1px solid #ddd;border-radius:6px;padding:.6rem}
.why td:last-child{text-align:left;font-size:.85rem;color:#444}
"""
MISSING = "\u2014"  # shown for a value that does not exist (e.g. the untrained model has no test error)


def html_image(png: Path | bytes, alt: str) -> str:
    """An ``<img>`` holding a PNG (a file, or its bytes) inline, so that the page needs no other file."""
    data = base64.b64encode(png if isinstance(png, bytes) else Path(png).read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _cell(value, digits: int) -> str:
    """Text of one table cell: numbers rounded, missing or non-finite values as a dash (never 'nan')."""
    if value is None or value is pd.NA:
        return MISSING
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.{digits}f}" if math.isfinite(value) else MISSING
    return str(value)


def html_table(df: pd.DataFrame, digits: int = 3, numbers: bool = True) -> str:
    """An HTML table of ``df`` (every cell escaped); with ``numbers``, columns after the first align right."""
    shown = pd.DataFrame({str(c): [_cell(v, digits) for v in df[c]] for c in df.columns})
    return shown.to_html(index=False, escape=True, border=0, na_rep=MISSING, classes="nums" if numbers else None)




def html_page(title: str, sections: list[str]) -> str:
    """A whole self-contained page (ratecast's mark and style inline) around ``sections`` of HTML."""
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'>{HTML_MARKER}"
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head>"
            f"<body>{''.join(sections)}</body></html>")


def _ci(value) -> str:
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(
            isinstance(v, (int, float)) and math.isfinite(v) for v in value):
        return f"[{value[0]:.3f}, {value[1]:.3f}]"
    return MISSING


def _labels(rec, item_ids) -> list[str]:
    """Each item's title, or ``item ID`` where the data has no title for it."""
    return [str(t) if t is not None else f"item {i}" for i, t in zip(item_ids, rec.titles(item_ids))]


def _items(df: pd.DataFrame, value: str) -> pd.DataFrame:
    """An item list for a card: its ids, its titles where the data has them, and ``value``."""
    shown = ["item_id"] + (["title"] if df["title"].notna().any() else []) + [value]
    return df[shown]


def _reasons(rec, user, item_ids) -> tuple[list[str], str]:
    """Each listed item's top reasons in words (see :mod:`ratecast.reasons`), and a note where there
    are none (a model saved without its users' ratings)."""
    from .errors import DataError
    from .reasons import explain_list

    try:
        explained = explain_list(rec, user, list(item_ids))
    except DataError as exc:
        return [MISSING] * len(item_ids), f'<p class="muted">no reasons: {html.escape(str(exc))}</p>'
    return ["; ".join(r.text() for r in why.reasons) for why in explained], ""


def _metrics_table(metrics: dict) -> str:
    test, train = metrics["test"], metrics.get("train", {})
    rows = []
    for name in ("mae", "mse", "rmse"):
        rows.append({"metric": name.upper(), "test": test.get(name), "test 95% CI": _ci(test.get(f"{name}_ci95")),
                     "train": train.get(name)})
    u = metrics.get("untrained_on_train")
    if isinstance(u, dict):
        rows.append({"metric": "MAE of the untrained model (random init)", "test": None, "test 95% CI": MISSING,
                     "train": u.get("mae")})
    for k in (k for k in test if k.endswith("_within_test_items")):
        rows.append({"metric": k, "test": test[k], "test 95% CI": MISSING, "train": None})
    return html_table(pd.DataFrame(rows))


TOPN_COLUMNS = ("recall", "precision", "ndcg", "mrr", "hit", "distinct_items", "coverage", "mean_popularity",
                "long_tail_share")


def _topn_table(metrics: dict) -> str:
    """One row per list length: the whole-catalogue top-N metrics of the test set."""
    test = metrics["test"]
    ks = sorted({int(k.split("@")[1]) for k in test if k.startswith("recall@") and "_" not in k})
    if not ks:
        return '<p class="muted">no top-N metrics were recorded for this run</p>'
    rows = [{"k": k, **{c: test.get(f"{c}@{k}") for c in TOPN_COLUMNS}} for k in ks]
    return html_table(pd.DataFrame(rows))


def _item_map(rec, method: str, step) -> list[str]:
    """The report's item map section (HTML fragments): the map, or why there is none."""
    from .viz.maps import embedding_map, map_figure

    step(f"item map ({method})")
    try:
        df = embedding_map(rec, "item", method=method)
        fig = map_figure(df, "popularity", f"Item embeddings ({method}), coloured by training popularity")
        return ["<h2>Item embedding map</h2>", fig.to_html(include_plotlyjs=True, full_html=False)]
    except Exception as exc:  # a map is a nice-to-have; the report still renders
        return ["<h2>Item embedding map</h2>", f"<p>map not available: {html.escape(str(exc))}</p>"]


def build_report(run: Run | str | os.PathLike, out: str | os.PathLike | None = None, *,
                 map_method: str | None = "tsne", n_examples: int = 4, overwrite: bool = False, on_step=None) -> Path:
    """Write the report of a run directory (default ``RUN_DIR/report.html``) and return its path; ``map_method``
    None leaves the item map out (a lighter page, written in a few seconds).

    An existing file at ``out`` is replaced only if ratecast wrote it, or with ``overwrite``.
    """
    from .evaluation_report import evaluation_sections

    step = on_step or (lambda message: None)
    run = run if isinstance(run, Run) else load_run(run)
    out = Path(out) if out is not None else run.path / "report.html"
    if out.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"--out must be an HTML file name ending in .html, got {str(out)!r}")
    check_replaceable(out, overwrite=overwrite)
    step("loading the model")
    rec = run.recommender()
    spec, info, tcfg = run.spec, run.info, run.info["training_config"]
    protocol = pd.DataFrame([
        {"": "data", "value": f"{info['dataset']} ({spec.data})"},
        {"": "split", "value": f"{spec.split}" + (f" (test_size={spec.test_size}, random_state={spec.seed})"
                                                  if spec.split in ("holdout", "held-out-users") else "")},
        {"": "model", "value": spec.model},
        {"": "seed", "value": str(spec.seed)},
        {"": "epochs", "value": f"{info['epochs_run']} run of {tcfg.get('epochs')} (early stopping patience "
                                f"{tcfg.get('early_stopping')} on a {tcfg.get('validation_split', 0):.0%} validation "
                                "split of train; the test set is used for these numbers only)"
         if MODELS[spec.model].trained_by_gradient else
         f"{info['epochs_run']} sampling sweeps on all of train (no epochs, no validation split; the test set is "
         "used for these numbers only)"},
        {"": "batch size / learning rate", "value": f"{tcfg.get('batch_size')} / {tcfg.get('learning_rate')}"},
        {"": "model config", "value": ", ".join(f"{k}={v}" for k, v in info["model_config"].items())},
        {"": "fit time", "value": f"{info['fit_seconds']:.1f} s"},
    ])
    split = (run.path / "split.json").read_text() if (run.path / "split.json").exists() else "{}"

    sections = [f"<h1>ratecast run: {html.escape(spec.model)} on {html.escape(info['dataset'])}</h1>",
                f'<p class="muted">{html.escape(str(run.path))}</p>',
                "<h2>Protocol</h2>", html_table(protocol, numbers=False),
                f'<p class="muted">split: {html.escape(split)}</p>',
                "<h2>Metrics</h2>", _metrics_table(run.metrics),
                '<p class="muted">95% percentile bootstrap intervals over test ratings. The metrics named '
                "&hellip;_within_test_items rank only each user's own test items by predicted rating (relevant = "
                "rating &ge; 4): a re-ranking figure, not a top-N one.</p>",
                "<h2>Recommendation lists</h2>", _topn_table(run.metrics),
                '<p class="muted">Whole catalogue: each test user\'s list ranks every item they did not rate in '
                "training; relevant = test rating &ge; 4; accuracy averages over users with a relevant item. "
                "recall = hits / min(relevant, k); long tail = items with fewer than 10 training ratings.</p>"]
    step("evaluation")
    sections += evaluation_sections(run)
    sections += ["<h2>Training</h2>", '<div class="grid">',
                 html_image(run.path / "plots" / "loss.png", "loss curves"),
                 html_image(run.path / "plots" / "predictions.png", "true vs predicted"), "</div>"]

    if map_method is None:
        sections += ["<h2>Item embedding map</h2>", "<p>left out of this page; <code>ratecast report RUN</code> "
                     "writes the page with it, <code>ratecast map RUN</code> the map alone.</p>"]
    else:
        sections += _item_map(rec, map_method, step)

    step("similar items and sample recommendations")
    popular = rec.item_popularity.sort_values(ascending=False, kind="stable").index[:n_examples]
    if rec.model_.capabilities.has_vectors:
        cards = []
        for item in popular:
            sim = rec.similar_items(item, k=5, min_ratings=20)
            cards.append(f'<div class="card"><b>{html.escape(_labels(rec, [item])[0])}</b>'
                         f"{html_table(_items(sim, 'similarity'))}</div>")
        sections += ["<h2>Most similar items</h2>",
                     '<p class="muted">cosine similarity of item embeddings; neighbours with at least 20 training '
                     "ratings.</p>", '<div class="cards">', *cards, "</div>"]
    else:
        sections += ["<h2>Most similar items</h2>",
                     f"<p>model {html.escape(spec.model)} learns no item vectors, so it has no similar items.</p>"]

    cards = []
    for user in rec.user_index.ids[:3]:
        seen = rec.seen_items(user)
        top = rec.recommend(user, k=5)
        why, note = _reasons(rec, user, top["item_id"])
        cards.append(f'<div class="card"><b>user {html.escape(str(user))}</b> '
                     f'<span class="muted">rated {len(seen)} items, e.g. '
                     f"{html.escape('; '.join(_labels(rec, seen[:5])))}</span>"
                     f'<div class="why">{html_table(_items(top, "score").assign(why=why))}</div>{note}</div>')
    sections += ["<h2>Sample recommendations</h2>",
                 '<p class="muted">score: the predicted rating, clipped to the rating scale. Lists are ranked by the '
                 "model's ranking key: the unclipped prediction, which orders items that tie at the top of the scale, "
                 "or, for a model with a list head of its own (implicit), how likely the user is to pick and like the "
                 "item, so scores may fall out of order. why: the user's ratings (and, for models with user "
                 "metadata, their features) that add most to the score, each with how much it adds.</p>",
                 '<div class="cards">', *cards, "</div>"]
    page = html_page(f"ratecast report: {spec.model}", sections)
    step("writing the report")
    return write_text(out, page)

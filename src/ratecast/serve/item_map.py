"""The item embedding map the explorer draws (plotly figure JSON), made once per model when a run is loaded: taken
from a map ratecast already wrote into the run folder (``report.html``, or ``ratecast map --out RUN/NAME.html``) when
that map is the t-SNE map of the same model's items, else computed as the report computes it."""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from ..io import HTML_MARKER

TITLE = "Item embeddings (t-SNE), coloured by training popularity"
LAYOUT = {"height": 560, "margin": {"l": 10, "r": 10, "t": 40, "b": 10}}
#: maps kept in this process by model (the sha256 of its run's manifest): a reload of the same run reuses its map
KEEP = 4
#: HTML files larger than this are not read for a map
MAX_HTML_BYTES = 200_000_000
#: the call plotly writes into an HTML page for each figure: Plotly.newPlot("<div id>", data, layout, config)
NEW_PLOT = re.compile(r'Plotly\.newPlot\(\s*"[0-9a-f-]{36}",\s*')
#: titles of the maps that can stand in for the served one: the report's, and ``ratecast map --kind item``'s
STORED_TITLE = re.compile(r"item embeddings \(tsne\)(, coloured by training popularity)?", re.IGNORECASE)

_kept: OrderedDict[str, str] = OrderedDict()
_kept_lock = threading.Lock()


def item_map_json(rec, run_dir: Path, model_key: str) -> str:
    """The map of ``rec``'s item embeddings as plotly figure JSON: kept from an earlier load of the same model
    (``model_key``), else read from a map in ``run_dir``, else computed (t-SNE). Missing titles show the item id."""
    with _kept_lock:
        if model_key in _kept:
            _kept.move_to_end(model_key)
            return _kept[model_key]
    item_ids = rec.state_.item_index.ids
    figure = stored_map(run_dir, item_ids) or computed_map(rec)
    figure["layout"].update(LAYOUT)
    text = json.dumps(_ids_for_missing_titles(figure))
    with _kept_lock:
        _kept[model_key] = text
        while len(_kept) > KEEP:
            _kept.popitem(last=False)
    return text


#: the service's map shows at most this many items, the most rated (t-SNE of a larger catalogue takes minutes, and a
#: page of that many points is slow to draw)
MAP_ITEMS = 5000


def computed_map(rec) -> dict:
    """The report's map of ``rec``'s items (t-SNE, coloured by popularity) as a plotly figure dict: the
    :data:`MAP_ITEMS` most rated items where the catalogue is larger (said in the title)."""
    from ..viz import maps

    df = maps.embedding_map(rec, "item", method="tsne", limit=MAP_ITEMS)
    n_items = len(rec.state_.item_index)
    title = TITLE if len(df) == n_items else f"{TITLE}: the {len(df):,} most rated of {n_items:,} items"
    return json.loads(maps.map_figure(df, "popularity", title).to_json(), parse_constant=_null)


def stored_map(run_dir: Path, item_ids) -> dict | None:
    """A t-SNE item map coloured by popularity that ratecast wrote into ``run_dir`` (or its ``plots/``) after the
    run itself, covering exactly ``item_ids``; None when there is none."""
    run_dir = Path(run_dir)
    try:
        written = (run_dir / "MANIFEST.json").stat().st_mtime
    except OSError:
        return None
    want = sorted(str(i) for i in item_ids)
    pages = [run_dir / "report.html", *sorted(run_dir.glob("*.html")), *sorted(run_dir.glob("plots/*.html"))]
    for page in dict.fromkeys(pages):
        try:
            if not page.is_file() or page.stat().st_mtime < written or page.stat().st_size > MAX_HTML_BYTES:
                continue
            text = page.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if HTML_MARKER not in text:
            continue
        for figure in _figures(text):
            if _is_item_map(figure) and sorted(str(i) for i in _point_ids(figure)) == want:
                return figure
    return None


def _figures(page: str):
    """The plotly figures (data and layout) of an HTML page plotly wrote."""
    decoder = json.JSONDecoder(parse_constant=_null)
    for call in NEW_PLOT.finditer(page):
        try:
            data, end = decoder.raw_decode(page, call.end())
            comma = re.compile(r"\s*,\s*").match(page, end)
            layout, _ = decoder.raw_decode(page, comma.end()) if comma else (None, 0)
        except ValueError:
            continue
        if isinstance(data, list) and isinstance(layout, dict):
            yield {"data": data, "layout": layout}


def _null(constant: str) -> None:
    """JSON's null for NaN and Infinity (not JSON; a browser refuses them), as plotly writes a missing value."""
    return None


def _is_item_map(figure: dict) -> bool:
    layout = figure["layout"]
    title = (layout.get("title") or {}).get("text", "")
    colour = (((layout.get("coloraxis") or {}).get("colorbar") or {}).get("title") or {}).get("text")
    return bool(STORED_TITLE.fullmatch(str(title))) and colour == "popularity" and all(
        _labelled(trace) for trace in figure["data"])


def _labelled(trace: Any) -> bool:
    """Whether a scatter trace carries (id, title, ...) per point, as the maps' hover shows them."""
    template = trace.get("hovertemplate", "") if isinstance(trace, dict) else ""
    rows = trace.get("customdata") if isinstance(trace, dict) else None
    return ("id=%{customdata[0]}" in template and "title=%{customdata[1]}" in template and isinstance(rows, list)
            and all(isinstance(row, list) and len(row) >= 2 for row in rows))


def _point_ids(figure: dict) -> list:
    return [row[0] for trace in figure["data"] for row in trace["customdata"]]


def _ids_for_missing_titles(figure: dict) -> dict:
    """The figure with each missing title (null) replaced by the item's id as text, in hover and click data."""
    for trace in figure["data"]:
        if _labelled(trace):
            for row in trace["customdata"]:
                if row[1] is None:
                    row[1] = str(row[0])
    return figure

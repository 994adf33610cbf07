"""``ratecast map|report``: a map of the learned embeddings, and a run's HTML report."""

from __future__ import annotations

import math
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from .console import err, handle_errors, out, print_json, show_progress, step, step_reporter
from ..options import name_origin
from .options import AsJson, Quiet, Verbose, open_run


class Method(str, Enum):
    tsne = "tsne"
    umap = "umap"


class Kind(str, Enum):
    item = "item"
    user = "user"


@handle_errors
def map_(run_dir: Path = typer.Argument(..., help="Run directory."),
         out_file: Path = typer.Option(..., "--out", help="map.html (interactive) or map.png (static)."),
         method: Method = typer.Option(Method.tsne, "--method", help="Projection."),
         kind: Kind = typer.Option(Kind.item, "--kind", help="Which embeddings."),
         color: Optional[str] = typer.Option(None, "--color", help="Colour by: popularity, genre, release_year "
                                                                   "(items); n_ratings, age, gender, occupation "
                                                                   "(users)."),
         perplexity: float = typer.Option(30.0, "--perplexity", help="t-SNE perplexity."),
         overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out file."),
         quiet: bool = Quiet, verbose: bool = Verbose, as_json: bool = AsJson) -> None:
    """2-D map of the learned embeddings (t-SNE or UMAP)."""
    from ..io import check_replaceable
    from ..viz import embedding_map, map_html, map_png
    from ..viz.maps import COLORS, check_perplexity, color_columns

    method, kind = Method(method).value, Kind(kind).value
    if out_file.suffix.lower() not in (".html", ".png"):
        raise ValueError(f"--out must end in .html or .png, got {str(out_file)!r}")
    if not (math.isfinite(perplexity) and perplexity > 0):
        raise ValueError(f"--perplexity must be a finite number > 0, got {perplexity!r}")
    color = color or ("popularity" if kind == "item" else "n_ratings")
    if color not in COLORS[kind]:
        raise ValueError(f"--color must be one of {list(COLORS[kind])} for --kind {kind}, got {color!r}")
    check_replaceable(out_file, overwrite=overwrite)
    rec = open_run(run_dir).recommender()
    available = color_columns(rec, kind)
    if color not in available:
        raise ValueError(f"--color {color}: this model has no such metadata; available for --kind {kind}: "
                         f"{available}")
    try:
        check_perplexity(perplexity, len(rec.item_index if kind == "item" else rec.user_index))
        step(f"projecting the {kind} embeddings ({method})")  # the long step: a timed line in logs
        df = embedding_map(rec, kind, method=method, perplexity=perplexity)
    except ValueError as exc:
        raise name_origin(exc, {"perplexity": "--perplexity"}) from None
    title = f"{kind} embeddings ({method})"
    (map_html if out_file.suffix.lower() == ".html" else map_png)(df, out_file, color=color, title=title)
    if as_json:
        return print_json({"out": str(out_file), "points": len(df), "kind": kind, "method": method, "color": color})
    out.print(f"wrote {out_file} ({len(df)} points)", highlight=False)



@handle_errors
def report(run_dir: Path = typer.Argument(..., help="Run directory."),
           out_file: Optional[Path] = typer.Option(None, "--out", help="HTML file (default RUN_DIR/report.html)."),
           method: Method = typer.Option(Method.tsne, "--method", help="Embedding map method."),
           overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out file."),
           quiet: bool = Quiet, verbose: bool = Verbose, as_json: bool = AsJson) -> None:
    """Write a self-contained HTML report of a run (opens offline in any browser)."""
    from ..report import build_report

    method = Method(method).value
    if as_json or not show_progress():  # stdout holds the JSON document only; logs get a plain line per step
        path = build_report(open_run(run_dir), out_file, map_method=method, overwrite=overwrite,
                            on_step=step_reporter())
    else:
        with err.status("building the report…") as status:
            path = build_report(open_run(run_dir), out_file, map_method=method, overwrite=overwrite,
                                on_step=lambda m: status.update(f"{m}…"))
    if as_json:
        return print_json({"run": str(run_dir), "out": str(path)})
    out.print(f"wrote {path}", highlight=False)


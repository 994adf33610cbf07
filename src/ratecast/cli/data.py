"""``ratecast data fetch|info|stats``: download, inspect and describe datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from .console import Verbosity, handle_errors, num, out, print_frame, print_json, show, verbosity
from .options import (AsJson, DataHome, Duplicates, Encoding, ItemCol, ItemKey, Items, Overwrite, Quiet, RatingCol,
                      Scale, Sep, TimeCol, UserCol, UserKey, Users, Verbose, data_home_folder, data_options,
                      load_dataset)


# --- data ---------------------------------------------------------------------------------------------------------
@handle_errors
def data_fetch(name: str = typer.Argument(..., help="MovieLens release, e.g. ml-100k."),
               data_home: Optional[Path] = DataHome, quiet: bool = Quiet, verbose: bool = Verbose,
               as_json: bool = AsJson) -> None:
    """Download (if needed) and verify a MovieLens release, then print where it is."""
    from ..datasets.movielens import movielens_folder

    folder = movielens_folder(name, data_home_folder(data_home), progress=verbosity() >= Verbosity.NORMAL)
    if as_json:
        return print_json({"name": name, "folder": str(Path(folder).resolve())})
    out.print(f"{name}: {folder}", highlight=False)


@handle_errors
def data_info(name: str = typer.Argument(..., help="MovieLens release name or path to a ratings file."),
              data_home: Optional[Path] = DataHome, user_col: Optional[str] = UserCol,
              item_col: Optional[str] = ItemCol, rating_col: Optional[str] = RatingCol,
              timestamp_col: Optional[str] = TimeCol, sep: Optional[str] = Sep, items: Optional[Path] = Items,
              users: Optional[Path] = Users, item_key: Optional[str] = ItemKey, user_key: Optional[str] = UserKey,
              encoding: Optional[str] = Encoding, rating_scale: Optional[str] = Scale,
              duplicates: Optional[str] = Duplicates, quiet: bool = Quiet, verbose: bool = Verbose,
              as_json: bool = AsJson) -> None:
    """Summary: counts, density, rating scale, time range."""
    options = data_options(user_col, item_col, rating_col, timestamp_col, sep, items, users, item_key, user_key,
                           encoding, rating_scale, duplicates)
    ds = load_dataset(name, data_home, options)
    s = ds.summary()
    if as_json:
        return print_json(s)
    table = Table()
    table.add_column("")
    table.add_column("value", justify="right")
    for k, v in s.items():
        table.add_row(k, num(v) if isinstance(v, float) else str(v))
    show(table, f"{ds.name}")


@handle_errors
def data_stats(name: str = typer.Argument(..., help="MovieLens release name or path to a ratings file."),
               out_dir: Optional[Path] = typer.Option(None, "--out", help="Folder for the plots (PNG); only "
                                                      "ratecast's own plot files in it are written."),
               overwrite: bool = Overwrite,
               data_home: Optional[Path] = DataHome, user_col: Optional[str] = UserCol,
               item_col: Optional[str] = ItemCol, rating_col: Optional[str] = RatingCol,
               timestamp_col: Optional[str] = TimeCol, sep: Optional[str] = Sep, items: Optional[Path] = Items,
               users: Optional[Path] = Users, item_key: Optional[str] = ItemKey, user_key: Optional[str] = UserKey,
               encoding: Optional[str] = Encoding, rating_scale: Optional[str] = Scale,
               duplicates: Optional[str] = Duplicates, quiet: bool = Quiet, verbose: bool = Verbose,
               as_json: bool = AsJson) -> None:
    """Rating distribution, most popular items, activity; with --out, the lab's plots as PNG files."""
    from ..datasets.stats import popularity, rating_distribution, user_activity
    from ..io import check_replaceable

    data_home_folder(data_home)
    plot_names = ["rating_distribution.png", "popularity.png", "release_years.png"]
    if out_dir is not None:
        if out_dir.resolve() == Path(out_dir.resolve().anchor):
            raise ValueError(f"--out {str(out_dir)!r}: name a folder for the plots, not the filesystem root")
        if out_dir.exists() and not out_dir.is_dir():
            raise ValueError(f"--out {str(out_dir)!r}: exists and is not a folder")
        for f in plot_names:  # refuse before any work: never replace a file ratecast did not write
            check_replaceable(out_dir / f, overwrite=overwrite)
    options = data_options(user_col, item_col, rating_col, timestamp_col, sep, items, users, item_key, user_key,
                           encoding, rating_scale, duplicates)
    ds = load_dataset(name, data_home, options)
    dist = rating_distribution(ds.ratings)
    pop = popularity(ds.ratings).sort_values(ascending=False, kind="stable").head(10)
    act = user_activity(ds.ratings)
    stats = {"rating_distribution": {f"{k:g}": int(v) for k, v in dist.items()},
             "top_items": [{"item_id": i, "title": (ds.titles([i])[0]), "popularity": int(n)} for i, n in pop.items()],
             "ratings_per_user": {"min": int(act.min()), "median": float(act.median()), "max": int(act.max())}}
    if out_dir is not None:
        from ..viz import plot_popularity, plot_rating_distribution, plot_release_years

        files = [plot_rating_distribution(ds.ratings, out_dir / plot_names[0]),
                 plot_popularity(ds.ratings, out_dir / plot_names[1])]
        if ds.items is not None and "release_year" in ds.items:
            files.append(plot_release_years(ds.items, out_dir / plot_names[2]))
        stats["plots"] = [str(f) for f in files]
    if as_json:
        return print_json(stats)
    import pandas as pd

    print_frame(pd.DataFrame({"rating": list(stats["rating_distribution"]), "count": dist.to_numpy()}),
                "Rating distribution")
    print_frame(pd.DataFrame(stats["top_items"]), "Most popular items", wrap=("title",))
    out.print(f"ratings per user: {stats['ratings_per_user']}", highlight=False)
    for f in stats.get("plots", []):
        out.print(f"wrote {f}", highlight=False)



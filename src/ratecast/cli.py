"""The ``ratecast`` command line: data, train, evaluate, recommend, similar, map, compare, report, demo.

Exit codes: 0 success; 1 bad input data or option value; 2 usage error (unknown option, missing argument);
3 unknown user or item id; 4 missing run directory or file.
"""

from __future__ import annotations

import json
import os
import sys
import tomllib
from functools import wraps
from pathlib import Path
from typing import Any, Optional

# The command line is an application: it may set process-wide options. Compiled XLA programs are cached on disk so
# that repeated commands (recommend, similar, report, ...) skip most compilation.
os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    import platformdirs

    os.environ["JAX_COMPILATION_CACHE_DIR"] = str(Path(platformdirs.user_cache_dir("ratecast")) / "xla")

import typer  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

app = typer.Typer(help="ratecast: explicit-feedback neural recommender systems.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
data_app = typer.Typer(help="Download, inspect and describe datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")
out = Console()
err = Console(stderr=True)

EXIT_DATA, EXIT_UNKNOWN_ID, EXIT_MISSING = 1, 3, 4


def _fail(message: str, code: int) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def handle_errors(fn):
    """Turn ratecast's errors into one clear line on stderr and a meaningful exit code (no traceback)."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        from .errors import DataError, DownloadError, UnknownDatasetError

        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except (UnknownIdError, UnknownDatasetError) as exc:
            _fail(str(exc), EXIT_UNKNOWN_ID if isinstance(exc, UnknownIdError) else EXIT_DATA)
        except FileNotFoundError as exc:
            _fail(str(exc), EXIT_MISSING)
        except (DataError, DownloadError, ValueError, TypeError, tomllib.TOMLDecodeError) as exc:
            _fail(str(exc), EXIT_DATA)

    return wrapper


class UnknownIdError(LookupError):
    pass


def _print_json(obj: Any) -> None:
    from .runs import _jsonable

    sys.stdout.write(json.dumps(obj, default=_jsonable) + "\n")


def _print_frame(df, title: str | None = None, floats: str = "{:.3f}") -> None:
    table = Table(title=title)
    for col in df.columns:
        table.add_column(str(col), justify="right" if df[col].dtype.kind in "iuf" else "left")
    for _, row in df.iterrows():
        table.add_row(*[floats.format(v) if isinstance(v, float) else str(v) for v in row])
    out.print(table)


def _coerce_id(index, value: str):
    """Command-line ids arrive as text; match the type of the model's ids."""
    ids = index.ids
    if ids.dtype.kind in "iu":
        try:
            return int(value)
        except ValueError:
            return value
    if ids.dtype.kind == "f":
        try:
            return float(value)
        except ValueError:
            return value
    return value


# --- data -------------------------------------------------------------------------------------------------------
def _dataset(name: str, data_home: Optional[Path], user_col, item_col, rating_col, timestamp_col, sep):
    from .runs import RunSpec, load_data

    spec = RunSpec(data=name, data_home=str(data_home) if data_home else None,
                   data_options=_data_options(user_col, item_col, rating_col, timestamp_col, sep))
    return load_data(spec)


def _data_options(user_col, item_col, rating_col, timestamp_col, sep) -> dict:
    opts = {"user_col": user_col, "item_col": item_col, "rating_col": rating_col, "timestamp_col": timestamp_col,
            "sep": sep}
    return {k: v for k, v in opts.items() if v is not None}


DataHome = typer.Option(None, "--data-home", help="Data folder (default: $RATECAST_DATA or the user cache).")
UserCol = typer.Option(None, "--user-col", help="User id column of your own ratings file.")
ItemCol = typer.Option(None, "--item-col", help="Item id column of your own ratings file.")
RatingCol = typer.Option(None, "--rating-col", help="Rating column of your own ratings file.")
TimeCol = typer.Option(None, "--timestamp-col", help="Timestamp column of your own ratings file.")
Sep = typer.Option(None, "--sep", help="Field separator of your own ratings file (default: by extension).")
AsJson = typer.Option(False, "--json", help="Print JSON instead of a table.")


@data_app.command("fetch")
@handle_errors
def data_fetch(name: str = typer.Argument(..., help="MovieLens release, e.g. ml-100k."),
               data_home: Optional[Path] = DataHome) -> None:
    """Download (if needed) and verify a MovieLens release, then print where it is."""
    from .datasets.movielens import movielens_folder

    folder = movielens_folder(name, data_home)
    out.print(f"{name}: {folder}")


@data_app.command("info")
@handle_errors
def data_info(name: str = typer.Argument(..., help="MovieLens release name or path to a ratings file."),
              data_home: Optional[Path] = DataHome, user_col: Optional[str] = UserCol,
              item_col: Optional[str] = ItemCol, rating_col: Optional[str] = RatingCol,
              timestamp_col: Optional[str] = TimeCol, sep: Optional[str] = Sep, as_json: bool = AsJson) -> None:
    """Summary: counts, density, rating scale, time range."""
    ds = _dataset(name, data_home, user_col, item_col, rating_col, timestamp_col, sep)
    s = ds.summary()
    if as_json:
        return _print_json(s)
    table = Table(title=f"{ds.name}")
    table.add_column("")
    table.add_column("value", justify="right")
    for k, v in s.items():
        table.add_row(k, f"{v:.4f}" if isinstance(v, float) else str(v))
    out.print(table)


@data_app.command("stats")
@handle_errors
def data_stats(name: str = typer.Argument(..., help="MovieLens release name or path to a ratings file."),
               out_dir: Optional[Path] = typer.Option(None, "--out", help="Folder for the plots (PNG)."),
               data_home: Optional[Path] = DataHome, user_col: Optional[str] = UserCol,
               item_col: Optional[str] = ItemCol, rating_col: Optional[str] = RatingCol,
               timestamp_col: Optional[str] = TimeCol, sep: Optional[str] = Sep, as_json: bool = AsJson) -> None:
    """Rating distribution, most popular items, activity; with --out, the lab's plots as PNG files."""
    from .datasets.stats import popularity, rating_distribution, user_activity

    ds = _dataset(name, data_home, user_col, item_col, rating_col, timestamp_col, sep)
    dist = rating_distribution(ds.ratings)
    pop = popularity(ds.ratings).sort_values(ascending=False, kind="stable").head(10)
    act = user_activity(ds.ratings)
    stats = {"rating_distribution": {f"{k:g}": int(v) for k, v in dist.items()},
             "top_items": [{"item_id": i, "title": (ds.titles([i])[0]), "popularity": int(n)} for i, n in pop.items()],
             "ratings_per_user": {"min": int(act.min()), "median": float(act.median()), "max": int(act.max())}}
    if out_dir is not None:
        from .viz import plot_popularity, plot_rating_distribution, plot_release_years

        out_dir.mkdir(parents=True, exist_ok=True)
        files = [plot_rating_distribution(ds.ratings, out_dir / "rating_distribution.png"),
                 plot_popularity(ds.ratings, out_dir / "popularity.png")]
        if ds.items is not None and "release_year" in ds.items:
            files.append(plot_release_years(ds.items, out_dir / "release_years.png"))
        stats["plots"] = [str(f) for f in files]
    if as_json:
        return _print_json(stats)
    import pandas as pd

    _print_frame(pd.DataFrame({"rating": list(stats["rating_distribution"]), "count": dist.to_numpy()}),
                 "Rating distribution")
    _print_frame(pd.DataFrame(stats["top_items"]), "Most popular items")
    out.print(f"ratings per user: {stats['ratings_per_user']}")
    for f in stats.get("plots", []):
        out.print(f"wrote {f}")


# --- train / evaluate -------------------------------------------------------------------------------------------
def _parse_set(values: list[str]) -> dict[str, Any]:
    opts = {}
    for item in values:
        if "=" not in item:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        key, raw = item.split("=", 1)
        try:
            opts[key.strip().replace("-", "_")] = json.loads(raw)
        except json.JSONDecodeError:
            opts[key.strip().replace("-", "_")] = raw
    return opts


@app.command()
@handle_errors
def train(
    data: str = typer.Option("ml-100k", "--data", help="MovieLens release name or path to your ratings file."),
    model: str = typer.Option("deep", "--model", help="dot, biased_dot, deep, hybrid or classification."),
    split: str = typer.Option("holdout", "--split", help="holdout, u1..u5, ua, ub, temporal or last1."),
    seed: int = typer.Option(0, "--seed", help="Random seed (split and training)."),
    test_size: float = typer.Option(0.2, "--test-size", help="Test fraction for holdout/temporal splits."),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML file of model/training options."),
    epochs: Optional[int] = typer.Option(None, "--epochs"),
    embedding_dim: Optional[int] = typer.Option(None, "--embedding-dim"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size"),
    learning_rate: Optional[float] = typer.Option(None, "--learning-rate"),
    dropout: Optional[float] = typer.Option(None, "--dropout"),
    set_: list[str] = typer.Option([], "--set", help="Any other option as KEY=VALUE (JSON values), repeatable."),
    out_dir: Path = typer.Option(..., "--out", help="Run directory to write."),
    data_home: Optional[Path] = DataHome, user_col: Optional[str] = UserCol, item_col: Optional[str] = ItemCol,
    rating_col: Optional[str] = RatingCol, timestamp_col: Optional[str] = TimeCol, sep: Optional[str] = Sep,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No training progress display."),
    as_json: bool = AsJson,
) -> None:
    """Train one model and write a run directory (config, model, history, test metrics, plots)."""
    from .runs import RunSpec, train_run

    params: dict[str, Any] = {}
    if config is not None:
        if not config.exists():
            raise FileNotFoundError(f"config file not found: {config}")
        file_opts = tomllib.loads(config.read_text())
        model = file_opts.pop("model", model)
        params.update(file_opts)
    cli_opts = {"epochs": epochs, "embedding_dim": embedding_dim, "batch_size": batch_size,
                "learning_rate": learning_rate, "dropout": dropout}
    params.update({k: v for k, v in cli_opts.items() if v is not None})
    params.update(_parse_set(set_))
    spec = RunSpec(data=data, model=model, split=split, seed=seed, test_size=test_size, params=params,
                   data_options=_data_options(user_col, item_col, rating_col, timestamp_col, sep),
                   data_home=str(data_home) if data_home else None)
    from .recommender import Recommender

    Recommender(model, **params)  # validate options before loading data
    metrics = train_run(spec, out_dir, verbose=0 if (quiet or as_json) else "auto", progress=not as_json)
    if as_json:
        return _print_json({"run": str(out_dir), "test": metrics})
    out.print(f"[bold]{model}[/] on {data} ({split}, seed {seed}): test MAE {metrics['mae']:.4f} "
              f"[{metrics['mae_ci95'][0]:.4f}, {metrics['mae_ci95'][1]:.4f}], RMSE {metrics['rmse']:.4f}, "
              f"NDCG@10 {metrics['ndcg@10']:.4f}")
    out.print(f"run written to {out_dir}")


def _load_run(run_dir: Path):
    from .runs import load_run

    return load_run(run_dir)


@app.command()
@handle_errors
def evaluate(run_dir: Path = typer.Argument(..., help="Run directory."),
             split: Optional[str] = typer.Option(None, "--split", help="Evaluate on another split's test set."),
             as_json: bool = AsJson) -> None:
    """Evaluate a run's model on its test set (or another split's, reporting any overlap with training)."""
    import numpy as np

    from .runs import load_data, make_split

    run = _load_run(run_dir)
    spec = run.spec
    if split is not None:
        spec = type(spec)(**{**spec.__dict__, "split": split})
    rec = run.recommender()
    test = make_split(load_data(spec, progress=False), spec).test
    metrics = rec.evaluate(test)
    u = rec.user_index_.index(test.ratings["user_id"])
    i = rec.item_index_.index(test.ratings["item_id"])
    n_items = rec.item_index_.size
    seen = set((rec.train_pairs_[0].astype(np.int64) * n_items + rec.train_pairs_[1]).tolist())
    overlap = int(sum(k in seen for k in (u.astype(np.int64) * n_items + i).tolist()))
    metrics["test_ratings_seen_in_training"] = overlap
    if as_json:
        return _print_json({"run": str(run_dir), "split": spec.split, "test": metrics})
    out.print(f"{run_dir} on split {spec.split}: MAE {metrics['mae']:.4f}, RMSE {metrics['rmse']:.4f}, "
              f"NDCG@10 {metrics['ndcg@10']:.4f}, n={metrics['n']}")
    if overlap:
        out.print(f"[yellow]warning:[/] {overlap} of these test ratings were in the model's training data")


# --- explore ------------------------------------------------------------------------------------------------------
@app.command()
@handle_errors
def recommend(run_dir: Path = typer.Argument(..., help="Run directory."),
              user: Optional[str] = typer.Option(None, "--user", help="User id."),
              k: int = typer.Option(10, "-k", "--k", help="How many items."),
              min_ratings: Optional[int] = typer.Option(None, "--min-ratings", help="Only items rated this often."),
              all_users: bool = typer.Option(False, "--all", help="Every user (write with --out)."),
              out_file: Optional[Path] = typer.Option(None, "--out", help="Write CSV/TSV/Parquet instead."),
              as_json: bool = AsJson) -> None:
    """Top-k unseen items for a user (or every user with --all)."""
    from .io import write_table

    if k <= 0:
        raise ValueError(f"-k must be a positive integer, got {k}")
    rec = _load_run(run_dir).recommender()
    if all_users:
        df = rec.recommend_all(k=k, min_ratings=min_ratings)
    else:
        if user is None:
            raise ValueError("give --user ID (or --all)")
        uid = _coerce_id(rec.user_index_, user)
        if uid not in rec.user_index_:
            raise UnknownIdError(f"unknown user id {user!r}: not in this model's training data")
        df = rec.recommend(uid, k=k, min_ratings=min_ratings)
    if out_file is not None:
        write_table(df, out_file)
        out.print(f"wrote {len(df)} rows to {out_file}")
    elif as_json:
        _print_json(df.to_dict(orient="records"))
    else:
        _print_frame(df, f"Recommendations for user {user}" if not all_users else "Recommendations")


@app.command()
@handle_errors
def similar(run_dir: Path = typer.Argument(..., help="Run directory."),
            item: str = typer.Option(..., "--item", help="Item id."),
            k: int = typer.Option(10, "-k", "--k"),
            min_ratings: Optional[int] = typer.Option(None, "--min-ratings"),
            as_json: bool = AsJson) -> None:
    """Items most similar to an item (cosine similarity of learned embeddings)."""
    if k <= 0:
        raise ValueError(f"-k must be a positive integer, got {k}")
    rec = _load_run(run_dir).recommender()
    iid = _coerce_id(rec.item_index_, item)
    if iid not in rec.item_index_:
        raise UnknownIdError(f"unknown item id {item!r}: not in this model's training data")
    df = rec.similar_items(iid, k=k, min_ratings=min_ratings)
    if as_json:
        return _print_json(df.to_dict(orient="records"))
    _print_frame(df, f"Most similar to {rec._titles([iid])[0] or iid}")


@app.command("map")
@handle_errors
def map_(run_dir: Path = typer.Argument(..., help="Run directory."),
         out_file: Path = typer.Option(..., "--out", help="map.html (interactive) or map.png (static)."),
         method: str = typer.Option("tsne", "--method", help="tsne or umap."),
         kind: str = typer.Option("item", "--kind", help="item or user."),
         color: Optional[str] = typer.Option(None, "--color", help="Colour by: popularity, genre, release_year, ..."),
         perplexity: float = typer.Option(30.0, "--perplexity", help="t-SNE perplexity.")) -> None:
    """2-D map of the learned embeddings (t-SNE or UMAP)."""
    from .viz import embedding_map, map_html, map_png

    if out_file.suffix.lower() not in (".html", ".png"):
        raise ValueError(f"--out must end in .html or .png, got {str(out_file)!r}")
    rec = _load_run(run_dir).recommender()
    df = embedding_map(rec, kind, method=method, perplexity=perplexity)
    color = color or ("popularity" if kind == "item" else "n_ratings")
    title = f"{kind} embeddings ({method})"
    (map_html if out_file.suffix.lower() == ".html" else map_png)(df, out_file, color=color, title=title)
    out.print(f"wrote {out_file} ({len(df)} points)")


@app.command()
@handle_errors
def compare(run_dirs: list[Path] = typer.Argument(..., help="Run directories."), as_json: bool = AsJson) -> None:
    """A table of runs: model, data, split, epochs, test MAE/RMSE with intervals, NDCG@10, fit time."""
    rows = [comparison_row(_load_run(p)) for p in run_dirs]
    if as_json:
        return _print_json(rows)
    import pandas as pd

    _print_frame(pd.DataFrame(rows), "Runs", floats="{:.4f}")


def comparison_row(run) -> dict[str, Any]:
    t = run.metrics["test"]
    return {"run": run.path.name, "model": run.spec.model, "data": run.info["dataset"], "split": run.spec.split,
            "seed": run.spec.seed, "epochs": run.info["epochs_run"], "mae": t["mae"],
            "mae_ci95": "[{:.3f}, {:.3f}]".format(*t["mae_ci95"]), "rmse": t["rmse"], "ndcg@10": t["ndcg@10"],
            "fit_s": f"{run.info['fit_seconds']:.1f}"}


@app.command()
@handle_errors
def report(run_dir: Path = typer.Argument(..., help="Run directory."),
           out_file: Optional[Path] = typer.Option(None, "--out", help="HTML file (default RUN_DIR/report.html)."),
           method: str = typer.Option("tsne", "--method", help="Embedding map method: tsne or umap.")) -> None:
    """Write a self-contained HTML report of a run (opens offline in any browser)."""
    from .report import build_report

    path = build_report(_load_run(run_dir), out_file, map_method=method)
    out.print(f"wrote {path}")


@app.command()
@handle_errors
def demo(out_dir: Path = typer.Option(Path("ratecast-demo"), "--out", help="Folder for the runs and reports."),
         data: str = typer.Option("ml-100k", "--data"),
         models: str = typer.Option("dot,deep,hybrid,classification", "--models"),
         epochs: Optional[int] = typer.Option(None, "--epochs", help="Override the lab's epochs (quick runs)."),
         data_home: Optional[Path] = DataHome) -> None:
    """The lab, end to end: train its four models on ML-100k with its protocol, compare, write reports."""
    import pandas as pd
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from .report import build_report
    from .runs import RunSpec, load_data, load_run, train_run

    lab = {"dot": {"embedding_dim": 64, "epochs": 10}, "biased_dot": {"embedding_dim": 64, "epochs": 10},
           "deep": {"embedding_dim": 64, "epochs": 10}, "hybrid": {"embedding_dim": 64, "epochs": 10},
           "classification": {"embedding_dim": 16, "epochs": 15}}
    names = [m.strip() for m in models.split(",") if m.strip()]
    bad = [m for m in names if m not in lab]
    if bad:
        raise ValueError(f"--models must name models from {list(lab)}, got {bad}")
    base = RunSpec(data=data, data_home=str(data_home) if data_home else None)
    ds = load_data(base)
    out.print(f"[bold]ratecast demo[/]: {ds.name}, {len(ds.ratings)} ratings; lab protocol: holdout "
              "test_size=0.2 random_state=0, batch 64, early stopping on a 10% validation split of train")
    rows = []
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=out) as progress:
        for name in names:
            params = {**lab[name], "batch_size": 64}
            if epochs is not None:
                params["epochs"] = epochs
            spec = RunSpec(data=data, model=name, split="holdout", seed=0, params=params, data_home=base.data_home)
            task = progress.add_task(f"training {name}", total=None)
            run_dir = out_dir / name
            train_run(spec, run_dir, dataset=ds)
            progress.update(task, description=f"report for {name}")
            build_report(load_run(run_dir))
            progress.update(task, description=f"{name} done")
            progress.stop_task(task)
            rows.append(comparison_row(load_run(run_dir)))
    table = pd.DataFrame(rows)
    _print_frame(table.drop(columns=["run", "data", "split", "seed"]), "Test results (lab split)", floats="{:.4f}")
    table.to_csv(out_dir / "results.csv", index=False)
    out.print(f"reports: {', '.join(str(out_dir / n / 'report.html') for n in names)}")
    out.print(f"table: {out_dir / 'results.csv'}")


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()

"""The ``ratecast`` command line: data, train, tune, serve, evaluate, recommend, similar, map, compare, report, demo.

Exit codes: 0 success; 1 bad input data or option value (also: output exists, output locked, corrupted run, training
diverged); 2 usage error (unknown option, missing argument); 3 unknown user or item id; 4 missing run directory or
file; 130 interrupted (Ctrl-C). Errors are one line on stderr; with ``--json`` they are one JSON object on stdout,
``{"error": "...", "exit_code": N}``, with the same exit code.
"""

from __future__ import annotations

import ast
import dataclasses
import math
import os
import re
import sys
import time
import tomllib
from enum import Enum
from functools import wraps
from pathlib import Path
from typing import Any, Optional

# The command line is an application: it may set process-wide options. Compiled XLA programs are cached on disk by
# the library (ratecast.engine.cache: $RATECAST_CACHE, else the user cache folder), so that repeated commands
# (train, recommend, similar, report, ...) skip most compilation.
os.environ.setdefault("KERAS_BACKEND", "jax")

import typer  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from rich.text import Text  # noqa: E402
from typer.core import TyperCommand, TyperGroup  # noqa: E402

from .datasets.dataset import id_from_text as _coerce_id  # noqa: E402
from .errors import UnknownIdError, argument_names  # noqa: E402

EXIT_DATA, EXIT_USAGE, EXIT_UNKNOWN_ID, EXIT_MISSING, EXIT_INTERRUPTED = 1, 2, 3, 4, 130
EXIT_CODES = ("Exit codes: 0 success; 1 bad data or option value (also: output exists or is locked, corrupted run, "
              "training diverged); 2 usage error; 3 unknown user or item id; 4 missing run or file; 130 interrupted. "
              "With --json, errors are printed on stdout as {\"error\": ..., \"exit_code\": N}.")


def _plain_flags(params: list) -> list:
    for p in params:  # a flag takes no value: show '--json', not '--json <bool>'
        if getattr(p, "is_flag", False) and p.metavar is None:
            p.metavar = ""
    return params


class _Command(TyperCommand):
    def get_params(self, ctx):
        return _plain_flags(super().get_params(ctx))


class _Group(TyperGroup):
    def get_params(self, ctx):
        return _plain_flags(super().get_params(ctx))

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        """With ``--json``, usage errors too are reported as a JSON object (exit code 2)."""
        argv = list(sys.argv[1:] if args is None else args)
        if not standalone_mode or "--json" not in argv:
            return super().main(argv, prog_name, complete_var, standalone_mode, **extra)
        try:
            rv = super().main(argv, prog_name, complete_var, False, **extra)
        except typer.TyperException as exc:  # usage errors
            code = getattr(exc, "exit_code", EXIT_USAGE)
            _print_error(exc.format_message() if hasattr(exc, "format_message") else str(exc), code, as_json=True)
            sys.exit(code)
        except typer.Abort:
            _print_error("aborted", EXIT_DATA, as_json=True)
            sys.exit(EXIT_DATA)
        sys.exit(rv if isinstance(rv, int) else 0)


app = typer.Typer(cls=_Group, help="ratecast: explicit-feedback neural recommender systems.", epilog=EXIT_CODES,
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
data_app = typer.Typer(cls=_Group, help="Download, inspect and describe datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")
out = Console()
err = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        from . import __version__

        out.print(f"ratecast {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """ratecast: explicit-feedback neural recommender systems."""
    unwrap_when_piped(out, err)


#: the width of output that is not a terminal: lines as long as the data needs, never wrapped
PIPE_WIDTH = 100_000


def unwrap_when_piped(*consoles: Console) -> None:
    """Consoles that write to a pipe or file (and have no COLUMNS set) never hard-wrap: lines stay whole for logs."""
    for console in consoles:
        console.width = PIPE_WIDTH if not console.is_terminal and not os.environ.get("COLUMNS") else None


def _one_line(message: str) -> str:
    return " ".join(str(message).split()) or "failed"


def _print_error(message: str, code: int, *, as_json: bool) -> None:
    message = _one_line(message)
    if as_json:
        from .io import to_json

        sys.stdout.write(to_json({"error": message, "exit_code": code}) + "\n")
        sys.stdout.flush()
    else:
        err.print(Text.assemble(("error: ", "bold red"), message), highlight=False, soft_wrap=True)


def exit_code(exc: BaseException) -> int | None:
    """The documented exit code of an error, or None for an unexpected one (a bug: shown with its traceback)."""
    from .errors import MissingFileError, RatecastError

    if isinstance(exc, UnknownIdError):
        return EXIT_UNKNOWN_ID
    if isinstance(exc, (MissingFileError, FileNotFoundError)):
        return EXIT_MISSING
    if isinstance(exc, (RatecastError, ValueError, TypeError, tomllib.TOMLDecodeError, ImportError, OSError)):
        return EXIT_DATA
    return None


def _fail(message: str, code: int, as_json: bool = False) -> None:
    _print_error(message, code, as_json=as_json)
    raise typer.Exit(code)


#: how messages of the data layer name its arguments on the command line
FLAGS = {"user_col": "--user-col", "item_col": "--item-col", "rating_col": "--rating-col",
         "timestamp_col": "--timestamp-col", "sep": "--sep", "encoding": "--encoding", "items": "--items",
         "users": "--users", "item_key": "--item-key", "user_key": "--user-key", "rating_scale": "--rating-scale",
         "data_home": "--data-home", "duplicates": "--duplicates"}


def _name_option(exc: Exception, where: dict[str, str]) -> Exception:
    """``exc`` with the option its message starts with (``epochs must be ...``), or the unknown options it lists,
    named as the user gave them: ``--epochs``, ``cfg.toml: epochs``, ``--set epochs``."""
    message = str(exc)
    m = re.match(r"([A-Za-z_]\w*)(?=[\s\[])", message)
    if m and m.group(1) in where:
        return ValueError(where[m.group(1)] + message[m.end():])
    m = re.match(r"unknown option\(s\) (\[[^\]]*\])", message)
    if m:
        try:
            keys = ast.literal_eval(m.group(1))
        except (ValueError, SyntaxError):
            return exc
        return ValueError(f"{', '.join(where.get(k, k) for k in keys)}: {message}")
    return exc


def handle_errors(fn):
    """Turn ratecast's errors into one clear line (or one JSON object with --json) and a documented exit code."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        as_json = bool(kwargs.get("as_json", False))
        try:
            with argument_names(FLAGS):
                return fn(*args, **kwargs)
        except (typer.Exit, typer.TyperException):
            raise
        except KeyboardInterrupt:
            _fail("interrupted", EXIT_INTERRUPTED, as_json)
        except Exception as exc:
            code = exit_code(exc)
            if code is None:
                raise
            message = str(exc) or type(exc).__name__
            if isinstance(exc, tomllib.TOMLDecodeError):
                message = f"invalid TOML: {message}"
            _fail(message, code, as_json)

    return wrapper


def _print_json(obj: Any) -> None:
    from .io import to_json

    sys.stdout.write(to_json(obj) + "\n")


def _num(value, digits: int = 4) -> str:
    """A number for people: rounded, and a dash where there is none (never 'nan')."""
    if value is None or isinstance(value, bool):
        return "—" if value is None else str(value)
    if isinstance(value, (int,)) or (hasattr(value, "dtype") and getattr(value.dtype, "kind", "") in "iu"):
        return str(int(value))
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    return f"{v:.{digits}f}" if math.isfinite(v) else "—"


def _ci(ci, digits: int = 4) -> str:
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(_num(v) != "—" for v in ci):
        return f"[{_num(ci[0], digits)}, {_num(ci[1], digits)}]"
    return "—"


def _print_frame(df, title: str | None = None, digits: int = 3, wrap: tuple[str, ...] = ()) -> None:
    """A table that fits the terminal: columns in ``wrap`` fold onto several lines; the others are never cut. A
    ``wrap`` column with no value at all (titles of data without item metadata) is left out; missing cells are blank."""
    df = df[[c for c in df.columns if c not in wrap or not df[c].isna().all()]]
    table = Table()

    def cell(v) -> str:
        return "" if v is None else v if isinstance(v, str) else _num(v, digits) if isinstance(v, float) else str(v)

    columns = []  # cells column by column: each keeps its own type (a row would turn integer ids into floats)
    for col in df.columns:
        cells = [cell(v) for v in df[col].astype(object)]
        columns.append(cells)
        numeric = df[col].dtype.kind in "iuf"
        width = max([len(str(col))] + [len(c) for c in cells]) if col not in wrap else None
        table.add_column(str(col), justify="right" if numeric else "left", overflow="fold",
                         min_width=min(width, 40) if width else None, no_wrap=col not in wrap and numeric)
    for row in zip(*columns):
        table.add_row(*row)
    _show(table, title)


def _show(table: Table, title: str | None) -> None:
    """A table under its title, which is one line of its own (a table's title would wrap at the table's width)."""
    if title:
        out.print(Text(title, style="bold"), soft_wrap=True)
    out.print(table)


def _finite(option: str, value: float | None) -> None:
    if value is not None and not math.isfinite(value):
        raise ValueError(f"{option} must be a finite number, got {value!r}")


def _check_params_finite(params: dict, where: dict[str, str]) -> None:
    """Every number in ``params`` is finite; the message names where the option came from."""
    def bad(v) -> bool:
        if isinstance(v, float):
            return not math.isfinite(v)
        if isinstance(v, (list, tuple)):
            return any(bad(x) for x in v)
        if isinstance(v, dict):
            return any(bad(x) for x in v.values())
        return False

    for key, value in params.items():
        if bad(value):
            raise ValueError(f"{where.get(key, key)} must be a finite number, got {value!r}")


# --- data options -------------------------------------------------------------------------------------------------
DataHome = typer.Option(None, "--data-home", help="Data folder (default: $RATECAST_DATA or the user cache).")
UserCol = typer.Option(None, "--user-col", help="User id column of your own ratings file.")
ItemCol = typer.Option(None, "--item-col", help="Item id column of your own ratings file.")
RatingCol = typer.Option(None, "--rating-col", help="Rating column of your own ratings file.")
TimeCol = typer.Option(None, "--timestamp-col", help="Timestamp column of your own ratings file.")
Sep = typer.Option(None, "--sep", help="Field separator of your own ratings file (default: by extension).")
Items = typer.Option(None, "--items", help="Item metadata file (CSV/TSV/Parquet; title, genres, ...).")
Users = typer.Option(None, "--users", help="User metadata file (CSV/TSV/Parquet; age, gender, ...).")
ItemKey = typer.Option(None, "--item-key", help="Item id column of --items (default: --item-col).")
UserKey = typer.Option(None, "--user-key", help="User id column of --users (default: --user-col).")
Encoding = typer.Option(None, "--encoding", help="Text encoding of your files (default utf-8), e.g. latin-1.")
Scale = typer.Option(None, "--rating-scale", metavar="MIN,MAX[,STEP]",
                     help="Rating scale of your ratings, e.g. 0.5,5,0.5 (default: inferred).")
Duplicates = typer.Option(None, "--duplicates", metavar="error|last|mean",
                          help="A (user, item) pair rated twice: error (default), keep the last rating (by "
                               "timestamp, then file order) or their mean.")
AsJson = typer.Option(False, "--json", help="Print JSON instead of a table (errors too).")
Overwrite = typer.Option(False, "--overwrite", help="Replace existing plot files even if ratecast did not write "
                                                    "them.")


def _rating_scale(text: str | None) -> list[float] | None:
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if not 2 <= len(values) <= 3 or not all(math.isfinite(v) for v in values):
        raise ValueError(f"--rating-scale must be MIN,MAX or MIN,MAX,STEP (finite numbers), got {text!r}")
    from .datasets import RatingScale

    try:
        RatingScale(*values)  # its own checks (min < max, step > 0, ...)
    except ValueError as exc:
        raise ValueError(f"--rating-scale {text!r}: {exc}") from None
    return values


def _data_options(user_col=None, item_col=None, rating_col=None, timestamp_col=None, sep=None, items=None,
                  users=None, item_key=None, user_key=None, encoding=None, rating_scale=None, duplicates=None) -> dict:
    opts = {"user_col": user_col, "item_col": item_col, "rating_col": rating_col, "timestamp_col": timestamp_col,
            "sep": sep, "item_key": item_key, "user_key": user_key, "encoding": encoding, "duplicates": duplicates,
            "items": str(items) if items is not None else None, "users": str(users) if users is not None else None,
            "rating_scale": _rating_scale(rating_scale)}
    return {k: v for k, v in opts.items() if v is not None}


def _data_home(path: Optional[Path]) -> str | None:
    """The --data-home folder, which must exist: a mistyped folder is reported, never created."""
    from .errors import DataError, MissingFileError

    if path is None:
        return None
    home = path.expanduser()
    if not home.exists():
        raise MissingFileError("--data-home folder not found; create it, or leave --data-home out to use "
                               "$RATECAST_DATA or the user cache folder", path=str(path))
    if not home.is_dir():
        raise DataError(f"--data-home must be a folder, got the file {str(path)!r}")
    return str(path)


def _dataset(name: str, data_home: Optional[Path], options: dict):
    from .runs import RunSpec, load_data

    spec = RunSpec(data=name, data_home=_data_home(data_home), data_options=options)
    return load_data(spec)


# --- data ---------------------------------------------------------------------------------------------------------
@data_app.command("fetch", cls=_Command)
@handle_errors
def data_fetch(name: str = typer.Argument(..., help="MovieLens release, e.g. ml-100k."),
               data_home: Optional[Path] = DataHome, as_json: bool = AsJson) -> None:
    """Download (if needed) and verify a MovieLens release, then print where it is."""
    from .datasets.movielens import movielens_folder

    folder = movielens_folder(name, _data_home(data_home))
    if as_json:
        return _print_json({"name": name, "folder": str(Path(folder).resolve())})
    out.print(f"{name}: {folder}", highlight=False)


@data_app.command("info", cls=_Command)
@handle_errors
def data_info(name: str = typer.Argument(..., help="MovieLens release name or path to a ratings file."),
              data_home: Optional[Path] = DataHome, user_col: Optional[str] = UserCol,
              item_col: Optional[str] = ItemCol, rating_col: Optional[str] = RatingCol,
              timestamp_col: Optional[str] = TimeCol, sep: Optional[str] = Sep, items: Optional[Path] = Items,
              users: Optional[Path] = Users, item_key: Optional[str] = ItemKey, user_key: Optional[str] = UserKey,
              encoding: Optional[str] = Encoding, rating_scale: Optional[str] = Scale,
              duplicates: Optional[str] = Duplicates, as_json: bool = AsJson) -> None:
    """Summary: counts, density, rating scale, time range."""
    options = _data_options(user_col, item_col, rating_col, timestamp_col, sep, items, users, item_key, user_key,
                            encoding, rating_scale, duplicates)
    ds = _dataset(name, data_home, options)
    s = ds.summary()
    if as_json:
        return _print_json(s)
    table = Table()
    table.add_column("")
    table.add_column("value", justify="right")
    for k, v in s.items():
        table.add_row(k, _num(v) if isinstance(v, float) else str(v))
    _show(table, f"{ds.name}")


@data_app.command("stats", cls=_Command)
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
               duplicates: Optional[str] = Duplicates, as_json: bool = AsJson) -> None:
    """Rating distribution, most popular items, activity; with --out, the lab's plots as PNG files."""
    from .datasets.stats import popularity, rating_distribution, user_activity
    from .io import check_replaceable

    _data_home(data_home)
    plot_names = ["rating_distribution.png", "popularity.png", "release_years.png"]
    if out_dir is not None:
        if out_dir.resolve() == Path(out_dir.resolve().anchor):
            raise ValueError(f"--out {str(out_dir)!r}: name a folder for the plots, not the filesystem root")
        if out_dir.exists() and not out_dir.is_dir():
            raise ValueError(f"--out {str(out_dir)!r}: exists and is not a folder")
        for f in plot_names:  # refuse before any work: never replace a file ratecast did not write
            check_replaceable(out_dir / f, overwrite=overwrite)
    options = _data_options(user_col, item_col, rating_col, timestamp_col, sep, items, users, item_key, user_key,
                            encoding, rating_scale, duplicates)
    ds = _dataset(name, data_home, options)
    dist = rating_distribution(ds.ratings)
    pop = popularity(ds.ratings).sort_values(ascending=False, kind="stable").head(10)
    act = user_activity(ds.ratings)
    stats = {"rating_distribution": {f"{k:g}": int(v) for k, v in dist.items()},
             "top_items": [{"item_id": i, "title": (ds.titles([i])[0]), "popularity": int(n)} for i, n in pop.items()],
             "ratings_per_user": {"min": int(act.min()), "median": float(act.median()), "max": int(act.max())}}
    if out_dir is not None:
        from .viz import plot_popularity, plot_rating_distribution, plot_release_years

        files = [plot_rating_distribution(ds.ratings, out_dir / plot_names[0]),
                 plot_popularity(ds.ratings, out_dir / plot_names[1])]
        if ds.items is not None and "release_year" in ds.items:
            files.append(plot_release_years(ds.items, out_dir / plot_names[2]))
        stats["plots"] = [str(f) for f in files]
    if as_json:
        return _print_json(stats)
    import pandas as pd

    _print_frame(pd.DataFrame({"rating": list(stats["rating_distribution"]), "count": dist.to_numpy()}),
                 "Rating distribution")
    _print_frame(pd.DataFrame(stats["top_items"]), "Most popular items", wrap=("title",))
    out.print(f"ratings per user: {stats['ratings_per_user']}", highlight=False)
    for f in stats.get("plots", []):
        out.print(f"wrote {f}", highlight=False)


# --- train / evaluate -----------------------------------------------------------------------------------------------
def _parse_set(values: list[str]) -> dict[str, Any]:
    import json

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


def _read_toml(path: Path, what: str) -> dict[str, Any]:
    """A TOML file's table; a missing, non-UTF-8 or invalid file is one clear error naming it."""
    from .errors import MissingFileError

    if not path.is_file():
        raise MissingFileError(f"{what} not found", path=str(path))
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text; expected a TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: invalid TOML: {exc}") from None


def _read_config(path: Path) -> dict[str, Any]:
    """The options of a TOML config file: ``model`` plus any model or training option, at the top level."""
    opts = _read_toml(path, "config file")
    tables = [k for k, v in opts.items() if isinstance(v, dict)]
    if tables:
        raise ValueError(f"{path}: options go at the top level (model = \"deep\", epochs = 10, ...), "
                         f"got table(s) {tables}")
    if "model" in opts and not isinstance(opts["model"], str):
        raise ValueError(f"{path}: model must be a model name (a string), got {opts['model']!r}")
    return opts


SPEC_OPTIONS = ("data", "model", "split", "seed", "test_size", "config", "epochs", "embedding_dim", "batch_size",
                "learning_rate", "dropout", "set_", "data_home", "user_col", "item_col", "rating_col",
                "timestamp_col", "sep", "items", "users", "item_key", "user_key", "encoding", "rating_scale",
                "overwrite", "preset", "duplicates")


@app.command(cls=_Command)
@handle_errors
def train(
    ctx: typer.Context,
    data: str = typer.Option("ml-100k", "--data", help="MovieLens release name or path to your ratings file."),
    model: str = typer.Option("deep", "--model", help="popularity, baseline, dot, biased_dot, deep, hybrid, "
                                                      "classification, implicit or bayesian."),
    split: str = typer.Option("holdout", "--split", help="holdout, u1..u5, ua, ub, temporal or last1."),
    seed: int = typer.Option(0, "--seed", help="Random seed (split and training)."),
    test_size: float = typer.Option(0.2, "--test-size", help="Test fraction for holdout/temporal splits."),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML file: model = \"...\" and any model or "
                                                                 "training option (see README)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Training epochs (default: the model's)."),
    embedding_dim: Optional[int] = typer.Option(None, "--embedding-dim", help="Size of the user and item vectors."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Ratings per training step."),
    learning_rate: Optional[float] = typer.Option(None, "--learning-rate", help="Step size of the optimizer."),
    dropout: Optional[float] = typer.Option(None, "--dropout", help="Dropout rate of the tower (deep, hybrid)."),
    set_: list[str] = typer.Option([], "--set", metavar="KEY=VALUE",
                                   help="Any other option as KEY=VALUE (JSON values), repeatable."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Run directory to write (required unless --resume)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing run directory."),
    resume: Optional[Path] = typer.Option(None, "--resume", metavar="RUN",
                                          help="Continue the interrupted training of run directory RUN."),
    data_home: Optional[Path] = DataHome, user_col: Optional[str] = UserCol, item_col: Optional[str] = ItemCol,
    rating_col: Optional[str] = RatingCol, timestamp_col: Optional[str] = TimeCol, sep: Optional[str] = Sep,
    items: Optional[Path] = Items, users: Optional[Path] = Users, item_key: Optional[str] = ItemKey,
    user_key: Optional[str] = UserKey, encoding: Optional[str] = Encoding, rating_scale: Optional[str] = Scale,
    duplicates: Optional[str] = Duplicates,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    preset: Optional[str] = typer.Option(None, "--preset", help="Named configuration: accurate (the recommended "
                                         "rating model), fast (a quick rating model), topn (the recommended list "
                                         "model) or lab (the lab's exact training; --model picks the model)."),
    devices: Optional[int] = typer.Option(None, "--devices", min=1, help="Train on this many devices (data "
                                          "parallel; the batch is split over them)."),
    shard_embeddings: bool = typer.Option(False, "--shard-embeddings", help="Split the user and item tables by "
                                          "rows over the devices (model parallel)."),
    as_json: bool = AsJson,
) -> None:
    """Train one model and write a run directory (config, model, history, test metrics, plots)."""
    from .distribution import initialize
    from .models import MODELS

    initialize()  # joins a multi-machine run when RATECAST_COORDINATOR is set (see README)
    from .recommender import Recommender
    from .runs import RunSpec, partial_dir, read_partial, train_run

    if resume is not None:
        given = [p.opts[0] for p in ctx.command.params if p.name in SPEC_OPTIONS
                 and getattr(ctx.get_parameter_source(p.name), "name", "") == "COMMANDLINE"]
        if out_dir is not None and Path(out_dir) != Path(resume):
            given.append("--out")
        if given:
            raise typer.BadParameter(f"it continues the run as it was started; drop {', '.join(given)}", ctx=ctx,
                                     param_hint="'--resume'")
        dest = resume
        spec = None
        show_model, show_data, show_split, show_seed = _resume_summary(read_partial(dest)[0])
    else:
        if out_dir is None:
            raise typer.BadParameter("missing: the run directory to write (or --resume RUN)", ctx=ctx,
                                     param_hint="'--out'")
        dest = out_dir
        for option, value in (("--test-size", test_size), ("--learning-rate", learning_rate),
                              ("--dropout", dropout)):
            _finite(option, value)
        _check_run_options(split, data, seed, test_size)
        params: dict[str, Any] = {}
        where: dict[str, str] = {"model": "--model"}
        if preset is not None:
            from . import presets

            model_given = getattr(ctx.get_parameter_source("model"), "name", "") == "COMMANDLINE"
            try:
                model, params = presets.resolve(preset, model if model_given else None)
            except ValueError as exc:
                raise typer.BadParameter(str(exc).replace("model=", "--model "), ctx=ctx,
                                         param_hint="'--preset'") from None
            params = dict(params)
            where.update({k: f"--preset {preset}" for k in params})
        if config is not None:
            file_opts = _read_config(config)
            file_model = file_opts.pop("model", None)
            if file_model is not None and file_model not in MODELS:
                raise ValueError(f"{config}: model must be one of {sorted(MODELS)}, got {file_model!r}")
            given = getattr(ctx.get_parameter_source("model"), "name", "") == "COMMANDLINE"
            if file_model is not None and not given:  # the command line wins over the file
                model, where["model"] = file_model, f"{config}: model"
            for key in ("random_state", "verbose"):  # not model options: say where they belong
                if key in file_opts:
                    raise ValueError(f"{config}: {key} is not a model option; use "
                                     f"{'--seed' if key == 'random_state' else '--quiet'}")
            params.update(file_opts)
            where.update({k: f"{config}: {k}" for k in file_opts})
        cli_opts = {"epochs": epochs, "embedding_dim": embedding_dim, "batch_size": batch_size,
                    "learning_rate": learning_rate, "dropout": dropout}
        given_opts = {k: v for k, v in cli_opts.items() if v is not None}
        params.update(given_opts)
        where.update({k: "--" + k.replace("_", "-") for k in given_opts})
        set_opts = _parse_set(set_)
        for key in ("model", "random_state", "verbose"):  # not model options: say where they belong
            if key in set_opts:
                flag = {"model": "--model", "random_state": "--seed", "verbose": "--quiet"}[key]
                raise ValueError(f"--set {key}=...: {key} is not a model option; use {flag}")
        params.update(set_opts)
        where.update({k: f"--set {k}" for k in set_opts})
        _check_params_finite(params, where)
        spec = RunSpec(data=data, model=model, split=split, seed=seed, test_size=test_size, params=params,
                       data_options=_data_options(user_col, item_col, rating_col, timestamp_col, sep, items, users,
                                                  item_key, user_key, encoding, rating_scale, duplicates),
                       data_home=_data_home(data_home))
        try:
            Recommender(model, **params)  # validate options before loading data
        except ValueError as exc:
            raise _name_option(exc, where) from None
        show_model, show_data, show_split, show_seed = model, data, split, seed
    talk = not (quiet or as_json)

    def step(message: str) -> None:
        if talk:
            err.print(f"[dim]{message}…[/]", highlight=False)

    from .distribution import from_options

    try:
        distribution = from_options(devices, shard_embeddings)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), ctx=ctx, param_hint="'--devices'") from None
    try:
        metrics = train_run(spec, dest, overwrite=overwrite, resume=resume is not None,
                            verbose=0 if not talk else "auto", progress=talk, on_step=step,
                            distribution=distribution)
    except KeyboardInterrupt:
        part = partial_dir(dest)
        hint = (f"the finished epochs are kept in {part}; continue with: ratecast train --resume {dest}"
                if part.exists() else "nothing was written")
        _fail(f"interrupted: {dest} was not written; {hint}", EXIT_INTERRUPTED, as_json)
    if as_json:
        return _print_json({"run": str(dest), "test": metrics})
    out.print(f"[bold]{show_model}[/] on {show_data} ({show_split}, seed {show_seed}): test MAE "
              f"{_num(metrics.get('mae'))} {_ci(metrics.get('mae_ci95'))}, RMSE {_num(metrics.get('rmse'))}, "
              f"{_lists(metrics)}", highlight=False)
    out.print(f"run written to {dest}", highlight=False)


TUNE_FLAGS = {"n_trials": "--trials", "timeout": "--timeout", "metric": "--metric", "cv": "--cv",
              "validation_split": "--validation-split", "n_jobs": "--workers", "pruner": "--pruner",
              "study_name": "--study", "search_space": "--space", "storage": "--storage", "model": "--model",
              "random_state": "--seed"}


def _flag_first(exc: Exception, flags: dict[str, str]) -> Exception:
    """``exc`` with the argument its message starts with (``n_trials must be ...``) named by its flag."""
    message = str(exc)
    m = re.match(r"([A-Za-z_]\w*)\b", message)
    if m and m.group(1) in flags:
        try:
            return type(exc)(flags[m.group(1)] + message[m.end():])
        except TypeError:  # an exception that takes other arguments: keep it as it is
            return exc
    return exc


def _read_space(path: Path) -> dict[str, Any]:
    """A search space from a TOML file: a [search_space] table, or options at the top level."""
    table = _read_toml(path, "search space file")
    if set(table) == {"search_space"} and isinstance(table["search_space"], dict):
        table = table["search_space"]
    return table


@app.command(cls=_Command)
@handle_errors
def tune(
    ctx: typer.Context,
    data: str = typer.Option("ml-100k", "--data", help="MovieLens release name or path to your ratings file."),
    model: str = typer.Option("deep", "--model", help="The model whose options are searched."),
    trials: Optional[int] = typer.Option(50, "--trials", help="Trials to run (more, when the study exists)."),
    timeout: Optional[float] = typer.Option(None, "--timeout", help="Stop starting trials after this many seconds."),
    metric: str = typer.Option("rmse", "--metric", help="rmse, mae, recall@K or ndcg@K (whole catalogue)."),
    storage: Optional[str] = typer.Option(None, "--storage", metavar="URL", help="Study storage shared by several "
                                          "machines, e.g. postgresql://user@host/db (default: OUT/study.db)."),
    study: Optional[str] = typer.Option(None, "--study", metavar="NAME", help="Study name (default MODEL-METRIC); "
                                        "the same name continues the study."),
    workers: int = typer.Option(1, "--workers", help="Worker processes on this machine."),
    space: Optional[Path] = typer.Option(None, "--space", metavar="FILE", help="TOML file overriding the model's "
                                         "search space (ranges, log scales, choices, fixed values)."),
    cv: Optional[int] = typer.Option(None, "--cv", help="Score each trial by k-fold cross-validation inside train."),
    validation_split: float = typer.Option(0.1, "--validation-split", help="Validation share of train per trial."),
    pruner: str = typer.Option("median", "--pruner", help="median, hyperband or none."),
    split: str = typer.Option("holdout", "--split", help="holdout, u1..u5, ua, ub, temporal or last1."),
    seed: int = typer.Option(0, "--seed", help="Random seed (split, sampler and training)."),
    test_size: float = typer.Option(0.2, "--test-size", help="Test fraction for holdout/temporal splits."),
    set_: list[str] = typer.Option([], "--set", metavar="KEY=VALUE",
                                   help="Fix an option for every trial as KEY=VALUE (JSON values), repeatable."),
    out_dir: Path = typer.Option(..., "--out", help="Folder for best.toml, trials.csv, the study and report.html."),
    data_home: Optional[Path] = DataHome, user_col: Optional[str] = UserCol, item_col: Optional[str] = ItemCol,
    rating_col: Optional[str] = RatingCol, timestamp_col: Optional[str] = TimeCol, sep: Optional[str] = Sep,
    items: Optional[Path] = Items, users: Optional[Path] = Users, item_key: Optional[str] = ItemKey,
    user_key: Optional[str] = UserKey, encoding: Optional[str] = Encoding, rating_scale: Optional[str] = Scale,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    as_json: bool = AsJson,
) -> None:
    """Search a model's options (Optuna), then score the best once on the test set; resumable and shareable."""
    from .runs import RunSpec
    from .tuning.interrupt import SearchInterrupted
    from .tuning.run import tune_run
    from .tuning.storage import shown_url

    for option, value in (("--test-size", test_size), ("--validation-split", validation_split),
                          ("--timeout", timeout)):
        _finite(option, value)
    _check_run_options(split, data, seed, test_size)
    params = _parse_set(set_)
    for key in ("model", "random_state", "verbose"):
        if key in params:
            flag = {"model": "--model", "random_state": "--seed", "verbose": "--quiet"}[key]
            raise ValueError(f"--set {key}=...: {key} is not a model option; use {flag}")
    _check_params_finite(params, {k: f"--set {k}" for k in params})
    search_space = _read_space(space) if space is not None else None
    spec = RunSpec(data=data, model=model, split=split, seed=seed, test_size=test_size, params=params,
                   data_options=_data_options(user_col, item_col, rating_col, timestamp_col, sep, items, users,
                                              item_key, user_key, encoding, rating_scale),
                   data_home=_data_home(data_home))
    talk = not (quiet or as_json)
    from rich.progress import BarColumn, Progress, TextColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                   console=err, disable=not talk or not err.is_terminal, transient=False)
    task = bar.add_task("searching", total=trials)
    last_line = [0.0]

    def progress(status: dict) -> None:
        best = "-" if status["best"] is None else f"{status['best']:.4f}"
        left = "" if status["left"] is None else f", about {status['left']:.0f} s left"
        text = (f"trials {status['done']}{'/' + str(trials) if trials else ''} (pruned {status['pruned']}, "
                f"failed {status['failed']}), best {status['metric']} {best}{left}")
        if err.is_terminal:
            bar.update(task, completed=status["done"], description=text)
        elif talk and time.monotonic() - last_line[0] > 5:  # a plain line now and then in logs
            last_line[0] = time.monotonic()
            err.print(text, highlight=False)

    def step(message: str) -> None:
        if talk:
            err.print(f"[dim]{message}…[/]", highlight=False)

    try:
        with bar:
            summary = tune_run(spec, out_dir, n_trials=trials, timeout=timeout, metric=metric, storage=storage,
                               study_name=study, workers=workers, search_space=search_space, cv=cv,
                               validation_split=validation_split, pruner=pruner,
                               progress=progress if talk else None, on_step=step)
    except (ValueError, OSError) as exc:
        raise _flag_first(exc, TUNE_FLAGS) from None
    except SearchInterrupted as exc:
        where = out_dir if storage is None else shown_url(storage)
        trials = f"{exc.finished} finished trial{'' if exc.finished == 1 else 's'}"
        _fail(f"interrupted: {trials} kept in {where}; the same command continues the search" if exc.finished else
              "interrupted: no trial finished", EXIT_INTERRUPTED, as_json)
    if as_json:
        return _print_json({"out": str(out_dir), **{k: summary[k] for k in (
            "model", "metric", "study", "storage", "trials", "best_trial", "best_value", "best_params", "validation",
            "test_summary", "search_seconds")}})
    t = summary["trials"]
    out.print(f"[bold]{model}[/]: {sum(t.values())} trials in study {summary['study']} ({t['complete']} complete, "
              f"{t['pruned']} pruned, {t['fail']} failed); best validation {summary['metric']} "
              f"{_num(summary['best_value'])} (trial {summary['best_trial']})", highlight=False)
    test = summary["test_summary"]
    out.print(f"best options refitted on train, test (once): RMSE {_num(test.get('rmse'))}, MAE "
              f"{_num(test.get('mae'))}, recall@10 {_num(test.get('recall@10'))}, NDCG@10 "
              f"{_num(test.get('ndcg@10'))}", highlight=False)
    out.print(f"wrote {out_dir}/best.toml (ratecast train --config {out_dir}/best.toml), trials.csv, report.html",
              highlight=False)


@app.command(cls=_Command)
@handle_errors
def serve(run_dir: Path = typer.Argument(..., help="Run directory to serve."),
          host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
          port: int = typer.Option(8000, "--port", min=0, max=65535, help="Port to listen on."),
          workers: int = typer.Option(1, "--workers", min=1, help="Server processes (each loads the model)."),
          watch: Optional[float] = typer.Option(None, "--watch", metavar="SECONDS", help="Swap in a newly "
                                                "trained run when the folder changes (checked this often)."),
          log_level: str = typer.Option("warning", "--log-level", help="uvicorn's log level.")) -> None:
    """Serve a run over HTTP: /v1 API, /docs, /metrics and the explorer page at /."""
    from .runs import load_run
    from .serve.server import listening_socket, serve_on

    _finite("--watch", watch)
    if watch is not None and watch <= 0:
        raise ValueError(f"--watch must be a number of seconds > 0, got {watch}")
    load_run(run_dir)  # a missing or corrupted run: one line and its exit code, before any server starts
    with listening_socket(host, port) as sock:  # a port in use: one line, before the model is loaded
        os.environ["RATECAST_SERVE_RUN"] = str(Path(run_dir).resolve())
        if watch:
            os.environ["RATECAST_SERVE_WATCH"] = str(watch)
        err.print(f"serving {run_dir} on http://{host}:{sock.getsockname()[1]} (explorer at /, API docs at /docs)",
                  highlight=False)
        serve_on(sock, workers=workers, log_level=log_level)


def _lists(metrics: dict) -> str:
    """The top-N figures of a metrics dict, in words."""
    return (f"top-10 over the whole catalogue: recall {_num(metrics.get('recall@10'))}, NDCG "
            f"{_num(metrics.get('ndcg@10'))}, {metrics.get('distinct_items@10', '?')} distinct items")


def _check_run_options(split: str, data: str, seed: int | None = None, test_size: float | None = None) -> None:
    """The split, seed and test size given on the command line, checked with messages that name their flags."""
    from .runs import SPLITS
    from .split import MOVIELENS_FOLDS

    if split not in SPLITS:
        raise ValueError(f"--split must be one of {list(SPLITS)}, got {split!r}")
    if split in MOVIELENS_FOLDS and data != "ml-100k":
        raise ValueError(f"--split {split} is a canonical fold of ml-100k (its {split}.base/{split}.test files); "
                         f"for {data} use holdout, temporal or last1")
    if seed is not None and not 0 <= seed < 2**32:
        raise ValueError(f"--seed must be an integer in [0, {2**32 - 1}], got {seed}")
    if test_size is not None and not 0 < test_size < 1:
        raise ValueError(f"--test-size must be a number in (0, 1), got {test_size}")


def _resume_summary(spec) -> tuple:
    return spec.model, spec.data, spec.split, spec.seed


def _load_run(run_dir: Path):
    from .runs import load_run

    return load_run(run_dir)


@app.command(cls=_Command)
@handle_errors
def evaluate(run_dir: Path = typer.Argument(..., help="Run directory."),
             split: Optional[str] = typer.Option(None, "--split", help="Evaluate on another split's test set."),
             as_json: bool = AsJson) -> None:
    """Evaluate a run's model on its test set (or another split's, reporting any overlap with training)."""
    from .runs import make_split

    run = _load_run(run_dir)
    if split is not None:
        _check_run_options(split, run.spec.data)
    spec = run.spec if split is None else dataclasses.replace(run.spec, split=split)
    rec = run.recommender()
    test = make_split(run.load_data(spec), spec).test
    metrics = rec.evaluate(test)
    r = test.ratings
    overlap = int(rec.seen_mask(r["user_id"].to_numpy(), r["item_id"].to_numpy()).sum())
    metrics["test_ratings_seen_in_training"] = overlap
    if as_json:
        return _print_json({"run": str(run_dir), "split": spec.split, "test": metrics})
    out.print(f"{run_dir} on split {spec.split}: MAE {_num(metrics.get('mae'))}, RMSE {_num(metrics.get('rmse'))}, "
              f"n={metrics['n']}; {_lists(metrics)}", highlight=False)
    if overlap:
        out.print(f"[yellow]warning:[/] {overlap} of these test ratings were in the model's training data")


# --- explore ------------------------------------------------------------------------------------------------------
def _positive(option: str, value: int | None, zero_ok: bool = False) -> None:
    if value is not None and (value < 0 or (value == 0 and not zero_ok)):
        raise ValueError(f"{option} must be a {'non-negative' if zero_ok else 'positive'} integer, got {value}")


def _check_table_out(out_file: Path | None, overwrite: bool) -> None:
    """An ``--out`` table file must be CSV, TSV or Parquet, and free or replaceable."""
    from .io import check_replaceable

    if out_file is not None:
        if out_file.suffix.lower() not in (".csv", ".tsv", ".parquet"):
            raise ValueError(f"--out must end in .csv, .tsv or .parquet, got {str(out_file)!r}")
        check_replaceable(out_file, overwrite=overwrite)


def _emit_table(df, out_file: Path | None, as_json: bool, title: str, *, noun: str = "rows",
                wrap: tuple[str, ...] = ()) -> bool:
    """Write ``df`` to ``out_file``, or print it as JSON or as a table; True when it was printed as a table."""
    from .io import write_table

    if out_file is not None:
        write_table(df, out_file)
        if as_json:
            _print_json({"out": str(out_file), "rows": len(df)})
        else:
            out.print(f"wrote {len(df)} {noun} to {out_file}", highlight=False)
        return False
    if as_json:
        _print_json(df.to_dict(orient="records"))
        return False
    _print_frame(df, title, wrap=wrap)
    return True


@app.command(cls=_Command)
@handle_errors
def recommend(run_dir: Path = typer.Argument(..., help="Run directory."),
              user: Optional[str] = typer.Option(None, "--user", help="User id."),
              k: int = typer.Option(10, "-k", "--k", help="How many items."),
              min_ratings: Optional[int] = typer.Option(None, "--min-ratings", help="Only items rated this often."),
              all_users: bool = typer.Option(False, "--all", help="Every user (write with --out)."),
              out_file: Optional[Path] = typer.Option(None, "--out", help="Write CSV/TSV/Parquet instead."),
              overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out file."),
              as_json: bool = AsJson) -> None:
    """Top-k unseen items for a user (or every user with --all)."""
    _positive("-k", k)
    _positive("--min-ratings", min_ratings, zero_ok=True)
    if all_users and user is not None:
        raise typer.BadParameter("give --user ID or --all, not both", param_hint="'--user'")
    if not all_users and user is None:
        raise typer.BadParameter("missing: give --user ID (or --all)", param_hint="'--user'")
    _check_table_out(out_file, overwrite)
    rec = _load_run(run_dir).recommender()
    if all_users:
        df = rec.recommend_all(k=k, min_ratings=min_ratings)
    else:
        uid = _coerce_id(rec.user_index, user)
        if uid not in rec.user_index:
            raise UnknownIdError(f"unknown user id {user!r}: not in this model's training data")
        df = rec.recommend(uid, k=k, min_ratings=min_ratings)
    if _emit_table(df, out_file, as_json, f"Recommendations for user {user}" if not all_users else "Recommendations",
                   wrap=("title",)):
        _empty_hint(df, min_ratings)


@app.command(cls=_Command)
@handle_errors
def predict(run_dir: Path = typer.Argument(..., help="Run directory."),
            pairs: Path = typer.Option(..., "--pairs", help="CSV/TSV (header row) or Parquet of (user, item) pairs."),
            user_col: str = typer.Option("user_id", "--user-col", help="User id column of --pairs."),
            item_col: str = typer.Option("item_id", "--item-col", help="Item id column of --pairs."),
            timestamp_col: Optional[str] = typer.Option(
                None, "--timestamp-col", help="Seconds since 1970, for models that use the day of a rating."),
            out_file: Optional[Path] = typer.Option(None, "--out", help="Write CSV/TSV/Parquet instead."),
            overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out file."),
            as_json: bool = AsJson) -> None:
    """Predicted ratings for the pairs of a file, each with known_user, known_item and was_impossible (an unknown
    user or item gets its baseline rating)."""
    from .datasets.readers import read_pairs

    _check_table_out(out_file, overwrite)
    with argument_names({"user_col": "--user-col", "item_col": "--item-col", "timestamp_col": "--timestamp-col"}):
        frame = read_pairs(pairs, user_col=user_col, item_col=item_col, timestamp_col=timestamp_col)
    rec = _load_run(run_dir).recommender()

    def ids(index, column):  # text as --user reads it; Parquet ids as stored
        return column.map({v: _coerce_id(index, v) if isinstance(v, str) else v for v in column.unique()}).to_numpy(
            object)

    df = rec.predict_details(ids(rec.user_index, frame[user_col]), ids(rec.item_index, frame[item_col]),
                             None if timestamp_col is None else frame[timestamp_col].to_numpy())
    _emit_table(df, out_file, as_json, f"Predictions for {pairs.name}", noun="predictions")


@app.command(cls=_Command)
@handle_errors
def similar(run_dir: Path = typer.Argument(..., help="Run directory."),
            item: str = typer.Option(..., "--item", help="Item id."),
            k: int = typer.Option(10, "-k", "--k", help="How many items."),
            min_ratings: Optional[int] = typer.Option(None, "--min-ratings", help="Only items rated this often."),
            as_json: bool = AsJson) -> None:
    """Items most similar to an item (cosine similarity of learned embeddings)."""
    _positive("-k", k)
    _positive("--min-ratings", min_ratings, zero_ok=True)
    rec = _load_run(run_dir).recommender()
    iid = _coerce_id(rec.item_index, item)
    if iid not in rec.item_index:
        raise UnknownIdError(f"unknown item id {item!r}: not in this model's training data")
    df = rec.similar_items(iid, k=k, min_ratings=min_ratings)
    if as_json:
        return _print_json(df.to_dict(orient="records"))
    _print_frame(df, f"Most similar to {rec.titles([iid])[0] or iid}", wrap=("title",))
    _empty_hint(df, min_ratings)


def _empty_hint(df, min_ratings: int | None) -> None:
    """Say why a list came out empty when --min-ratings left every item out."""
    if len(df) == 0 and min_ratings:
        err.print(f"no item left: none with {min_ratings} or more training ratings qualifies; lower --min-ratings",
                  highlight=False)


class Method(str, Enum):
    tsne = "tsne"
    umap = "umap"


class Kind(str, Enum):
    item = "item"
    user = "user"


@app.command("map", cls=_Command)
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
         as_json: bool = AsJson) -> None:
    """2-D map of the learned embeddings (t-SNE or UMAP)."""
    from .io import check_replaceable
    from .viz import embedding_map, map_html, map_png
    from .viz.maps import COLORS, color_columns

    method, kind = Method(method).value, Kind(kind).value
    if out_file.suffix.lower() not in (".html", ".png"):
        raise ValueError(f"--out must end in .html or .png, got {str(out_file)!r}")
    if not (math.isfinite(perplexity) and perplexity > 0):
        raise ValueError(f"--perplexity must be a finite number > 0, got {perplexity!r}")
    color = color or ("popularity" if kind == "item" else "n_ratings")
    if color not in COLORS[kind]:
        raise ValueError(f"--color must be one of {list(COLORS[kind])} for --kind {kind}, got {color!r}")
    check_replaceable(out_file, overwrite=overwrite)
    rec = _load_run(run_dir).recommender()
    available = color_columns(rec, kind)
    if color not in available:
        raise ValueError(f"--color {color}: this model has no such metadata; available for --kind {kind}: "
                         f"{available}")
    try:
        df = embedding_map(rec, kind, method=method, perplexity=perplexity)
    except ValueError as exc:
        raise _name_option(exc, {"perplexity": "--perplexity"}) from None
    title = f"{kind} embeddings ({method})"
    (map_html if out_file.suffix.lower() == ".html" else map_png)(df, out_file, color=color, title=title)
    if as_json:
        return _print_json({"out": str(out_file), "points": len(df), "kind": kind, "method": method, "color": color})
    out.print(f"wrote {out_file} ({len(df)} points)", highlight=False)


@app.command(cls=_Command)
@handle_errors
def compare(run_dirs: list[Path] = typer.Argument(..., help="Run directories."), as_json: bool = AsJson) -> None:
    """A table of runs: model, data, split, epochs, test MAE/RMSE with intervals, recall@10 and NDCG@10 over the
    whole catalogue, fit time."""
    runs = [(p, _load_run(p)) for p in run_dirs]
    rows = [{**comparison_row(run), "path": str(p)} for p, run in runs]
    if as_json:
        return _print_json(rows)
    from rich import box

    # no vertical rules and cells that wrap at spaces: fits 80 columns without cutting a value
    table = Table(box=box.SIMPLE_HEAD)
    longest_model = max(len(r["model"]) for r in rows)
    table.add_column("run", overflow="fold", min_width=8)
    table.add_column("model", min_width=longest_model, no_wrap=True)
    table.add_column("data, split, seed", overflow="fold", min_width=7)
    table.add_column("epochs", justify="right", no_wrap=True)
    table.add_column("MAE [95% CI]", justify="right", overflow="fold", min_width=6)
    for name in ("RMSE", "recall@10", "NDCG@10", "fit s"):
        table.add_column(name, justify="right", no_wrap=True)
    for r in rows:
        table.add_row(r["path"], r["model"], f"{r['data']} {r['split']} seed {r['seed']}", str(r["epochs"]),
                      f"{_num(r['mae'])} {_ci(r['mae_ci95'], 3)}", _num(r["rmse"]), _num(r["recall@10"]),
                      _num(r["ndcg@10"]), _num(r["fit_s"], 1))
    _show(table, "Runs")


def comparison_row(run) -> dict[str, Any]:
    """One run's numbers (plain numbers, for JSON; the table formats them)."""
    t = run.metrics["test"]
    ci = t.get("mae_ci95")
    return {"run": run.path.name, "model": run.spec.model, "data": run.info["dataset"], "split": run.spec.split,
            "seed": run.spec.seed, "epochs": run.info["epochs_run"], "mae": t.get("mae"),
            "mae_ci95": list(ci) if isinstance(ci, (list, tuple)) else None, "rmse": t.get("rmse"),
            "recall@10": t.get("recall@10"), "ndcg@10": t.get("ndcg@10"),
            "distinct_items@10": t.get("distinct_items@10"), "long_tail_share@10": t.get("long_tail_share@10"),
            "fit_s": run.info.get("fit_seconds")}


@app.command(cls=_Command)
@handle_errors
def report(run_dir: Path = typer.Argument(..., help="Run directory."),
           out_file: Optional[Path] = typer.Option(None, "--out", help="HTML file (default RUN_DIR/report.html)."),
           method: Method = typer.Option(Method.tsne, "--method", help="Embedding map method."),
           overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out file."),
           as_json: bool = AsJson) -> None:
    """Write a self-contained HTML report of a run (opens offline in any browser)."""
    from .report import build_report

    method = Method(method).value
    if as_json:  # no progress display: stdout holds the JSON document only
        path = build_report(_load_run(run_dir), out_file, map_method=method, overwrite=overwrite)
        return _print_json({"run": str(run_dir), "out": str(path)})
    with err.status("building the report…") as status:
        path = build_report(_load_run(run_dir), out_file, map_method=method, overwrite=overwrite,
                            on_step=lambda m: status.update(f"{m}…"))
    out.print(f"wrote {path}", highlight=False)


@app.command(cls=_Command)
@handle_errors
def demo(out_dir: Path = typer.Option(Path("ratecast-demo"), "--out", help="Folder for the runs and reports."),
         data: str = typer.Option("ml-100k", "--data", help="MovieLens release or ratings file."),
         models: str = typer.Option("popularity,baseline,dot,deep,hybrid,classification", "--models",
                                     help="Comma-separated models to train."),
         epochs: Optional[int] = typer.Option(None, "--epochs", help="Override the lab's epochs (quick runs)."),
         data_home: Optional[Path] = DataHome, as_json: bool = AsJson) -> None:
    """The lab, end to end: train its four models and two reference models (popularity, damped biases) on ML-100k
    with its protocol, compare, write reports."""
    import pandas as pd
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from .io import check_output_folder, lock_output, write_json, write_text
    from .report import build_report
    from .runs import RunSpec, load_data, load_run, train_run

    lab = {"popularity": {"embedding_dim": 1, "epochs": 10}, "baseline": {"embedding_dim": 1, "epochs": 10},
           "dot": {"embedding_dim": 64, "epochs": 10}, "biased_dot": {"embedding_dim": 64, "epochs": 10},
           "deep": {"embedding_dim": 64, "epochs": 10}, "hybrid": {"embedding_dim": 64, "epochs": 10},
           "classification": {"embedding_dim": 16, "epochs": 15}}
    names = [m.strip() for m in models.split(",") if m.strip()]
    bad = [m for m in names if m not in lab]
    if bad or not names:
        raise ValueError(f"--models must name models from {list(lab)}, got {bad or models!r}")
    _positive("--epochs", epochs)
    home = _data_home(data_home)
    marker = "demo.json"
    with lock_output(out_dir):
        check_output_folder(out_dir, overwrite=True, marker=marker)  # a demo folder is refreshed, nothing else
        base = RunSpec(data=data, data_home=home)
        rows = []
        if not as_json:
            out.print(f"[bold]ratecast demo[/]: {', '.join(names)} on {data}; lab protocol: holdout test_size=0.2 "
                      "random_state=0, batch 64, early stopping on a 10% validation split of train; each run is "
                      "then evaluated, plotted and written up as a report", highlight=False)
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=out,
                      transient=False, disable=as_json) as progress:
            task = progress.add_task(f"loading {data}", total=None)
            ds = load_data(base)
            progress.update(task, description=f"loaded {ds.name}: {len(ds.ratings)} ratings")
            progress.stop_task(task)
            out_dir.mkdir(parents=True, exist_ok=True)
            write_json(out_dir / marker, {"data": data, "models": names, "epochs": epochs})
            for name in names:
                params = {**lab[name], "batch_size": 64}
                if epochs is not None:
                    params["epochs"] = epochs
                spec = RunSpec(data=data, model=name, split="holdout", seed=0, params=params,
                               data_home=base.data_home)
                task = progress.add_task(f"{name}", total=None)

                def step(message: str, task=task, name=name) -> None:
                    progress.update(task, description=f"{name}: {message}")

                run_dir = out_dir / name
                train_run(spec, run_dir, overwrite=True, dataset=ds, on_step=step)
                run = load_run(run_dir)
                build_report(run, on_step=step)
                rows.append(comparison_row(run))
                progress.update(task, description=f"{name}: done (test MAE {_num(rows[-1]['mae'])})")
                progress.stop_task(task)
        table = pd.DataFrame(rows)
        write_text(out_dir / "results.csv", table.to_csv(index=False))
    reports = [str(out_dir / n / "report.html") for n in names]
    if as_json:
        return _print_json({"out": str(out_dir), "runs": [{**r, "path": str(out_dir / n), "report": rep}
                                                          for r, n, rep in zip(rows, names, reports)],
                            "table": str(out_dir / "results.csv")})
    # the printed table fits 80 columns; results.csv and --json have every column
    shown = table.drop(columns=["run", "data", "split", "seed", "epochs", "distinct_items@10",
                                "long_tail_share@10"]).assign(
        mae_ci95=[_ci(c, 3) for c in table["mae_ci95"]], fit_s=[_num(v, 1) for v in table["fit_s"]])
    _print_frame(shown, "Test results (lab split)", digits=4)
    out.print(f"reports: {', '.join(reports)}", highlight=False)
    out.print(f"table: {out_dir / 'results.csv'}", highlight=False)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()

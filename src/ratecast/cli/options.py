"""Option declarations shared by several commands, and the checks of their values (messages name the flags)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer

from .console import Verbosity, detail, elapsed, verbosity

def finite(option: str, value: float | None) -> None:
    """A number option is finite (or not given)."""
    if value is not None and not math.isfinite(value):
        raise ValueError(f"{option} must be a finite number, got {value!r}")


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
Split = typer.Option("holdout", "--split", help="holdout, u1..u5, ua, ub, temporal, last1 or held-out-users (whole "
                                                 "users out of training; 80% of their ratings folded in, the rest "
                                                 "scored).")
TestSize = typer.Option(0.2, "--test-size", help="Test fraction for holdout/temporal splits; for held-out-users, the "
                                                 "share of users held out.")
Quiet = typer.Option(False, "--quiet", "-q", help="Results and errors only: no progress or informational lines.")
Verbose = typer.Option(False, "--verbose", "-v", help="More detail on stderr (a line per epoch when training).")
AsJson = typer.Option(False, "--json", help="Print JSON instead of a table (errors too).")
Overwrite = typer.Option(False, "--overwrite", help="Replace existing plot files even if ratecast did not write "
                                                    "them.")


def parse_rating_scale(text: str | None) -> list[float] | None:
    """The --rating-scale text as [min, max] or [min, max, step], checked."""
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if not 2 <= len(values) <= 3 or not all(math.isfinite(v) for v in values):
        raise ValueError(f"--rating-scale must be MIN,MAX or MIN,MAX,STEP (finite numbers), got {text!r}")
    from ..datasets import RatingScale

    try:
        RatingScale(*values)  # its own checks (min < max, step > 0, ...)
    except ValueError as exc:
        raise ValueError(f"--rating-scale {text!r}: {exc}") from None
    return values


def data_options(user_col=None, item_col=None, rating_col=None, timestamp_col=None, sep=None, items=None,
                 users=None, item_key=None, user_key=None, encoding=None, rating_scale=None, duplicates=None) -> dict:
    opts = {"user_col": user_col, "item_col": item_col, "rating_col": rating_col, "timestamp_col": timestamp_col,
            "sep": sep, "item_key": item_key, "user_key": user_key, "encoding": encoding, "duplicates": duplicates,
            "items": str(items) if items is not None else None, "users": str(users) if users is not None else None,
            "rating_scale": parse_rating_scale(rating_scale)}
    return {k: v for k, v in opts.items() if v is not None}


def data_home_folder(path: Optional[Path]) -> str | None:
    """The --data-home folder, which must exist: a mistyped folder is reported, never created."""
    from ..errors import DataError, MissingFileError

    if path is None:
        return None
    home = path.expanduser()
    if not home.exists():
        raise MissingFileError("--data-home folder not found; create it, or leave --data-home out to use "
                               "$RATECAST_DATA or the user cache folder", path=str(path))
    if not home.is_dir():
        raise DataError(f"--data-home must be a folder, got the file {str(path)!r}")
    return str(path)


def load_dataset(name: str, data_home: Optional[Path], options: dict):
    """The dataset a command names, read with the data options given."""
    from ..runs import RunSpec, load_data

    spec = RunSpec(data=name, data_home=data_home_folder(data_home), data_options=options)
    return load_data(spec, progress=verbosity() >= Verbosity.NORMAL)



def check_run_options(split: str, data: str, seed: int | None = None, test_size: float | None = None) -> None:
    """The split, seed and test size given on the command line, checked with messages that name their flags."""
    from ..runs import SPLITS
    from ..split import MOVIELENS_FOLDS

    if split not in SPLITS:
        raise ValueError(f"--split must be one of {list(SPLITS)}, got {split!r}")
    if split in MOVIELENS_FOLDS and data != "ml-100k":
        raise ValueError(f"--split {split} is a canonical fold of ml-100k (its {split}.base/{split}.test files); "
                         f"for {data} use holdout, temporal or last1")
    if seed is not None and not 0 <= seed < 2**32:
        raise ValueError(f"--seed must be an integer in [0, {2**32 - 1}], got {seed}")
    if test_size is not None and not 0 < test_size < 1:
        raise ValueError(f"--test-size must be a number in (0, 1), got {test_size}")


def open_run(run_dir: Path):
    """The run in ``run_dir`` (a missing or corrupted run raises its error)."""
    from ..runs import load_run

    run = load_run(run_dir)
    detail(f"loaded {run_dir}: {run.spec.model} on {run.spec.data} ({run.spec.split}, seed {run.spec.seed}), "
           f"{elapsed():.1f} s")
    return run



def positive(option: str, value: int | None, zero_ok: bool = False) -> None:
    """An integer option is positive (or non-negative with ``zero_ok``), or not given."""
    if value is not None and (value < 0 or (value == 0 and not zero_ok)):
        raise ValueError(f"{option} must be a {'non-negative' if zero_ok else 'positive'} integer, got {value}")


def check_table_out(out_file: Path | None, overwrite: bool) -> None:
    """An ``--out`` table file must be CSV, TSV or Parquet, and free or replaceable."""
    from ..io import check_replaceable

    if out_file is not None:
        if out_file.suffix.lower() not in (".csv", ".tsv", ".parquet"):
            raise ValueError(f"--out must end in .csv, .tsv or .parquet, got {str(out_file)!r}")
        check_replaceable(out_file, overwrite=overwrite)


"""Output of the command line: the consoles, tables and JSON, one-line errors and the documented exit codes."""

from __future__ import annotations

import math
import os
import sys
import time
import tomllib
from contextvars import ContextVar
from enum import IntEnum
from functools import wraps
from pathlib import Path
from typing import Any, Callable, NamedTuple

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer.core import TyperCommand, TyperGroup

from ..errors import UnknownIdError, argument_names

EXIT_DATA, EXIT_USAGE, EXIT_UNKNOWN_ID, EXIT_MISSING, EXIT_INTERRUPTED = 1, 2, 3, 4, 130
EXIT_CODES = ("Exit codes: 0 success; 1 bad data or option value (also: output exists or is locked, corrupted run, "
              "training diverged); 2 usage error; 3 unknown user or item id; 4 missing run or file; 130 interrupted. "
              "With --json, errors are printed on stdout as {\"error\": ..., \"exit_code\": N}.")


def plain_flags(params: list) -> list:
    """``params`` with their flags shown bare in help texts."""
    for p in params:  # a flag takes no value: show '--json', not '--json <bool>'
        if getattr(p, "is_flag", False) and p.metavar is None:
            p.metavar = ""
    return params


class Command(TyperCommand):
    """A command whose help shows flags without a value."""

    def get_params(self, ctx):
        return plain_flags(super().get_params(ctx))


class Group(TyperGroup):
    """A command group whose help shows flags without a value, and that reports usage errors as JSON with --json."""

    def get_params(self, ctx):
        return plain_flags(super().get_params(ctx))

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        """With ``--json``, usage errors too are reported as a JSON object (exit code 2)."""
        argv = list(sys.argv[1:] if args is None else args)
        if not standalone_mode or "--json" not in argv:
            return super().main(argv, prog_name, complete_var, standalone_mode, **extra)
        try:
            rv = super().main(argv, prog_name, complete_var, False, **extra)
        except typer.TyperException as exc:  # usage errors
            code = getattr(exc, "exit_code", EXIT_USAGE)
            print_error(exc.format_message() if hasattr(exc, "format_message") else str(exc), code, as_json=True)
            sys.exit(code)
        except typer.Abort:
            print_error("aborted", EXIT_DATA, as_json=True)
            sys.exit(EXIT_DATA)
        sys.exit(rv if isinstance(rv, int) else 0)


#: results (stdout) and messages (stderr)
out = Console()
err = Console(stderr=True)


#: the width of output that is not a terminal: lines as long as the data needs, never wrapped
PIPE_WIDTH = 100_000


def unwrap_when_piped(*consoles: Console) -> None:
    """Consoles that write to a pipe or file (and have no COLUMNS set) never hard-wrap: lines stay whole for logs."""
    for console in consoles:
        console.width = PIPE_WIDTH if not console.is_terminal and not os.environ.get("COLUMNS") else None


def one_line(message: str) -> str:
    """``message`` on one line (its whitespace runs made single spaces)."""
    return " ".join(str(message).split()) or "failed"


def print_error(message: str, code: int, *, as_json: bool) -> None:
    """An error as one line on stderr, or as one JSON object on stdout."""
    message = one_line(message)
    if as_json:
        from ..io import to_json

        sys.stdout.write(to_json({"error": message, "exit_code": code}) + "\n")
        sys.stdout.flush()
    else:
        err.print(Text.assemble(("error: ", "bold red"), message), highlight=False, soft_wrap=True)


def exit_code(exc: BaseException) -> int | None:
    """The documented exit code of an error, or None for an unexpected one (a bug: shown with its traceback)."""
    from ..errors import MissingFileError, RatecastError

    if isinstance(exc, UnknownIdError):
        return EXIT_UNKNOWN_ID
    if isinstance(exc, (MissingFileError, FileNotFoundError)):
        return EXIT_MISSING
    if isinstance(exc, (RatecastError, ValueError, TypeError, tomllib.TOMLDecodeError, ImportError, OSError)):
        return EXIT_DATA
    return None


def fail(message: str, code: int, as_json: bool = False) -> None:
    """Print an error and exit with ``code``."""
    print_error(message, code, as_json=as_json)
    raise typer.Exit(code)


#: how messages of the data layer name its arguments on the command line
FLAGS = {"user_col": "--user-col", "item_col": "--item-col", "rating_col": "--rating-col",
         "timestamp_col": "--timestamp-col", "sep": "--sep", "encoding": "--encoding", "items": "--items",
         "users": "--users", "item_key": "--item-key", "user_key": "--user-key", "rating_scale": "--rating-scale",
         "data_home": "--data-home", "duplicates": "--duplicates"}



def handle_errors(fn):
    """Turn ratecast's errors into one clear line (or one JSON object with --json) and a documented exit code; set
    how much the command says from its ``-q/--quiet`` and ``-v/--verbose`` flags."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        as_json = bool(kwargs.get("as_json", False))
        quiet, verbose = bool(kwargs.get("quiet", False)), bool(kwargs.get("verbose", False))
        if quiet and verbose:
            raise typer.BadParameter("give -q/--quiet or -v/--verbose, not both", param_hint="'--verbose'")
        level = (Verbosity.VERBOSE if verbose else Verbosity.QUIET if quiet or as_json else Verbosity.NORMAL)
        token = _talk.set(Talk(level, time.monotonic()))
        try:
            with argument_names(FLAGS):
                return fn(*args, **kwargs)
        except (typer.Exit, typer.TyperException):
            raise
        except KeyboardInterrupt:
            fail("interrupted", EXIT_INTERRUPTED, as_json)
        except Exception as exc:
            code = exit_code(exc)
            if code is None:
                raise
            message = str(exc) or type(exc).__name__
            if isinstance(exc, tomllib.TOMLDecodeError):
                message = f"invalid TOML: {message}"
            fail(message, code, as_json)
        finally:
            _talk.reset(token)

    return wrapper


# --- how much a command says --------------------------------------------------------------------------------------
class Verbosity(IntEnum):
    """How much a command says on stderr besides its results and errors."""

    QUIET = 0  # -q/--quiet (and --json): results and errors only
    NORMAL = 1  # progress of long steps and informational lines
    VERBOSE = 2  # -v/--verbose: also a line per epoch and more detail


class Talk(NamedTuple):
    """The verbosity of the running command, and when it started."""

    level: Verbosity
    started: float


_talk: ContextVar[Talk] = ContextVar("talk", default=Talk(Verbosity.NORMAL, time.monotonic()))


def verbosity() -> Verbosity:
    """The verbosity of the running command."""
    return _talk.get().level


def elapsed() -> float:
    """Seconds since the running command started."""
    return time.monotonic() - _talk.get().started


def info(message: str) -> None:
    """An informational line on stderr (not with -q/--quiet)."""
    if verbosity() >= Verbosity.NORMAL:
        err.print(message, highlight=False, soft_wrap=True)


def detail(message: str) -> None:
    """A line of detail on stderr, with -v/--verbose only."""
    if verbosity() >= Verbosity.VERBOSE:
        err.print(f"[dim]{message}[/]", highlight=False, soft_wrap=True)


def show_progress() -> bool:
    """Whether progress displays (bars, spinners) may be drawn: on a terminal, when not quiet."""
    return verbosity() >= Verbosity.NORMAL and err.is_terminal


def progress_line(message: str) -> None:
    """A line of progress on stderr (not with -q/--quiet); off a terminal it tells the seconds since the command
    started: logs get plain lines, never spinners or control codes."""
    if verbosity() < Verbosity.NORMAL:
        return
    if err.is_terminal:
        err.print(f"[dim]{message}[/]", highlight=False, soft_wrap=True)
    else:
        err.print(f"{message} ({elapsed():.1f} s)", highlight=False, soft_wrap=True)


def step(message: str) -> None:
    """A long step begins: one :func:`progress_line`."""
    progress_line(f"{message}…")


def step_reporter(prefix: str = "") -> Callable[[str], None]:
    """A callback for the library's ``on_step``: each step as :func:`step` prints it, after ``prefix``."""
    return lambda message: step(f"{prefix}{message}")


def print_json(obj: Any) -> None:
    """``obj`` as one JSON document on stdout (never a bare NaN)."""
    from ..io import to_json

    sys.stdout.write(to_json(obj) + "\n")


def num(value, digits: int = 4) -> str:
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


def ci(ci, digits: int = 4) -> str:
    """A confidence interval for people, ``[low, high]``, or a dash."""
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(num(v) != "—" for v in ci):
        return f"[{num(ci[0], digits)}, {num(ci[1], digits)}]"
    return "—"


def print_frame(df, title: str | None = None, digits: int = 3, wrap: tuple[str, ...] = ()) -> None:
    """A table that fits the terminal: columns in ``wrap`` fold onto several lines; the others are never cut. A
    ``wrap`` column with no value at all (titles of data without item metadata) is left out; missing cells are blank."""
    df = df[[c for c in df.columns if c not in wrap or not df[c].isna().all()]]
    table = Table()

    def cell(v) -> str:
        return "" if v is None else v if isinstance(v, str) else num(v, digits) if isinstance(v, float) else str(v)

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
    show(table, title)


def show(table: Table, title: str | None) -> None:
    """A table under its title, which is one line of its own (a table's title would wrap at the table's width)."""
    if title:
        out.print(Text(title, style="bold"), soft_wrap=True)
    out.print(table)



def lists(metrics: dict) -> str:
    """The top-N figures of a metrics dict, in words."""
    users = metrics.get("top_n_users")
    sample = f" (a sample of {users:,} test users)" if users is not None and users < metrics.get("test_users", 0) else ""
    return (f"top-10 over the whole catalogue{sample}: recall {num(metrics.get('recall@10'))}, NDCG "
            f"{num(metrics.get('ndcg@10'))}, {metrics.get('distinct_items@10', '?')} distinct items")



def emit_table(df, out_file: Path | None, as_json: bool, title: str, *, noun: str = "rows",
               wrap: tuple[str, ...] = ()) -> bool:
    """Write ``df`` to ``out_file``, or print it as JSON or as a table; True when it was printed as a table."""
    from ..io import write_table

    if out_file is not None:
        write_table(df, out_file)
        if as_json:
            print_json({"out": str(out_file), "rows": len(df)})
        else:
            out.print(f"wrote {len(df)} {noun} to {out_file}", highlight=False)
        return False
    if as_json:
        print_json(df.to_dict(orient="records"))
        return False
    print_frame(df, title, wrap=wrap)
    return True


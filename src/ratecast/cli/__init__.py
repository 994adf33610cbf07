"""The ``ratecast`` command line: data, train, refit, tune, serve, evaluate, recommend, similar, map, compare, report,
demo.

Exit codes: 0 success; 1 bad input data or option value (also: output exists, output locked, corrupted run, training
diverged); 2 usage error (unknown option, missing argument); 3 unknown user or item id; 4 missing run directory or
file; 130 interrupted (Ctrl-C). Errors are one line on stderr; with ``--json`` they are one JSON object on stdout,
``{"error": "...", "exit_code": N}``, with the same exit code.

One module per command group (``data``, ``train``, ``tune``, ``serve``, ``lookup``, ``plots``, ``compare``,
``demo``), the shared output in ``console`` and the shared options in ``options``. Each command imports what it
needs when it runs: ``ratecast --help`` stays light.
"""

from __future__ import annotations

import os

# The command line is an application: it may set process-wide options. Compiled XLA programs are cached on disk by
# the library (ratecast.compile_cache: $RATECAST_CACHE, else the user cache folder), so that repeated commands
# (train, recommend, similar, report, ...) skip most compilation.
os.environ.setdefault("KERAS_BACKEND", "jax")

import typer  # noqa: E402

from . import compare, data, demo, lookup, plots, serve, train, tune  # noqa: E402
from .console import EXIT_CODES, Command, Group, err, out, unwrap_when_piped  # noqa: E402

app = typer.Typer(cls=Group, help="ratecast: explicit-feedback neural recommender systems.", epilog=EXIT_CODES,
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
data_app = typer.Typer(cls=Group, help="Download, inspect and describe datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")


def _version(value: bool) -> None:
    if value:
        from .. import __version__

        out.print(f"ratecast {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """ratecast: explicit-feedback neural recommender systems."""
    unwrap_when_piped(out, err)


data_app.command("fetch", cls=Command)(data.data_fetch)
data_app.command("info", cls=Command)(data.data_info)
data_app.command("stats", cls=Command)(data.data_stats)
app.command(cls=Command)(train.train)
app.command(cls=Command)(train.refit)
app.command(cls=Command)(tune.tune)
app.command(cls=Command)(serve.serve)
app.command(cls=Command)(lookup.evaluate)
app.command(cls=Command)(lookup.recommend)
app.command(cls=Command)(lookup.predict)
app.command(cls=Command)(lookup.similar)
app.command("map", cls=Command)(plots.map_)
app.command(cls=Command)(compare.compare)
app.command(cls=Command)(plots.report)
app.command(cls=Command)(demo.demo)


def main() -> None:  # pragma: no cover
    """Run the command line (``python -m ratecast.cli``)."""
    app()

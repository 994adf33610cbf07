"""``ratecast serve``: serve a run over HTTP."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from .console import handle_errors, info
from .options import Quiet, Verbose, finite


@handle_errors
def serve(ctx: typer.Context, run_dir: Path = typer.Argument(..., help="Run directory to serve."),
          host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
          port: int = typer.Option(8000, "--port", min=0, max=65535, help="Port to listen on."),
          workers: int = typer.Option(1, "--workers", min=1, help="Server processes (each loads the model)."),
          watch: Optional[float] = typer.Option(None, "--watch", metavar="SECONDS", help="Swap in a newly "
                                                "trained run when the folder changes (checked this often)."),
          log_level: str = typer.Option("warning", "--log-level", help="uvicorn's log level (info with -v)."),
          quiet: bool = Quiet, verbose: bool = Verbose) -> None:
    """Serve a run over HTTP: /v1 API, /docs, /metrics and the explorer page at /."""
    from ..runs import load_run
    from ..serve.server import listening_socket, serve_on

    finite("--watch", watch)
    if watch is not None and watch <= 0:
        raise ValueError(f"--watch must be a number of seconds > 0, got {watch}")
    load_run(run_dir)  # a missing or corrupted run: one line and its exit code, before any server starts
    with listening_socket(host, port) as sock:  # a port in use: one line, before the model is loaded
        os.environ["RATECAST_SERVE_RUN"] = str(Path(run_dir).resolve())
        if watch:
            os.environ["RATECAST_SERVE_WATCH"] = str(watch)
        info(f"serving {run_dir} on http://{host}:{sock.getsockname()[1]} (explorer at /, API docs at /docs)")
        if verbose and getattr(ctx.get_parameter_source("log_level"), "name", "") != "COMMANDLINE":
            log_level = "info"
        serve_on(sock, workers=workers, log_level=log_level)


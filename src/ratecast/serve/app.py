"""The HTTP API and the explorer page: ``create_app(run_dir)`` builds a FastAPI app that loads and warms the run
once at start-up, answers under /v1, exposes /health, /ready and /metrics (Prometheus), and swaps in a newly
trained run atomically on ``POST /admin/reload`` (with the admin token) or when ``watch`` sees the folder change.
Its API docs (/docs, /redoc) load their scripts and styles from the server itself (fastapi-offline), not a CDN.

The app is assembled here from its parts: the endpoints' routers (:mod:`ratecast.serve.routes`), the state they
share (:mod:`ratecast.serve.holder`), the middlewares (:mod:`ratecast.serve.middleware`) and the JSON error answers
(:mod:`ratecast.serve.errors`).
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from . import schemas as S
from .errors import install_error_handlers
from .holder import Holder, lifespan
from .middleware import MAX_BODY_BYTES, BodyLimit, FastPath, Observe
from .routes import admin, explorer, items, model, predict, probes, users
from .routes.admin import ADMIN_TOKEN_ENV
from .routes.explorer import STATIC

__all__ = ["create_app", "app_from_env", "ADMIN_TOKEN_ENV", "MAX_BODY_BYTES", "STATIC"]


def create_app(run_dir: str | os.PathLike, *, admin_token: str | None = None, watch: float | None = None,
               max_pairs: int = S.MAX_PAIRS) -> FastAPI:
    """The app serving run folder ``run_dir``. Admin endpoints need ``admin_token`` (default: the
    ``RATECAST_ADMIN_TOKEN`` environment variable; without one they are off). With ``watch`` (seconds), the folder
    is checked that often and a newly written run is swapped in."""
    from ..runs import load_run

    run_dir = Path(run_dir)
    load_run(run_dir)  # a missing or corrupted run fails here, before a server starts
    token = (admin_token if admin_token is not None else os.environ.get(ADMIN_TOKEN_ENV)) or None
    holder = Holder(run_dir, admin_token=token, max_pairs=max_pairs, watch=watch)

    app = FastAPIOffline(title="ratecast", version="1", lifespan=lifespan,
                         description="Recommendations, similar items and rating predictions from a trained ratecast "
                                     "run. Errors are JSON: {\"error\": ..., \"status\": ...}.",
                         swagger_ui_parameters={"validatorUrl": None})  # no badge fetched from swagger.io
    app.state.holder = holder
    app.add_middleware(FastPath, holder=holder)
    app.add_middleware(BodyLimit, max_body=MAX_BODY_BYTES)
    app.add_middleware(Observe, registry=holder.registry)  # added last: the outermost
    install_error_handlers(app)
    for router in (probes.router, users.router, items.router, predict.router(max_pairs), model.router,
                   admin.router, explorer.router):
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def app_from_env() -> FastAPI:
    """The app for ``RATECAST_SERVE_RUN`` (what ``ratecast serve --workers N`` starts in each worker)."""
    run = os.environ.get("RATECAST_SERVE_RUN")
    if not run:
        raise RuntimeError("RATECAST_SERVE_RUN is not set")
    watch = os.environ.get("RATECAST_SERVE_WATCH")
    return create_app(run, watch=float(watch) if watch else None)

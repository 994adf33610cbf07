"""What the endpoints share, kept on the app as ``app.state.holder``: the served model (swapped in one assignment
on a reload or after new ratings), the admin token, the request limits and the Prometheus registry. Endpoints reach
it through the dependency :func:`get_holder`; :func:`lifespan` loads the run at start-up and, with ``watch``, swaps
in a newly written run when the folder changes."""

from __future__ import annotations

import threading
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, AsyncIterator

from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CollectorRegistry, Counter, Gauge

from .service import ModelService, NotFound


class Holder:
    """The served model; a reload replaces it in one assignment, so each request uses one model throughout.

    ``run_dir``: the run loaded at start-up; ``admin_token``: what admin endpoints ask for (None: they are off);
    ``max_pairs``: the most pairs one prediction request may hold; ``watch``: seconds between checks of the served
    folder for a new run (None: never)."""

    def __init__(self, run_dir: Path, *, admin_token: str | None, max_pairs: int, watch: float | None = None) -> None:
        self.service: ModelService | None = None
        self.lock = threading.Lock()
        self.run_dir = run_dir
        self.admin_token = admin_token
        self.max_pairs = max_pairs
        self.watch = watch
        self.registry = CollectorRegistry()
        self.model_info = Gauge("ratecast_model_info", "The served model (value 1)", ["version", "model"],
                                registry=self.registry)
        self.reloads = Counter("ratecast_reloads_total", "Models swapped in after start-up", registry=self.registry)

    def current(self) -> ModelService:
        """The served model (:class:`NotFound` before the first one is loaded)."""
        svc = self.service
        if svc is None:
            raise NotFound("the model is not loaded yet")
        return svc

    def install(self, service: ModelService) -> str:
        """Warm ``service`` and swap it in; returns the version it replaced ("" for the first)."""
        previous = self.service.version if self.service else ""
        service.warm(map_in_background=self.service is None)  # a reload makes the map before the swap
        self.service = service  # one assignment: requests in flight keep the model they started with
        self.model_info.clear()
        self.model_info.labels(service.version, service.model_name).set(1)
        return previous

    def add_ratings(self, user_text: str, items: list, ratings: list[float]) -> dict:
        """Fold a user's new ratings into the served model: the new model is made beside the served one, the batch
        is appended to the run's ratings log and flushed to disk, and only then is the new model swapped in (one
        assignment; one writer at a time, so no batch is lost or logged out of order). Returns the answer to the
        request; ``ValueError`` for a bad item or rating (nothing is taken)."""
        with self.lock:
            rated = self.current().with_ratings(user_text, items, ratings)
            self.current().log.append(rated.user_id, rated.items, rated.ratings)
            self.service = rated.service
        return rated.answer

    def load(self, path: Path) -> tuple[ModelService, str]:
        """Load the run at ``path`` and swap it in (one load at a time); returns it and the version it replaced."""
        with self.lock:
            service = ModelService(path)
            return service, self.install(service)

    def watch_folder(self, stop: threading.Event) -> None:
        """Every ``watch`` seconds until ``stop`` is set: a changed ``MANIFEST.json`` in the served folder swaps
        the run in (a half-written or bad run keeps the old one serving, and is tried again later)."""
        seen = manifest_stamp(self.current().run_dir)
        while not stop.wait(self.watch):
            now = manifest_stamp(self.current().run_dir)
            if now is not None and now != seen:
                try:
                    self.load(self.current().run_dir)
                    self.reloads.inc()
                except Exception:  # a half-written or bad run: keep serving the old one, try again later
                    continue
                seen = now


def manifest_stamp(path: Path) -> tuple[int, int, int] | None:
    """(mtime, size, inode) of the run's ``MANIFEST.json``, the last file a run writes; None when it is absent."""
    try:
        st = (path / "MANIFEST.json").stat()
        return st.st_mtime_ns, st.st_size, st.st_ino
    except OSError:
        return None


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Load and warm the app's run before the first request; with ``watch``, check its folder in the background
    until the app stops."""
    holder: Holder = app.state.holder
    await run_in_threadpool(holder.load, holder.run_dir)
    stop = threading.Event()
    if holder.watch:
        threading.Thread(target=holder.watch_folder, args=(stop,), name="ratecast-watch", daemon=True).start()
    yield
    stop.set()


async def get_holder(request: Request) -> Holder:
    """The dependency every endpoint takes: the app's :class:`Holder` (async: no thread hop per request)."""
    return request.app.state.holder


#: an endpoint parameter typed ``HolderDep`` receives the app's :class:`Holder`
HolderDep = Annotated[Holder, Depends(get_holder)]

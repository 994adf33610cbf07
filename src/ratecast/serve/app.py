"""The HTTP API and the explorer page: ``create_app(run_dir)`` builds a FastAPI app that loads and warms the run
once at start-up, answers under /v1, exposes /health, /ready and /metrics (Prometheus), and swaps in a newly
trained run atomically on ``POST /admin/reload`` (with the admin token) or when ``watch`` sees the folder change.
Its API docs (/docs, /redoc) load their scripts and styles from the server itself (fastapi-offline), not a CDN.
"""

from __future__ import annotations

import hmac
import os
import threading
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Optional

from fastapi import Body, FastAPI, Header, Path as PathParam, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..io import json_safe
from . import schemas as S
from .service import ModelService, NotFound

STATIC = Path(__file__).parent / "static"
#: requests with a larger body are refused with 413 (see :class:`BodyLimit`)
MAX_BODY_BYTES = 1_000_000
ADMIN_TOKEN_ENV = "RATECAST_ADMIN_TOKEN"


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": " ".join(str(message).split()), "status": status}, status_code=status)


def _offending(value) -> str:
    """``, got VALUE`` for a single offending value (a number or short text), to end a one-line error with."""
    if isinstance(value, (bool, int, float)):
        return f", got {value!r}"
    if isinstance(value, str):
        return f", got {value[:60]!r}" + ("..." if len(value) > 60 else "")
    return ""


class Holder:
    """The served model; a reload replaces it in one assignment, so each request uses one model throughout."""

    def __init__(self) -> None:
        self.service: ModelService | None = None
        self.lock = threading.Lock()


class Observe:
    """ASGI middleware: request counts and latency per endpoint (Prometheus)."""

    def __init__(self, app, registry: CollectorRegistry) -> None:
        self.app = app
        self.requests = Counter("ratecast_requests_total", "HTTP requests by endpoint, method and status",
                                ["endpoint", "method", "status"], registry=registry)
        self.latency = Histogram("ratecast_request_seconds", "HTTP request latency by endpoint", ["endpoint"],
                                 registry=registry, buckets=(.001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5))

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = [500]

        async def send_and_see(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_see)
        finally:
            self._count(scope, status[0], start)

    def _count(self, scope, status: int, start: float) -> None:
        route = scope.get("route")
        endpoint = getattr(route, "path", None) or scope.get("ratecast.endpoint") or "unmatched"
        self.requests.labels(endpoint, scope.get("method", ""), str(status)).inc()
        self.latency.labels(endpoint).observe(time.perf_counter() - start)


class BodyLimit:
    """ASGI middleware: a request body over ``max_body`` bytes is refused with 413, counted on the bytes received,
    so a chunked body (no Content-Length) is held to the limit too: the body is read here, reading stops at the
    limit, and the app gets it whole once it is known to fit. A declared length over the limit is refused unread."""

    def __init__(self, app, max_body: int) -> None:
        self.app, self.max_body = app, max_body

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers", ()))
        declared = headers.get(b"content-length")
        if declared is None and b"transfer-encoding" not in headers:  # HTTP/1.1: no body at all
            return await self.app(scope, receive, send)
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            return await self._refuse(scope, receive, send, f"request body of {int(declared)} bytes is over the "
                                                            f"limit of {self.max_body}")
        chunks, size, message = [], 0, {"type": "http.request", "more_body": True}
        while message["type"] == "http.request" and message.get("more_body", False):
            message = await receive()
            body = message.get("body", b"") if message["type"] == "http.request" else b""
            size += len(body)
            if size > self.max_body:
                return await self._refuse(scope, receive, send, f"request body of more than {self.max_body} bytes "
                                                                f"is over the limit of {self.max_body}")
            chunks.append(body)
        first = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}
                 if message["type"] == "http.request" else message]  # a disconnect goes on as it came

        async def replay():
            return first.pop() if first else await receive()

        await self.app(scope, replay, send)

    @staticmethod
    async def _refuse(scope, receive, send, message: str) -> None:
        response = _error(413, message)
        response.headers["connection"] = "close"  # the rest of the upload is not read: the connection ends here
        await response(scope, receive, send)


RECOMMENDATIONS = "/v1/users/{user_id}/recommendations"


class FastPath:
    """ASGI middleware for the hot endpoint: ``GET /v1/users/{id}/recommendations`` with at most ``k`` (no other
    option, ``k`` within the precomputed lists) is answered from the lists straight away, without the framework's
    per-request parameter handling. Everything else, invalid values included, goes on to the API (and its 422s)."""

    prefix, suffix = "/v1/users/", "/recommendations"

    def __init__(self, app, holder: "Holder") -> None:
        self.app, self.holder = app, holder

    def _k(self, query: bytes) -> int | None:
        if not query:
            return 10
        if query.startswith(b"k=") and query[2:].isdigit() and len(query) <= 6:
            return int(query[2:])
        return None

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "GET":
            path = scope["path"]
            svc = self.holder.service
            if svc is not None and path.startswith(self.prefix) and path.endswith(self.suffix):
                user = path[len(self.prefix):-len(self.suffix)]
                k = self._k(scope["query_string"])
                if user and "/" not in user and k is not None and 1 <= k <= svc.cache_k:
                    scope["ratecast.endpoint"] = RECOMMENDATIONS
                    body = svc.recommend_json(user, k)
                    await send({"type": "http.response.start", "status": 200,
                                "headers": [(b"content-type", b"application/json"),
                                            (b"content-length", str(len(body)).encode())]})
                    await send({"type": "http.response.body", "body": body})
                    return
        await self.app(scope, receive, send)


def create_app(run_dir: str | os.PathLike, *, admin_token: str | None = None, watch: float | None = None,
               max_pairs: int = S.MAX_PAIRS) -> FastAPI:
    """The app serving run folder ``run_dir``. Admin endpoints need ``admin_token`` (default: the
    ``RATECAST_ADMIN_TOKEN`` environment variable; without one they are off). With ``watch`` (seconds), the folder
    is checked that often and a newly written run is swapped in."""
    from ..runs import load_run

    run_dir = Path(run_dir)
    load_run(run_dir)  # a missing or corrupted run fails here, before a server starts
    token = (admin_token if admin_token is not None else os.environ.get(ADMIN_TOKEN_ENV)) or None
    holder = Holder()
    registry = CollectorRegistry()
    model_info = Gauge("ratecast_model_info", "The served model (value 1)", ["version", "model"], registry=registry)
    reloads = Counter("ratecast_reloads_total", "Models swapped in after start-up", registry=registry)

    def install(service: ModelService) -> str:
        previous = holder.service.version if holder.service else ""
        service.warm(map_in_background=holder.service is None)  # a reload makes the map before the swap
        holder.service = service  # one assignment: requests in flight keep the model they started with
        model_info.clear()
        model_info.labels(service.version, service.model_name).set(1)
        return previous

    def load(path: Path) -> tuple[ModelService, str]:
        with holder.lock:  # one reload at a time
            service = ModelService(path)
            return service, install(service)

    def manifest_stamp(path: Path):
        try:
            st = (path / "MANIFEST.json").stat()
            return st.st_mtime_ns, st.st_size, st.st_ino
        except OSError:
            return None

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await run_in_threadpool(load, run_dir)
        stop = threading.Event()
        if watch:
            def watcher() -> None:
                seen = manifest_stamp(holder.service.run_dir)
                while not stop.wait(watch):
                    now = manifest_stamp(holder.service.run_dir)
                    if now is not None and now != seen:
                        try:
                            load(holder.service.run_dir)
                            reloads.inc()
                        except Exception:  # a half-written or bad run: keep serving the old one, try again later
                            continue
                        seen = now

            threading.Thread(target=watcher, name="ratecast-watch", daemon=True).start()
        yield
        stop.set()

    app = FastAPIOffline(title="ratecast", version="1", lifespan=lifespan,
                         description="Recommendations, similar items and rating predictions from a trained ratecast "
                                     "run. Errors are JSON: {\"error\": ..., \"status\": ...}.",
                         swagger_ui_parameters={"validatorUrl": None})  # no badge fetched from swagger.io
    app.add_middleware(FastPath, holder=holder)
    app.add_middleware(BodyLimit, max_body=MAX_BODY_BYTES)
    app.add_middleware(Observe, registry=registry)  # added last: the outermost
    app.state.holder = holder

    def service() -> ModelService:
        svc = holder.service
        if svc is None:
            raise NotFound("the model is not loaded yet")
        return svc

    # --- errors: JSON, one line, never a traceback ------------------------------------------------------------------
    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound):
        return _error(404, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return _error(exc.status_code, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
                  for e in exc.errors()]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(x) for x in first["loc"] if x != "body") or "request"
        got = _offending(exc.errors()[0].get("input")) if errors else ""
        return JSONResponse({"error": f"{where}: {first['msg']}{got}", "status": 422, "detail": errors},
                            status_code=422)

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception):
        return _error(500, f"internal error ({type(exc).__name__})")

    # --- probes -----------------------------------------------------------------------------------------------------
    @app.get("/health", response_model=S.Health, tags=["probes"], summary="Liveness: the process answers.")
    async def health():
        return {"status": "ok"}

    @app.get("/ready", response_model=S.Ready, tags=["probes"], summary="Readiness: a model is loaded and warm.",
             responses={503: {"model": S.Ready}})
    async def ready():
        svc = holder.service
        return JSONResponse({"ready": svc is not None, "version": svc.version if svc else None},
                            status_code=200 if svc else 503)

    @app.get("/metrics", tags=["probes"], summary="Prometheus metrics: requests and latency per endpoint, model.",
             response_class=Response)
    async def metrics():
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    # --- the API ----------------------------------------------------------------------------------------------------
    @app.get(RECOMMENDATIONS, response_model=S.Recommendations, tags=["v1"],
             summary="Top-k unseen items for a user; an unknown user gets the popular fallback.")
    async def recommendations(
            user_id: str = PathParam(description="The user's id as in the training data."),
            k: int = Query(10, ge=1, le=1000, description="How many items."),
            exclude_seen: bool = Query(True, description="Leave out the items the user rated in training."),
            min_ratings: Optional[int] = Query(None, ge=0, description="Only items with at least this many "
                                                                       "training ratings.")):
        svc = service()
        if exclude_seen and min_ratings is None and k <= svc.cache_k:  # precomputed: answered on the event loop
            return JSONResponse(svc.recommend(user_id, k))
        return JSONResponse(await run_in_threadpool(svc.recommend, user_id, k, exclude_seen, min_ratings))

    @app.get("/v1/users/{user_id}/history", response_model=S.History, tags=["v1"],
             summary="The user's own training ratings, best first.", responses={404: {"model": S.ErrorBody}})
    async def history(user_id: str = PathParam(description="The user's id as in the training data."),
                      k: int = Query(10, ge=1, le=1000, description="How many items.")):
        return JSONResponse(await run_in_threadpool(service().history, user_id, k))

    @app.get("/v1/items/{item_id}/similar", response_model=S.SimilarItems, tags=["v1"],
             summary="The k items with the most similar vectors.", responses={404: {"model": S.ErrorBody}})
    async def similar(item_id: str = PathParam(description="The item's id as in the training data."),
                      k: int = Query(10, ge=1, le=1000, description="How many items."),
                      min_ratings: Optional[int] = Query(None, ge=0, description="Only items with at least this "
                                                                                 "many training ratings.")):
        return JSONResponse(await run_in_threadpool(service().similar, item_id, k, min_ratings))

    @app.get("/v1/items/search", tags=["v1"],
             summary="Items whose title contains the text, most rated first (the item with that id first).")
    async def search(q: str = Query(..., min_length=1, max_length=200,
                                    description="Text to find in titles, or an item id."),
                     limit: int = Query(20, ge=1, le=200, description="How many items at most.")):
        return JSONResponse(service().search(q, limit))

    @app.post("/v1/predict", response_model=S.Predictions, tags=["v1"],
              summary=f"Predicted ratings for (user, item) pairs (at most {max_pairs}).",
              responses={413: {"model": S.ErrorBody}})
    async def predict(body: S.PredictRequest):
        if len(body.pairs) > max_pairs:
            return _error(413, f"pairs: {len(body.pairs)} pairs is over the limit of {max_pairs}")
        return JSONResponse(await run_in_threadpool(service().predict, body.pairs, body.timestamps))

    @app.post("/v1/users", response_model=S.NewUserRecommendations, tags=["v1"],
              summary="Recommendations for a new user from ratings (fold-in on a copy) and/or demographics.",
              description="Rated items the model does not know are left out of the fold-in and listed in "
                          "`ignored_items`; if the model knows none of the rated items, the answer is 422.",
              responses={413: {"model": S.ErrorBody}, 422: {"model": S.ErrorBody}})
    async def new_user(body: S.NewUserRequest):
        if body.ratings and len(body.ratings) > S.MAX_NEW_USER_RATINGS:
            return _error(413, f"ratings: {len(body.ratings)} ratings is over the limit of "
                               f"{S.MAX_NEW_USER_RATINGS}")
        try:
            answer = await run_in_threadpool(service().new_user, body.demographics, body.ratings, body.k)
        except ValueError as exc:  # e.g. a rating off the scale
            return _error(422, str(exc))
        return JSONResponse(answer)

    @app.get("/v1/model", tags=["v1"], summary="The served run: protocol, config, test metrics, sha256.")
    async def model():
        return JSONResponse(json_safe(service().info()))

    @app.get("/v1/map", tags=["v1"], summary="The item embedding map (plotly figure JSON, as in the report).",
             description="Made when the run is loaded (or taken from the run's report.html), never on a request: "
                         "at start-up in the background, so 503 (with Retry-After) until it is made; 404 for a "
                         "model without item vectors.",
             responses={404: {"model": S.ErrorBody}, 503: {"model": S.ErrorBody}})
    async def item_map():
        svc = service()
        if svc.item_map is None and svc.item_map_pending:
            return JSONResponse({"error": "the item map is being made; ask again in a few seconds", "status": 503},
                                status_code=503, headers={"Retry-After": "5"})
        if svc.item_map is None:
            raise NotFound(svc.no_item_map)
        return Response(svc.item_map, media_type="application/json")

    # --- admin ------------------------------------------------------------------------------------------------------
    @app.post("/admin/reload", response_model=S.Reloaded, tags=["admin"],
              summary="Swap in the run folder (again, or another one) without dropping a request.",
              responses={401: {"model": S.ErrorBody}, 403: {"model": S.ErrorBody}})
    async def reload(body: Optional[S.ReloadRequest] = Body(None),
                     authorization: Optional[str] = Header(None, description="Bearer ADMIN_TOKEN")):
        if token is None:
            return _error(403, f"admin endpoints are off: start the server with {ADMIN_TOKEN_ENV} set")
        if not authorization:
            return _error(401, "admin endpoints need the header 'Authorization: Bearer <token>'")
        given = authorization.removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            return _error(403, "wrong admin token")
        path = Path(body.run_dir) if body and body.run_dir else service().run_dir
        try:
            svc, previous = await run_in_threadpool(load, path)
        except Exception as exc:  # the old model keeps serving
            return _error(422, f"run_dir {str(path)!r}: cannot be served ({exc})")
        reloads.inc()
        return {"version": svc.version, "previous": previous, "run_dir": str(svc.run_dir),
                "load_seconds": round(svc.load_seconds, 3)}

    # --- the explorer page ------------------------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(STATIC / "index.html")

    @app.get("/vendor/plotly.min.js", include_in_schema=False)
    async def plotly_js():
        import plotly

        return FileResponse(Path(plotly.__file__).parent / "package_data" / "plotly.min.js",
                            media_type="text/javascript")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def app_from_env() -> FastAPI:
    """The app for ``RATECAST_SERVE_RUN`` (what ``ratecast serve --workers N`` starts in each worker)."""
    run = os.environ.get("RATECAST_SERVE_RUN")
    if not run:
        raise RuntimeError("RATECAST_SERVE_RUN is not set")
    watch = os.environ.get("RATECAST_SERVE_WATCH")
    return create_app(run, watch=float(watch) if watch else None)

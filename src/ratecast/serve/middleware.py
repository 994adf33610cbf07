"""The ASGI middlewares around the API: request metrics (:class:`Observe`), the request body limit
(:class:`BodyLimit`) and the precomputed answers of the hot endpoint (:class:`FastPath`)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram

from .errors import error_response

if TYPE_CHECKING:
    from .holder import Holder

#: requests with a larger body are refused with 413 (see :class:`BodyLimit`)
MAX_BODY_BYTES = 1_000_000
#: the hot endpoint, answered by :class:`FastPath` when it can be
RECOMMENDATIONS = "/v1/users/{user_id}/recommendations"


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
        response = error_response(413, message)
        response.headers["connection"] = "close"  # the rest of the upload is not read: the connection ends here
        await response(scope, receive, send)


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

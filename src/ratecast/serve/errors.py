"""How the API answers errors: JSON ``{"error": ..., "status": ...}``, one line, never a traceback.
:func:`install_error_handlers` registers the handlers on an app; :func:`error_response` is the body every endpoint
and middleware uses for its own refusals."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .service import NotFound


def error_response(status: int, message: str) -> JSONResponse:
    """The JSON error answer with ``status``: ``message`` on one line (runs of white space become one space)."""
    return JSONResponse({"error": " ".join(str(message).split()), "status": status}, status_code=status)


def offending(value: Any) -> str:
    """``, got VALUE`` for a single offending value (a number or short text), to end a one-line error with."""
    if isinstance(value, (bool, int, float)):
        return f", got {value!r}"
    if isinstance(value, str):
        return f", got {value[:60]!r}" + ("..." if len(value) > 60 else "")
    return ""


async def not_found(request: Request, exc: NotFound) -> JSONResponse:
    """404 for an id the model does not know."""
    return error_response(404, str(exc))


async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """An HTTP error (an unknown path, a method not allowed) with its own status."""
    return error_response(exc.status_code, exc.detail)


async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 naming the first invalid field, its constraint and the value given; ``detail`` lists every error."""
    errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
              for e in exc.errors()]
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(x) for x in first["loc"] if x != "body") or "request"
    got = offending(exc.errors()[0].get("input")) if errors else ""
    return JSONResponse({"error": f"{where}: {first['msg']}{got}", "status": 422, "detail": errors},
                        status_code=422)


async def crashed(request: Request, exc: Exception) -> JSONResponse:
    """500 naming the exception's type, never its traceback."""
    return error_response(500, f"internal error ({type(exc).__name__})")


def install_error_handlers(app: FastAPI) -> None:
    """Register the JSON error answers on ``app``: unknown ids 404, HTTP errors as raised, invalid requests 422,
    anything else 500 (its type named, no traceback)."""
    app.add_exception_handler(NotFound, not_found)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(Exception, crashed)

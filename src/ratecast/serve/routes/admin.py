"""Admin endpoints (they need the admin token): swapping in a run without dropping a request."""

import hmac
from pathlib import Path
from typing import Optional

from fastapi import APIRouter, Body, Header
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from .. import schemas as S
from ..errors import error_response
from ..holder import Holder, HolderDep

#: the environment variable holding the admin token (without one, admin endpoints are off)
ADMIN_TOKEN_ENV = "RATECAST_ADMIN_TOKEN"

router = APIRouter(tags=["admin"])


def refusal(holder: Holder, authorization: Optional[str]) -> Optional[JSONResponse]:
    """The 403/401 answer when ``authorization`` does not carry the admin token; None when it does."""
    if holder.admin_token is None:
        return error_response(403, f"admin endpoints are off: start the server with {ADMIN_TOKEN_ENV} set")
    if not authorization:
        return error_response(401, "admin endpoints need the header 'Authorization: Bearer <token>'")
    given = authorization.removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), holder.admin_token.encode()):
        return error_response(403, "wrong admin token")
    return None


@router.post("/admin/reload", response_model=S.Reloaded,
             summary="Swap in the run folder (again, or another one) without dropping a request.",
             responses={401: {"model": S.ErrorBody}, 403: {"model": S.ErrorBody}})
async def reload(holder: HolderDep, body: Optional[S.ReloadRequest] = Body(None),
                 authorization: Optional[str] = Header(None, description="Bearer ADMIN_TOKEN")):
    refused = refusal(holder, authorization)
    if refused is not None:
        return refused
    path = Path(body.run_dir) if body and body.run_dir else holder.current().run_dir
    try:
        svc, previous = await run_in_threadpool(holder.load, path)
    except Exception as exc:  # the old model keeps serving
        return error_response(422, f"run_dir {str(path)!r}: cannot be served ({exc})")
    holder.reloads.inc()
    return {"version": svc.version, "previous": previous, "run_dir": str(svc.run_dir),
            "load_seconds": round(svc.load_seconds, 3)}

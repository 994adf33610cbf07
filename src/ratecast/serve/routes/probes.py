"""Probes for orchestrators and monitoring: liveness, readiness and Prometheus metrics."""

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .. import schemas as S
from ..holder import HolderDep

router = APIRouter(tags=["probes"])


@router.get("/health", response_model=S.Health, summary="Liveness: the process answers.")
async def health():
    return {"status": "ok"}


@router.get("/ready", response_model=S.Ready, summary="Readiness: a model is loaded and warm.",
            responses={503: {"model": S.Ready}})
async def ready(holder: HolderDep):
    svc = holder.service
    return JSONResponse({"ready": svc is not None, "version": svc.version if svc else None},
                        status_code=200 if svc else 503)


@router.get("/metrics", summary="Prometheus metrics: requests and latency per endpoint, model.",
            response_class=Response)
async def metrics(holder: HolderDep):
    return Response(generate_latest(holder.registry), media_type=CONTENT_TYPE_LATEST)

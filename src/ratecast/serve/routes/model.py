"""The served run: what it is and how it scored."""

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ...io import json_safe
from ..holder import HolderDep

router = APIRouter(tags=["v1"])


@router.get("/v1/model", summary="The served run: protocol, config, test metrics, sha256.")
async def model(holder: HolderDep):
    return JSONResponse(json_safe(holder.current().info()))

"""Predicted ratings for (user, item) pairs."""

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from .. import schemas as S
from ..errors import error_response
from ..holder import HolderDep


async def predict(body: S.PredictRequest, holder: HolderDep):
    if len(body.pairs) > holder.max_pairs:
        return error_response(413, f"pairs: {len(body.pairs)} pairs is over the limit of {holder.max_pairs}")
    return JSONResponse(await run_in_threadpool(holder.current().predict, body.pairs, body.timestamps))


def router(max_pairs: int) -> APIRouter:
    """The prediction endpoint, its documented limit ``max_pairs`` (the limit it applies is the holder's)."""
    r = APIRouter(tags=["v1"])
    r.add_api_route("/v1/predict", predict, methods=["POST"], response_model=S.Predictions,
                    summary=f"Predicted ratings for (user, item) pairs (at most {max_pairs}).",
                    responses={413: {"model": S.ErrorBody}})
    return r

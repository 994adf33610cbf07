"""Items: similar items, title search and the item embedding map."""

from typing import Optional

from fastapi import APIRouter, Path as PathParam, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from .. import schemas as S
from ..holder import HolderDep
from ..service import NotFound

router = APIRouter(tags=["v1"])


@router.get("/v1/items/{item_id}/similar", response_model=S.SimilarItems,
            summary="The k items with the most similar vectors.", responses={404: {"model": S.ErrorBody}})
async def similar(holder: HolderDep,
                  item_id: str = PathParam(description="The item's id as in the training data."),
                  k: int = Query(10, ge=1, le=1000, description="How many items."),
                  min_ratings: Optional[int] = Query(None, ge=0, description="Only items with at least this "
                                                                             "many training ratings.")):
    return JSONResponse(await run_in_threadpool(holder.current().similar, item_id, k, min_ratings))


@router.get("/v1/items/search",
            summary="Items whose title contains the text, most rated first (the item with that id first).")
async def search(holder: HolderDep,
                 q: str = Query(..., min_length=1, max_length=200,
                                description="Text to find in titles, or an item id."),
                 limit: int = Query(20, ge=1, le=200, description="How many items at most.")):
    return JSONResponse(holder.current().search(q, limit))


@router.get("/v1/map", summary="The item embedding map (plotly figure JSON, as in the report).",
            description="Made when the run is loaded (or taken from the run's report.html), never on a request: "
                        "at start-up in the background, so 503 (with Retry-After) until it is made; 404 for a "
                        "model without item vectors.",
            responses={404: {"model": S.ErrorBody}, 503: {"model": S.ErrorBody}})
async def item_map(holder: HolderDep):
    svc = holder.current()
    if svc.item_map is None and svc.item_map_pending:
        return JSONResponse({"error": "the item map is being made; ask again in a few seconds", "status": 503},
                            status_code=503, headers={"Retry-After": "5"})
    if svc.item_map is None:
        raise NotFound(svc.no_item_map)
    return Response(svc.item_map, media_type="application/json")

"""Users: top-k recommendations, a user's own ratings, new ratings of a user, and recommendations for a new
user."""

from typing import Optional

from fastapi import APIRouter, Path as PathParam, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from ...errors import DataError
from ...reasons import DEFAULT_REASONS
from .. import schemas as S
from ..errors import error_response
from ..holder import HolderDep
from ..middleware import RECOMMENDATIONS

router = APIRouter(tags=["v1"])


@router.get(RECOMMENDATIONS, response_model=S.Recommendations,
            summary="Top-k unseen items for a user; an unknown user gets the popular fallback.",
            responses={409: {"model": S.ErrorBody}, 422: {"model": S.ErrorBody}})
async def recommendations(
        holder: HolderDep,
        user_id: str = PathParam(description="The user's id as in the training data."),
        k: int = Query(10, ge=1, le=1000, description="How many items."),
        exclude_seen: bool = Query(True, description="Leave out the items the user rated in training."),
        min_ratings: Optional[int] = Query(None, ge=0, description="Only items with at least this many "
                                                                   "training ratings."),
        explain: bool = Query(False, description="Give each item its reasons (\"because you rated ...\") and "
                                                 "base, as Recommender.explain finds them."),
        explain_k: Optional[int] = Query(None, ge=1, le=100, description="Reasons per item with explain=true "
                                                                         "(default 3).")):
    svc = holder.current()
    if explain_k is not None and not explain:
        return error_response(422, f"explain_k: needs explain=true, got explain_k={explain_k} alone")
    if explain:
        try:
            return JSONResponse(await run_in_threadpool(svc.recommend_explained, user_id, k, exclude_seen,
                                                        min_ratings, explain_k or DEFAULT_REASONS))
        except DataError as exc:  # a model saved without its users' ratings has nothing to explain with
            return error_response(409, str(exc))
    if exclude_seen and min_ratings is None and k <= svc.cache_k:  # precomputed: answered on the event loop
        return JSONResponse(svc.recommend(user_id, k))
    return JSONResponse(await run_in_threadpool(svc.recommend, user_id, k, exclude_seen, min_ratings))


@router.get("/v1/users/{user_id}/history", response_model=S.History,
            summary="The user's own training ratings, best first.", responses={404: {"model": S.ErrorBody}})
async def history(holder: HolderDep,
                  user_id: str = PathParam(description="The user's id as in the training data."),
                  k: int = Query(10, ge=1, le=1000, description="How many items.")):
    return JSONResponse(await run_in_threadpool(holder.current().history, user_id, k))


@router.post("/v1/users", response_model=S.NewUserRecommendations,
             summary="Recommendations for a new user from ratings (fold-in on a copy) and/or demographics.",
             description="Rated items the model does not know are left out of the fold-in and listed in "
                         "`ignored_items`; if the model knows none of the rated items, the answer is 422.",
             responses={413: {"model": S.ErrorBody}, 422: {"model": S.ErrorBody}})
async def new_user(body: S.NewUserRequest, holder: HolderDep):
    if body.ratings and len(body.ratings) > S.MAX_NEW_USER_RATINGS:
        return error_response(413, f"ratings: {len(body.ratings)} ratings is over the limit of "
                                   f"{S.MAX_NEW_USER_RATINGS}")
    try:
        answer = await run_in_threadpool(holder.current().new_user, body.demographics, body.ratings, body.k)
    except ValueError as exc:  # e.g. a rating off the scale
        return error_response(422, str(exc))
    return JSONResponse(answer)


@router.post("/v1/users/{user_id}/ratings", response_model=S.RatingsAccepted,
             summary="New ratings of a known or a new user: the served model takes them in at once.",
             description="The user is folded in again from all their ratings (the item side of the model is fixed) "
                         "and the next recommendations for them reflect the new ratings. Each accepted request is "
                         "appended to the run's ratings log and flushed to disk before the answer, so it survives a "
                         "restart; `ratecast refit RUN` trains on it. Every item must be known and every rating on "
                         "the scale, else the answer is 422 and nothing is taken (503: the log cannot be written).",
             responses={413: {"model": S.ErrorBody}, 422: {"model": S.ErrorBody}, 503: {"model": S.ErrorBody}})
async def add_ratings(body: S.RatingsRequest, holder: HolderDep,
                      user_id: str = PathParam(description="The user's id (known to the model or not).")):
    if len(body.ratings) > S.MAX_NEW_USER_RATINGS:
        return error_response(413, f"ratings: {len(body.ratings)} ratings is over the limit of "
                                   f"{S.MAX_NEW_USER_RATINGS}")
    items, ratings = [r.item_id for r in body.ratings], [r.rating for r in body.ratings]
    try:
        answer = await run_in_threadpool(holder.add_ratings, user_id, items, ratings)
    except ValueError as exc:  # an unknown item, a rating off the scale
        return error_response(422, str(exc))
    except OSError as exc:  # the log cannot be written: nothing is taken
        return error_response(503, f"{exc.filename or 'the ratings log'}: the ratings cannot be logged "
                                   f"({exc.strerror or exc}); nothing was taken")
    return JSONResponse(answer)

"""Request and response bodies of the HTTP API (pydantic): what /docs describes."""

from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

Id = Union[int, str]
#: most (user, item) pairs one /v1/predict request may hold (more: 413)
MAX_PAIRS = 10_000
#: most ratings one /v1/users request may hold (more: 413)
MAX_NEW_USER_RATINGS = 1_000


class RequestBody(BaseModel):
    """Base of every request body: unknown fields are refused, and so is a number that is not finite (NaN or
    Infinity, which JSON parsers accept as literals) anywhere in the body."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class RecommendedItem(BaseModel):
    item_id: Id = Field(description="The item's id, as in the training data.")
    title: Optional[str] = Field(description="The item's title (null when the data has none).")
    score: float = Field(description="The predicted rating of the item for this user.")
    rank: int = Field(description="1 for the best item.")


class Reason(BaseModel):
    item_id: Optional[Id] = Field(description="A rated item that adds to the score; null for a feature.")
    title: Optional[str] = Field(description="The rated item's title (null for a feature, or when the data has "
                                             "none).")
    feature: str = Field(description="'rated R' for a rated item; else the user's metadata (e.g. "
                                     "'occupation:student') or 'prior (the mean user)'.")
    contribution: float = Field(description="How much it adds to the score.")


class ExplainedItem(RecommendedItem):
    reasons: Optional[list[Reason]] = Field(
        None, description="Only with explain=true: the explain_k largest contributions to the score, largest "
                          "first (empty for the popular fallback).")
    base: Optional[float] = Field(
        None, description="Only with explain=true: the part of the score the reasons do not explain (null for the "
                          "popular fallback).")


class Recommendations(BaseModel):
    user_id: Id = Field(description="The user asked for, typed as the model holds ids (an integer for integer "
                                    "ids, known or not; text ids stay text).")
    fallback: Optional[Literal["popular"]] = Field(
        description="'popular' when the user is unknown to the model and the list holds the items with the best "
                    "damped mean rating; null for a personal list.")
    items: list[ExplainedItem] = Field(description="Best first.")


class SimilarItem(BaseModel):
    item_id: Id = Field(description="The item's id, as in the training data.")
    title: Optional[str] = Field(description="The item's title (null when the data has none).")
    similarity: float = Field(description="Cosine similarity of the item vectors, in [-1, 1].")


class SimilarItems(BaseModel):
    item_id: Id = Field(description="The item asked for.")
    title: Optional[str] = Field(description="The item's title (null when the data has none).")
    items: list[SimilarItem] = Field(description="Most similar first; the item itself is left out.")


class PredictRequest(RequestBody):
    pairs: list[tuple[Id, Id]] = Field(
        min_length=1, description=f"(user_id, item_id) pairs, at most {MAX_PAIRS} (more: 413).",
        examples=[[[196, 242], [186, 302]]])
    timestamps: Optional[list[Optional[float]]] = Field(
        None, description="When each rating would be given, in seconds since 1970 (null: unknown), one per pair. "
                          "Models that use the day of a rating (bayesian's bias per user and day) use them; "
                          "without them a prediction is for a day the model has not seen.",
        examples=[[881250949, 891717742]])

    @model_validator(mode="after")
    def _one_time_per_pair(self):
        if self.timestamps is not None and len(self.timestamps) != len(self.pairs):
            raise ValueError(f"timestamps: {len(self.timestamps)} given for {len(self.pairs)} pairs; give one "
                             "per pair")
        return self


class Prediction(BaseModel):
    user_id: Id = Field(description="As given in the request, typed as the model holds ids (an integer for "
                                    "integer ids, also when given as text).")
    item_id: Id = Field(description="As given in the request, typed as the model holds ids.")
    rating: float = Field(description="Predicted rating, on the training scale; never NaN.")
    was_impossible: bool = Field(description="True when the user or the item is unknown: the rating is then the "
                                             "baseline (global mean plus the known side's bias).")


class Predictions(BaseModel):
    predictions: list[Prediction] = Field(description="One per pair, in the order of the request.")


class NewUserRequest(RequestBody):
    demographics: Optional[dict[str, Union[int, float, str]]] = Field(
        None, description="e.g. {\"age\": 25, \"gender\": \"F\", \"occupation\": \"student\"}; used by models "
                          "with user metadata (cold start).", examples=[{"age": 25, "gender": "F"}])
    ratings: Optional[dict[str, float]] = Field(
        None, description=f"item_id -> rating, at most {MAX_NEW_USER_RATINGS}; the user is folded in on a copy "
                          "of the model (the served model does not change).", examples=[{"50": 5, "181": 4}])
    k: int = Field(10, ge=1, le=1000, description="How many items to return.")


class NewUserRecommendations(BaseModel):
    fallback: Optional[Literal["popular"]] = Field(
        description="'popular' when neither the ratings nor the demographics could be used.")
    method: Literal["fold_in", "cold_start", "popular"] = Field(
        description="fold_in (from the ratings), cold_start (from demographics) or popular (nothing usable).")
    items: list[RecommendedItem] = Field(description="Best first; items the new user rated are left out.")
    ignored_items: list[Id] = Field(
        description="Rated items the model does not know, left out of the fold-in (typed as the model holds ids); "
                    "empty when every rated item is known. If none is known the answer is 422.")


class NewRating(RequestBody):
    item_id: Id = Field(description="A known item's id, as in the training data.", examples=[50])
    rating: float = Field(strict=True, description="A number on the model's rating scale (bounds and step).",
                          examples=[5])


class RatingsRequest(RequestBody):
    ratings: list[NewRating] = Field(
        min_length=1, description=f"The user's new ratings, at most {MAX_NEW_USER_RATINGS} (more: 413); a rating "
                                  "of an item the user rated before replaces it, and within one request the last "
                                  "one given counts.", examples=[[{"item_id": 50, "rating": 5}]])


class RatingsAccepted(BaseModel):
    user_id: Id = Field(description="The user, typed as the model holds ids (an integer for integer ids, also when "
                                    "given as text).")
    accepted: int = Field(description="How many ratings of the request were taken (all of them).")
    rating_count: int = Field(description="How many ratings the model now holds for the user (training and new).")
    new_user: bool = Field(description="True when the model did not know the user before this request.")


class HistoryItem(BaseModel):
    item_id: Id = Field(description="The item's id, as in the training data.")
    title: Optional[str] = Field(description="The item's title (null when the data has none).")
    rating: Optional[float] = Field(description="The user's training rating (null when the data is not at hand).")


class History(BaseModel):
    user_id: Id = Field(description="The user's id, as in the training data.")
    items: list[HistoryItem] = Field(description="Highest rated first (ties: most rated items first).")


class ErrorBody(BaseModel):
    error: str = Field(description="What went wrong, in one line.")
    status: int = Field(description="The HTTP status code.")


class Health(BaseModel):
    status: Literal["ok"] = Field(description="Always 'ok' when the process answers.")


class Ready(BaseModel):
    ready: bool = Field(description="True once a model is loaded and warm (else the status is 503).")
    version: Optional[str] = Field(description="The loaded model's version (first 12 hex digits of its sha256).")


class Reloaded(BaseModel):
    version: str = Field(description="The version now served.")
    previous: str = Field(description="The version served before.")
    run_dir: str = Field(description="The run folder now served.")
    load_seconds: float = Field(description="Seconds spent loading and preparing the new model.")


class ReloadRequest(RequestBody):
    run_dir: Optional[str] = Field(None, description="Another run folder to serve from now on (default: the "
                                                     "served folder, read again).")

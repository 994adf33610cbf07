"""What a model can do, written down once per model class as one record (``RatingModel.capabilities``).

The estimator, the service, the saved lookups, the report and the evaluation ask a model's record, never its name.
A model class declares ``capabilities: ClassVar[Capabilities] = Capabilities(...)`` only where it differs from the
default record. Whether the training engine fits a model is not a capability: it follows from the model's fitters
(``RatingModel.trained_by_gradient``)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Capabilities:
    """The capabilities of a model class (defaults: a factor model with no special inputs)."""

    #: whether the item and user tables are vectors worth comparing: similar items and users, embedding maps, the
    #: vectors kept in ``lookup.npz`` (read by the recommender, the service, the lookups, the report and evaluation)
    has_vectors: bool = True
    #: whether the wanted features are used only where the training data has them, else a missing one is an error
    #: (read by the recommender when it fits the feature encoder)
    features_where_available: bool = False
    #: whether pairs may carry a ``day`` input (days since 1970, -1 unknown) that shifts their rating, e.g. a bias
    #: per user and day; lists are made without a day (read by the recommender when it fits and predicts)
    uses_days: bool = False
    #: whether ``score_ratings`` reads inputs ``unique_user`` (distinct users) and ``user_row`` (each pair's position
    #: among them), so that a per-user part of the rating is computed once per user (read by the ranking programs)
    rates_by_user: bool = False

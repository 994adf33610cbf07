"""Why each item of a recommendation list is there, in words: the largest contributions that
:meth:`ratecast.Recommender.explain` finds for every listed item, the rated items named by their titles. The command
line (``recommend --explain``), the API (``explain=true``) and the report show these."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .datasets.validate import plain_value
from .explain import PRIOR

#: reasons per item where none is asked for
DEFAULT_REASONS = 3


def _title(value: Any) -> str | None:
    """A title as text; a missing one (None or NaN) is None."""
    return None if value is None or value != value else str(value)


@dataclass(frozen=True)
class Reason:
    """One contribution to a listed item's score: a rated item (``item_id`` and its ``title``) or, where
    ``item_id`` is None, a feature (the user's metadata, or the prior)."""

    item_id: Any
    title: str | None
    feature: str
    contribution: float

    def text(self) -> str:
        """The reason in words, e.g. ``because you rated Star Wars (1977) (+0.31)``."""
        amount = f"({self.contribution:+.2f})"
        if self.item_id is not None:
            return f"because you rated {self.title or f'item {self.item_id}'} {amount}"
        if self.feature == PRIOR:
            return f"from the average user's taste {amount}"
        return f"because of your {self.feature} {amount}"

    def to_dict(self) -> dict:
        """The reason as JSON: ``item_id``, ``title``, ``feature`` and ``contribution``."""
        return asdict(self)


@dataclass(frozen=True)
class Explained:
    """The largest contributions to one listed item's score, largest first, and ``base``: the part of the score
    they do not explain (``attrs["base"]`` of :meth:`ratecast.Recommender.explain`)."""

    reasons: list[Reason]
    base: float

    def to_dict(self) -> dict:
        """``{"reasons": [...], "base": ...}``, as the API and ``recommend --explain --json`` give them."""
        return {"reasons": [r.to_dict() for r in self.reasons], "base": self.base}


def explain_list(rec, user_id, item_ids, k: int = 3) -> list[Explained]:
    """The ``k`` largest contributions to ``user_id``'s score of each of ``item_ids`` (a list the recommender
    made for them), in the order of ``item_ids``."""
    out = []
    for frame in rec.explain_items(user_id, list(item_ids), k=k):
        rated = [i for i in frame["item_id"] if i is not None]
        titles = dict(zip(rated, rec.titles(np.array(rated, dtype=object)))) if rated else {}
        reasons = [Reason(plain_value(i), None if i is None else _title(titles.get(i)), str(f), float(c))
                   for i, f, c in zip(frame["item_id"], frame["feature"], frame["contribution"])]
        out.append(Explained(reasons, float(frame.attrs["base"])))
    return out

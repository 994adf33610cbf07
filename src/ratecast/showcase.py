"""The demo's line-up: what it trains (two references, the lab's four models, the recommended presets), the users
whose lists it shows side by side, and the winner of each column of its results table.

Nothing here trains or loads a model; ``ratecast demo`` (``ratecast.cli.demo``) does the work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

#: the references every model must beat: the most popular items, and damped user and item biases
REFERENCES = ("popularity", "baseline")
#: the lab's four models, trained as the lab trained them (batch 64, its epochs and embedding sizes)
LAB = ("dot", "deep", "hybrid", "classification")
#: the recommended presets (``ratecast.presets``), at their validated settings
PRESETS = ("fast", "topn", "accurate")
#: the lab's settings per model (``biased_dot`` too, although the demo does not train it unless asked)
LAB_SETTINGS = {"popularity": {"embedding_dim": 1, "epochs": 10}, "baseline": {"embedding_dim": 1, "epochs": 10},
                "dot": {"embedding_dim": 64, "epochs": 10}, "biased_dot": {"embedding_dim": 64, "epochs": 10},
                "deep": {"embedding_dim": 64, "epochs": 10}, "hybrid": {"embedding_dim": 64, "epochs": 10},
                "classification": {"embedding_dim": 16, "epochs": 15}}
LAB_BATCH = 64
DEFAULT = (*REFERENCES, *LAB, *PRESETS)
#: the columns of the results table with a winner, and which way is better
BETTER = {"mae": "min", "rmse": "min", "recall@10": "max", "ndcg@10": "max"}


@dataclass(frozen=True)
class Entry:
    """One row of the demo: its name (the run folder), what it is, and the model and options it trains."""

    name: str
    kind: str  # "reference", "lab" or "preset"
    model: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """How the table names it: the preset with its model (``topn (implicit)``), else the model."""
        return f"{self.name} ({self.model})" if self.kind == "preset" else self.name


def names() -> list[str]:
    """Every name the demo accepts in ``--models``."""
    return [*REFERENCES, *LAB, "biased_dot", *PRESETS]


def lineup(chosen: list[str], epochs: int | None = None) -> list[Entry]:
    """The entries named in ``chosen`` (see :func:`names`), in that order. ``epochs`` (quick runs) replaces the
    epochs of every model trained by gradient; the presets otherwise keep their own settings."""
    from . import presets
    from .models import MODELS

    bad = [n for n in chosen if n not in names()]
    if bad or not chosen:
        raise ValueError(f"--models must name models from {names()}, got {bad or chosen!r}")
    entries = []
    for name in chosen:
        if name in PRESETS:
            model, params = presets.resolve(name)
            kind = "preset"
        else:
            model, params = name, {**LAB_SETTINGS[name], "batch_size": LAB_BATCH}
            kind = "reference" if name in REFERENCES else "lab"
        if epochs is not None and MODELS[model].trained_by_gradient:
            params = {**params, "epochs": epochs}
        entries.append(Entry(name, kind, model, dict(params)))
    return entries


def winners(table: pd.DataFrame) -> dict[str, Any]:
    """The row label (index) of the best value of each column of :data:`BETTER` that ``table`` holds (the first
    on a tie); a column without a value has no winner."""
    best = {}
    for column, way in BETTER.items():
        if column in table:
            values = pd.to_numeric(table[column], errors="coerce")
            if values.notna().any():
                best[column] = values.idxmin() if way == "min" else values.idxmax()
    return best


def pick_users(train, items: pd.DataFrame | None, users: pd.DataFrame | None, first: Any = 5
               ) -> list[tuple[str, Any]]:
    """Up to three training users whose lists tell the models apart, each with a short description: ``first``
    (user 5 of MovieLens; else the first user), the user with the fewest training ratings (a student, when the
    data says who is one: a cold start), and a fan of the most rated item (its top rating; of those, the one with
    the fewest training ratings). ``train`` holds the training ratings (user_id, item_id, rating)."""
    counts = train.groupby("user_id", sort=True).size()
    chosen: list[tuple[str, Any]] = []

    def add(label: str, user: Any) -> None:
        user = user.item() if hasattr(user, "item") else user  # a plain id, as JSON writes it
        if all(user != u for _, u in chosen):
            chosen.append((label, user))

    start = first if first in counts.index else counts.index[0]
    add(f"user {start} ({counts[start]} training ratings)", start)
    pool = counts
    if users is not None and "occupation" in users:
        students = users.index[users["occupation"].astype(str).str.lower() == "student"]
        if counts.index.isin(students).any():
            pool = counts[counts.index.isin(students)]
    cold = pool.drop([u for _, u in chosen], errors="ignore")
    if len(cold):
        user = cold.sort_values(kind="stable").index[0]
        who = "a student" if pool is not counts else "the user"
        add(f"user {user}: {who} with the fewest training ratings ({counts[user]}), a cold start", user)
    top_item = train.groupby("item_id").size().sort_values(ascending=False, kind="stable").index[0]
    rated = train[train["item_id"] == top_item]
    fans = rated.loc[rated["rating"] == rated["rating"].max(), "user_id"]
    fans = counts[counts.index.isin(fans)].drop([u for _, u in chosen], errors="ignore")
    if len(fans):
        user = fans.sort_values(kind="stable").index[0]
        title = _title(items, top_item)
        add(f"user {user}: a fan of {title} (rated it {_rating(rated['rating'].max())}; {counts[user]} training "
            "ratings)", user)
    return chosen


def side_by_side(lists: dict[str, pd.DataFrame], k: int) -> pd.DataFrame:
    """Lists of several models as one frame: a row per rank (1..k), a column per model, each cell the item's title
    (else its id); a blank where a list is shorter."""
    columns = {}
    for name, df in lists.items():
        names_ = [str(t) if isinstance(t, str) and t else str(i)
                  for i, t in zip(df["item_id"], df["title"] if "title" in df else [None] * len(df))]
        columns[name] = (names_ + [""] * k)[:k]
    return pd.DataFrame(columns, index=pd.RangeIndex(1, k + 1, name="rank"))


def _title(items: pd.DataFrame | None, item: Any) -> str:
    if items is not None and "title" in items and item in items.index:
        value = items.at[item, "title"]
        if isinstance(value, str) and value:
            return value
    return f"item {item}"


def _rating(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


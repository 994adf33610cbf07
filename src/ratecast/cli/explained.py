"""``ratecast recommend --explain``: a user's list with each item's top reasons, as plain lines or JSON."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text

from .console import num, out, print_json

if TYPE_CHECKING:
    import pandas as pd


def print_explained(rec, user_id, df: "pd.DataFrame", k: int | None, as_json: bool, title: str) -> None:
    """Print the list ``df`` that ``rec`` made for ``user_id``, each item followed by its ``k`` top reasons
    (default :data:`ratecast.reasons.DEFAULT_REASONS`; see :mod:`ratecast.reasons`): one plain line each (never a
    table), or JSON records with ``reasons`` and ``base``."""
    from ..reasons import DEFAULT_REASONS, explain_list

    explained = explain_list(rec, user_id, df["item_id"].tolist(), k=k or DEFAULT_REASONS)
    if as_json:
        records = df.to_dict(orient="records")
        return print_json([{**r, **e.to_dict()} for r, e in zip(records, explained)])
    out.print(Text(title, style="bold"), soft_wrap=True)
    for rank, (item_id, item_title, score, why) in enumerate(
            zip(df["item_id"], df["title"], df["score"], explained), start=1):
        name = item_title if isinstance(item_title, str) else str(item_id)
        lines = [f"{rank}. {name} (predicted {num(score, 2)})"]
        lines += [f"   {reason.text()}" for reason in why.reasons]
        lines.append(f"   the rest of the score: {num(why.base, 2)}")
        for line in lines:
            out.print(Text(line), soft_wrap=True, highlight=False)


def check_explain_options(explain: bool, explain_k: int | None, all_users: bool, out_file) -> None:
    """--explain lists one user's reasons on the screen or as JSON; --explain-k needs it (usage errors otherwise)."""
    import typer

    if explain_k is not None and not explain:
        raise typer.BadParameter("--explain-k needs --explain", param_hint="'--explain-k'")
    if explain and all_users:
        raise typer.BadParameter("--explain explains one user's list: give --user ID, not --all",
                                 param_hint="'--explain'")
    if explain and out_file is not None:
        raise typer.BadParameter("--explain prints the reasons (as JSON with --json); leave out --out",
                                 param_hint="'--explain'")

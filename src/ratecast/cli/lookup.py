"""``ratecast evaluate|recommend|predict|similar``: a trained run's scores, lists and neighbours."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

import typer

from ..errors import UnknownIdError, argument_names
from .console import (detail, elapsed, emit_table, handle_errors, info, lists, num, out, print_frame, print_json,
                      progress_line, step)
from .explained import check_explain_options, print_explained
from .options import AsJson, Quiet, Verbose, check_run_options, check_table_out, open_run, positive


@handle_errors
def evaluate(run_dir: Path = typer.Argument(..., help="Run directory."),
             split: Optional[str] = typer.Option(None, "--split", help="Evaluate on another split's test set."),
             quiet: bool = Quiet, verbose: bool = Verbose, as_json: bool = AsJson) -> None:
    """Evaluate a run's model on its test set (or another split's, reporting any overlap with training)."""
    from ..runs import make_split, test_metrics

    run = open_run(run_dir)
    if split is not None:
        check_run_options(split, run.spec.data)
    spec = run.spec if split is None else dataclasses.replace(run.spec, split=split)
    split_ = make_split(run.load_data(spec), spec)  # the data is checked before the long steps
    test = split_.test
    step("loading the model")  # logs get a timed line per long step
    rec = run.recommender()
    step(f"evaluating on the test set of split {spec.split}")
    metrics = test_metrics(rec, split_, spec.seed)[0]  # lists of a sample of the test users where there are many
    r = test.ratings
    overlap = int(rec.seen_mask(r["user_id"].to_numpy(), r["item_id"].to_numpy()).sum())
    metrics["test_ratings_seen_in_training"] = overlap
    if as_json:
        return print_json({"run": str(run_dir), "split": spec.split, "test": metrics})
    out.print(f"{run_dir} on split {spec.split}: MAE {num(metrics.get('mae'))}, RMSE {num(metrics.get('rmse'))}, "
              f"n={metrics['n']}; {lists(metrics)}", highlight=False)
    if overlap:
        out.print(f"[yellow]warning:[/] {overlap} of these test ratings were in the model's training data")




@handle_errors
def recommend(run_dir: Path = typer.Argument(..., help="Run directory."),
              user: Optional[str] = typer.Option(None, "--user", help="User id."),
              k: int = typer.Option(10, "-k", "--k", help="How many items."),
              min_ratings: Optional[int] = typer.Option(None, "--min-ratings", help="Only items rated this often."),
              all_users: bool = typer.Option(False, "--all", help="Every user (write with --out)."),
              out_file: Optional[Path] = typer.Option(None, "--out", help="Write CSV/TSV/Parquet instead."),
              overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out file."),
              explain: bool = typer.Option(
                  False, "--explain", help="Print each item's top reasons (\"because you rated ...\"); this loads "
                                           "the full model, so it takes longer."),
              explain_k: Optional[int] = typer.Option(None, "--explain-k", help="Reasons per item with --explain "
                                                                                "(default 3)."),
              quiet: bool = Quiet, verbose: bool = Verbose, as_json: bool = AsJson) -> None:
    """Top-k unseen items for a user (or every user with --all)."""
    positive("-k", k)
    positive("--min-ratings", min_ratings, zero_ok=True)
    positive("--explain-k", explain_k)
    check_explain_options(explain, explain_k, all_users, out_file)
    if all_users and user is not None:
        raise typer.BadParameter("give --user ID or --all, not both", param_hint="'--user'")
    if not all_users and user is None:
        raise typer.BadParameter("missing: give --user ID (or --all)", param_hint="'--user'")
    check_table_out(out_file, overwrite)
    if all_users and out_file is not None:  # written a batch of users at a time, with progress
        _recommend_all_to(open_run(run_dir).recommender(), out_file, k=k, min_ratings=min_ratings, as_json=as_json)
        return
    if all_users:
        df = open_run(run_dir).recommender().recommend_all(k=k, min_ratings=min_ratings)
    elif explain:  # reasons need the model (the stored tables cannot explain a list)
        from ..datasets.dataset import id_from_text

        rec = open_run(run_dir).recommender()
        uid = id_from_text(rec.user_index, user)
        if uid not in rec.user_index:
            raise UnknownIdError(f"unknown user id {user!r}: not in this model's training data")
        df = rec.recommend(uid, k=k, min_ratings=min_ratings)
        print_explained(rec, uid, df, explain_k, as_json, f"Recommendations for user {user}, with their reasons")
        return None if as_json else _empty_hint(df, min_ratings)
    else:
        df = _user_list(run_dir, user, k, min_ratings)
    if emit_table(df, out_file, as_json, f"Recommendations for user {user}" if not all_users else "Recommendations",
                  wrap=("title",)):
        _empty_hint(df, min_ratings)


def _recommend_all_to(rec, out_file: Path, *, k: int, min_ratings: Optional[int], as_json: bool) -> None:
    """``recommend --all --out FILE``: every user's list written to ``FILE`` as it is ranked (one batch of users in
    memory at a time), a progress line at every tenth of the users."""
    from ..io import write_table_parts

    shown = [0]

    def progress(done: int, total: int) -> None:
        tenth = 10 * done // max(total, 1)
        if tenth > shown[0] or done == total:
            shown[0] = tenth
            progress_line(f"ranked {done:,} of {total:,} users")

    rows = write_table_parts(rec.recommend_all_parts(k=k, min_ratings=min_ratings, on_progress=progress), out_file)
    if as_json:
        print_json({"out": str(out_file), "rows": rows})
    else:
        out.print(f"wrote {rows} rows to {out_file}", highlight=False)


@handle_errors
def predict(run_dir: Path = typer.Argument(..., help="Run directory."),
            pairs: Path = typer.Option(..., "--pairs", help="CSV/TSV (header row) or Parquet of (user, item) pairs."),
            user_col: str = typer.Option("user_id", "--user-col", help="User id column of --pairs."),
            item_col: str = typer.Option("item_id", "--item-col", help="Item id column of --pairs."),
            timestamp_col: Optional[str] = typer.Option(
                None, "--timestamp-col", help="Seconds since 1970, for models that use the day of a rating."),
            out_file: Optional[Path] = typer.Option(None, "--out", help="Write CSV/TSV/Parquet instead."),
            overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out file."),
            quiet: bool = Quiet, verbose: bool = Verbose, as_json: bool = AsJson) -> None:
    """Predicted ratings for the pairs of a file, each with known_user, known_item and was_impossible (an unknown
    user or item gets its baseline rating)."""
    from ..datasets.readers import read_pairs

    check_table_out(out_file, overwrite)
    with argument_names({"user_col": "--user-col", "item_col": "--item-col", "timestamp_col": "--timestamp-col"}):
        frame = read_pairs(pairs, user_col=user_col, item_col=item_col, timestamp_col=timestamp_col)
    from ..lookup import answer_predict

    df = _stored(answer_predict(run_dir, frame, user_col=user_col, item_col=item_col, timestamp_col=timestamp_col),
                 run_dir)
    if df is None:
        df = _model_predictions(run_dir, frame, user_col, item_col, timestamp_col)
    emit_table(df, out_file, as_json, f"Predictions for {pairs.name}", noun="predictions")


@handle_errors
def similar(run_dir: Path = typer.Argument(..., help="Run directory."),
            item: str = typer.Option(..., "--item", help="Item id."),
            k: int = typer.Option(10, "-k", "--k", help="How many items."),
            min_ratings: Optional[int] = typer.Option(None, "--min-ratings", help="Only items rated this often."),
            quiet: bool = Quiet, verbose: bool = Verbose, as_json: bool = AsJson) -> None:
    """Items most similar to an item (cosine similarity of learned embeddings)."""
    positive("-k", k)
    positive("--min-ratings", min_ratings, zero_ok=True)
    from ..lookup import answer_similar

    found = _stored(answer_similar(run_dir, item, k=k, min_ratings=min_ratings), run_dir)
    if found is not None:
        df, heading = found
    else:
        from ..datasets.dataset import id_from_text

        rec = open_run(run_dir).recommender()
        iid = id_from_text(rec.item_index, item)
        if iid not in rec.item_index:
            raise UnknownIdError(f"unknown item id {item!r}: not in this model's training data")
        df, heading = rec.similar_items(iid, k=k, min_ratings=min_ratings), rec.titles([iid])[0] or iid
    if as_json:
        return print_json(df.to_dict(orient="records"))
    print_frame(df, f"Most similar to {heading}", wrap=("title",))
    _empty_hint(df, min_ratings)


def _user_list(run_dir: Path, user: str, k: int, min_ratings: int | None):
    """A user's list: from the run's stored tables where they hold it (no model loaded), else from the model."""
    from ..datasets.dataset import id_from_text
    from ..lookup import answer_recommend

    df = _stored(answer_recommend(run_dir, user, k=k, min_ratings=min_ratings), run_dir)
    if df is not None:
        return df
    rec = open_run(run_dir).recommender()
    uid = id_from_text(rec.user_index, user)
    if uid not in rec.user_index:
        raise UnknownIdError(f"unknown user id {user!r}: not in this model's training data")
    return rec.recommend(uid, k=k, min_ratings=min_ratings)


def _model_predictions(run_dir: Path, frame, user_col: str, item_col: str, timestamp_col: str | None):
    """The pairs of ``frame`` rated by the run's model."""
    from ..datasets.dataset import id_from_text

    rec = open_run(run_dir).recommender()

    def ids(index, column):  # text as --user reads it; Parquet ids as stored
        return column.map({v: id_from_text(index, v) if isinstance(v, str) else v for v in column.unique()}).to_numpy(
            object)

    return rec.predict_details(ids(rec.user_index, frame[user_col]), ids(rec.item_index, frame[item_col]),
                               None if timestamp_col is None else frame[timestamp_col].to_numpy())


def _stored(answer, run_dir: Path):
    """A lookup's ``answer`` from the run's stored tables, said with -v; None (the full model answers) passes on."""
    if answer is not None:
        detail(f"answered from {run_dir}'s stored tables (model not loaded), {elapsed():.1f} s")
    return answer


def _empty_hint(df, min_ratings: int | None) -> None:
    """Say why a list came out empty when --min-ratings left every item out."""
    if len(df) == 0 and min_ratings:
        info(f"no item left: none with {min_ratings} or more training ratings qualifies; lower --min-ratings")


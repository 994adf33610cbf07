"""``ratecast demo``: the lab's models beside the recommended presets and the references, end to end (train, compare,
show a few users' lists side by side, write a report per model)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .compare import comparison_row
from .console import Verbosity, ci, handle_errors, num, out, print_json, progress_line, show, verbosity
from .options import AsJson, DataHome, Quiet, Verbose, data_home_folder, positive

#: items per list shown side by side, and the models whose lists are shown there when they were trained
SHOWN_K = 5
SHOWN_MODELS = ("popularity", "deep", "topn", "accurate")
#: the list length whose hits (the user's liked test items) are counted for every model
HITS_K = 10


@handle_errors
def demo(out_dir: Path = typer.Option(Path("ratecast-demo"), "--out", help="Folder for the runs and reports."),
         data: str = typer.Option("ml-100k", "--data", help="MovieLens release or ratings file."),
         models: str = typer.Option("popularity,baseline,dot,deep,hybrid,classification,fast,topn,accurate",
                                    "--models", help="Comma-separated: references (popularity, baseline), the lab's "
                                                     "models (dot, deep, hybrid, classification, biased_dot) and "
                                                     "presets (fast, topn, accurate)."),
         epochs: Optional[int] = typer.Option(None, "--epochs", help="Override the epochs of every model trained by "
                                                                     "gradient (quick runs)."),
         data_home: Optional[Path] = DataHome, quiet: bool = Quiet, verbose: bool = Verbose,
         as_json: bool = AsJson) -> None:
    """The lab's four models beside the recommended presets (fast, topn, accurate) and two references (popularity,
    damped biases), on one split of ML-100k: one table with the best of each column marked, three users' lists side
    by side, and a report page per model."""
    import pandas as pd
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from ..io import check_output_folder, lock_output, write_json, write_text
    from ..report import build_report
    from ..runs import RunSpec, load_data, load_run, make_split, train_run
    from ..showcase import lineup, pick_users, winners

    positive("--epochs", epochs)
    entries = lineup([m.strip() for m in models.split(",") if m.strip()], epochs)
    home = data_home_folder(data_home)
    marker = "demo.json"
    with lock_output(out_dir):
        check_output_folder(out_dir, overwrite=True, marker=marker)  # a demo folder is refreshed, nothing else
        base = RunSpec(data=data, split="holdout", seed=0, data_home=home)
        rows, lists = [], {}
        talk = verbosity() >= Verbosity.NORMAL
        live = talk and not as_json and out.is_terminal  # spinners on a terminal; elsewhere a plain line per step
        if talk and not as_json:
            out.print(f"[bold]ratecast demo[/] on {data}: {', '.join(e.name for e in entries)}. One split (holdout "
                      "test_size=0.2 random_state=0); every setting was chosen on validation data, and the test set "
                      "only scores. The lab's models train as the lab did (batch 64, early stopping on a 10% "
                      "validation split of train); the presets at their validated settings.", highlight=False)
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=out,
                      transient=False, disable=not live) as progress:

            def say(task, description: str) -> None:
                progress.update(task, description=description)
                if not live:
                    progress_line(description)

            task = progress.add_task(f"loading {data}", total=None)
            ds = load_data(base, progress=talk)
            split = make_split(ds, base)
            users = pick_users(split.train.ratings, ds.items, ds.users)
            liked = _liked(split.test.ratings, users, ds.rating_scale.liked_threshold)
            say(task, f"loaded {ds.name}: {len(ds.ratings)} ratings")
            progress.stop_task(task)
            out_dir.mkdir(parents=True, exist_ok=True)
            write_json(out_dir / marker, {"data": data, "models": [e.name for e in entries], "epochs": epochs})
            for entry in entries:
                spec = RunSpec(data=data, model=entry.model, split=base.split, seed=base.seed, params=entry.params,
                               data_home=base.data_home)
                task = progress.add_task(entry.name, total=None)

                def step(message: str, task=task, name=entry.name) -> None:
                    say(task, f"{name}: {message}")

                run_dir = out_dir / entry.name
                train_run(spec, run_dir, overwrite=True, dataset=ds, on_step=step,
                          verbose=verbosity() >= Verbosity.VERBOSE)
                run = load_run(run_dir)
                build_report(run, map_method=None, on_step=step)  # light pages: no t-SNE map (minutes in all)
                rec = run.recommender()
                lists[entry.name] = {user: rec.recommend(user, k=HITS_K) for _, user in users}
                rows.append({"name": entry.name, "kind": entry.kind, **comparison_row(run),
                             "report": str(run_dir / "report.html")})
                say(task, f"{entry.name}: done (test MAE {num(rows[-1]['mae'])}, RMSE {num(rows[-1]['rmse'])}, "
                          f"recall@10 {num(rows[-1]['recall@10'])})")
                progress.stop_task(task)
                del run, rec  # one model in memory at a time
        table = pd.DataFrame(rows).drop(columns=["run"])
        write_text(out_dir / "results.csv", table.drop(columns=["report"]).to_csv(index=False))
    best = {column: table.at[row, "name"] for column, row in winners(table).items()}
    if as_json:
        return print_json({"out": str(out_dir), "table": str(out_dir / "results.csv"), "best": best,
                           "runs": [{**r, "path": str(out_dir / r["name"])} for r in rows],
                           "lists": [{"user": user, "about": about,
                                      "items": {name: found[user]["item_id"].tolist() for name, found in lists.items()}}
                                     for about, user in users]})
    _results(table, best, {e.name: e.label for e in entries})
    _lists(users, lists, liked)
    out.print("Reports, one page per model (metrics with intervals, beyond-accuracy figures, loss curves, similar "
              "items, sample lists; `ratecast report RUN` adds the item map):", highlight=False)
    for r in rows:
        out.print(f"  {r['name']}: {r['report']}", highlight=False)
    out.print(f"table: {out_dir / 'results.csv'}", highlight=False)


def _results(table, best: dict[str, str], labels: dict[str, str]) -> None:
    """The results table, 80 columns wide: a row per model (references, the lab's models, the presets, a blank line
    between the groups), the best value of each column marked with *."""
    from rich import box
    from rich.table import Table

    def mark(row, column: str, text: str) -> str:
        return f"{text}*" if best.get(column) == row["name"] else f"{text} "

    grid = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0))
    grid.add_column("model", no_wrap=True)
    for name in ("MAE", "95% CI", "RMSE", "recall@10", "NDCG@10", "fit s"):
        grid.add_column(name, justify="right", no_wrap=True)
    kind = None
    for _, r in table.iterrows():
        if kind is not None and r["kind"] != kind:
            grid.add_section()
        kind = r["kind"]
        grid.add_row(labels.get(r["name"], r["name"]), mark(r, "mae", num(r["mae"])), ci(r["mae_ci95"], 3),
                     mark(r, "rmse", num(r["rmse"])), mark(r, "recall@10", num(r["recall@10"])),
                     mark(r, "ndcg@10", num(r["ndcg@10"])), num(r["fit_s"], 1))
    show(grid, "Test results on the lab split: ratings (MAE, RMSE) and top-10 lists over the whole catalogue")
    groups = {"reference": "the references", "lab": "the lab's models", "preset": "the recommended presets"}
    shown = ", ".join(groups[k] for k in dict.fromkeys(table["kind"]))
    out.print(f"Rows: {shown}. * the best of its column. recall@10 and NDCG@10: each test user's list ranks every "
              "item they did not rate in training; relevant = a liked test rating.", highlight=False)


def _liked(test, users: list, threshold: float) -> dict:
    """The items each shown user liked in the ``test`` ratings (rated at or above ``threshold``)."""
    good = test[test["rating"] >= threshold]
    return {user: set(good.loc[good["user_id"] == user, "item_id"].tolist()) for _, user in users}


def _lists(users: list, lists: dict[str, dict], liked: dict) -> None:
    """A few users' lists side by side, and how many of each user's liked test items each model's list holds."""
    from rich import box
    from rich.table import Table

    from ..showcase import side_by_side

    shown = [m for m in SHOWN_MODELS if m in lists]
    if len(shown) < 2:  # a demo of other models: the first ones trained
        shown = list(lists)[:len(SHOWN_MODELS)]
    for about, user in users:
        frame = side_by_side({m: lists[m][user].head(SHOWN_K) for m in shown}, SHOWN_K)
        grid = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0))
        grid.add_column("#", justify="right", no_wrap=True)
        for m in frame.columns:
            grid.add_column(m, overflow="fold")
        for rank, row in frame.iterrows():
            grid.add_row(str(rank), *row.tolist())
        show(grid, f"Top {SHOWN_K} for {about}")
        hits = ", ".join(f"{m} {len(liked[user] & set(found[user]['item_id'].tolist()))}"
                         for m, found in lists.items())
        out.print(f"user {user}'s liked test items ({len(liked[user])}) in each model's top {HITS_K}: {hits}",
                  highlight=False)

"""The demo's line-up (ratecast.showcase): what it trains, the users it shows, the winners of its table."""

import pandas as pd
import pytest

from ratecast import showcase
from tests.synthetic import make_dataset


def test_the_default_lineup_is_references_lab_models_and_presets_at_their_own_settings():
    entries = showcase.lineup(list(showcase.DEFAULT))
    kinds = {e.name: e.kind for e in entries}
    assert [n for n, k in kinds.items() if k == "reference"] == ["popularity", "baseline"]
    assert [n for n, k in kinds.items() if k == "lab"] == ["dot", "deep", "hybrid", "classification"]
    presets = {e.name: e for e in entries if e.kind == "preset"}
    assert {n: e.model for n, e in presets.items()} == {"fast": "biased_dot", "topn": "implicit",
                                                        "accurate": "bayesian"}
    from ratecast import presets as P

    for name, entry in presets.items():
        assert entry.params == P.resolve(name)[1] and entry.label == f"{name} ({entry.model})"
    lab = {e.name: e.params for e in entries if e.kind != "preset"}
    assert lab["deep"] == {"embedding_dim": 64, "epochs": 10, "batch_size": 64}
    assert lab["classification"]["epochs"] == 15


def test_epochs_override_the_models_trained_by_gradient_only():
    entries = {e.name: e for e in showcase.lineup(["dot", "fast", "accurate"], epochs=1)}
    assert entries["dot"].params["epochs"] == 1 and entries["fast"].params["epochs"] == 1
    assert "epochs" not in entries["accurate"].params  # sampling sweeps, no epochs


def test_unknown_names_are_refused_with_the_accepted_ones():
    with pytest.raises(ValueError, match=r"--models must name models from .*'topn'.*got \['svd'\]"):
        showcase.lineup(["dot", "svd"])
    with pytest.raises(ValueError, match="--models must name models"):
        showcase.lineup([])


def test_winners_are_the_lowest_errors_and_the_highest_list_figures():
    table = pd.DataFrame({"name": ["a", "b", "c"], "mae": [0.7, 0.69, 0.71], "rmse": [0.9, 0.95, 0.87],
                          "recall@10": [0.1, 0.4, None], "ndcg@10": [None, None, None]})
    best = {column: table.at[row, "name"] for column, row in showcase.winners(table).items()}
    assert best == {"mae": "b", "rmse": "c", "recall@10": "b"}  # a column without a value has no winner


def test_users_shown_are_user_5_a_cold_start_student_and_a_fan_of_the_most_rated_item():
    ds = make_dataset(n_users=40, n_items=30, density=0.5, seed=3)
    train = ds.ratings
    counts = train.groupby("user_id").size()
    picked = showcase.pick_users(train, ds.items, ds.users)
    assert [user for _, user in picked][0] == 5 and len({u for _, u in picked}) == len(picked) == 3
    (_, first), (cold_label, cold), (fan_label, fan) = picked
    students = ds.users.index[ds.users["occupation"] == "student"]
    assert cold in students and counts[cold] == counts[counts.index.isin(students)].drop(first, errors="ignore").min()
    assert "student" in cold_label and f"({counts[cold]})" in cold_label
    top = train.groupby("item_id").size().idxmax()
    rated = train[(train["item_id"] == top) & (train["user_id"] == fan)]
    assert rated["rating"].iloc[0] == train.loc[train["item_id"] == top, "rating"].max()
    assert ds.items.at[top, "title"] in fan_label and isinstance(fan, int)


def test_users_shown_without_metadata_are_still_three_distinct_users():
    ratings = make_dataset(seed=1).ratings
    picked = showcase.pick_users(ratings, None, None, first="nobody")
    users = [u for _, u in picked]
    assert users[0] == ratings["user_id"].min() and len(set(users)) == 3
    assert "a fan of item" in picked[2][0]


def test_side_by_side_puts_each_models_list_in_a_column_with_titles_else_ids():
    lists = {"a": pd.DataFrame({"item_id": [1, 2], "title": ["One", None]}),
             "b": pd.DataFrame({"item_id": [3, 4, 5], "title": ["Three", "Four", "Five"]})}
    frame = showcase.side_by_side(lists, 3)
    assert frame.to_dict("list") == {"a": ["One", "2", ""], "b": ["Three", "Four", "Five"]}
    assert list(frame.index) == [1, 2, 3]

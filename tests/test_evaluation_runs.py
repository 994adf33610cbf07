"""The evaluation a run folder keeps: written with the run, rebuilt on load, evaluated on demand for older runs,
compared between runs, and shown in the run report and the compare report (offline)."""

import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest

import ratecast as rc
from ratecast import manifest
from ratecast.errors import DataError, MissingFileError
from ratecast.evaluation_report import build_compare_report, group_order
from ratecast.report import build_report
from ratecast.run_evaluation import (LISTS, PER_USER, SUMMARY, USERS, compare_runs, group_tables, load_evaluation,
                                     read_evaluation)
from ratecast.runs import RunSpec, load_run, make_split, train_run


def tastes(n_users=80, n_items=40, seed=0, string_ids=False):
    """Two kinds of users with opposite tastes over equally popular items: a model of tastes lists each user's liked
    items, the popularity model cannot."""
    rng = np.random.default_rng(seed)
    u, i = np.nonzero(rng.random((n_users, n_items)) < 0.5)
    loves = (u % 2 == 0) == (i < n_items // 2)
    rating = np.where(loves, rng.choice([4, 5], len(u)), rng.choice([1, 2], len(u))).astype(float)
    users = [f"u{k:03d}" for k in u + 1] if string_ids else u + 1
    ratings = pd.DataFrame({"user_id": users, "item_id": i + 101, "rating": rating, "timestamp": np.arange(len(u))})
    kinds = pd.DataFrame({"user_id": np.arange(n_users) + 1, "kind": np.where(np.arange(n_users) % 2, "odd", "even")})
    return ratings, kinds


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("runs")
    ratings, kinds = tastes()
    ratings.to_csv(base / "ratings.csv", index=False)
    kinds.to_csv(base / "users.csv", index=False)
    data = {"data": str(base / "ratings.csv"), "data_options": {"users": str(base / "users.csv")}, "test_size": 0.3}
    train_run(RunSpec(**data, model="biased_dot", params={"epochs": 10, "batch_size": 256, "embedding_dim": 4,
                                                          "learning_rate": 0.05}), base / "good", progress=False)
    train_run(RunSpec(**data, model="popularity", params={"epochs": 1}), base / "worse", progress=False)
    train_run(RunSpec(**data, model="popularity", seed=1, params={"epochs": 1}), base / "other_split",
              progress=False)
    shutil.copytree(base / "good", base / "old")  # a run as written before runs kept their evaluation
    shutil.rmtree(base / "old" / "evaluation")
    manifest.write(base / "old")
    return base


def fresh_evaluation(run, by=None):
    run = load_run(run)
    test = make_split(run.load_data(), run.spec).test
    return rc.evaluate(run.recommender(), test, by=by)


def test_a_run_folder_keeps_its_evaluation_and_it_round_trips(runs):
    run = runs / "good"
    listed = json.loads((run / "MANIFEST.json").read_text())["files"]
    assert {PER_USER, LISTS, USERS, SUMMARY} <= set(listed)
    per_user = pd.read_parquet(run / PER_USER)
    assert per_user["user_id"].dtype == np.int64 and pd.read_parquet(run / LISTS)["item_id"].dtype == np.int64
    fresh = fresh_evaluation(run, by="kind")
    saved = load_evaluation(run, by="kind")
    pd.testing.assert_frame_equal(saved.summary, fresh.summary)
    pd.testing.assert_frame_equal(saved.bands, fresh.bands)
    pd.testing.assert_frame_equal(saved.per_user, fresh.per_user)
    pd.testing.assert_frame_equal(saved.groups, fresh.groups)
    summary = json.loads((run / SUMMARY).read_text())
    assert summary["by"] == ["kind"] and summary["catalogue_size"] == fresh.catalogue_size
    written = pd.DataFrame(summary["summary"]).set_index("metric")
    assert np.allclose(written["value"], fresh.summary["value"])
    groups = pd.DataFrame(summary["groups"]["kind"]).set_index(["metric", "group"])
    assert np.allclose(groups["value"], fresh.groups["value"])


def test_group_tables_equal_the_groups_of_an_evaluation_by_that_column(runs):
    saved = read_evaluation(load_run(runs / "good"))
    groups, gaps = group_tables(saved.evaluation(), saved.users, "kind")
    by_kind = saved.evaluation("kind")
    pd.testing.assert_frame_equal(groups, by_kind.groups)
    pd.testing.assert_frame_equal(gaps, by_kind.gaps)
    with pytest.raises(ValueError, match=r"by must be one of the run's user columns \['kind'\], got 'zip'"):
        saved.evaluation("zip")


def test_string_ids_keep_their_type_and_data_without_users_has_no_groups(tmp_path):
    ratings, _ = tastes(n_users=30, n_items=20, string_ids=True)
    ratings.to_csv(tmp_path / "ratings.csv", index=False)
    train_run(RunSpec(data=str(tmp_path / "ratings.csv"), model="popularity", params={"epochs": 1}),
              tmp_path / "run", progress=False)
    saved = read_evaluation(load_run(tmp_path / "run"))
    assert saved.by == () and saved.users is None and not (tmp_path / "run" / USERS).exists()
    assert all(isinstance(u, str) and u.startswith("u") for u in saved.per_user.index)
    assert set(saved.per_user.index) <= set(ratings["user_id"])


def test_a_run_written_before_evaluations_were_kept_still_loads_and_is_evaluated_on_demand(runs):
    old = load_run(runs / "old")
    with pytest.raises(MissingFileError, match="the run keeps no evaluation"):
        read_evaluation(old, on_demand=False)
    on_demand = read_evaluation(old)
    assert not on_demand.saved and read_evaluation(load_run(runs / "good")).saved
    pd.testing.assert_frame_equal(on_demand.evaluation().summary, load_evaluation(runs / "good").summary)
    page = build_report(old, runs / "old_report.html").read_text()
    assert "evaluated now: this run was written before runs kept their evaluation" in page
    table = compare_runs([old, runs / "good"])
    assert (table["difference"] == 0).all() and not table["significant"].any()


def test_compare_runs_marks_a_deliberately_worse_run_significantly_worse(runs):
    table = compare_runs([runs / "good", runs / "worse"])
    assert set(table["a"]) == {"good"} and set(table["b"]) == {"worse"}
    for metric in ("recall@10", "ndcg@10"):
        row = table.set_index("metric").loc[metric]
        assert row["difference"] > 0 and row["ci_low"] > 0 and row["significant"], metric
    rows = json.loads(rc.io.to_json(table.to_dict("records")))  # what --json prints
    assert len(rows) == len(table) and all(isinstance(r["significant"], bool) for r in rows)
    assert all(isinstance(r["p_value"], float) for r in rows)


def test_compare_runs_refuses_runs_of_different_splits(runs):
    with pytest.raises(DataError, match=r"^compare: run .*other_split was evaluated on another test set "
                                        r"\(ratings holdout test_size 0.3 seed 1\) than .*good \(ratings holdout "
                                        r"test_size 0.3 seed 0\); compare runs of the same data and split$"):
        compare_runs([runs / "good", runs / "other_split"])
    with pytest.raises(ValueError, match="runs must name at least two run folders, got 1"):
        compare_runs([runs / "good"])
    with pytest.raises(ValueError, match=r"runs must be different run folders, got '.*good' twice"):
        compare_runs([runs / "good", runs / "worse", runs / "good"])


ONLINE = re.compile(r"""<script[^>]*\bsrc\s*=\s*["']?\s*(https?:)?//|<link[^>]*\bhref\s*=\s*["']?\s*(https?:)?//|"""
                    r"""@import\s+(url\()?\s*["']?\s*(https?:)?//|url\(\s*["']?\s*(https?:)?//""", re.I)


def test_the_run_report_shows_the_evaluation_offline(runs):
    page = build_report(runs / "good", runs / "good_report.html").read_text()
    assert not ONLINE.search(page)
    section = page[page.index("<h2>Evaluation</h2>"):page.index("<h2>Training</h2>")]
    for heading in ("<h3>Accuracy</h3>", "<h3>Beyond accuracy</h3>", "<h3>Recall by item popularity</h3>",
                    "<h3>User groups</h3>", "<h4>by kind</h4>", "largest gap"):
        assert heading in section, heading
    for metric in ("recall@10", "ndcg@10", "novelty@10", "diversity@10", "gini@10", "coverage@10"):
        assert f"<td>{metric}</td>" in section, metric
    assert section.count('src="data:image/png;base64,') >= 2 and "nan" not in section.lower().split("base64")[0]


def test_the_compare_report_shows_the_paired_table_and_each_run_offline(runs):
    out = build_compare_report([runs / "good", runs / "worse"], runs / "compare.html")
    page = out.read_text()
    assert not ONLINE.search(page) and rc.io.is_ratecast_file(out)
    for heading in ("<h2>Paired differences</h2>", "<h2>Each run with its intervals</h2>",
                    "<h2>Recall by item popularity</h2>", "<h2>User groups</h2>", "<h3>by kind</h3>"):
        assert heading in page, heading
    table = compare_runs([runs / "good", runs / "worse"])
    assert page.count("<td>significant</td>") == int(table["significant"].sum())
    assert page.count("<td>not significant</td>") == int((~table["significant"]).sum())
    with pytest.raises(DataError, match="evaluated on another test set"):
        build_compare_report([runs / "good", runs / "other_split"], runs / "other.html")
    assert not (runs / "other.html").exists()
    with pytest.raises(ValueError, match=r"--out must be an HTML file name ending in .html, got '.*compare.txt'"):
        build_compare_report([runs / "good", runs / "worse"], runs / "compare.txt")


def test_groups_read_in_the_order_of_their_bands():
    assert group_order(["18-24", "56+", "(missing)", "under 18", "25-34"]) == [
        "under 18", "18-24", "25-34", "56+", "(missing)"]
    assert group_order(["(20.0, 30.0]", "(-0.1, 0.99]", "(0.99, 20.0]"]) == [
        "(-0.1, 0.99]", "(0.99, 20.0]", "(20.0, 30.0]"]
    assert group_order(["doctor", "(missing)", "artist"]) == ["doctor", "artist", "(missing)"]


def test_a_runs_top_n_metrics_are_those_of_its_kept_lists_and_of_ranking_again(runs):
    run = load_run(runs / "good")
    test = make_split(run.load_data(), run.spec).test
    again = run.recommender().top_n_metrics(test)
    kept = json.loads((runs / "good" / "metrics.json").read_text())["test"]
    for name, value in again.items():
        assert kept[name] == pytest.approx(value, abs=1e-12), name
    assert kept["top_n_users"] == kept["test_users"] == test.ratings["user_id"].nunique()


def test_runs_list_a_seeded_sample_of_test_users_beyond_the_limit(runs):
    from ratecast.run_evaluation import evaluate_test, list_metrics, list_sample

    run = load_run(runs / "good")
    test = make_split(run.load_data(), run.spec).test
    rec = run.recommender()
    n_users = test.ratings["user_id"].nunique()
    assert list_sample(test, n_users) is test
    one, two = list_sample(test, 10, 0), list_sample(test, 10, 0)
    assert one.ratings["user_id"].nunique() == 10
    pd.testing.assert_frame_equal(one.ratings, two.ratings)
    assert set(one.ratings["user_id"]) != set(list_sample(test, 10, 1).ratings["user_id"])
    # every rating of a sampled user is kept, and no other user's
    chosen = test.ratings["user_id"].isin(one.ratings["user_id"])
    assert len(one.ratings) == chosen.sum()
    ev, saved = evaluate_test(rec, test, limit=10, random_state=0)
    assert sorted(ev.per_user.index) == sorted(set(one.ratings["user_id"]))
    metrics = list_metrics(rec, test, ev)
    assert (metrics["top_n_users"], metrics["test_users"]) == (10, n_users)
    assert metrics["recall@10"] == pytest.approx(rec.top_n_metrics(one)["recall@10"], abs=1e-12)
    with pytest.raises(ValueError, match="limit must be a positive integer"):
        list_sample(test, 0)

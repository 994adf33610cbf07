"""ratecast compare: the runs table, then the paired differences of the runs on their common test set."""

import pytest

from tests.cli_helpers import cli, one_line_error, strict_json
from tests.synthetic import make_dataset

FAST = ["--epochs", "1", "--batch-size", "64", "--embedding-dim", "4", "-q"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("compare")
    make_dataset(n_users=40, n_items=30).ratings.to_csv(folder / "r.csv", index=False)
    made = {}
    for name, extra in (("dot", ["--model", "dot"]), ("biased", ["--model", "biased_dot"]),
                        ("other_seed", ["--model", "dot", "--seed", "1"])):
        res = cli("train", "--data", folder / "r.csv", *extra, *FAST, "--out", folder / name)
        assert res.code == 0, (res.stderr, res.exception)
        made[name] = folder / name
    return made


def test_two_runs_print_the_runs_table_then_the_paired_table(runs):
    res = cli("compare", runs["dot"], runs["biased"])
    assert res.code == 0, (res.stderr, res.exception)
    runs_at, paired_at = res.stdout.index("Runs"), res.stdout.index("Paired differences")
    assert runs_at < paired_at
    paired = res.stdout[paired_at:]
    assert "a - b [95% CI]" in paired and "p (Holm)" in paired and "rmse" in paired.lower()
    assert "* significant at alpha 0.05" in paired


def test_json_has_the_runs_and_the_paired_rows(runs):
    res = cli("compare", runs["dot"], runs["biased"], "--json")
    doc = strict_json(res.stdout)
    assert set(doc) == {"runs", "paired", "lists", "gaps"}
    assert [r["model"] for r in doc["runs"]] == ["dot", "biased_dot"]
    assert doc["paired"] and {(r["a"], r["b"]) for r in doc["paired"]} == {("dot", "biased")}
    assert {"metric", "difference", "ci_low", "ci_high", "p_value", "significant", "users"} <= set(doc["paired"][0])


def test_one_run_prints_its_row_and_no_paired_table(runs):
    res = cli("compare", runs["dot"])
    assert res.code == 0 and "Runs" in res.stdout and "Paired" not in res.stdout
    doc = strict_json(cli("compare", runs["dot"], "--json").stdout)
    assert doc["paired"] == [] and {r["metric"] for r in doc["lists"]} >= {"recall@20", "ndcg@100"}


def test_out_writes_the_compare_report(runs, tmp_path):
    page = tmp_path / "compare.html"
    res = cli("compare", runs["dot"], runs["biased"], "--out", page, "--json")
    assert res.code == 0, (res.stdout, res.stderr)
    assert strict_json(res.stdout)["out"] == str(page) and "<html" in page.read_text().lower()
    again = cli("compare", runs["dot"], runs["biased"], "--out", page)
    assert again.code == 0 and f"wrote {page}" in again.stdout  # ratecast's own file is replaced


def test_runs_of_different_test_sets_are_one_line_exit_1(runs):
    res = cli("compare", runs["dot"], runs["other_seed"])
    one_line_error(res, 1, "another test set", "compare runs of the same data and split")


def test_a_missing_run_is_exit_4(runs, tmp_path):
    one_line_error(cli("compare", runs["dot"], tmp_path / "absent"), 4)


def test_bad_alpha_and_out_are_refused_naming_the_option(runs, tmp_path):
    one_line_error(cli("compare", runs["dot"], runs["biased"], "--alpha", "1.5"), 1, "--alpha")
    one_line_error(cli("compare", runs["dot"], runs["biased"], "--out", tmp_path / "c.txt"), 1, "--out")


def test_out_with_a_single_run_is_refused(runs, tmp_path):
    one_line_error(cli("compare", runs["dot"], runs["dot"], "--out", tmp_path / "c.html"), 1, "--out",
                   "two different run folders")
    assert not (tmp_path / "c.html").exists()


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    folder = tmp_path_factory.mktemp("held_out")
    ds = make_dataset(n_users=200, n_items=30)  # 80 held-out users: groups of 10 users or more to compare
    ds.ratings.to_csv(folder / "r.csv", index=False)
    ds.users.rename_axis("user_id").reset_index().to_csv(folder / "users.csv", index=False)
    data = ["--data", folder / "r.csv", "--users", folder / "users.csv", *FAST]
    for name, model in (("dot", "dot"), ("biased", "biased_dot")):
        res = cli("train", *data, "--model", model, "--split", "held-out-users", "--test-size", "0.4",
                  "--out", folder / name)
        assert res.code == 0, (res.stderr, res.exception)
    res = cli("train", *data, "--model", "dot", "--out", folder / "holdout")
    assert res.code == 0, (res.stderr, res.exception)
    return folder


def test_held_out_users_runs_show_list_figures_group_gaps_and_marks(held_out):
    res = cli("compare", held_out / "dot", held_out / "biased")
    assert res.code == 0, (res.stderr, res.exception)
    lists = res.stdout[res.stdout.index("Lists over the whole catalogue"):res.stdout.index("Largest gap")]
    for metric in ("recall@20", "ndcg@100", "novelty@10", "diversity@10"):
        assert metric in lists, metric
    gaps = res.stdout[res.stdout.index("Largest gap in recall@10"):res.stdout.index("Paired differences")]
    for by in ("gender", "age", "occupation", "popularity band"):
        assert by in gaps, by
    assert "held-out-users" in res.stdout and "* significant at alpha 0.05" in res.stdout
    doc = strict_json(cli("compare", held_out / "dot", held_out / "biased", "--json").stdout)
    assert {(r["run"], r["by"]) for r in doc["gaps"]} == {(run, by) for run in ("dot", "biased")
                                                           for by in ("gender", "age", "occupation",
                                                                      "popularity band")}
    assert {"recall@20", "ndcg@100", "novelty@10", "diversity@10"} <= {r["metric"] for r in doc["lists"]}
    assert all(r["ci_low"] <= r["value"] + 1e-12 <= r["ci_high"] + 2e-12 for r in doc["lists"])


def test_a_held_out_users_run_and_a_holdout_run_are_refused_together(held_out):
    one_line_error(cli("compare", held_out / "dot", held_out / "holdout"), 1, "another test set",
                   "held-out-users")


def test_evaluate_folds_the_held_out_users_in_as_the_run_did(held_out):
    import json

    doc = strict_json(cli("evaluate", held_out / "dot", "--json").stdout)
    kept = json.loads((held_out / "dot" / "metrics.json").read_text())["test"]
    assert doc["test"]["n_unknown"] == 0 and doc["test"]["recall@10"] == kept["recall@10"]

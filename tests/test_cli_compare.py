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
    assert set(doc) == {"runs", "paired"}
    assert [r["model"] for r in doc["runs"]] == ["dot", "biased_dot"]
    assert doc["paired"] and {(r["a"], r["b"]) for r in doc["paired"]} == {("dot", "biased")}
    assert {"metric", "difference", "ci_low", "ci_high", "p_value", "significant", "users"} <= set(doc["paired"][0])


def test_one_run_prints_its_row_and_no_paired_table(runs):
    res = cli("compare", runs["dot"])
    assert res.code == 0 and "Runs" in res.stdout and "Paired" not in res.stdout
    assert strict_json(cli("compare", runs["dot"], "--json").stdout)["paired"] == []


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

"""Whole-catalogue lists at scale: ``evaluate`` lists the same sample of test users as ``train``; a run's integrity
check is not paid twice."""

import json

from cli_helpers import FAST, cli
from synthetic import make_dataset


def test_evaluate_lists_the_same_sample_of_test_users_as_train(tmp_path, monkeypatch):
    from ratecast import run_evaluation

    monkeypatch.setattr(run_evaluation, "LIST_USERS", 12)  # the sample rule, shrunk to this test's size
    make_dataset(n_users=40, n_items=24, density=0.6).ratings.drop(columns="timestamp").to_csv(
        tmp_path / "r.csv", index=False)
    trained = cli("train", "--data", tmp_path / "r.csv", "--model", "dot", *FAST, "--out", tmp_path / "run")
    assert trained.code == 0, (trained.stdout, trained.stderr, trained.exception)
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())["test"]
    res = cli("evaluate", tmp_path / "run", "--json")
    assert res.code == 0, (res.stdout, res.stderr, res.exception)
    test = json.loads(res.stdout)["test"]
    assert test["top_n_users"] == 12 < test["test_users"] == saved["test_users"]
    assert {k: test[k] for k in ("recall@10", "ndcg@10", "top_n_users")} == \
        {k: saved[k] for k in ("recall@10", "ndcg@10", "top_n_users")}
    text = cli("evaluate", tmp_path / "run")
    assert "a sample of 12 test users" in text.stdout, text.stdout

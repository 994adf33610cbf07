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


def test_loading_a_run_reads_the_model_files_once_and_still_refuses_a_corrupted_one(tmp_path, monkeypatch):
    """load_run checks the model folder's files by size and leaves their checksums to the model's loader (which
    verifies them against the model's own manifest) instead of hashing them twice."""
    import pytest

    from ratecast import manifest
    from ratecast.errors import IntegrityError
    from ratecast.runs import load_run

    make_dataset(n_users=30, n_items=24, density=0.6).ratings.drop(columns="timestamp").to_csv(
        tmp_path / "r.csv", index=False)
    assert cli("train", "--data", tmp_path / "r.csv", "--model", "dot", *FAST, "--out", tmp_path / "run").code == 0
    hashed = []
    real = manifest.sha256
    monkeypatch.setattr(manifest, "sha256", lambda p: hashed.append(str(p)) or real(p))
    run = load_run(tmp_path / "run")
    assert hashed and not [p for p in hashed if "/model/" in p], hashed
    hashed.clear()
    run.recommender()
    assert len(hashed) == len(set(hashed)) and any(p.endswith("model.weights.h5") for p in hashed)
    arrays = tmp_path / "run" / "model" / "arrays.npz"
    data = bytearray(arrays.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other bytes
    arrays.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="arrays.npz: sha256 does not match"):
        load_run(tmp_path / "run").recommender()
    arrays.write_bytes(bytes(data[:-10]))  # truncated: refused by the run's own check
    with pytest.raises(IntegrityError, match="arrays.npz: size"):
        load_run(tmp_path / "run")
    res = cli("recommend", tmp_path / "run", "--user", "1")
    assert res.code == 1 and "arrays.npz" in res.stderr


def test_a_runs_training_error_is_measured_on_a_seeded_sample_above_its_limit(monkeypatch):
    import ratecast as rc
    from ratecast import runs
    from synthetic import make_dataset

    data = make_dataset()
    rec = rc.Recommender("biased_dot", random_state=0, verbose=0, epochs=1).fit(data)
    whole = runs.training_error(rec, data.ratings, 0)
    assert whole["n"] == len(data.ratings) and "sampled_from" not in whole
    monkeypatch.setattr(runs, "TRAIN_ERROR_RATINGS", 50)
    part = runs.training_error(rec, data.ratings, 0)
    assert part["n"] == 50 and part["sampled_from"] == len(data.ratings)
    assert part == runs.training_error(rec, data.ratings, 0)  # the same sample for the same seed

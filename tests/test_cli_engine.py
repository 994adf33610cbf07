"""The command line's training choices: --preset, --devices and --shard-embeddings."""

import json

from typer.testing import CliRunner

from ratecast.cli import app
from synthetic import make_dataset


def cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


def _csv(tmp_path):
    path = tmp_path / "ratings.csv"
    make_dataset().ratings.to_csv(path, index=False)
    return path


def test_preset_fast_trains_its_model_on_the_given_devices(tmp_path):
    res = cli("train", "--data", _csv(tmp_path), "--preset", "fast", "--epochs", "2", "--devices", "1",
              "--shard-embeddings", "--out", tmp_path / "run", "--json")
    assert res.exit_code == 0, res.stdout
    body = json.loads(res.stdout)
    assert body["test"]["rmse"] > 0
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["spec"]["model"] == "biased_dot" and run["training_config"]["optimizer"] == "sgd"


def test_preset_topn_trains_the_list_model_and_reports_whole_catalogue_lists(tmp_path):
    res = cli("train", "--data", _csv(tmp_path), "--preset", "topn", "--epochs", "1", "--out", tmp_path / "run",
              "--json")
    assert res.exit_code == 0, res.stdout
    test = json.loads(res.stdout)["test"]
    assert 0 <= test["recall@10"] <= 1 and test["distinct_items@10"] > 0 and "ndcg@10_within_test_items" in test
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["spec"]["model"] == "implicit"


def test_preset_lab_keeps_the_model_given_and_the_labs_training(tmp_path):
    res = cli("train", "--data", _csv(tmp_path), "--preset", "lab", "--model", "dot", "--epochs", "1",
              "--out", tmp_path / "run", "--json")
    assert res.exit_code == 0, res.stdout
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["spec"]["model"] == "dot"
    assert {k: run["training_config"][k] for k in ("engine", "batch_size", "optimizer")} == \
        {"engine": "keras", "batch_size": 64, "optimizer": "adam"}


def test_bad_preset_and_device_count_are_usage_errors(tmp_path):
    res = cli("train", "--preset", "quick", "--out", tmp_path / "a", "--json")
    assert res.exit_code == 2 and "preset must be one of ['accurate', 'fast', 'lab', 'topn'], got 'quick'" in res.stdout
    res = cli("train", "--devices", "999", "--out", tmp_path / "b", "--json")
    assert res.exit_code == 2 and "devices must be between 1 and the" in res.stdout and "got 999" in res.stdout
    res = cli("train", "--preset", "fast", "--model", "deep", "--out", tmp_path / "c", "--json")
    assert res.exit_code == 2 and "preset 'fast' is for model 'biased_dot', got --model 'deep'" in res.stdout
    assert not any((tmp_path / name).exists() for name in "abc")

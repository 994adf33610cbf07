"""A newcomer's first commands: the model a run trains when none is named."""

import json

from tests.cli_helpers import cli, strict_json
from tests.synthetic import make_dataset

#: a quick bayesian fit on tiny data (the default preset's model, its sampling made short)
SHORT_SAMPLING = ["--set", "samples=2", "--set", "burn_in=1", "--set", "chains=1", "--set", "embedding_dim=2", "-q"]


def test_train_without_a_model_trains_the_recommended_preset(tmp_path):
    from ratecast import presets

    make_dataset().ratings.to_csv(tmp_path / "r.csv", index=False)
    res = cli("train", "--data", tmp_path / "r.csv", *SHORT_SAMPLING, "--out", tmp_path / "run", "--json")
    assert res.code == 0, (res.stdout, res.stderr, res.exception)
    assert strict_json(res.stdout)["test"]["n"] > 0
    spec = json.loads((tmp_path / "run" / "run.json").read_text())["spec"]
    assert spec["model"] == presets.DEFAULT_MODEL[presets.RECOMMENDED] == "bayesian"
    # an explicit model is still trained as named
    res = cli("train", "--data", tmp_path / "r.csv", "--model", "deep", "--epochs", "1", "--embedding-dim", "4",
              "-q", "--out", tmp_path / "deep")
    assert res.code == 0, (res.stderr, res.exception)
    assert json.loads((tmp_path / "deep" / "run.json").read_text())["spec"]["model"] == "deep"


def test_train_help_names_the_default_model():
    text = " ".join(cli("train", "--help").stdout.replace("│", " ").split())
    assert "Train the recommended rating model (the accurate preset) unless --model" in text
    assert "(default: the accurate preset, the recommended rating model, unless --preset or --config names one)" in text


def test_options_of_another_model_name_the_default_preset(tmp_path):
    from tests.cli_helpers import one_line_error

    make_dataset().ratings.to_csv(tmp_path / "r.csv", index=False)
    one_line_error(cli("train", "--data", tmp_path / "r.csv", "--epochs", "3", "--out", tmp_path / "run"), 1,
                   "do not apply to model 'bayesian'")
    assert not (tmp_path / "run").exists()

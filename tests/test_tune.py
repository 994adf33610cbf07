"""Hyperparameter search: search spaces, the Optuna study (seeded, pruned, resumable, shared by processes), the
``ratecast tune`` folder, and that test ratings never reach a trial."""

import json
import os
import re
import subprocess
import sys
import tomllib
import uuid

import numpy as np
import optuna
import pandas as pd
import pytest

import ratecast as rc
from ratecast import search_space as S
from ratecast.models import MODELS, TrainingConfig
from ratecast.tuning import StudyMismatchError, TuneResult, tune
from ratecast.tuning.search import Metric, Objective, _folds, _resolve_space
from tests.cli_helpers import cli, one_line_error
from tests.synthetic import make_dataset

QUICK = {"epochs": 3}  # fixed for every trial: keeps the searches of these tests short


@pytest.fixture(scope="module")
def small():
    return make_dataset(n_users=60, n_items=40, density=0.5, seed=1)


# --- search spaces --------------------------------------------------------------------------------------------------
def test_every_model_declares_a_space_whose_values_it_accepts():
    for name, cls in MODELS.items():
        space = cls.config_class.search_space
        assert space, f"model {name} has no search space"
        allowed = cls.config_class.field_names() | TrainingConfig.field_names()
        assert set(space) <= allowed, name
        _resolve_space(name, None, {})  # every range end and choice builds a valid config


def test_parse_ranges_log_choices_and_fixed_values():
    space = S.parse({"embedding_dim": {"low": 8, "high": 64, "log": True}, "l2": {"low": 1e-5, "high": 0.1},
                     "hidden": {"choices": [[64], [128, 64]]}, "epochs": 7})
    assert space["embedding_dim"] == S.Int(8, 64, True)
    assert space["l2"] == S.Float(1e-5, 0.1, False)
    assert space["hidden"] == S.Choice(((64,), (128, 64)))
    assert space["epochs"] == S.Fixed(7)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    params = S.suggest(study.ask(), space)
    assert 8 <= params["embedding_dim"] <= 64 and isinstance(params["embedding_dim"], int)
    assert params["hidden"] in ([64], [128, 64]) and params["epochs"] == 7


@pytest.mark.parametrize("spec, needle", [
    ({"l2": {"low": 0.1, "high": 0.01}}, "low < high"),
    ({"l2": {"low": 0.1, "high": 0.1}}, "low < high"),
    ({"l2": {"low": 0.0, "high": 0.1, "log": True}}, "log range needs low > 0"),
    ({"hidden": {"choices": []}}, "non-empty"),
    ({"l2": {"low": 0.1}}, "expected"),
    ({"l2": {"low": "a", "high": 1.0}}, "finite numbers"),
])
def test_bad_ranges_are_refused_naming_the_option(spec, needle):
    with pytest.raises(ValueError, match=needle) as err:
        S.parse(spec)
    assert list(spec)[0] in str(err.value)


def test_unknown_parameter_and_out_of_range_values_are_refused(small):
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['wings'\] for model 'biased_dot'"):
        tune(small, model="biased_dot", search_space={"wings": {"low": 1, "high": 2}})
    with pytest.raises(ValueError, match="search_space embedding_dim: embedding_dim must be a positive integer"):
        tune(small, model="biased_dot", search_space={"embedding_dim": {"low": 0, "high": 8}})


@pytest.mark.parametrize("kwargs, needle", [
    ({"metric": "rmse", "model": "popularity"}, "does not fit model 'popularity'"),
    ({"metric": "auc"}, "metric must be one of"),
    ({"n_trials": 0}, "n_trials must be an integer >= 1"),
    ({"n_trials": None, "timeout": None}, "never end"),
    ({"cv": 1}, "cv must be an integer >= 2"),
    ({"validation_split": 1.5}, "validation_split must be"),
    ({"pruner": "random"}, "pruner must be one of"),
    ({"n_jobs": 0}, "n_jobs must be"),
    ({"params": {"epochs": -1}}, "epochs must be a positive integer"),
])
def test_bad_arguments_are_refused_before_any_trial(small, kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        tune(small, **{"model": "biased_dot", **kwargs})


# --- the search ---------------------------------------------------------------------------------------------------
def test_tune_finds_options_and_refits_them_on_all_of_train(small):
    res = tune(small, model="biased_dot", n_trials=3, params=QUICK, random_state=0)
    assert isinstance(res, TuneResult)
    assert set(res.best_params) >= set(MODELS["biased_dot"].config_class.search_space) | {"epochs"}
    assert np.isfinite(res.best_value) and res.best_value == min(t.value for t in res.study.trials
                                                                 if t.value is not None)
    assert len(res.trials) == 3 and {"value", "state", "params_l2"} <= set(res.trials.columns)
    first = res.study.trials[0].params  # the first trial starts from the model's defaults
    assert first["l2"] == 0.05 and first["embedding_dim"] == 64
    rec = res.best_recommender()
    assert rec.state_.n_train == len(small.ratings) - int(np.ceil(0.1 * len(small.ratings)))  # less its early-stop split
    assert np.isfinite(rec.predict([1, 2], [101, 102])).all()
    # seeded: the same call proposes the same trials
    again = tune(small, model="biased_dot", n_trials=3, params=QUICK, random_state=0)
    assert [t.params for t in again.study.trials] == [t.params for t in res.study.trials]


def test_a_top_n_metric_is_maximised_on_whole_catalogue_lists(small):
    res = tune(small, model="baseline", n_trials=2, metric="recall@5", params=QUICK)
    assert res.study.direction.name == "MAXIMIZE"
    assert 0 <= res.best_value <= 1 and "recall@5" in res.best_validation
    assert res.best_params["monitor"] == "val_top_n"  # early stopping watched the lists


def test_a_trial_is_pruned_from_its_per_epoch_scores(small):
    space = _resolve_space("biased_dot", None, {})
    folds = _folds(small, None, 0.2, 0)
    objective = Objective("biased_dot", space, {"epochs": 5}, Metric.parse("rmse"), folds, 0, 4.0)
    study = optuna.create_study(pruner=optuna.pruners.ThresholdPruner(upper=0.0))  # any RMSE is too high
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state.name == "PRUNED"
    assert list(trial.intermediate_values) == [0]  # stopped after its first epoch
    assert "val_rmse" not in trial.user_attrs


def test_k_fold_scores_average_over_folds(small):
    res = tune(small, model="baseline", n_trials=1, cv=3, params=QUICK)
    assert res.study.user_attrs["protocol"]["cv"] == 3
    assert np.isfinite(res.best_value)


def test_a_study_resumes_10_plus_10_style(small, tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    tune(small, model="baseline", n_trials=2, storage=url, study_name="s", params=QUICK)
    res = tune(small, model="baseline", n_trials=2, storage=url, study_name="s", params=QUICK)
    assert [t.number for t in res.study.trials] == [0, 1, 2, 3]
    # the second call did not replay the first call's proposals
    assert res.study.trials[2].params != res.study.trials[1].params


@pytest.mark.parametrize("change, needle", [
    ({"model": "biased_dot"}, "created for model 'baseline'"),
    ({"params": {"epochs": 4}}, "other fixed options"),
    ({"search_space": {"l2": {"low": 0.01, "high": 0.02}}}, "another search space"),
    ({"validation_split": 0.2}, "another validation protocol"),
])
def test_a_study_of_other_settings_is_refused(small, tmp_path, change, needle):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    tune(small, model="baseline", n_trials=1, storage=url, study_name="s", params=QUICK)
    kwargs = {"model": "baseline", "n_trials": 1, "storage": url, "study_name": "s", "params": QUICK, **change}
    with pytest.raises(StudyMismatchError, match=needle):
        tune(small, **kwargs)
    with pytest.raises(StudyMismatchError, match="other training data"):
        tune(make_dataset(n_users=50, n_items=40, seed=2), model="baseline", n_trials=1, storage=url,
             study_name="s", params=QUICK)
    with pytest.raises(StudyMismatchError, match="minimize"):
        tune(small, model="baseline", n_trials=1, storage=url, study_name="s", params=QUICK, metric="ndcg@10")
    assert len(optuna.load_study(study_name="s", storage=url).trials) == 1  # nothing was mixed in


def test_worker_processes_share_one_study(small, tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    res = tune(small, model="baseline", n_trials=4, n_jobs=2, storage=url, study_name="w", params=QUICK)
    trials = optuna.load_study(study_name="w", storage=url).trials
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    workers = {t.user_attrs.get("worker") for t in trials if t.state.name == "COMPLETE"}
    assert len(workers) == 2 and str(os.getpid()) not in " ".join(workers)  # two processes, not this one
    assert len(res.trials) == 4


def test_an_unreachable_storage_is_one_clear_error(small):
    with pytest.raises(rc.tuning.StorageError, match=r"storage postgresql://nobody:\*\*\*@127.0.0.1:9/x: cannot be "
                                                     r"reached") as err:
        tune(small, model="baseline", n_trials=1, storage="postgresql://nobody:secret@127.0.0.1:9/x")
    assert "secret" not in str(err.value)
    with pytest.raises(ValueError, match="not a database URL"):
        tune(small, model="baseline", n_trials=1, storage="not a url")


# --- the command line -----------------------------------------------------------------------------------------------
@pytest.fixture()
def ratings_file(tmp_path, small):
    path = tmp_path / "r.csv"
    small.ratings.to_csv(path, index=False)
    return path


def test_cli_tune_writes_a_folder_that_train_accepts_and_continues_it(ratings_file, tmp_path):
    out = tmp_path / "t"
    res = cli("tune", "--data", ratings_file, "--model", "baseline", "--trials", "2", "--set", "epochs=3",
              "--out", out, "--json")
    assert res.code == 0, (res.stdout, res.stderr, res.exception)
    info = json.loads(res.stdout)
    assert info["trials"]["complete"] + info["trials"]["pruned"] == 2
    assert {"rmse", "mae"} <= set(info["test_summary"]) and np.isfinite(info["test_summary"]["rmse"])
    assert sorted(p.name for p in out.iterdir()) == ["best.toml", "report.html", "study.db", "trials.csv",
                                                    "tune.json"]
    best = tomllib.loads((out / "best.toml").read_text())
    assert best["model"] == "baseline" and best["epochs"] == 3 and "l2" in best
    assert len(pd.read_csv(out / "trials.csv")) == 2
    page = (out / "report.html").read_text()
    for needle in ("Optimisation history", "Parameter importances", "Parallel coordinates", "Slices",
                   "test (once, after the search)", "Plotly"):
        assert needle in page
    assert not re.search(r"<script[^>]*\bsrc=", page)  # plotly.js inlined: offline
    run = cli("train", "--data", ratings_file, "--config", out / "best.toml", "--out", tmp_path / "run", "-q")
    assert run.code == 0, (run.stdout, run.stderr)
    assert json.loads((tmp_path / "run" / "run.json").read_text())["model_config"]["l2"] == best["l2"]
    res = cli("tune", "--data", ratings_file, "--model", "baseline", "--trials", "2", "--set", "epochs=3",
              "--out", out, "--json")
    assert res.code == 0 and sum(json.loads(res.stdout)["trials"].values()) == 4  # 2 + 2: the study continued


def test_cli_tune_bad_input(ratings_file, tmp_path):
    base = ["tune", "--data", ratings_file, "--trials", "1", "--set", "epochs=2"]
    space = tmp_path / "space.toml"
    space.write_text("[search_space]\nwings = {low = 1, high = 2}\n")
    one_line_error(cli(*base, "--model", "baseline", "--space", space, "--out", tmp_path / "a"), 1,
                   "--space: unknown parameter(s) ['wings']")
    space.write_text("l2 = {low = 0.5, high = 0.1}\n")
    one_line_error(cli(*base, "--model", "baseline", "--space", space, "--out", tmp_path / "a"), 1,
                   "--space: search space l2: the range must have low < high, got low=0.5, high=0.1")
    one_line_error(cli(*base, "--model", "popularity", "--metric", "rmse", "--out", tmp_path / "a"), 1,
                   "--metric 'rmse' does not fit model 'popularity'")
    one_line_error(cli(*base, "--model", "baseline", "--storage", "postgresql://u:pw@127.0.0.1:9/db",
                       "--out", tmp_path / "a"), 1, "--storage postgresql://u:***@127.0.0.1:9/db: cannot be reached")
    one_line_error(cli(*base, "--model", "baseline", "--trials", "0", "--out", tmp_path / "a"), 1, "--trials")
    one_line_error(cli(*base, "--model", "baseline", "--space", tmp_path / "none.toml", "--out", tmp_path / "a"),
                   4, "none.toml")
    assert not (tmp_path / "a").exists()  # nothing was written by any of them
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    one_line_error(cli(*base, "--model", "baseline", "--out", tmp_path / "mine"), 1, "not written by ratecast")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"
    ok = cli(*base, "--model", "baseline", "--out", tmp_path / "b", "-q")
    assert ok.code == 0, ok.stderr
    one_line_error(cli(*base, "--model", "biased_dot", "--out", tmp_path / "b"), 1,
                   "holds a search of another model")


def test_test_ratings_never_reach_a_trial(ratings_file, tmp_path, monkeypatch):
    """Every fit and every score made during the search sees training ratings only; the test set is scored
    once, after the search, by the refitted best configuration."""
    from ratecast.recommender import Recommender
    from ratecast.runs import RunSpec, load_data, make_split
    from ratecast.tuning.run import tune_run

    spec = RunSpec(data=str(ratings_file), model="baseline", seed=0, params=QUICK)
    split = make_split(load_data(spec, progress=False), spec)
    test_keys = set(zip(split.test.ratings["user_id"], split.test.ratings["item_id"]))
    events = []
    real_fit, real_evaluate = Recommender.fit, Recommender.evaluate
    real_predict, real_top_n = Recommender.predict, Recommender.top_n_metrics

    def keys(ds):
        return set(zip(ds.ratings["user_id"], ds.ratings["item_id"]))

    def fit(self, train, validation=None, *args, **kwargs):
        events.append(("fit", keys(train) | (keys(validation) if validation is not None else set())))
        return real_fit(self, train, validation, *args, **kwargs)

    def predict(self, users, items, *args, **kwargs):
        events.append(("predict", set(zip(users, items))))
        return real_predict(self, users, items, *args, **kwargs)

    def top_n(self, test, **kwargs):
        events.append(("top_n", keys(test)))
        return real_top_n(self, test, **kwargs)

    def evaluate(self, test, **kwargs):
        events.append(("evaluate", keys(test)))
        return real_evaluate(self, test, **kwargs)

    monkeypatch.setattr(Recommender, "fit", fit)
    monkeypatch.setattr(Recommender, "predict", predict)
    monkeypatch.setattr(Recommender, "top_n_metrics", top_n)
    monkeypatch.setattr(Recommender, "evaluate", evaluate)
    tune_run(spec, tmp_path / "t", n_trials=3)
    evaluations = [k for k, (what, _) in enumerate(events) if what == "evaluate"]
    assert len(evaluations) == 1, "the test set is scored exactly once"
    first_eval = evaluations[0]
    assert events[first_eval][1] == test_keys
    search = events[:first_eval - 1]  # the trials; then the refit of the best options, then the test
    assert sum(1 for what, _ in search if what == "fit") == 3
    assert events[first_eval - 1][0] == "fit" and not (events[first_eval - 1][1] & test_keys)
    for what, seen in search:
        assert not (seen & test_keys), f"a trial's {what} saw test ratings"


# --- several machines: one study in PostgreSQL ---------------------------------------------------------------------
POSTGRES = os.environ.get("RATECAST_TEST_POSTGRES")


@pytest.mark.skipif(not POSTGRES, reason="no PostgreSQL server (scripts/test.sh starts one where it is installed)")
def test_two_processes_share_a_postgresql_study(ratings_file, tmp_path):
    study = f"shared-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    cmd = [sys.executable, "-m", "ratecast.cli", "tune", "--data", str(ratings_file), "--model", "baseline",
           "--trials", "3", "--set", "epochs=3", "--storage", POSTGRES, "--study", study, "--json", "--out"]
    procs = [subprocess.Popen([*cmd, str(tmp_path / f"machine{k}")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for k in (1, 2)]
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (stdout, stderr) in zip(procs, outputs):
        assert p.returncode == 0, f"stdout: {stdout}\nstderr: {stderr}"
    trials = optuna.load_study(study_name=study, storage=POSTGRES).trials
    numbers = [t.number for t in trials]
    assert sorted(numbers) == list(range(6))  # every trial kept, none numbered twice
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    by_worker = {t.user_attrs.get("worker") for t in trials if t.state.name == "COMPLETE"}
    assert len(by_worker) == 2  # both processes contributed
    assert all(sum(json.loads(out)["trials"].values()) >= 3 for out, _ in outputs)

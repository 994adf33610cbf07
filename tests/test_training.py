"""Fit reliability: options validated up front, divergence stops with an error, interrupts leave the estimator as it
was, checkpoints resume where training stopped, missing metadata is reported."""

import json
import os
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pandas as pd
import pytest

import ratecast as rc
from ratecast.engine import checkpoint as ckpt
from ratecast.engine import compiled, keras_fit
from ratecast.errors import DataError, TrainingError
from synthetic import make_dataset

FAST = dict(embedding_dim=4, batch_size=32, verbose=0)


@pytest.fixture(scope="module")
def train():
    return rc.split.holdout(make_dataset(), test_size=0.2, random_state=0).train


@pytest.mark.parametrize("value", [1e30, float("inf"), float("nan"), 0, -1e-3, "fast"])
def test_learning_rate_validated_up_front(value):
    with pytest.raises(ValueError, match=r"learning_rate must be a finite number in \(0, 10\], got"):
        rc.Recommender("dot", learning_rate=value)


@pytest.mark.parametrize("option,value,match", [
    ("l2", float("nan"), r"l2 must be a finite number >= 0, got nan"),
    ("embedding_dim", 10**9, r"embedding_dim must be at most 4096, got 1000000000"),
    ("epochs", True, r"epochs must be a positive integer, got True"),
    ("hidden", "64", r"hidden must be a list, got '64'"),
])
def test_other_options_validated_up_front(option, value, match):
    with pytest.raises(ValueError, match=match):
        rc.Recommender("deep", **{option: value})


def test_random_state_validated():
    with pytest.raises(ValueError, match=r"random_state must be an integer in \[0, 2\*\*32\) or None, got -1"):
        rc.Recommender("dot", random_state=-1)


def test_the_largest_random_state_trains_and_repeats(train):
    a, b = (rc.Recommender("hybrid", random_state=2**32 - 1, epochs=1, **FAST).fit(train) for _ in range(2))
    np.testing.assert_array_equal(a.predict([1, 2], [101, 102]), b.predict([1, 2], [101, 102]))


def test_divergence_stops_with_an_error_and_no_model(train):
    rec = rc.Recommender("biased_dot", random_state=0, optimizer="sgd", learning_rate=10.0, epochs=3, l2=0.0, **FAST)
    with pytest.raises(TrainingError, match=r"training diverged in epoch \d: (loss is (nan|inf)|loss .* is more than "
                                            r"1000 times the first epoch's).*lower the learning"):
        rec.fit(train)
    with pytest.raises(rc.NotFittedError):
        rec.predict([1], [101])


def _progress(folder) -> dict:
    with np.load(folder / ckpt.FILE) as npz:
        return json.loads(str(npz["progress"]))


def _interrupt_at(monkeypatch, epoch: int, batch: int = 1):
    """Raise KeyboardInterrupt when batch ``batch`` of (0-based) epoch ``epoch`` is requested (either engine)."""
    original_run = compiled.CompiledTrainer.run_epoch

    def run_epoch(self, state, data, seed, e, *a, **kw):
        if e == epoch:
            raise KeyboardInterrupt
        return original_run(self, state, data, seed, e, *a, **kw)

    monkeypatch.setattr(compiled.CompiledTrainer, "run_epoch", run_epoch)
    calls = {"epoch": -1}
    original_init, original_get = keras_fit._Batches.__init__, keras_fit._Batches.__getitem__

    def init(self, *a, **kw):
        calls["epoch"] += 1
        original_init(self, *a, **kw)

    def get(self, i):
        if calls["epoch"] == epoch and i == batch:
            raise KeyboardInterrupt
        return original_get(self, i)

    monkeypatch.setattr(keras_fit._Batches, "__init__", init)
    monkeypatch.setattr(keras_fit._Batches, "__getitem__", get)


def test_interrupt_leaves_an_unfitted_estimator_unfitted(train, monkeypatch):
    rec = rc.Recommender("dot", random_state=0, epochs=3, **FAST)
    _interrupt_at(monkeypatch, epoch=1)
    with pytest.raises(KeyboardInterrupt):
        rec.fit(train)
    with pytest.raises(rc.NotFittedError):
        rec.predict([1], [101])


def test_interrupt_keeps_the_previous_fit(train, monkeypatch):
    rec = rc.Recommender("dot", random_state=0, epochs=2, **FAST).fit(train)
    r = train.ratings.head(50)
    before = rec.predict(r["user_id"], r["item_id"])
    _interrupt_at(monkeypatch, epoch=0)
    with pytest.raises(KeyboardInterrupt):
        rec.fit(train)
    np.testing.assert_array_equal(rec.predict(r["user_id"], r["item_id"]), before)


@pytest.mark.parametrize("engine", ["jax", "keras"])
def test_checkpoint_resume_matches_an_uninterrupted_fit(train, tmp_path, monkeypatch, engine):
    params = dict(random_state=0, epochs=4, early_stopping=None, engine=engine, **FAST)
    whole = rc.Recommender("deep", **params).fit(train)
    _interrupt_at(monkeypatch, epoch=2)
    rec = rc.Recommender("deep", **params)
    with pytest.raises(KeyboardInterrupt):
        rec.fit(train, checkpoint_dir=tmp_path)
    assert _progress(tmp_path)["epoch"] == 2  # epochs 1 and 2 kept, the interrupted third lost
    monkeypatch.undo()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rec.fit(train, checkpoint_dir=tmp_path)
    assert not [w for w in caught if "dtype" in str(w.message)]  # no float64 truncation noise on resume
    assert len(rec.history_["loss"]) == 4
    np.testing.assert_allclose(rec.history_["loss"], whole.history_["loss"], rtol=1e-5)
    r = train.ratings.head(100)
    np.testing.assert_allclose(rec.predict(r["user_id"], r["item_id"]), whole.predict(r["user_id"], r["item_id"]),
                               rtol=1e-5, atol=1e-6)


def test_checkpoint_of_other_options_is_refused(train, tmp_path):
    rc.Recommender("dot", random_state=0, epochs=1, **FAST).fit(train, checkpoint_dir=tmp_path)
    with pytest.raises(rc.errors.IntegrityError, match="written for another model, options or data"):
        rc.Recommender("dot", random_state=1, epochs=1, **FAST).fit(train, checkpoint_dir=tmp_path)



def test_checkpoint_of_a_network_laid_out_otherwise_is_refused(train, tmp_path, monkeypatch):
    """Checkpoints hold the variables in order: one written by a network whose variables were laid out otherwise
    (e.g. by an older version of a model) is not resumed into the wrong slots."""
    from ratecast.models import MODELS

    rc.Recommender("dot", random_state=0, epochs=1, **FAST).fit(train, checkpoint_dir=tmp_path)
    cls = MODELS["dot"]
    original = cls.__init__

    def with_one_more(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.extra = self.add_weight(shape=(2,), initializer="zeros", trainable=False, name="extra")

    monkeypatch.setattr(cls, "__init__", with_one_more)
    with pytest.raises(rc.errors.IntegrityError, match="written for another model, options or data"):
        rc.Recommender("dot", random_state=0, epochs=1, **FAST).fit(train, checkpoint_dir=tmp_path)

KILLED = r"""
import sys, numpy as np, pandas as pd, ratecast as rc
rng = np.random.default_rng(0)
n = 60000
r = pd.DataFrame({"user_id": rng.integers(1, 500, n), "item_id": rng.integers(1, 400, n),
                  "rating": rng.integers(1, 6, n).astype(float)}).drop_duplicates(["user_id", "item_id"])
rec = rc.Recommender("dot", random_state=0, epochs=50, batch_size=16, embedding_dim=8, early_stopping=None,
                     verbose=0)
rec.fit(rc.Dataset(r), checkpoint_dir=sys.argv[1])
"""


def test_kill_9_loses_at_most_the_running_epoch(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(KILLED)
    folder = tmp_path / "ckpt"
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    proc = subprocess.Popen([sys.executable, str(script), str(folder)], env=env)
    try:
        deadline = time.time() + 300
        while not (folder / ckpt.FILE).exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert (folder / ckpt.FILE).exists(), "no checkpoint was written"
        time.sleep(0.5)  # into the next epoch
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    # a kill during a write may leave that write's temporary file (the next save removes it); the checkpoint is whole
    assert all(p.name.startswith(f".{ckpt.FILE}-") for p in folder.iterdir() if p.name != ckpt.FILE)
    progress = _progress(folder)
    assert progress["epoch"] >= 1 and len(progress["history"]["loss"]) == progress["epoch"]


def test_hybrid_without_the_metadata_it_lists_says_so():
    ds = make_dataset()
    no_users = rc.Dataset(ds.ratings, ds.items, None, genres=ds.genres)
    rec = rc.Recommender("hybrid", random_state=0, epochs=1, **FAST)
    with pytest.raises(DataError, match=r"uses user_features 'age'.*has none.*user_features=\[\]"):
        rec.fit(no_users)
    ok = rc.Recommender("hybrid", random_state=0, epochs=1, user_features=[], **FAST).fit(no_users)
    assert ok.model_.user_feature_dim == 0 and ok.model_.item_feature_dim > 0

"""Hyperparameter search under stress: Ctrl-C, memory over many trials, and one meaning of "liked"."""

import gc
import os
import signal
import sqlite3
import subprocess
import sys
import time
import weakref

import numpy as np
import pandas as pd
import pytest

from ratecast import Recommender
from ratecast.datasets import Dataset, RatingScale
from ratecast.models import MODELS
from ratecast.tuning import tune
from tests.cli_helpers import cli
from tests.synthetic import make_dataset

QUICK = {"epochs": 3}


@pytest.fixture(scope="module")
def small():
    return make_dataset(n_users=60, n_items=40, density=0.5, seed=1)


def _trial_states(db) -> dict[str, int]:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
            return dict(con.execute("SELECT state, COUNT(*) FROM trials GROUP BY state").fetchall())
    except sqlite3.Error:  # not created yet
        return {}


# --- Ctrl-C ---------------------------------------------------------------------------------------------------------
def test_ctrl_c_stops_the_search_keeps_the_study_and_exits_130(small, tmp_path):
    data, out = tmp_path / "r.csv", tmp_path / "search"
    small.ratings.to_csv(data, index=False)
    args = ["tune", "--data", str(data), "--model", "biased_dot", "--set", "epochs=3", "--out", str(out), "-q"]
    # a test runner started in the background inherits an ignored SIGINT; the command gets the default back, as in a
    # terminal (Python then turns SIGINT into KeyboardInterrupt)
    proc = subprocess.Popen([sys.executable, "-m", "ratecast.cli", *args, "--trials", "50"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 180
        while _trial_states(out / "study.db").get("COMPLETE", 0) < 1:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no trial finished in time"
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=90)  # a search that ignored it would run 50 trials
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, (proc.returncode, stderr)
    assert "Traceback" not in stderr + stdout and "Exception ignored" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: interrupted: "), stderr
    states = _trial_states(out / "study.db")
    assert states.get("COMPLETE", 0) >= 1 and sum(states.values()) < 50 and "RUNNING" not in states, states
    assert f"{states['COMPLETE']} finished trial" in lines[0] and str(out) in lines[0], lines[0]

    again = cli(*args, "--trials", "1")  # the same command continues the study
    assert again.code == 0, (again.stdout, again.stderr, again.exception)
    assert len(pd.read_csv(out / "trials.csv")) == sum(states.values()) + 1


@pytest.fixture
def python_sigint():
    """SIGINT handled as Python does in a terminal (a test runner started in the background has it ignored)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_in_a_finaliser_still_stops_the_python_api(small, tmp_path, python_sigint):
    """SIGINT that lands while Python runs a weak-reference callback (as in the garbage collection after each trial,
    or a database driver's finaliser) is not swallowed: the search stops and tune raises KeyboardInterrupt."""
    sent = []

    def interrupt_inside_a_finaliser(ref) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(10_000):  # the signal is handled here, inside the callback
            pass

    class Token:
        pass

    def progress(status: dict) -> None:
        if status["done"] >= 1 and not sent:
            token = Token()
            sent.append(weakref.ref(token, interrupt_inside_a_finaliser))
            del token

    db = tmp_path / "study.db"
    with pytest.raises(KeyboardInterrupt, match="interrupted after 1 finished trial"):
        tune(small, model="biased_dot", n_trials=12, params=QUICK, storage=f"sqlite:///{db}", progress=progress)
    states = _trial_states(db)
    assert sent and states.get("COMPLETE", 0) >= 1 and sum(states.values()) < 12, states
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Python's own handler is back


# --- memory over trials ---------------------------------------------------------------------------------------------
def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads the resident size from /proc")
def test_tune_memory_does_not_grow_with_trials(monkeypatch):
    """Each trial compiles programs for its own shapes (the search varies embedding and batch sizes); they are
    released after the trial, so memory stays flat however many trials run."""
    data = make_dataset(n_users=57, n_items=37, density=0.5, seed=5)  # shapes no other test compiled
    recommenders, rss = [], []
    fit = Recommender.fit

    def watched_fit(self, *args, **kwargs):
        recommenders.append(weakref.ref(self))
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(Recommender, "fit", watched_fit)

    def progress(status: dict) -> None:
        gc.collect()
        rss.append(_rss_mib())

    tune(data, model="biased_dot", n_trials=8, params={"epochs": 2}, pruner="none", random_state=5,
         progress=progress)
    gc.collect()
    per_trial = (rss[-1] - rss[1]) / (len(rss) - 2)
    assert per_trial < 8, f"memory grows by {per_trial:.1f} MiB per trial ({[round(r) for r in rss]})"
    assert len(recommenders) == 8 and not [r for r in recommenders if r() is not None]


# --- one meaning of "liked" -----------------------------------------------------------------------------------------
def _ten_point(seed: int = 3) -> Dataset:
    base = make_dataset(n_users=50, n_items=30, density=0.6, seed=seed)
    r = base.ratings.copy()
    r["rating"] = r["rating"] * 2 - (np.random.default_rng(seed).random(len(r)) < 0.5)  # 1..10
    return Dataset(r, base.items, base.users, name="ten", rating_scale=RatingScale(1, 10, 1), genres=base.genres)


def test_liked_is_one_level_of_the_scale_for_evaluation_tuning_and_the_implicit_model():
    assert RatingScale(1, 5).liked_threshold == 4.0  # as before on 1-5
    assert RatingScale(0.5, 5, 0.5).liked_threshold == 4.0
    ten = _ten_point()
    liked = ten.rating_scale.liked_threshold
    assert liked == 8.0
    ratings = ten.ratings.sort_values("timestamp")
    train = Dataset(ratings.iloc[:-300], ten.items, ten.users, name="ten", rating_scale=ten.rating_scale)
    test = Dataset(ratings.iloc[-300:], ten.items, ten.users, name="ten", rating_scale=ten.rating_scale)
    assert ((test.ratings["rating"] >= 4) & (test.ratings["rating"] < liked)).any()  # the levels differ here

    rec = Recommender("popularity", random_state=0, verbose=False).fit(train)
    evaluated = rec.evaluate(test, ci=False)
    at_liked = rec.top_n_metrics(test, threshold=liked, ks=(5, 10, 20))
    assert evaluated["users"] == at_liked["users"] and evaluated["recall@10"] == at_liked["recall@10"]
    assert evaluated["users"] != rec.top_n_metrics(test, threshold=4.0)["users"]

    # tuning scores its list metric at the same level
    result = tune(train, model="popularity", metric="recall@10", n_trials=1)
    assert result.study.user_attrs["protocol"]["threshold"] == liked

    # the implicit model's positives (full weight in the user's set) are the ratings at or above the same level
    model = MODELS["implicit"]({"embedding_dim": 4, "item_item_weight": 0.0, "set_model_weight": 0.0}, n_users=51,
                               n_items=31, rating_scale=train.rating_scale, seed=0)
    model.build_now()
    r = train.ratings
    users, items = r["user_id"].to_numpy(), r["item_id"].to_numpy() - 100  # indices 1.. as the model's
    model.sets.fill(*model.padded_ratings(users, items, r["rating"].to_numpy())[:2])
    assert model.liked_rating == liked
    sets, weights = np.asarray(model.sets.items), np.asarray(model.sets.values)
    weight_of = {(u, i): w for u in range(len(sets)) for i, w in zip(sets[u], weights[u]) if i}
    got = np.array([weight_of[(u, i)] for u, i in zip(users, items)])
    assert np.array_equal(got == 1.0, r["rating"].to_numpy() >= liked)

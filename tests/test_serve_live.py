"""New ratings served live: ``POST /v1/users/{id}/ratings`` folds a known or a new user in again, the next answers
are the library's for the updated model, bad input is refused whole, every accepted batch is in the run's ratings
log before the answer (threads posting at once lose none, a crash mid-line is skipped, a ``kill -9`` loses nothing
acknowledged), and the log is replayed at start-up."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from ratecast.live_log import LOG_NAME, RatingsLog, read_log
from ratecast.runs import RunSpec, load_run, train_run
from ratecast.serve import create_app
from tests.synthetic import make_dataset


def tiny_run(folder: Path) -> Path:
    """A biased_dot model trained briefly on a small synthetic ratings file (users 1..30, items 101..124)."""
    data = folder / "ratings.csv"
    make_dataset(n_users=30, n_items=24, density=0.4).ratings.to_csv(data, index=False)
    train_run(RunSpec(data=str(data), model="biased_dot",
                      params={"epochs": 3, "embedding_dim": 3, "batch_size": 64}), folder / "run", progress=False)
    return folder / "run"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    return tiny_run(tmp_path_factory.mktemp("live"))


@pytest.fixture
def run(trained, tmp_path) -> Path:
    """A fresh copy of the run (each test starts with no log)."""
    shutil.copytree(trained, tmp_path / "run")
    return tmp_path / "run"


def post(c, user, pairs):
    return c.post(f"/v1/users/{user}/ratings", json={"ratings": [{"item_id": i, "rating": r} for i, r in pairs]})


def library_answer(rec, user, k=10, **options) -> list:
    df = rec.recommend(user, k=k, **options)
    return [[int(i), round(float(s), 6)] for i, s in zip(df["item_id"], df["score"])]


def served_answer(c, user, **params) -> tuple[dict, list]:
    r = c.get(f"/v1/users/{user}/recommendations", params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    return body, [[it["item_id"], it["score"]] for it in body["items"]]


@pytest.mark.parametrize("user", [3, "visitor-1"])
def test_posted_ratings_answer_as_the_library_for_every_option(run, user):
    pairs = [(101, 5.0), (105, 1.0), (110, 4.0)]
    frame = pd.DataFrame({"user_id": pd.Series([user] * 3, dtype=object), "item_id": [p[0] for p in pairs],
                          "rating": [p[1] for p in pairs]})
    expected = load_run(run).recommender().update(frame)
    with TestClient(create_app(run)) as c:
        r = post(c, user, pairs)
        assert r.status_code == 200, r.text
        count = len(expected.state_.user_ratings(int(expected.user_index_.index([user])[0]))[0])
        assert r.json() == {"user_id": user, "accepted": 3, "rating_count": count, "new_user": isinstance(user, str)}
        for options in ({}, {"k": 3}, {"k": 7, "exclude_seen": False}, {"k": 5, "min_ratings": 3}):
            body, got = served_answer(c, user, **options)
            assert body["fallback"] is None and body["user_id"] == user
            assert got == library_answer(expected, user, **options), options
        history = c.get(f"/v1/users/{user}/history", params={"k": 50}).json()["items"]
        assert {(h["item_id"], h["rating"]) for h in history} >= set(pairs)


def test_the_served_recommender_is_not_changed_in_place(run):
    app = create_app(run)
    with TestClient(app) as c:
        before = app.state.holder.current()
        rec = before.rec
        users, seen = rec.user_index_.ids.copy(), rec.state_.seen.copy()
        predicted = rec.predict([3, 3], [101, 102])
        assert post(c, 3, [(101, 1.0), (102, 5.0)]).status_code == 200
        assert post(c, "someone", [(101, 5.0)]).status_code == 200
        assert app.state.holder.current() is not before and before.rec is rec
        assert np.array_equal(rec.user_index_.ids, users) and (rec.state_.seen != seen).nnz == 0
        assert np.allclose(rec.predict([3, 3], [101, 102]), predicted)
        assert before.recommend("someone", 10)["fallback"] == "popular"  # the old model never saw them


@pytest.mark.parametrize("body, status, needle", [
    ({"ratings": []}, 422, "ratings: List should have at least 1 item"),
    ({"ratings": [{"item_id": 101, "rating": 4}, {"item_id": 99999, "rating": 3}]}, 422,
     "ratings.1.item_id: the item is not known to the model, got 99999"),
    ({"ratings": [{"item_id": 101, "rating": 6}]}, 422, "ratings.0.rating: must lie on the rating scale 1..5"),
    ({"ratings": [{"item_id": 101, "rating": 3.5}]}, 422, "in steps of 1, got 3.5"),
    ({"ratings": [{"item_id": 101, "rating": True}]}, 422, "ratings.0.rating: Input should be a valid number"),
    ({"ratings": [{"item_id": 101, "rating": "4"}]}, 422, "ratings.0.rating: Input should be a valid number"),
    ({"ratings": [{"item_id": 101}]}, 422, "ratings.0.rating: Field required"),
    ({"ratings": [{"item_id": 101, "rating": 4}] * 1001}, 413, "1001 ratings is over the limit of 1000"),
])
def test_bad_ratings_are_refused_whole_in_the_error_shape(run, body, status, needle):
    with TestClient(create_app(run)) as c:
        r = c.post("/v1/users/3/ratings", json=body)
        assert r.status_code == status and r.json()["status"] == status
        assert needle in r.json()["error"] and "\n" not in r.json()["error"]
        assert not (run / LOG_NAME).exists()


def test_non_finite_ratings_are_refused(run):
    with TestClient(create_app(run)) as c:
        for literal in (b"NaN", b"Infinity", b"-Infinity"):
            r = c.post("/v1/users/3/ratings", content=b'{"ratings": [{"item_id": 101, "rating": ' + literal + b"}]}",
                       headers={"content-type": "application/json"})
            assert r.status_code == 422 and "finite number" in r.json()["error"], r.text
    assert not (run / LOG_NAME).exists()


def test_a_log_that_cannot_be_written_takes_nothing(run):
    (run / LOG_NAME).mkdir()  # not a file: appending fails
    app = create_app(run)
    with TestClient(app) as c:
        served = app.state.holder.current()
        r = post(c, "new", [(101, 5.0)])
        assert r.status_code == 503 and "the ratings cannot be logged" in r.json()["error"], r.text
        assert LOG_NAME in r.json()["error"] and "nothing was taken" in r.json()["error"]
        assert app.state.holder.current() is served and served_answer(c, "new")[0]["fallback"] == "popular"


def test_concurrent_writers_lose_no_rating(run):
    items = list(range(101, 125))
    batches = [(f"t{k % 4}", [(items[(k + j) % 24], float(1 + (k + j) % 5)) for j in range(2)]) for k in range(40)]
    with TestClient(create_app(run)) as c:
        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(lambda b: post(c, b[0], b[1]).status_code, batches))
        assert codes == [200] * len(batches)
        logged = read_log(run / LOG_NAME)
        assert len(logged) == sum(len(p) for _, p in batches)
        lines = (run / LOG_NAME).read_bytes().splitlines()
        assert len(lines) == len(batches) and all(json.loads(line)["user_id"] in {"t0", "t1", "t2", "t3"}
                                                  for line in lines)
        for user in ("t0", "t1", "t2", "t3"):  # every distinct item a user rated is held for them
            distinct = len({i for u, p in batches if u == user for i, _ in p})
            history = c.get(f"/v1/users/{user}/history", params={"k": 100}).json()["items"]
            assert len(history) == distinct


def test_the_log_is_replayed_at_start_up_and_a_torn_last_line_is_skipped(run):
    with TestClient(create_app(run)) as c:
        assert post(c, "ann", [(101, 5.0), (102, 4.0)]).status_code == 200
        assert post(c, 7, [(103, 2.0)]).status_code == 200
        before = {u: served_answer(c, u)[1] for u in ("ann", 7)}
    with open(run / LOG_NAME, "ab") as f:  # a crash in the middle of a line
        f.write(b'{"user_id":"bob","time":1.0,"ratings":[[104,')
    with pytest.warns(UserWarning, match=r"live_ratings.jsonl: skipped 1 line.*line 3"):
        app = create_app(run)
        with TestClient(app) as c:
            assert {u: served_answer(c, u)[1] for u in ("ann", 7)} == before
            assert served_answer(c, "bob")[0]["fallback"] == "popular"
            assert post(c, "bob", [(105, 3.0)]).status_code == 200  # starts on a line of its own
    with pytest.warns(UserWarning, match="line 3"):
        assert read_log(run / LOG_NAME)["user_id"].tolist() == ["ann", "ann", 7, "bob"]


def test_logged_ratings_the_model_cannot_take_are_skipped_at_start_up(run):
    log = RatingsLog(run / LOG_NAME)
    log.append("ann", [101, 99999], [5.0, 4.0])  # an item the model does not know
    log.append("bob", [102], [9.0])  # off the scale
    log.close()
    with pytest.warns(UserWarning, match="skipped 2 logged rating"):
        with TestClient(create_app(run)) as c:
            assert served_answer(c, "ann")[0]["fallback"] is None
            assert served_answer(c, "bob")[0]["fallback"] == "popular"


def test_a_log_append_is_one_whole_line(tmp_path):
    log = RatingsLog(tmp_path / LOG_NAME)
    log.append(5, [101, "x"], [4.0, 2.5])
    (tmp_path / LOG_NAME).write_bytes((tmp_path / LOG_NAME).read_bytes()[:-3])  # cut short
    log.append("u", [102], [1.0])
    log.close()
    with pytest.warns(UserWarning, match="line 1"):
        frame = read_log(tmp_path / LOG_NAME)
    assert frame.values.tolist()[0][:3] == ["u", 102, 1.0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(run: Path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "ratecast.cli", "serve", str(run), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())
    deadline = time.time() + 120
    while True:
        assert proc.poll() is None, "the server exited"
        assert time.time() < deadline, "the server did not become ready"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)


def test_no_acknowledged_rating_is_lost_across_kill_9(run):
    port = free_port()
    proc = start_server(run, port)
    acknowledged, answered = {}, 0
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
            for k in range(30):
                user, item = f"k{k % 3}", 101 + k % 24
                if post(c, user, [(item, float(1 + k % 5))]).status_code == 200:
                    answered += 1
                    acknowledged.setdefault(user, {})[item] = float(1 + k % 5)  # the last rating counts
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert answered == 30 and len(read_log(run / LOG_NAME)) == 30
    proc = start_server(run, port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
            for user, rated in acknowledged.items():
                history = c.get(f"/v1/users/{user}/history", params={"k": 100}).json()["items"]
                assert {h["item_id"]: h["rating"] for h in history} == rated
                assert served_answer(c, user)[0]["fallback"] is None
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def test_refit_trains_on_the_logged_ratings_into_a_new_run(run, tmp_path):
    from tests.cli_helpers import cli, one_line_error, strict_json

    log = RatingsLog(run / LOG_NAME)
    log.append("newcomer", [101, 102, 103], [5.0, 4.0, 1.0])
    log.append(3, [104, 104], [2.0, 5.0])  # the last rating of a pair counts
    log.close()
    old = load_run(run).recommender()
    res = cli("refit", run, "--out", tmp_path / "refitted", "--json")
    assert res.code == 0, (res.stdout, res.stderr)
    assert strict_json(res.stdout)["logged_ratings"] == 5
    new = load_run(tmp_path / "refitted")
    rec = new.recommender()
    assert new.info["refit_ratings"] == 5 and new.spec == load_run(run).spec

    def held(user) -> dict:
        items, ratings = rec.state_.user_ratings(int(rec.user_index_.index([user])[0]))
        return dict(zip(rec.item_index_.raw(items).tolist(), ratings.tolist()))

    assert held("newcomer") == {101: 5.0, 102: 4.0, 103: 1.0}
    known = held(3)
    assert known[104] == 5.0 and (run / LOG_NAME).is_file()  # the served run keeps its log
    added = 3 + (0 if 104 in old.seen_items(3) else 1)
    assert rec.state_.n_train == old.state_.n_train + added
    # the new run keeps what it was trained on: refitting it again includes them, and says so
    res = cli("refit", tmp_path / "refitted", "--out", tmp_path / "again", "-q")
    assert res.code == 0 and load_run(tmp_path / "again").info["refit_ratings"] == 5
    one_line_error(cli("refit", run, "--out", tmp_path / "refitted"), 1, "refitted", "--overwrite")
    one_line_error(cli("refit", run, "--out", run), 1, "is the run being refitted")
    one_line_error(cli("refit", tmp_path / "nothing"), 4, "nothing")
    # training over the served run would delete its log: refused
    one_line_error(cli("train", "--data", load_run(run).spec.data, "--model", "biased_dot", "--out", run,
                       "--overwrite", "-q"), 1, LOG_NAME)
    assert len(read_log(run / LOG_NAME)) == 5


@pytest.mark.parametrize("model", ["biased_dot", "bayesian"])
def test_a_warm_service_takes_its_first_posted_ratings_without_compiling(tmp_path, model, caplog):
    import logging

    import jax

    from ratecast import foldin
    from ratecast.serve.service import ModelService

    data = tmp_path / "ratings.csv"
    make_dataset(n_users=30, n_items=24, density=0.4).ratings.to_csv(data, index=False)
    params = {"epochs": 2, "embedding_dim": 3} if model == "biased_dot" else {"samples": 4, "burn_in": 2}
    train_run(RunSpec(data=str(data), model=model, params=params), tmp_path / "run", progress=False)
    service = ModelService(tmp_path / "run")
    service.warm()
    traced = foldin.trace_count()
    jax.config.update("jax_log_compiles", True)
    try:
        with caplog.at_level(logging.DEBUG):
            service.with_ratings("a visitor", [101], [5.0])  # a new user's first rating
            service.with_ratings("3", [102], [4.0])  # a known user's
    finally:
        jax.config.update("jax_log_compiles", False)
    assert foldin.trace_count() == traced
    assert not [r.getMessage() for r in caplog.records if "Compiling" in r.getMessage()]

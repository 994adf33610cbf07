"""The HTTP service under awkward requests: every recommendation option gives the library's answer, the body limit
holds without a Content-Length, non-finite numbers are 422, and ``ratecast serve`` on a busy port is one line."""

import json
import math
import socket
import threading
import time

import httpx
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from ratecast import Recommender
from ratecast.runs import RunSpec, train_run
from ratecast.serve import create_app
from ratecast.serve.app import MAX_BODY_BYTES
from tests.cli_helpers import cli, one_line_error

#: a head of items, each rated by about half of the users, and a long tail of items rated twice each (all 5s)
HEAD, TAIL, USERS, MIN_SUPPORT = 110, 30, 60, 10


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A dot model on synthetic ratings whose default support (10 ratings) leaves the long tail out of the lists."""
    base = tmp_path_factory.mktemp("serve_hardening")
    rng = np.random.default_rng(0)
    pu, qi = rng.normal(size=(USERS, 2)), rng.normal(size=(HEAD, 2))
    rows = [(u, i, float(np.clip(np.round(3 + pu[u] @ qi[i] + rng.normal(scale=0.3)), 1, 5)))
            for u in range(USERS) for i in range(HEAD) if rng.random() < 0.5]
    rows += [(u, HEAD + t, 5.0) for t in range(TAIL) for u in rng.choice(USERS, 2, replace=False)]
    ratings = pd.DataFrame(rows, columns=["user_id", "item_id", "rating"]).assign(
        user_id=lambda d: d.user_id + 1, item_id=lambda d: d.item_id + 1001)
    data = base / "ratings.csv"
    ratings.to_csv(data, index=False)
    train_run(RunSpec(data=str(data), model="dot", params={"epochs": 3, "embedding_dim": 4, "batch_size": 64,
                                                           "min_support": MIN_SUPPORT}),
              base / "run", progress=False)
    return base / "run"


@pytest.fixture(scope="module")
def client(run):
    with TestClient(create_app(run)) as c:
        yield c


def test_every_recommendation_option_gives_the_library_answer(client, run):
    rec = Recommender.load(run / "model")  # the same run, loaded apart from the service
    tail = set(rec.item_popularity[rec.item_popularity < MIN_SUPPORT].index)
    assert any(tail & set(rec.recommend(u, k=10, min_ratings=0)["item_id"]) for u in (1, 2, 3)), \
        "the data should make the default support matter"
    options = [{}, {"k": 10}, {"k": 10, "min_ratings": 0}, {"k": 7, "min_ratings": 0, "exclude_seen": False},
               {"k": 5, "exclude_seen": False}, {"k": 20, "min_ratings": 3}, {"k": 10, "min_ratings": MIN_SUPPORT},
               {"k": 120}, {"k": 130, "min_ratings": 0}]
    for user in ("1", "2", "3", "nobody"):
        for opts in options:
            r = client.get(f"/v1/users/{user}/recommendations", params=opts)
            assert r.status_code == 200, (user, opts, r.text)
            got = r.json()["items"]
            lib_user = int(user) if user.isdigit() else user
            want = rec.recommend(lib_user, k=opts.get("k", 10), exclude_seen=opts.get("exclude_seen", True),
                                 min_ratings=opts.get("min_ratings"))
            assert [i["item_id"] for i in got] == want["item_id"].tolist(), (user, opts)
            assert [i["rank"] for i in got] == list(range(1, len(want) + 1))
            assert [i["score"] for i in got] == pytest.approx(want["score"].tolist(), abs=1e-6), (user, opts)


def test_a_catalogue_too_large_to_rank_at_start_up_is_ranked_per_request_with_the_same_answers(run, monkeypatch):
    from ratecast.serve import service

    monkeypatch.setattr(service, "CACHE_WORK", 100)  # this run now counts as too large to rank every list first
    lazy = service.ModelService(run)
    assert lazy._top is None
    rec = Recommender.load(run / "model")
    for user in ("1", "7", "nobody"):
        got = lazy.recommend(user, 10)
        want = rec.recommend(int(user) if user.isdigit() else user, k=10)
        assert [i["item_id"] for i in got["items"]] == want["item_id"].tolist()
        assert json.loads(lazy.recommend_json(user, 10))["items"] == got["items"]


def chunks(body: bytes, size: int = 64 * 1024):
    for start in range(0, len(body), size):
        yield body[start:start + size]


def padded(body: bytes, size: int) -> bytes:
    """Valid JSON of ``size`` bytes: ``body`` with spaces before its closing brace."""
    return body[:-1] + b" " * (size - len(body)) + b"}"


def test_the_body_limit_holds_for_a_chunked_body(client, run):
    json_header = {"content-type": "application/json"}
    for path, body in (("/v1/predict", b'{"pairs": [[1, 1001]]}'), ("/v1/users", b'{"k": 3}')):
        small = client.post(path, content=chunks(padded(body, 1000)), headers=json_header)
        assert small.status_code == 200, small.text  # a chunked body under the limit is read as it is
        big = padded(body, 2 * MAX_BODY_BYTES)
        r = client.post(path, content=chunks(big), headers=json_header)
        assert "content-length" not in r.request.headers and r.request.headers["transfer-encoding"] == "chunked"
        assert r.status_code == 413, (path, r.status_code, r.text[:200])
        assert r.json() == {"error": f"request body of more than {MAX_BODY_BYTES} bytes is over the limit of "
                                     f"{MAX_BODY_BYTES}", "status": 413}
        r = client.post(path, content=big, headers=json_header)  # with its length: refused unread, as before
        assert r.status_code == 413 and r.json()["status"] == 413
    assert 'status="413"' in client.get("/metrics").text
    # on a real server: the upload is cut at the limit, answered 413 and the connection closed
    with LiveServer(create_app(run)) as live, httpx.Client(base_url=live.url, timeout=30) as c:
        sent = []

        def counted():
            for part in chunks(padded(b'{"pairs": [[1, 1001]]}', 16 * MAX_BODY_BYTES)):
                sent.append(len(part))
                yield part

        r = c.post("/v1/predict", content=counted(), headers=json_header)
        assert r.status_code == 413 and r.json()["status"] == 413
        assert sum(sent) < 8 * MAX_BODY_BYTES, sum(sent)  # the connection was closed: the rest was never sent
        assert c.post("/v1/predict", json={"pairs": [[1, 1001]]}).status_code == 200  # still serving


@pytest.mark.parametrize("body,where", [
    ({"pairs": [[1, 1001], [1, 1002]], "timestamps": [math.nan, math.inf]}, "timestamps.0"),
    ({"pairs": [[1, 1001], [1, 1002]], "timestamps": [881250949, -math.inf]}, "timestamps.1"),
    ({"ratings": {"1001": math.nan}}, "ratings.1001"),
])
def test_non_finite_numbers_in_a_body_are_422(client, body, where):
    path = "/v1/users" if "ratings" in body else "/v1/predict"
    text = json.dumps(body)  # Python writes NaN and Infinity as bare literals, which its parser also accepts
    assert "NaN" in text or "Infinity" in text
    r = client.post(path, content=text, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error.startswith(f"{where}: ") and "finite number" in error and ("got nan" in error or "got inf" in error
                                                                            or "got -inf" in error), error
    assert "Traceback" not in r.text


def test_serve_on_a_port_in_use_is_one_line_with_exit_code_1(run):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        started = time.perf_counter()
        res = cli("serve", run, "--host", "127.0.0.1", "--port", port)
        line = one_line_error(res, 1, "--port", str(port), "already in use", "--host 127.0.0.1")
        assert time.perf_counter() - started < 30, line
    assert "serving" not in res.stderr  # refused before the model was loaded


class LiveServer:
    """The app on a real uvicorn server in a thread, on a free port of 127.0.0.1, stopped on exit."""

    def __init__(self, app):
        import uvicorn

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.time() + 60
        while not self.server.started:
            assert time.time() < deadline and self.thread.is_alive(), "the server did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()


def private(name) -> bool:
    return isinstance(name, str) and name.startswith("_") and not name.startswith("__")


def test_the_service_uses_only_public_names_of_other_objects():
    """serve/ reads the recommender (and its own objects) through public names only: no ``x._name`` but on self."""
    import ast
    from pathlib import Path

    import ratecast.serve

    reached = []
    for path in sorted(Path(ratecast.serve.__file__).parent.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            on_other = isinstance(node, ast.Attribute) and private(node.attr) and not (
                isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
            by_name = isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in (
                "getattr", "setattr", "hasattr") and len(node.args) > 1 and isinstance(node.args[1], ast.Constant) \
                and private(node.args[1].value)
            if on_other or by_name:
                reached.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    assert not reached, reached


def test_the_service_map_of_a_large_catalogue_shows_its_most_rated_items(run, monkeypatch):
    from ratecast.serve import item_map
    from ratecast.viz import maps

    rec = Recommender.load(run / "model")
    frame = maps.embedding_map(rec, "item", limit=40)
    most = rec.item_popularity.sort_values(ascending=False, kind="stable")
    assert len(frame) == 40 and set(frame["id"]) == set(most.index[:40])
    assert rec.item_popularity.min() < most.iloc[:40].min()  # the least rated were left out
    monkeypatch.setattr(item_map, "MAP_ITEMS", 40)
    title = item_map.computed_map(rec)["layout"]["title"]["text"]
    assert title.endswith(f"the 40 most rated of {len(rec.item_index_):,} items")
    with pytest.raises(ValueError, match="limit must be an integer >= 2 or None, got 1"):
        maps.embedding_map(rec, "item", limit=1)

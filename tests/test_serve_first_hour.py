"""A served run as a newcomer meets it: no request computes the map (made in the background at start-up, before the swap on reload,
or taken from the run's report), the API docs work offline, a new user's unknown items are named, ids come back
typed as the model holds them, and data without titles shows ids, never null."""

import json
import os
import re
import shutil
import subprocess
import threading
import time

import httpx
import pytest
from fastapi.testclient import TestClient

from ratecast.datasets.dataset import IdIndex
from ratecast.runs import RunSpec, train_run
from ratecast.serve import create_app
from tests.synthetic import make_dataset
from tests.test_serve import LiveServer

TOKEN = "first-hour-token"


@pytest.fixture(scope="module")
def train(tmp_path_factory):
    """Trains a small dot model on synthetic ratings without titles (integer ids 1.., items 101..), once per name:
    each name is a model of its own (a map made for one is never another's)."""
    base = tmp_path_factory.mktemp("first_hour")
    data = base / "ratings.csv"
    make_dataset(n_users=40, n_items=30).ratings.drop(columns="timestamp").to_csv(data, index=False)
    made = {}

    def run(name: str, seed: int = 0):
        if name not in made:
            train_run(RunSpec(data=str(data), model="dot", seed=seed, params={"epochs": 1, "embedding_dim": 4}),
                      base / name, progress=False)
            made[name] = base / name
        return made[name]

    return run


@pytest.fixture(scope="module")
def client(train):
    with TestClient(create_app(train("served"))) as c:
        yield c


def strict(text: str):
    """JSON as a browser reads it: NaN or Infinity is an error."""
    return json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))


def refuse_to_compute(monkeypatch):
    import ratecast.viz.maps

    def refused(*args, **kwargs):
        raise AssertionError("the map is computed while serving a request")

    monkeypatch.setattr(ratecast.viz.maps, "embedding_map", refused)


# --- the map --------------------------------------------------------------------------------------------------------
def map_made(service, seconds: float = 120) -> bool:
    """Wait (bounded) until the start-up map of ``service`` is made."""
    deadline = time.time() + seconds
    while service.item_map_pending and time.time() < deadline:
        time.sleep(0.05)
    return service.item_map is not None


def test_the_map_is_made_at_start_up_and_no_request_computes_it(train, monkeypatch):
    with TestClient(create_app(train("served"))) as c:
        assert map_made(c.app.state.holder.service)
        refuse_to_compute(monkeypatch)
        r = c.get("/v1/map")
        assert r.status_code == 200
        points = sum(len(trace["customdata"]) for trace in strict(r.text)["data"])
        assert points == 30


def test_ready_does_not_wait_for_the_map_which_answers_503_until_made(train, monkeypatch):
    """A large catalogue's map takes minutes: the server is ready without it, and /v1/map says to ask again
    (503, Retry-After) until the start-up thread has made it; no request computes it."""
    import ratecast.viz.maps

    real, started, release = ratecast.viz.maps.embedding_map, threading.Event(), threading.Event()

    def slow(*args, **kwargs):
        started.set()
        release.wait(60)  # bounded: the map is made by itself if the test fails
        return real(*args, **kwargs)

    monkeypatch.setattr(ratecast.viz.maps, "embedding_map", slow)
    app = create_app(train("ready"))
    server = LiveServer(app)
    server.thread.start()
    try:
        assert started.wait(60), "the map was not started at start-up"
        deadline = time.time() + 60
        while not server.server.started:
            assert time.time() < deadline and server.thread.is_alive(), "the server did not start"
            time.sleep(0.1)
        r = httpx.get(server.url + "/ready", timeout=10)
        assert r.status_code == 200 and r.json()["ready"] is True
        r = httpx.get(server.url + "/v1/map", timeout=10)
        assert r.status_code == 503 and r.headers["retry-after"] == "5" and "being made" in r.json()["error"]
        release.set()
        assert map_made(app.state.holder.service)
        monkeypatch.setattr(ratecast.viz.maps, "embedding_map", real)
        refuse_to_compute(monkeypatch)
        assert httpx.get(server.url + "/v1/map", timeout=10).status_code == 200
    finally:
        release.set()
        server.__exit__(None, None, None)


def test_a_reload_makes_the_new_runs_map_before_the_swap(train, monkeypatch):
    import ratecast.viz.maps

    old, new = train("served"), train("after-reload", seed=1)
    with TestClient(create_app(old, admin_token=TOKEN)) as c:
        holder = c.app.state.holder
        first = holder.service.version
        real, served_meanwhile = ratecast.viz.maps.embedding_map, []

        def watched(*args, **kwargs):
            served_meanwhile.append(holder.service.version)
            return real(*args, **kwargs)

        monkeypatch.setattr(ratecast.viz.maps, "embedding_map", watched)
        r = c.post("/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"}, json={"run_dir": str(new)})
        assert r.status_code == 200, r.text
        assert served_meanwhile == [first]  # made once, while the old model still served
        assert holder.service.version == r.json()["version"] != first
        assert holder.service.item_map is not None
        refuse_to_compute(monkeypatch)
        assert c.get("/v1/map").status_code == 200


def test_the_map_of_the_runs_report_is_reused(train, monkeypatch):
    from ratecast.report import build_report

    run = train("reported")
    report = build_report(run)
    drawn = re.search(r'Plotly\.newPlot\(\s*"[0-9a-f-]{36}",\s*', report.read_text())
    report_x = json.JSONDecoder().raw_decode(report.read_text(), drawn.end())[0][0]["x"]
    refuse_to_compute(monkeypatch)
    written = (run / "MANIFEST.json").stat().st_mtime
    os.utime(report, (written - 60, written - 60))  # older than the run: from an earlier run, not reused
    with TestClient(create_app(run)) as c:
        assert not map_made(c.app.state.holder.service)
        r = c.get("/v1/map")
        assert r.status_code == 404 and "could not be made" in r.json()["error"]
    os.utime(report, (written + 1, written + 1))
    with TestClient(create_app(run)) as c:
        assert map_made(c.app.state.holder.service)
        r = c.get("/v1/map")
        assert r.status_code == 200
        figure = strict(r.text)
        assert figure["data"][0]["x"] == report_x and figure["layout"]["height"] == 560


def test_a_model_without_item_vectors_says_so_instead_of_a_map_being_made_forever(tmp_path):
    data = tmp_path / "ratings.csv"
    make_dataset(n_users=20, n_items=15).ratings.drop(columns="timestamp").to_csv(data, index=False)
    train_run(RunSpec(data=str(data), model="baseline", params={"epochs": 1}), tmp_path / "run", progress=False)
    with TestClient(create_app(tmp_path / "run")) as c:
        for _ in range(100):  # the map's thread ends at once
            r = c.get("/v1/map")
            if r.status_code != 503:
                break
            time.sleep(0.05)
        assert r.status_code == 404 and "learns no item vectors" in r.json()["error"]


def test_a_map_written_by_ratecast_map_is_reused(train, monkeypatch):
    from tests.cli_helpers import cli

    run = train("mapped")
    assert cli("map", run, "--out", run / "map.html").code == 0
    refuse_to_compute(monkeypatch)
    with TestClient(create_app(run)) as c:
        assert map_made(c.app.state.holder.service)
        r = c.get("/v1/map")
        assert r.status_code == 200 and sum(len(t["customdata"]) for t in strict(r.text)["data"]) == 30


# --- the docs -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_api_docs_load_nothing_from_the_internet(client, page):
    r = client.get(page)
    assert r.status_code == 200
    assets = re.findall(r'<(?:script|link)[^>]*?(?:src|href)\s*=\s*["\']([^"\']+)', r.text)
    assert any(a.endswith(".js") for a in assets), r.text
    assert not re.search(r"https?://", r.text), re.findall(r"https?://\S+", r.text)
    for asset in assets:
        got = client.get(asset)
        assert got.status_code == 200 and len(got.content) > 1000, asset
    assert '"openapi"' in client.get("/openapi.json").text


# --- new users ------------------------------------------------------------------------------------------------------
def test_a_new_users_unknown_items_are_named_not_dropped(client):
    r = client.post("/v1/users", json={"ratings": {"101": 5, "102": 4, "no-such-item": 3, "99999": 4}, "k": 5})
    assert r.status_code == 200
    body = r.json()
    assert body["method"] == "fold_in" and body["ignored_items"] == ["no-such-item", 99999]
    assert not {101, 102} & {i["item_id"] for i in body["items"]}
    r = client.post("/v1/users", json={"ratings": {"101": 5}})
    assert r.status_code == 200 and r.json()["ignored_items"] == []
    r = client.post("/v1/users", json={"ratings": {"no-such-item": 3, "99999": 4}})
    assert r.status_code == 422
    assert r.json()["error"] == "ratings: none of the 2 rated items is known to the model, got 'no-such-item', 99999"
    assert client.post("/v1/users", json={}).json()["ignored_items"] == []
    spec = client.get("/openapi.json").json()
    assert "ignored_items" in spec["paths"]["/v1/users"]["post"]["description"]
    assert "ignored_items" in spec["components"]["schemas"]["NewUserRecommendations"]["properties"]


# --- ids ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path,query", [("1", ""), ("99999", ""), ("99999", "?k=3&min_ratings=0")])
def test_user_ids_come_back_typed_as_the_model_holds_them(client, path, query):
    r = client.get(f"/v1/users/{path}/recommendations{query}")
    assert r.status_code == 200 and r.json()["user_id"] == int(path)


def test_text_that_is_not_a_plain_integer_stays_text(client):
    for text in ("007", "abc", "1.0"):
        assert client.get(f"/v1/users/{text}/recommendations").json()["user_id"] == text


def test_predictions_echo_ids_typed_as_the_model_holds_them(client):
    r = client.post("/v1/predict", json={"pairs": [["1", "101"], [1, 101], ["99999", "101"], ["x", "99999"]]})
    assert r.status_code == 200
    echoed = [(p["user_id"], p["item_id"]) for p in r.json()["predictions"]]
    assert echoed == [(1, 101), (1, 101), (99999, 101), ("x", 99999)]


def test_id_as_stored_keeps_text_ids_text():
    from ratecast.serve.service import id_as_stored

    assert id_as_stored(IdIndex(["a", "7"]), "7") == "7"
    assert id_as_stored(IdIndex(["a", "b"]), "7") == "7"
    assert id_as_stored(IdIndex([1, 2]), "7") == 7 and id_as_stored(IdIndex([1, 2]), "+7") == "+7"
    assert id_as_stored(IdIndex([1.5, 2.5]), "7.5") == 7.5 and id_as_stored(IdIndex([1.5]), "nan") == "nan"


# --- data without titles --------------------------------------------------------------------------------------------
def test_data_without_titles_gives_the_page_ids_and_no_null_text(client):
    """Titles are null (the page then shows the id), never the text 'None' or 'nan'; the map's points carry the id
    as their title; an item can be found by its id."""
    answers = [client.get("/v1/users/1/recommendations"), client.get("/v1/users/1/history"),
               client.get("/v1/items/101/similar"), client.get("/v1/items/search", params={"q": "101"})]
    for r in answers:
        assert r.status_code == 200, r.text
        titles = [i["title"] for i in r.json()["items"]]
        assert titles and all(t is None for t in titles), r.text
    assert answers[-1].json()["items"][0]["item_id"] == 101
    assert map_made(client.app.state.holder.service)
    figure = strict(client.get("/v1/map").text)
    rows = [row for trace in figure["data"] for row in trace["customdata"]]
    assert len(rows) == 30 and all(row[1] == str(row[0]) for row in rows)


NODE = shutil.which("node")
#: the explorer page's script run in Node on a stand-in for the browser's DOM, answered with the server's JSON
PAGE_IN_NODE = r"""
const fs = require("fs"), vm = require("vm");
const [answersFile, scriptFile] = process.argv.slice(-2);
const answers = JSON.parse(fs.readFileSync(answersFile, "utf8"));
class Node_ {
  constructor(tag) { this.tag = tag; this.children = []; this.textContent = ""; this.dataset = {}; this.value = ""; }
  addEventListener() {}
  replaceChildren(...c) { this.children = c; }
  append(...c) { this.children.push(...c); }
  scrollIntoView() {}
}
const nodes = {};
const document = { getElementById: (id) => (nodes[id] ??= new Node_("#" + id)), createElement: (t) => new Node_(t) };
const fetch = async (url) => {
  if (!(url in answers)) throw new Error("unexpected request " + url);
  return { ok: true, json: async () => answers[url] };
};
const page = { document, fetch, console, encodeURIComponent };
vm.createContext(page);
vm.runInContext(fs.readFileSync(scriptFile, "utf8"), page);
const texts = (id) => nodes[id].children.map((li) => li.children.length ? li.children[0].textContent : "");
(async () => {
  document.getElementById("user-id").value = "1";
  document.getElementById("user-k").value = "10";
  await vm.runInContext("showUser({preventDefault() {}})", page);
  document.getElementById("title-query").value = "101";
  await vm.runInContext("search({preventDefault() {}})", page);
  await new Promise((done) => setTimeout(done, 50));
  console.log(JSON.stringify({recommendations: texts("recommendations"), history: texts("history"),
    similar: texts("similar"), similarTitle: nodes["similar-title"].textContent,
    found: nodes["search-results"].children.map((li) => li.children[0].textContent)}));
})();
"""


@pytest.mark.skipif(NODE is None, reason="no node on this machine")
def test_the_explorer_page_shows_ids_where_titles_are_missing(client, tmp_path):
    from ratecast.serve.app import STATIC

    urls = ["/v1/model", "/v1/users/1/recommendations?k=10", "/v1/users/1/history?k=10",
            "/v1/items/search?q=101&limit=10", "/v1/items/101/similar?k=10"]
    (tmp_path / "answers.json").write_text(json.dumps({u: client.get(u).json() for u in urls}))
    done = subprocess.run([NODE, "-e", PAGE_IN_NODE, "--", str(tmp_path / "answers.json"),
                           str(STATIC / "explorer.js")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert len(shown["recommendations"]) == 10 and shown["history"] and len(shown["similar"]) == 10
    every = [*shown["recommendations"], *shown["history"], *shown["similar"], shown["similarTitle"], *shown["found"]]
    assert not [t for t in every if re.search(r"\b(null|undefined|None|nan|NaN)\b", t) or not t.strip()], every
    assert all(t.isdigit() for t in shown["recommendations"] + shown["similar"])
    assert shown["similarTitle"] == "Most similar to 101" and shown["found"][0].startswith("101 (")

"""The HTTP API and explorer page: answers, validation and errors, metrics, admin reload under load, and the page in
a real browser."""

import contextlib
import hashlib
import shutil
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from ratecast.runs import RunSpec, train_run
from ratecast.serve import create_app
from tests.cli_helpers import cli, one_line_error

TOKEN = "test-token"


@pytest.fixture(scope="module")
def runs(tmp_path_factory, ml100k):
    """Two runs on ML-100k: a hybrid model (served first) and a dot model (swapped in by reload tests)."""
    base = tmp_path_factory.mktemp("serve")
    train_run(RunSpec(data="ml-100k", model="hybrid", params={"epochs": 2}), base / "hybrid", dataset=ml100k,
              progress=False)
    train_run(RunSpec(data="ml-100k", model="dot", params={"epochs": 1}), base / "dot", dataset=ml100k,
              progress=False)
    return base


@pytest.fixture(scope="module")
def client(runs):
    with TestClient(create_app(runs / "hybrid", admin_token=TOKEN, max_pairs=50)) as c:
        yield c


def no_traceback(response) -> None:
    assert "Traceback" not in response.text and 'File "' not in response.text


def test_recommendations_for_known_and_unknown_users(client, ml100k):
    r = client.get("/v1/users/5/recommendations", params={"k": 10})
    assert r.status_code == 200
    body = r.json()
    assert body["user_id"] == 5 and body["fallback"] is None
    assert [i["rank"] for i in body["items"]] == list(range(1, 11))
    assert all(i["title"] for i in body["items"])
    app_rec = client.app.state.holder.service.rec
    assert not set(i["item_id"] for i in body["items"]) & set(app_rec.seen_items(5))
    assert [i["item_id"] for i in body["items"]] == app_rec.recommend(5, k=10)["item_id"].tolist()
    r = client.get("/v1/users/5/recommendations", params={"k": 5, "min_ratings": 200, "exclude_seen": False})
    pop = app_rec.item_popularity
    assert r.status_code == 200 and all(pop[i["item_id"]] >= 200 for i in r.json()["items"])
    r = client.get("/v1/users/no-such-user/recommendations")
    assert r.status_code == 200 and r.json()["fallback"] == "popular" and len(r.json()["items"]) == 10


@pytest.mark.parametrize("query", ["k=0", "k=abc", "k=100000", "min_ratings=-1", "exclude_seen=maybe"])
def test_bad_queries_are_422_json(client, query):
    r = client.get(f"/v1/users/5/recommendations?{query}")
    assert r.status_code == 422
    assert r.json()["status"] == 422 and query.split("=")[0] in r.json()["error"]
    no_traceback(r)


def test_similar_items_and_unknown_item(client):
    r = client.get("/v1/items/50/similar", params={"k": 5})
    assert r.status_code == 200 and r.json()["title"].startswith("Star Wars")
    assert len(r.json()["items"]) == 5 and all(-1 <= i["similarity"] <= 1 for i in r.json()["items"])
    r = client.get("/v1/items/999999/similar")
    assert r.status_code == 404 and r.json() == {"error": "item '999999' is not known to the model", "status": 404}


def test_predict_flags_unknown_ids_and_bounds_its_size(client):
    r = client.post("/v1/predict", json={"pairs": [[5, 50], ["5", "50"], [999999, 50], [5, 999999]]})
    assert r.status_code == 200
    p = r.json()["predictions"]
    assert p[0]["rating"] == p[1]["rating"] and 1 <= p[0]["rating"] <= 5
    assert [x["was_impossible"] for x in p] == [False, False, True, True]
    r = client.post("/v1/predict", json={"pairs": [[5, 50]] * 51})
    assert r.status_code == 413 and "over the limit of 50" in r.json()["error"]
    big = b'{"pairs": [' + b",".join([b"[5, 50]"] * 200_000) + b"]}"
    r = client.post("/v1/predict", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["status"] == 413
    for bad in (b"{not json", b'{"pairs": []}', b'{"pairs": [[1]]}', b'{"pairs": [[1, 2]], "extra": 1}'):
        r = client.post("/v1/predict", content=bad, headers={"content-type": "application/json"})
        assert r.status_code == 422, bad
        no_traceback(r)


def test_predict_passes_timestamps_to_the_model(client, monkeypatch):
    """Timestamps reach predict_details, one per pair (null: unknown); a count that does not match is a 422."""
    service = client.app.state.holder.service
    seen = []
    real = type(service.rec).predict_details

    def spy(rec, users, items, timestamps=None):
        seen.append(None if timestamps is None else list(timestamps))
        return real(rec, users, items, timestamps)

    monkeypatch.setattr(type(service.rec), "predict_details", spy)
    plain = client.post("/v1/predict", json={"pairs": [[5, 50], [5, 51]]}).json()
    timed = client.post("/v1/predict", json={"pairs": [[5, 50], [5, 51]], "timestamps": [881250949, None]})
    assert timed.status_code == 200
    assert seen[0] is None and seen[1][0] == 881250949 and np.isnan(seen[1][1])
    assert timed.json() == plain  # a model without days predicts the same
    r = client.post("/v1/predict", json={"pairs": [[5, 50], [5, 51]], "timestamps": [881250949]})
    assert r.status_code == 422 and "timestamps: 1 given for 2 pairs" in r.json()["error"]
    no_traceback(r)


def test_new_users_leave_the_served_model_alone(client):
    service = client.app.state.holder.service
    before = client.get("/v1/users/5/recommendations").json()
    n_users = len(service.rec.user_index)
    r = client.post("/v1/users", json={"ratings": {"50": 5, "181": 5, "172": 4}, "k": 5})
    assert r.status_code == 200 and r.json()["method"] == "fold_in"
    assert not {50, 181, 172} & {i["item_id"] for i in r.json()["items"]}
    r = client.post("/v1/users", json={"demographics": {"age": 25, "gender": "F", "occupation": "student"}})
    assert r.status_code == 200 and r.json()["method"] == "cold_start" and len(r.json()["items"]) == 10
    r = client.post("/v1/users", json={})
    assert r.status_code == 200 and r.json()["fallback"] == "popular"
    r = client.post("/v1/users", json={"ratings": {"50": 9}})
    assert r.status_code == 422 and "scale" in r.json()["error"]
    assert len(service.rec.user_index) == n_users
    assert client.get("/v1/users/5/recommendations").json() == before


def test_history_search_model_and_probes(client, runs):
    h = client.get("/v1/users/5/history", params={"k": 5}).json()
    ratings = [i["rating"] for i in h["items"]]
    assert len(ratings) == 5 and ratings == sorted(ratings, reverse=True)
    assert client.get("/v1/users/nobody/history").status_code == 404
    found = client.get("/v1/items/search", params={"q": "star wars"}).json()["items"]
    assert found[0]["item_id"] == 50
    info = client.get("/v1/model").json()
    assert info["sha256"] == hashlib.sha256((runs / "hybrid" / "MANIFEST.json").read_bytes()).hexdigest()
    assert info["model"] == "hybrid" and info["protocol"]["split"] == "holdout" and "rmse" in info["metrics"]
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json() == {"ready": True, "version": info["version"]}
    text = client.get("/metrics").text
    assert 'ratecast_requests_total{endpoint="/v1/users/{user_id}/recommendations",method="GET",status="200"}' in text
    assert "ratecast_request_seconds_bucket" in text
    assert f'ratecast_model_info{{model="hybrid",version="{info["version"]}"}} 1.0' in text


def test_openapi_describes_every_endpoint_and_field(client):
    spec = client.get("/openapi.json").json()
    for path in ("/v1/users/{user_id}/recommendations", "/v1/items/{item_id}/similar", "/v1/predict", "/v1/users",
                 "/v1/model", "/health", "/ready", "/metrics", "/admin/reload"):
        assert path in spec["paths"], path
    schemas = spec["components"]["schemas"]
    assert "unknown to the model" in schemas["Recommendations"]["properties"]["fallback"]["description"]
    assert "baseline" in schemas["Prediction"]["properties"]["was_impossible"]["description"]
    assert client.get("/docs").status_code == 200
    undescribed = [(path, p["name"]) for path, ops in spec["paths"].items() for op in ops.values()
                   for p in op.get("parameters", []) if not p.get("description")]
    undescribed += [(name, field) for name, schema in schemas.items() if "ValidationError" not in name
                    for field, f in schema.get("properties", {}).items() if not f.get("description")]
    assert not undescribed, undescribed


def test_an_error_inside_is_a_json_500_without_traceback(runs):
    app = create_app(runs / "hybrid")
    with TestClient(app, raise_server_exceptions=False) as c:
        service = app.state.holder.service
        service.recommend = lambda *a, **k: 1 / 0
        r = c.get("/v1/users/5/recommendations")
        assert r.status_code == 500 and r.json() == {"error": "internal error (ZeroDivisionError)", "status": 500}
        no_traceback(r)


def test_admin_endpoints_need_the_token(runs, client):
    with TestClient(create_app(runs / "hybrid", admin_token="")) as off:
        r = off.post("/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 403 and "admin endpoints are off" in r.json()["error"]
    assert client.post("/admin/reload").status_code == 401
    assert client.post("/admin/reload", headers={"Authorization": "Bearer wrong"}).status_code == 403
    r = client.post("/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"},
                    json={"run_dir": str(runs / "missing")})
    assert r.status_code == 422 and "cannot be served" in r.json()["error"]
    assert client.get("/ready").status_code == 200  # the old model still serves


class LiveServer:
    """The app on a real uvicorn server in a thread, on a free port of 127.0.0.1."""

    def __init__(self, app):
        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.time() + 120
        while not self.server.started:
            assert time.time() < deadline and self.thread.is_alive(), "the server did not start"
            time.sleep(0.1)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=30)


def test_reload_under_load_drops_no_request(runs, tmp_path):
    served = tmp_path / "served"
    shutil.copytree(runs / "hybrid", served)
    with LiveServer(create_app(served, admin_token=TOKEN)) as live:
        stop = threading.Event()
        statuses, models = [], set()

        def hammer():
            with httpx.Client(base_url=live.url, timeout=30) as c:
                k = 0
                while not stop.is_set():
                    k += 1
                    r = c.get(f"/v1/users/{k % 900 + 1}/recommendations")
                    statuses.append(r.status_code)
                    models.add(c.get("/ready").json()["version"])

        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(hammer) for _ in range(4)]
            time.sleep(0.5)
            with httpx.Client(base_url=live.url, timeout=120) as admin:
                r = admin.post("/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"},
                               json={"run_dir": str(runs / "dot")})
                assert r.status_code == 200, r.text
                new_version = r.json()["version"]
                assert admin.get("/v1/model").json()["model"] == "dot"
            time.sleep(0.5)
            stop.set()
            for f in futures:
                f.result()
        assert statuses and set(statuses) == {200}, {s for s in statuses if s != 200}
        assert new_version in models and len(models) == 2  # requests ran on both models, none failed


def test_watch_swaps_in_a_retrained_run(runs, tmp_path):
    served = tmp_path / "served"
    shutil.copytree(runs / "hybrid", served)
    app = create_app(served, watch=0.2)
    with TestClient(app) as c:
        first = c.get("/ready").json()["version"]
        shutil.rmtree(served)
        shutil.copytree(runs / "dot", served)  # as a retrain with --overwrite would leave it
        deadline = time.time() + 60
        while c.get("/ready").json()["version"] == first:
            assert time.time() < deadline, "the new run was not picked up"
            time.sleep(0.2)
        assert c.get("/v1/model").json()["model"] == "dot"


def test_cli_serve_refuses_a_missing_run(tmp_path):
    one_line_error(cli("serve", tmp_path / "nothing"), 4, "nothing")


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@contextlib.contextmanager
def explorer_page(app):
    """The app served on 127.0.0.1 and its explorer page open in headless chromium: (page, the URLs it asked for
    anywhere but the server, which an offline page leaves empty)."""
    from playwright.sync_api import sync_playwright

    with LiveServer(app) as live, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--no-first-run", "--disable-sync"])
        try:
            page = browser.new_page()
            external = []
            page.on("request", lambda req: external.append(req.url) if not req.url.startswith(live.url)
                    and not req.url.startswith("data:") else None)
            page.goto(live.url + "/")
            yield page, external
        finally:
            browser.close()


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine (.ci/run installs Debian's)")
def test_explorer_page_in_a_browser(runs):
    with explorer_page(create_app(runs / "hybrid")) as (page, external):
        page.fill("#user-id", "5")
        page.click("#user-go")
        page.wait_for_function("document.querySelectorAll('#recommendations li').length === 10")
        titles = page.locator("#recommendations li .title").all_inner_texts()
        assert len(titles) == 10 and all(t.strip() for t in titles)
        page.wait_for_function("document.querySelectorAll('#history li').length > 0")
        assert page.locator("#model").inner_text().startswith("hybrid on ml-100k")
        page.fill("#title-query", "Star Wars")
        page.press("#title-query", "Enter")
        page.wait_for_function("document.querySelectorAll('#similar li').length === 10")
        assert "Star Wars" in page.locator("#similar-title").inner_text()
        page.click("#map-load")
        page.wait_for_selector("#map .scatterlayer .point", timeout=120_000)
        assert page.locator("#map .scatterlayer .point").count() > 1000
        page.evaluate("document.getElementById('map').emit('plotly_click', "
                      "{points: [{customdata: [181, 'Return of the Jedi (1983)']}]})")
        page.wait_for_function("document.getElementById('similar-title').textContent.includes('Jedi')")
        page.wait_for_function("document.querySelectorAll('#similar li').length === 10")
        assert not external, external  # offline: nothing but the server itself

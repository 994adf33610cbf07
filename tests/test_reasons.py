"""Every list a user sees says why: ``recommend --explain``, the API's ``explain=true`` and the report, each giving
what ``Recommender.explain`` finds."""

import shutil

import numpy as np
import pytest
from fastapi.testclient import TestClient

from ratecast.runs import RunSpec, load_run, train_run
from ratecast.serve import create_app
from synthetic import make_dataset
from tests.cli_helpers import cli, one_line_error, strict_json
from tests.test_serve import CHROMIUM, explorer_page

USER = 5


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A biased_dot run on synthetic ratings whose items have titles."""
    folder = tmp_path_factory.mktemp("reasons")
    ds = make_dataset(n_users=30, n_items=40, density=0.4, seed=3)
    ds.ratings.to_csv(folder / "ratings.csv", index=False)
    ds.items.reset_index()[["item_id", "title"]].to_csv(folder / "items.csv", index=False)
    train_run(RunSpec(data=str(folder / "ratings.csv"), model="biased_dot",
                      data_options={"items": str(folder / "items.csv")},
                      params={"epochs": 2, "embedding_dim": 4, "batch_size": 32}), folder / "run", progress=False)
    return folder / "run"


@pytest.fixture(scope="module")
def rec(run):
    return load_run(run).recommender()


def assert_library_reasons(rec, user, item, k, reasons, base):
    """``reasons`` (JSON rows) and ``base`` are exactly what ``rec.explain`` gives, titles added."""
    want = rec.explain(user, item, k=k)
    assert [r["item_id"] for r in reasons] == want["item_id"].tolist()
    assert [r["feature"] for r in reasons] == want["feature"].tolist()
    np.testing.assert_allclose([r["contribution"] for r in reasons], want["contribution"], rtol=1e-12)
    assert [r["title"] for r in reasons] == [None if i is None else rec.titles([i])[0] for i in want["item_id"]]
    np.testing.assert_allclose(base, want.attrs["base"], rtol=1e-12)


# --- command line -----------------------------------------------------------------------------------------------
def test_recommend_explain_json_gives_the_library_reasons(run, rec):
    res = cli("recommend", run, "--user", USER, "-k", "3", "--explain", "--explain-k", "2", "--json")
    assert res.code == 0, res.stdout + res.stderr
    rows = strict_json(res.stdout)
    assert [r["item_id"] for r in rows] == rec.recommend(USER, k=3)["item_id"].tolist()
    for row in rows:
        assert len(row["reasons"]) == 2
        assert_library_reasons(rec, USER, row["item_id"], 2, row["reasons"], row["base"])


def test_recommend_explain_prints_plain_lines_with_the_reasons(run, rec):
    res = cli("recommend", run, "--user", USER, "-k", "2", "--explain")
    assert res.code == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert not set(res.stdout) & set("─│┃━┏┓┗┛╭╮╰╯"), res.stdout  # piped: plain lines, no table
    top = rec.recommend(USER, k=2)
    first = rec.explain(USER, top["item_id"].iloc[0], k=3)
    title = rec.titles([first["item_id"].iloc[0]])[0]
    assert lines[1].startswith(f"1. {top['title'].iloc[0]} (predicted ")
    assert lines[2] == f"   because you rated {title} ({first['contribution'].iloc[0]:+.2f})"
    assert sum(line.startswith("   because you rated ") for line in lines) == 6  # 3 reasons for each of 2 items


def test_recommend_without_explain_is_unchanged(run):
    plain = strict_json(cli("recommend", run, "--user", USER, "-k", "3", "--json").stdout)
    assert all(set(r) == {"item_id", "title", "score"} for r in plain)


@pytest.mark.parametrize("args, needle", [
    (["--user", USER, "--explain-k", "2"], "--explain-k needs --explain"),
    (["--all", "--explain"], "--user"),
    (["--user", USER, "--explain", "--out", "x.csv"], "--out"),
])
def test_recommend_explain_refuses_options_it_cannot_honour(run, args, needle):
    res = cli("recommend", run, *args)
    assert res.code == 2 and needle in res.stderr, (res.code, res.stderr)


def test_recommend_explain_k_must_be_positive(run):
    one_line_error(cli("recommend", run, "--user", USER, "--explain", "--explain-k", "0"), 1, "--explain-k", "0")


# --- API --------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def client(run):
    with TestClient(create_app(run)) as c:
        yield c


def test_api_explain_gives_each_item_the_library_reasons(client):
    plain = client.get(f"/v1/users/{USER}/recommendations", params={"k": 4}).json()
    r = client.get(f"/v1/users/{USER}/recommendations", params={"k": 4, "explain": "true", "explain_k": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    svc_rec = client.app.state.holder.service.rec
    assert [i["item_id"] for i in body["items"]] == [i["item_id"] for i in plain["items"]]
    for item in body["items"]:
        assert len(item["reasons"]) == 2
        assert_library_reasons(svc_rec, USER, item["item_id"], 2, item["reasons"], item["base"])
    default = client.get(f"/v1/users/{USER}/recommendations", params={"k": 1, "explain": "true"}).json()
    assert len(default["items"][0]["reasons"]) == 3


def test_api_without_explain_is_unchanged(client):
    for params in ({"k": 3}, {"k": 3, "explain": "false"}, {"k": 3, "min_ratings": 1}):
        body = client.get(f"/v1/users/{USER}/recommendations", params=params).json()
        assert all(set(i) == {"item_id", "title", "score", "rank"} for i in body["items"]), body


def test_api_explain_of_the_popular_fallback_has_no_reasons(client):
    body = client.get("/v1/users/nobody/recommendations", params={"k": 3, "explain": "true"}).json()
    assert body["fallback"] == "popular" and all(i["reasons"] == [] and i["base"] is None for i in body["items"])


def test_api_explain_k_without_explain_is_refused(client):
    r = client.get(f"/v1/users/{USER}/recommendations", params={"explain_k": 2})
    assert r.status_code == 422 and "explain_k" in r.json()["error"] and "explain=true" in r.json()["error"]


@pytest.fixture()
def own_run(run, tmp_path):
    """A copy of the run, for tests whose posted ratings go into its folder's log."""
    shutil.copytree(run, tmp_path / "run")
    return tmp_path / "run"


def test_api_explain_after_posted_ratings_names_them(own_run):
    with TestClient(create_app(own_run)) as c:
        posted = {101: 5, 104: 1, 107: 4}
        r = c.post("/v1/users/visitor-1/ratings",
                   json={"ratings": [{"item_id": i, "rating": v} for i, v in posted.items()]})
        assert r.status_code < 300, r.text
        body = c.get("/v1/users/visitor-1/recommendations", params={"k": 3, "explain": "true"}).json()
        assert body["fallback"] is None
        served = c.app.state.holder.current().rec
        for item in body["items"]:
            assert {r["item_id"] for r in item["reasons"] if r["item_id"] is not None} <= set(posted)
            assert_library_reasons(served, "visitor-1", item["item_id"], 3, item["reasons"], item["base"])


def test_model_info_gives_the_rating_scale_the_page_draws_stars_on(client):
    assert client.get("/v1/model").json()["rating_scale"] == {"minimum": 1.0, "maximum": 5.0, "step": 1.0}


# --- report -----------------------------------------------------------------------------------------------------
def test_report_lists_each_sample_recommendation_with_its_reasons(run, rec, tmp_path):
    import html

    from ratecast.report import build_report

    page = build_report(run, tmp_path / "report.html", map_method="tsne").read_text()
    sample = page[page.index("Sample recommendations"):]
    user = rec.user_index.ids[0]
    top = rec.recommend(user, k=5)
    for item in top["item_id"]:
        why = rec.explain(user, item, k=3)
        lines = [f"because you rated {rec.titles([i])[0]} ({c:+.2f})" for i, c in zip(why["item_id"],
                                                                                       why["contribution"])]
        assert html.escape("; ".join(lines)) in sample


# --- the explorer page: a visitor rates titles ----------------------------------------------------------------------
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine (.ci/run installs Debian's)")
def test_visitor_rates_five_titles_and_gets_a_list_with_reasons_that_changes(own_run):
    with explorer_page(create_app(own_run)) as (page, external):
        def rate(title: str, stars: int, n: int) -> list[str]:
            """Find ``title``, give it ``stars``, and wait for the list that follows the ``n`` ratings."""
            page.fill("#rate-query", title)
            page.press("#rate-query", "Enter")
            first = page.locator("#rate-results li").first
            first.locator(f".title:text-is('{title}')").wait_for()
            first.locator(f"button[data-stars='{stars}']").click()
            page.wait_for_function(f"document.getElementById('visitor-recs').dataset.ratings === '{n}' || "
                                   "document.getElementById('visitor-note').className === 'error'")
            assert page.locator("#visitor-note").inner_text() == ""  # else the page's one-line error
            assert page.locator("#visitor-recs > li .reasons li").count() > 0
            return page.locator("#visitor-recs > li").all_inner_texts()

        for n, (title, stars) in enumerate([("Movie 1 (1981)", 5), ("Movie 2 (1982)", 1),
                                            ("Movie 4 (1984)", 4), ("Movie 5 (1985)", 2)], start=1):
            before = rate(title, stars, n)
        assert len(before) == 10 and all("because you rated Movie " in item for item in before)
        assert page.locator("#my-ratings li").count() == 4
        top = page.locator("#visitor-recs > li .title").first.inner_text()
        after = rate(top, 5, 5)  # the list's own first item: rated, it leaves the list
        assert after != before and top not in page.locator("#visitor-recs > li .title").all_inner_texts()
        assert all("because you rated " in item for item in after)
        assert not external, external  # offline: nothing but the server itself

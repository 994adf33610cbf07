"""Every command takes --json; CLI messages name the flags the user typed; a missing --data-home creates nothing."""

import json
import re

import pytest
from typer.testing import CliRunner

from ratecast import io
from ratecast.cli import app
from synthetic import make_dataset

FAST = ["--epochs", "1", "--batch-size", "256", "--embedding-dim", "4", "-q"]


class Result:
    def __init__(self, result):
        self.code, self.stdout = result.exit_code, result.stdout
        self.stderr = result.stderr if result.stderr_bytes is not None else ""
        self.exception = result.exception


def cli(*args) -> Result:
    return Result(CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"}))


def strict_json(text: str):
    return json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in JSON output"))


def json_error(res: Result, code: int, *needles: str) -> str:
    assert res.code == code, (res.code, res.stdout, res.stderr, res.exception)
    body = strict_json(res.stdout)
    assert set(body) == {"error", "exit_code"} and body["exit_code"] == code, body
    for needle in needles:
        assert needle in body["error"], body["error"]
    return body["error"]


def one_line_error(res: Result, code: int, *needles: str) -> str:
    assert res.code == code, (res.code, res.stdout, res.stderr, res.exception)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("own")
    ds = make_dataset(n_users=30, n_items=24, density=0.6)
    ds.ratings.drop(columns="timestamp").to_csv(folder / "ratings.csv", index=False)
    return folder / "ratings.csv"


@pytest.fixture(scope="module")
def run(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "dot"
    res = cli("train", "--data", data, "--model", "dot", *FAST, "--out", out)
    assert res.code == 0, (res.stdout, res.stderr, res.exception)
    return out


# --- --json on map, report and demo ---------------------------------------------------------------------------------
def test_map_json(run, tmp_path):
    res = cli("map", run, "--out", tmp_path / "m.html", "--perplexity", "5", "--json")
    assert res.code == 0, (res.stdout, res.stderr)
    body = strict_json(res.stdout)
    assert body == {"out": str(tmp_path / "m.html"), "points": 24, "kind": "item", "method": "tsne",
                    "color": "popularity"}
    assert io.is_ratecast_file(tmp_path / "m.html")
    json_error(cli("map", run, "--out", tmp_path / "m.txt", "--json"), 1, "--out must end in .html or .png")
    json_error(cli("map", run, "--out", tmp_path / "m.html", "--method", "pca", "--json"), 2, "--method")
    json_error(cli("map", tmp_path / "nope", "--out", tmp_path / "m2.html", "--json"), 4, "not a ratecast run")


def test_report_json(run, tmp_path):
    res = cli("report", run, "--out", tmp_path / "r.html", "--json")
    assert res.code == 0, (res.stdout, res.stderr)
    assert strict_json(res.stdout) == {"run": str(run), "out": str(tmp_path / "r.html")}
    assert (tmp_path / "r.html").is_file()
    (tmp_path / "mine.html").write_text("my notes")
    json_error(cli("report", run, "--out", tmp_path / "mine.html", "--json"), 1, "mine.html")
    assert (tmp_path / "mine.html").read_text() == "my notes"
    json_error(cli("report", tmp_path / "nope", "--json"), 4, "not a ratecast run")


def test_demo_json(data, tmp_path):
    out = tmp_path / "demo"
    res = cli("demo", "--out", out, "--data", data, "--models", "dot", "--epochs", "1", "--json")
    assert res.code == 0, (res.stdout, res.stderr, res.exception)
    body = strict_json(res.stdout)  # the whole of stdout: no progress display, no table
    assert body["out"] == str(out) and body["table"] == str(out / "results.csv")
    (row,) = body["runs"]
    assert row["model"] == "dot" and row["path"] == str(out / "dot") and row["report"] == str(out / "dot" /
                                                                                              "report.html")
    assert isinstance(row["mae"], float) and (out / "dot" / "report.html").is_file()
    json_error(cli("demo", "--out", tmp_path / "d2", "--models", "svd", "--json"), 1, "--models must name models")
    json_error(cli("demo", "--out", tmp_path / "d2", "--epochs", "0", "--json"), 1, "--epochs")
    assert not (tmp_path / "d2").exists()


def test_every_command_offers_json():
    for verb in (["data", "fetch"], ["data", "info"], ["data", "stats"], ["train"], ["evaluate"], ["recommend"],
                 ["similar"], ["map"], ["compare"], ["report"], ["demo"]):
        text = cli(*verb, "--help").stdout
        assert re.search(r"--json\s+Print JSON", text), verb

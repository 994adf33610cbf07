"""Every CLI verb, run as a user would: the real ``ratecast`` command in a subprocess."""

import json
import re
import os
import shutil
import subprocess
import sys

import matplotlib.image as mpimg
import numpy as np
import pytest

from conftest import SHARED_DATA

EXE = [sys.executable, "-m", "ratecast.cli"]


def ratecast(*args, check=True, cwd=None):
    env = {**os.environ, "RATECAST_DATA": str(SHARED_DATA), "COLUMNS": "200"}
    proc = subprocess.run([*EXE, *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"ratecast {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


class InProcess:
    """The same CLI, run in this process (fast) for the error paths; each verb also runs as a subprocess."""

    def __init__(self, result):
        self.returncode, self.stdout = result.exit_code, result.stdout
        self.stderr = result.stderr if result.stderr_bytes is not None else ""


def ratecast_inproc(*args, monkeypatch=None):
    from typer.testing import CliRunner

    from ratecast.cli import app

    os.environ["RATECAST_DATA"] = str(SHARED_DATA)
    return InProcess(CliRunner().invoke(app, [str(a) for a in args]))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, ml100k):
    out = tmp_path_factory.mktemp("runs") / "deep"
    proc = ratecast("train", "--data", "ml-100k", "--model", "deep", "--split", "holdout", "--seed", "0",
                    "--epochs", "2", "--batch-size", "512", "--out", out, "--json")
    result = json.loads(proc.stdout)
    assert result["test"]["n"] == 20_000 and 0.6 < result["test"]["mae"] < 1.0
    return out


def test_help_on_every_verb():
    from typer.testing import CliRunner

    from ratecast.cli import app

    assert "Usage" in ratecast("--help").stdout  # the real command once; every verb in-process (fast)
    runner = CliRunner()
    for verb in (["data"], ["data", "fetch"], ["data", "info"], ["data", "stats"], ["train"], ["tune"], ["serve"],
                 ["evaluate"], ["recommend"], ["similar"], ["predict"], ["map"], ["compare"], ["report"], ["demo"]):
        result = runner.invoke(app, [*verb, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output, verb
    from ratecast.models import MODELS

    train_help = " ".join(runner.invoke(app, ["train", "--help"], terminal_width=200).output.split())
    assert all(name in train_help for name in MODELS), train_help  # --model names every model it accepts


def test_data_verbs(ml100k, tmp_path):
    info = json.loads(ratecast("data", "info", "ml-100k", "--json").stdout)
    assert info["n_ratings"] == 100_000 and info["n_users"] == 943
    stats = json.loads(ratecast("data", "stats", "ml-100k", "--out", tmp_path, "--json").stdout)
    assert stats["rating_distribution"]["4"] == 34174 and stats["top_items"][0]["item_id"] == 50
    assert mpimg.imread(tmp_path / "rating_distribution.png").shape[:2] == (480, 640)
    fetched = ratecast("data", "fetch", "ml-100k")
    assert "ml-100k" in fetched.stdout
    bad = ratecast_inproc("data", "info", "ml-7m")
    assert bad.returncode == 1 and "ml-7m: not a known dataset name (ml-100k" in bad.stderr and "Traceback" not in bad.stderr


def test_run_directory_contents(run_dir):
    assert {"run.json", "metrics.json", "history.json", "split.json", "model", "plots"} <= {p.name for p in run_dir.iterdir()}
    run = json.loads((run_dir / "run.json").read_text())
    assert run["spec"]["model"] == "deep" and run["training_config"]["epochs"] == 2
    assert mpimg.imread(run_dir / "plots" / "loss.png").shape[:2] == (480, 640)


def test_evaluate(run_dir):
    res = json.loads(ratecast("evaluate", run_dir, "--json").stdout)
    saved = json.loads((run_dir / "metrics.json").read_text())["test"]
    assert res["test"]["mae"] == pytest.approx(saved["mae"]) and res["test"]["test_ratings_seen_in_training"] == 0
    other = json.loads(ratecast_inproc("evaluate", run_dir, "--split", "u1", "--json").stdout)
    assert other["test"]["test_ratings_seen_in_training"] > 0  # u1's test set overlaps this run's training data


def test_recommend_and_similar(run_dir, tmp_path):
    recs = json.loads(ratecast("recommend", run_dir, "--user", "5", "-k", "4", "--json").stdout)
    assert len(recs) == 4 and {"item_id", "title", "score"} <= set(recs[0])
    table = ratecast_inproc("recommend", run_dir, "--user", "5", "-k", "3").stdout
    assert recs[0]["title"] in table
    streamed = ratecast_inproc("recommend", run_dir, "--all", "-k", "2", "--out", tmp_path / "all.csv")
    assert len((tmp_path / "all.csv").read_text().splitlines()) == 1 + 2 * 943
    assert "ranked 943 of 943 users" in streamed.stderr and f"wrote {2 * 943} rows" in streamed.stdout
    sims = json.loads(ratecast("similar", run_dir, "--item", "181", "-k", "3", "--json").stdout)
    assert len(sims) == 3 and all(s["item_id"] != 181 for s in sims)
    unknown = ratecast_inproc("recommend", run_dir, "--user", "99999")
    assert unknown.returncode == 3 and "unknown user id '99999'" in unknown.stderr
    assert len(unknown.stderr.strip().splitlines()) == 1
    bad_k = ratecast_inproc("similar", run_dir, "--item", "181", "-k", "0")
    assert bad_k.returncode == 1 and "-k must be a positive integer, got 0" in bad_k.stderr
    for verb in (["recommend", run_dir, "--user", "5"], ["similar", run_dir, "--item", "181"]):
        empty = ratecast_inproc(*verb, "--min-ratings", "100000")
        assert empty.returncode == 0 and "none with 100000 or more training ratings qualifies; lower --min-ratings" \
            in " ".join(empty.stderr.split()), verb


def test_map_compare_report(run_dir, tmp_path):
    ratecast("map", run_dir, "--out", tmp_path / "map.html")
    html = (tmp_path / "map.html").read_text()
    assert "Star Wars (1977)" in html and "plotly" in html.lower()
    rows = json.loads(ratecast("compare", run_dir, run_dir, "--json").stdout)["runs"]
    assert len(rows) == 2 and rows[0]["model"] == "deep"
    ratecast("report", run_dir, "--out", tmp_path / "report.html")
    page = (tmp_path / "report.html").read_text()
    for needle in ("Protocol", "Metrics", "95%", "Most similar items", "Sample recommendations", "data:image/png"):
        assert needle in page
    missing = ratecast_inproc("report", tmp_path / "nope")
    assert missing.returncode == 4 and "not a ratecast run directory" in missing.stderr


def test_bad_train_arguments(tmp_path):
    bad_model = ratecast_inproc("train", "--model", "svd", "--out", tmp_path / "x")
    assert bad_model.returncode == 1 and "model must be one of" in bad_model.stderr
    bad_dropout = ratecast_inproc("train", "--model", "deep", "--dropout", "1.5", "--out", tmp_path / "x")
    assert bad_dropout.returncode == 1 and "dropout must be in [0, 1), got 1.5" in bad_dropout.stderr
    usage = ratecast_inproc("train", "--epochs", "many")
    assert usage.returncode == 2
    assert not (tmp_path / "x").exists()


def test_train_own_csv_with_config(tmp_path):
    lines = ["uid,mid,stars"] + [f"{u},{i},{(u * i) % 5 + 1}" for u in range(1, 31) for i in range(1, 21) if (u + i) % 3]
    (tmp_path / "mine.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "cfg.toml").write_text('model = "biased_dot"\nembedding_dim = 4\nepochs = 2\nbatch_size = 32\n')
    res = json.loads(ratecast("train", "--data", tmp_path / "mine.csv", "--user-col", "uid", "--item-col", "mid",
                              "--rating-col", "stars", "--config", tmp_path / "cfg.toml", "--out", tmp_path / "run",
                              "--json").stdout)
    assert res["test"]["n"] > 0
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["spec"]["model"] == "biased_dot" and run["model_config"]["embedding_dim"] == 4


@pytest.mark.slow
def test_demo_end_to_end(tmp_path, ml100k):
    models = ("popularity", "dot", "fast")  # a reference, a lab model and a preset (topn and accurate take minutes)
    proc = ratecast("demo", "--out", tmp_path / "demo", "--models", ",".join(models))
    assert "Test results" in proc.stdout and "fast (biased_dot)" in proc.stdout
    for model in models:
        assert (tmp_path / "demo" / model / "report.html").exists()
        assert f"  {model}: {tmp_path / 'demo' / model / 'report.html'}" in proc.stdout  # the pages are named
    assert (tmp_path / "demo" / "results.csv").read_text().count("\n") == 4
    # the preset wins the rating columns, marked; three users' lists side by side
    row = next(line for line in proc.stdout.splitlines() if line.startswith("fast (biased_dot)"))
    assert re.search(r"\d\*\s+\[[^]]+\]\s+\d\.\d+\*", row), row  # MAE (then its interval) and RMSE
    for who in ("Top 5 for user 5 ", "a student with the fewest training ratings", "a fan of Star Wars (1977)"):
        assert who in proc.stdout


def test_report_renders_in_headless_chromium(run_dir, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (.ci/run installs Debian's chromium)")
    report = tmp_path / "report.html"
    ratecast_inproc("report", run_dir, "--out", report)
    shot = tmp_path / "shot.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,2400",
                    "--virtual-time-budget=5000", f"--screenshot={shot}", report.as_uri()],
                   capture_output=True, timeout=180, check=False)
    img = mpimg.imread(shot)
    assert img.shape[:2] == (2400, 1200)
    assert img[..., :3].std() > 0.05  # not a blank page
    keep = os.environ.get("RATECAST_KEEP_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)


def test_ctrl_c_then_resume(tmp_path):
    """A real SIGINT during training: exit 130, a one-line hint, nothing in RUN; --resume finishes the run."""
    import signal
    import time

    from synthetic import make_dataset

    ds = make_dataset(n_users=300, n_items=120, density=0.5)
    ds.ratings.drop(columns="timestamp").to_csv(tmp_path / "r.csv", index=False)
    run = tmp_path / "run"
    # many short epochs: the first checkpoint comes early and leaves the signal a wide window (seconds), even when
    # this process is descheduled on a busy machine (with 40 epochs, once, the fit ended before the signal came)
    args = ["train", "--data", tmp_path / "r.csv", "--model", "dot", "--epochs", "120", "--batch-size", "64",
            "--embedding-dim", "8", "--set", "early_stopping=null", "--out", run, "-q"]
    env = {**os.environ, "RATECAST_DATA": str(SHARED_DATA)}
    # a test runner started in the background inherits an ignored SIGINT; the command gets the default back, as in a
    # terminal (Python then turns SIGINT into KeyboardInterrupt)
    proc = subprocess.Popen([*EXE, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    checkpoint = tmp_path / ".run.partial" / "checkpoint"
    deadline = time.monotonic() + 600
    while proc.poll() is None and time.monotonic() < deadline and not (
            checkpoint.is_dir() and any(checkpoint.iterdir())):
        time.sleep(0.2)
    assert proc.poll() is None, f"training ended before it could be interrupted: {proc.communicate()}"
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and f"ratecast train --resume {run}" in lines[0], stderr
    assert not run.exists() and (tmp_path / ".run.partial" / "spec.json").is_file()
    done = ratecast("train", "--resume", run, "--json")
    assert json.loads(done.stdout)["test"]["n"] > 0
    assert json.loads((run / "run.json").read_text())["epochs_run"] == 120
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv", "run"]


def test_tables_leave_out_a_title_column_with_no_titles_and_never_print_none(monkeypatch):
    import pandas as pd
    from rich.console import Console

    from ratecast.cli import console as cli_console

    console = Console(record=True, width=120)
    monkeypatch.setattr(cli_console, "out", console)
    cli_console.print_frame(pd.DataFrame({"item_id": [3, 7], "title": [None, None], "score": [4.5, 4.25]}), "Top",
                            wrap=("title",))
    cli_console.print_frame(pd.DataFrame({"item_id": [3, 7], "title": ["Heat (1995)", None], "score": [4.5, 4.25]}),
                            "Top", wrap=("title",))
    first, second = console.export_text().split("Top")[1:]
    assert "title" not in first and "None" not in first and "4.5" in first
    assert "title" in second and "Heat (1995)" in second and "None" not in second


def test_predict_scores_a_file_of_pairs(run_dir, tmp_path):
    import pandas as pd

    import ratecast as rc

    pairs = tmp_path / "pairs.csv"
    pairs.write_text("userId,movieId,ts\n196,242,881250949\n5,181,881250949\n99999,181,881250949\n005,181,0\n")
    result = ratecast_inproc("predict", run_dir, "--pairs", pairs, "--user-col", "userId", "--item-col", "movieId",
                             "--timestamp-col", "ts", "--out", tmp_path / "preds.csv")
    assert result.returncode == 0, result.stderr
    got = pd.read_csv(tmp_path / "preds.csv", dtype={"user_id": str})
    rec = rc.Recommender.load(run_dir / "model")
    expected = rec.predict([196, 5], [242, 181])
    np.testing.assert_allclose(got["prediction"][:2], expected, rtol=1e-5)
    # an unknown user, and "005" (not the integer 5: ids are matched as written), get the baseline, flagged
    assert got["known_user"].tolist() == [True, True, False, False]
    assert got["was_impossible"].tolist() == [False, False, True, True]
    records = json.loads(ratecast_inproc("predict", run_dir, "--pairs", pairs, "--user-col", "userId",
                                         "--item-col", "movieId", "--json").stdout)
    assert len(records) == 4 and records[0]["prediction"] == pytest.approx(expected[0], rel=1e-5)
    missing = ratecast_inproc("predict", run_dir, "--pairs", pairs)
    assert missing.returncode == 1 and len(missing.stderr.strip().splitlines()) == 1
    assert "pairs.csv: missing column 'user_id' (--user-col); the file has columns ['userId', 'movieId', 'ts']" \
        in " ".join(missing.stderr.split())
    gap = tmp_path / "gap.csv"
    gap.write_text("user_id,item_id\n196,242\n,181\n")
    blank = ratecast_inproc("predict", run_dir, "--pairs", gap)
    assert blank.returncode == 1 and "gap.csv, line 3: missing value in column 'user_id'" in blank.stderr
    assert ratecast_inproc("predict", run_dir, "--pairs", tmp_path / "none.csv").returncode == 4

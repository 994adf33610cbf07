"""The command line on small synthetic files, in-process: no data loss, no silent NaN, safe run folders, documented
exit codes, JSON errors, interrupt and resume, own-data options."""

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import ratecast
from ratecast import io, manifest
from cli_helpers import FAST, cli, one_line_error, strict_json
from synthetic import make_dataset

NAN = re.compile(r"\bnan\b", re.I)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Ratings, item and user files as a user would have them (ids named uid/mid, genres as 'A|B')."""
    folder = tmp_path_factory.mktemp("own")
    ds = make_dataset(n_users=40, n_items=30, density=0.6)
    ds.ratings.rename(columns={"user_id": "uid", "item_id": "mid", "rating": "stars"}).drop(
        columns="timestamp").to_csv(folder / "ratings.csv", index=False)
    genres = ds.items[ds.genres].astype(bool)
    items = pd.DataFrame({"movie": ds.items.index, "title": ds.items["title"],
                          "genres": ["|".join(g for g in ds.genres if row[g]) for _, row in genres.iterrows()]})
    items.to_csv(folder / "items.csv", index=False)
    ds.users.reset_index().rename(columns={"user_id": "uid"}).to_csv(folder / "users.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def run(files, tmp_path_factory):
    """A hybrid run trained on the own files, with item and user metadata."""
    out = tmp_path_factory.mktemp("runs") / "hybrid"
    res = cli("train", "--data", files / "ratings.csv", "--user-col", "uid", "--item-col", "mid", "--rating-col",
              "stars", "--items", files / "items.csv", "--item-key", "movie", "--users", files / "users.csv",
              "--encoding", "utf-8", "--rating-scale", "1,5,1", "--model", "hybrid", *FAST, "--out", out, "--json")
    assert res.code == 0, (res.stdout, res.stderr, res.exception)
    assert strict_json(res.stdout)["test"]["n"] > 0
    return out


def own(files):
    """The own-data options, and the model these checks train (a later --model replaces it)."""
    return ["--data", files / "ratings.csv", "--user-col", "uid", "--item-col", "mid", "--rating-col", "stars",
            "--model", "deep"]


# --- 1. no data loss ------------------------------------------------------------------------------------------------
def test_train_never_deletes_a_users_folder(files, tmp_path):
    dest = tmp_path / "mine"
    dest.mkdir()
    (dest / "ratings.csv").write_bytes((files / "ratings.csv").read_bytes())
    for extra in ([], ["--overwrite"]):
        res = cli("train", *own(files), *FAST, "--out", dest, *extra)
        one_line_error(res, 1, "mine", "not empty and was not written by ratecast")
    assert (dest / "ratings.csv").read_bytes() == (files / "ratings.csv").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_train_replaces_a_run_only_with_overwrite(run, files):
    before = (run / "metrics.json").read_text()
    one_line_error(cli("train", *own(files), *FAST, "--out", run), 1, "already holds a ratecast output",
                   "--overwrite")
    assert (run / "metrics.json").read_text() == before


@pytest.mark.parametrize("dest", [".", "..", "/"])
def test_out_dot_dotdot_root(files, tmp_path, monkeypatch, dest):
    monkeypatch.chdir(tmp_path)
    for verb in (["train", *own(files), *FAST], ["report", "x"]):
        res = cli(*verb, "--out", dest)
        assert res.code in (1, 4) and len(res.stderr.strip().splitlines()) == 1, res.stderr
    one_line_error(cli("train", *own(files), *FAST, "--out", dest), 1, "--out")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_second_writer_fails_before_loading_data(files, tmp_path, monkeypatch):
    import ratecast.runs

    monkeypatch.setattr(ratecast.runs, "load_data", lambda *a, **k: pytest.fail("data loaded while locked"))
    with io.lock_output(tmp_path / "run"):
        one_line_error(cli("train", *own(files), *FAST, "--out", tmp_path / "run"), 1,
                       "another process is writing it")
    assert not (tmp_path / "run").exists()


def test_single_file_outputs_never_replace_a_users_file(run, files, tmp_path):
    notes = tmp_path / "notes.html"
    notes.write_text("my notes")
    table = tmp_path / "mine.csv"
    table.write_text("keep")
    pic = tmp_path / "popularity.png"
    pic.write_bytes(b"\x89PNG my picture")
    one_line_error(cli("report", run, "--out", notes), 1, "notes.html", "not written by ratecast")
    one_line_error(cli("map", run, "--out", notes), 1, "notes.html")
    one_line_error(cli("recommend", run, "--all", "--out", table), 1, "mine.csv", "--overwrite")
    one_line_error(cli("data", "stats", files / "ratings.csv", "--user-col", "uid", "--item-col", "mid",
                       "--rating-col", "stars", "--out", tmp_path), 1, "popularity.png")
    assert notes.read_text() == "my notes" and table.read_text() == "keep"
    assert pic.read_bytes() == b"\x89PNG my picture"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.csv", "notes.html", "popularity.png"]
    # what ratecast wrote it may write again; a user's file only with --overwrite
    res = cli("recommend", run, "--all", "-k", "2", "--out", table, "--overwrite")
    assert res.code == 0 and table.read_text().startswith("user_id")


def test_data_stats_writes_only_its_own_files(files, tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    args = ["data", "stats", files / "ratings.csv", "--user-col", "uid", "--item-col", "mid", "--rating-col", "stars",
            "--items", files / "items.csv", "--item-key", "movie", "--out", tmp_path, "--json"]
    for _ in range(2):  # a second run replaces its own plots
        res = cli(*args)
        assert res.code == 0, res.stdout
        assert sorted(Path(p).name for p in strict_json(res.stdout)["plots"]) == [
            "popularity.png", "rating_distribution.png", "release_years.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt", "popularity.png", "rating_distribution.png",
                                                           "release_years.png"]


# --- 2. silent wrong results ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("option,value,message", [
    ("--learning-rate", "inf", "--learning-rate must be a finite number, got inf"),
    ("--learning-rate", "nan", "--learning-rate must be a finite number, got nan"),
    ("--learning-rate", "1e30", "--learning-rate must be a finite number in (0, 10], got 1e+30"),
    ("--dropout", "nan", "--dropout must be a finite number, got nan"),
    ("--test-size", "inf", "--test-size must be a finite number, got inf"),
    ("--test-size", "1.5", "--test-size must be a number in (0, 1), got 1.5"),
    ("--epochs", "0", "--epochs must be a positive integer, got 0"),
    ("--seed", "-1", "--seed must be an integer in [0, 4294967295], got -1"),
    ("--set", "l2=NaN", "--set l2 must be a finite number, got nan"),
])
def test_bad_option_values(files, tmp_path, option, value, message):
    one_line_error(cli("train", *own(files), option, value, "--out", tmp_path / "r"), 1, message)
    assert not (tmp_path / "r").exists()


def test_config_values_are_checked(files, tmp_path):
    cfg = tmp_path / "cfg.toml"
    cfg.write_text('model = "dot"\nlearning_rate = nan\n')
    one_line_error(cli("train", *own(files), "--config", cfg, "--out", tmp_path / "r"), 1,
                   "cfg.toml: learning_rate must be a finite number, got nan")
    cfg.write_text('model = "dot"\n[training]\nepochs = 2\n')
    one_line_error(cli("train", *own(files), "--config", cfg, "--out", tmp_path / "r"), 1, "top level")
    cfg.write_text('model = "dot"\nepochs = \n')
    one_line_error(cli("train", *own(files), "--config", cfg, "--out", tmp_path / "r"), 1, "invalid TOML")
    one_line_error(cli("train", *own(files), "--config", tmp_path / "no.toml", "--out", tmp_path / "r"), 4,
                   "no.toml")


def test_diverged_training_writes_nothing(files, tmp_path):
    diverge = ["--model", "deep", "--epochs", "3", "--learning-rate", "10", "--set", 'optimizer="sgd"',
               "--set", 'loss="mse"', "-q", "--out", tmp_path / "r"]
    one_line_error(cli("train", *own(files), *diverge), 1, "diverged", "lower the learning rate")
    res = cli("train", *own(files), *diverge, "--json")
    assert res.code == 1 and strict_json(res.stdout)["exit_code"] == 1
    assert "diverged" in strict_json(res.stdout)["error"]
    assert list(tmp_path.iterdir()) == []  # no run folder, no partial folder, no lock


def test_nan_metrics_are_null_in_json_and_a_dash_for_people(tmp_path):
    # every rating below the relevance threshold: recall and NDCG have no user to average over (NaN)
    ds = make_dataset(n_users=30, n_items=20)
    low = ds.ratings.assign(rating=np.clip(ds.ratings["rating"], 1, 3))
    low.drop(columns="timestamp").to_csv(tmp_path / "low.csv", index=False)
    # on a 1-5 scale (inferred from the ratings, 1-3, it would make 3 the liked level)
    res = cli("train", "--data", tmp_path / "low.csv", "--rating-scale", "1,5", "--model", "dot", *FAST, "--out",
              tmp_path / "r", "--json")
    assert res.code == 0, res.stdout
    assert strict_json(res.stdout)["test"]["ndcg@10"] is None
    assert "NaN" not in (tmp_path / "r" / "metrics.json").read_text()
    human = cli("evaluate", tmp_path / "r")
    assert human.code == 0 and "NDCG —" in human.stdout and not NAN.search(human.stdout)
    assert strict_json(cli("evaluate", tmp_path / "r", "--json").stdout)["test"]["recall@10"] is None
    table = cli("compare", tmp_path / "r", env={"COLUMNS": "80"}).stdout
    assert not NAN.search(table)
    page = cli("report", tmp_path / "r", "--out", tmp_path / "report.html")
    assert page.code == 0, page.stderr
    html = (tmp_path / "report.html").read_text()
    metrics = html[html.index("<h2>Metrics</h2>"):html.index("<h2>Training</h2>")]
    assert not NAN.search(metrics) and "untrained model" in metrics
    row = re.search(r"<tr>\s*<td>MAE of the untrained model.*?</tr>", metrics, re.S).group(0)
    assert re.findall(r"<td>(.*?)</td>", row, re.S)[1:3] == ["\u2014", "\u2014"]  # test, test CI: a dash


def test_report_tables_escape_and_show_dashes():
    from ratecast.report import html_table

    page = html_table(pd.DataFrame({"title": ["<script>alert(1)</script> & co"], "score": [float("nan")],
                                "n": [np.int64(3)], "x": [1.23456]}))
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in page
    assert re.findall(r"<td>(.*?)</td>", page)[1:] == ["\u2014", "3", "1.235"]


# --- 3. run folders -----------------------------------------------------------------------------------------------
def test_run_json_stores_absolute_paths_and_works_from_anywhere(files, tmp_path, monkeypatch):
    monkeypatch.chdir(files)
    res = cli("train", "--data", "ratings.csv", "--user-col", "uid", "--item-col", "mid", "--rating-col", "stars",
              "--items", "items.csv", "--item-key", "movie", "--model", "dot", *FAST, "--out", tmp_path / "r")
    assert res.code == 0, res.stderr
    spec = json.loads((tmp_path / "r" / "run.json").read_text())["spec"]
    assert spec["data"] == str(files / "ratings.csv") and spec["data_options"]["items"] == str(files / "items.csv")
    monkeypatch.chdir(tmp_path)
    res = cli("evaluate", "r", "--json")
    assert res.code == 0 and strict_json(res.stdout)["test"]["n"] > 0
    files = sorted(p.relative_to(tmp_path / "r").as_posix() for p in (tmp_path / "r").rglob("*") if p.is_file())
    assert {"MANIFEST.json", "run.json", "metrics.json", "history.json", "split.json", "plots/loss.png",
            "plots/predictions.png", "model/recommender.json"} <= set(files)
    assert not [f for f in files if Path(f).name.startswith(".")]  # no lock or temp file inside
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]  # and none beside it


def _edit(run_dir: Path, name: str, value) -> None:
    """Change a file of a run and re-seal the manifest (as someone who means it would)."""
    (run_dir / name).write_text(json.dumps(value))
    manifest.write(run_dir)


@pytest.fixture
def copy_of(run, tmp_path):
    import shutil

    dest = tmp_path / "copy"
    shutil.copytree(run, dest)
    return dest


def test_edited_run_is_refused(copy_of):
    text = (copy_of / "run.json").read_text()
    assert '"seed": 0' in text
    (copy_of / "run.json").write_text(text.replace('"seed": 0', '"seed": 7'))  # same size, other content
    one_line_error(cli("evaluate", copy_of), 1, "run.json", "sha256 does not match")


@pytest.mark.parametrize("name,value,needle", [
    ("run.json", [1, 2], "expected a JSON object, got a JSON array"),
    ("run.json", "text", "expected a JSON object, got a JSON string"),
    ("run.json", 3, "expected a JSON object, got a JSON number"),
    ("run.json", {"spec": [1]}, "'spec' must be a JSON object"),
    ("metrics.json", "text", "expected a JSON object, got a JSON string"),
    ("metrics.json", {"test": 1, "train": {}}, "field 'test' must be a JSON object"),
])
def test_run_files_of_the_wrong_json_type(copy_of, name, value, needle):
    _edit(copy_of, name, value)
    for verb in ("evaluate", "report", "compare"):
        one_line_error(cli(verb, copy_of), 1, name, needle)
    res = cli("evaluate", copy_of, "--json")
    assert res.code == 1 and needle in strict_json(res.stdout)["error"]


def test_stored_data_path_is_checked_and_never_quoted(copy_of, tmp_path):
    secret = tmp_path / "secret.csv"
    secret.write_text("password,hunter2\nroot,swordfish\n")
    info = json.loads((copy_of / "run.json").read_text())
    for data, code, needle in ((str(secret), 1, "secret.csv"), ("/etc/passwd", 1, "must end in one of"),
                               (str(tmp_path), 1, "regular file"), (str(tmp_path / "gone.csv"), 4, "not found"),
                               ("no-such-dataset", 1, "not a known dataset name")):
        info["spec"]["data"] = data
        _edit(copy_of, "run.json", info)
        line = one_line_error(cli("evaluate", copy_of), code, needle)
        assert "hunter2" not in line and "swordfish" not in line and "root:" not in line


# --- 4. exit codes and JSON errors ------------------------------------------------------------------------------------
def test_exit_codes(run, files, tmp_path):
    one_line_error(cli("train", "--data", tmp_path / "missing.csv", "--model", "deep", *FAST, "--out", tmp_path / "r"),
                   4, "missing.csv")
    one_line_error(cli("train", *own(files), "--items", tmp_path / "none.csv", *FAST, "--out", tmp_path / "r"), 4,
                   "none.csv")
    one_line_error(cli("evaluate", tmp_path / "nope"), 4, "not a ratecast run directory")
    assert cli("train", *own(files)).code == 2  # no --out
    assert cli("train", "--epochs", "many").code == 2
    one_line_error(cli("recommend", run, "--user", "99999"), 3, "unknown user id '99999'")
    one_line_error(cli("similar", run, "--item", "99999"), 3, "unknown item id '99999'")
    one_line_error(cli("data", "info", "ml-7m"), 1, "not a known dataset name")
    assert not (tmp_path / "r").exists()


def test_json_errors_on_stdout_with_the_same_exit_code(run, tmp_path):
    for args, code in ((["recommend", run, "--user", "99999"], 3), (["evaluate", tmp_path / "nope"], 4),
                       (["similar", run, "--item", "181", "-k", "0"], 1), (["train", "--epochs", "x"], 2),
                       (["recommend", run, "--bogus"], 2)):
        res = cli(*args, "--json")
        assert res.code == code, (args, res.stdout, res.stderr)
        body = strict_json(res.stdout)
        assert set(body) == {"error", "exit_code"} and body["exit_code"] == code and body["error"], body


def test_help_and_version():
    res = cli("--version")
    assert res.code == 0 and res.stdout.strip() == f"ratecast {ratecast.__version__}"
    top = cli("--help").stdout
    assert "Exit codes" in top and "4 missing run or file" in " ".join(top.split())
    for verb in (["train"], ["evaluate"], ["recommend"], ["map"], ["data", "stats"], ["compare"]):
        text = cli(*verb, "--help").stdout
        assert "<bool>" not in text, verb
    assert re.search(r"--json\s+Print JSON", cli("train", "--help").stdout)


# --- 5. interrupts and resume -------------------------------------------------------------------------------------
def test_interrupt_then_resume(files, tmp_path, monkeypatch):
    real_fit = ratecast.Recommender.fit
    seen = []

    def interrupted(self, train, *args, checkpoint_dir=None, **kwargs):
        seen.append(Path(checkpoint_dir))
        raise KeyboardInterrupt

    dest = tmp_path / "r"
    monkeypatch.setattr(ratecast.Recommender, "fit", interrupted)
    res = cli("train", *own(files), "--model", "dot", *FAST, "--out", dest)
    line = one_line_error(res, 130, "interrupted", f"ratecast train --resume {dest}")
    assert "nothing was written" not in line
    assert not dest.exists()
    partial = tmp_path / ".r.partial"
    assert seen == [partial / "checkpoint"] and (partial / "spec.json").is_file()
    # a new train into the same folder does not silently drop the interrupted one
    one_line_error(cli("train", *own(files), *FAST, "--out", dest), 1, "--resume", "--overwrite")

    def resumed(self, train, *args, checkpoint_dir=None, **kwargs):
        seen.append(Path(checkpoint_dir))
        return real_fit(self, train, *args, checkpoint_dir=checkpoint_dir, **kwargs)

    monkeypatch.setattr(ratecast.Recommender, "fit", resumed)
    res = cli("train", "--resume", dest, "--model", "deep")
    assert res.code == 2 and "--model" in res.stderr  # the spec is the interrupted run's, not a new one
    res = cli("train", "--resume", dest, "--json")
    assert res.code == 0, (res.stdout, res.stderr, res.exception)
    assert seen[-1] == partial / "checkpoint"
    assert json.loads((dest / "run.json").read_text())["spec"]["model"] == "dot"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]  # partial folder gone
    one_line_error(cli("train", "--resume", dest), 4, "no interrupted run to resume")


def test_interrupt_before_any_epoch_keeps_a_previous_run(run, files, monkeypatch):
    before = (run / "MANIFEST.json").read_text()

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ratecast.Recommender, "fit", interrupted)
    one_line_error(cli("train", *own(files), "--model", "hybrid", *FAST, "--out", run, "--overwrite"), 130,
                   "was not written")
    assert (run / "MANIFEST.json").read_text() == before
    manifest.verify(run)
    import shutil

    shutil.rmtree(run.parent / f".{run.name}.partial")


# --- 6. own data ----------------------------------------------------------------------------------------------------
def test_own_data_options(run, files):
    spec = json.loads((run / "run.json").read_text())["spec"]
    assert spec["data_options"] == {"user_col": "uid", "item_col": "mid", "rating_col": "stars",
                                    "item_key": "movie", "encoding": "utf-8", "rating_scale": [1.0, 5.0, 1.0],
                                    "items": str(files / "items.csv"), "users": str(files / "users.csv")}
    info = cli("data", "info", files / "ratings.csv", "--user-col", "uid", "--item-col", "mid", "--rating-col",
               "stars", "--rating-scale", "0.5,5,0.5", "--json")
    assert info.code == 0 and strict_json(info.stdout)["n_ratings"] > 0
    one_line_error(cli("data", "info", files / "ratings.csv", "--user-col", "uid", "--item-col", "mid",
                       "--rating-col", "stars", "--rating-scale", "5"), 1, "--rating-scale must be MIN,MAX")
    one_line_error(cli("data", "info", "ml-100k", "--items", files / "items.csv"), 1, "your own ratings file")


# --- 7. what new users tripped over -------------------------------------------------------------------------------
def test_map_color_is_checked(run, tmp_path):
    one_line_error(cli("map", run, "--out", tmp_path / "m.html", "--color", "foo"), 1,
                   "--color must be one of ['popularity', 'genre', 'release_year'] for --kind item, got 'foo'")
    assert cli("map", run, "--out", tmp_path / "m.html", "--method", "pca").code == 2
    res = cli("map", run, "--out", tmp_path / "m.png", "--color", "genre", "--perplexity", "5")
    assert res.code == 0, res.stderr
    assert io.is_ratecast_file(tmp_path / "m.png")


def test_compare_fits_80_columns(run, tmp_path, monkeypatch):
    import shutil

    other = Path("a much longer folder name") / "hybrid"
    shutil.copytree(run, tmp_path / other)
    monkeypatch.chdir(tmp_path)
    res = cli("compare", run, other, env={"COLUMNS": "80"})
    assert res.code == 0
    lines = res.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80 and "…" not in res.stdout
    # the run column, read back from the table: each path as given, whole (wrapped over several lines)
    header = next(line for line in lines if " model " in line)
    width = header.index(" model ")
    start = next(k for k, line in enumerate(lines) if "───" in line) + 1
    end = next(k for k, line in enumerate(lines) if k > start and (line.startswith("Lists over") or
                                                                   line.startswith("Paired differences")))
    body = [line for line in lines[start:end] if line.strip()]
    column = "".join(line[:width].strip() for line in body)
    assert column.replace(" ", "") == f"{run}{other}".replace(" ", "")
    assert [line[width:].split()[0] for line in body if line[width:].strip()][:1] == ["hybrid"]
    assert sum(line[width:].split()[:1] == ["hybrid"] for line in body) == 2  # the model names, never cut
    rows = strict_json(cli("compare", run, other, "--json").stdout)["runs"]
    assert [r["run"] for r in rows] == ["hybrid", "hybrid"] and rows[1]["path"] == str(other)


def test_readme_config_example_is_valid(tmp_path):
    """The TOML example of the README's "Configuration file" section is accepted as it stands."""
    import tomllib

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("### Configuration file"):]
    example = section.split("```toml\n", 1)[1].split("```", 1)[0]
    opts = tomllib.loads(example)
    model = opts.pop("model")
    ratecast.Recommender(model, **opts)
    (tmp_path / "cfg.toml").write_text(example.replace("epochs = 20", "epochs = 0"))
    one_line_error(cli("train", "--config", tmp_path / "cfg.toml", "--out", tmp_path / "r"), 1,
                   "epochs must be a positive integer, got 0")


def test_set_refuses_keys_that_are_not_model_options(tmp_path):
    from ratecast.cli import app
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, ["train", "--data", "ml-100k", "--set", "model=svd", "--out", str(tmp_path / "r")])
    assert result.exit_code == 1 and "--set model=...: model is not a model option; use --model" in result.output


def test_overwrite_refuses_a_run_folder_holding_other_files(tmp_path):
    from ratecast.errors import OutputExistsError
    from ratecast.io import output_dir

    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text("{}")
    (run / "thesis.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match=r"also holds files ratecast did not write \(run.json, thesis.txt\)"):
        with output_dir(run, overwrite=True):
            pass
    assert (run / "thesis.txt").read_text() == "mine"


def test_evaluate_refuses_a_data_file_changed_since_training(tmp_path):
    from typer.testing import CliRunner

    from ratecast.cli import app
    from ratecast.runs import RunSpec, train_run
    from synthetic import make_dataset

    data = tmp_path / "r.csv"
    make_dataset().ratings.drop(columns="timestamp").to_csv(data, index=False)
    spec = RunSpec(data=str(data), model="dot", params={"epochs": 1, "embedding_dim": 4, "batch_size": 64})
    train_run(spec, tmp_path / "run")
    assert CliRunner().invoke(app, ["evaluate", str(tmp_path / "run")]).exit_code == 0
    data.write_text(data.read_text().replace(",4.0\n", ",5.0\n"))
    result = CliRunner().invoke(app, ["evaluate", str(tmp_path / "run")])
    assert result.exit_code == 1 and "the data file changed since this run was trained" in result.output


def test_compare_json_holds_numbers(tmp_path):
    from typer.testing import CliRunner

    from ratecast.cli import app
    from ratecast.runs import RunSpec, train_run
    from synthetic import make_dataset

    data = tmp_path / "r.csv"
    make_dataset().ratings.drop(columns="timestamp").to_csv(data, index=False)
    train_run(RunSpec(data=str(data), model="dot", params={"epochs": 1, "embedding_dim": 4}), tmp_path / "run")
    rows = json.loads(CliRunner().invoke(app, ["compare", str(tmp_path / "run"), "--json"]).stdout)["runs"]
    ci, fit = rows[0]["mae_ci95"], rows[0]["fit_s"]
    assert isinstance(fit, float) and len(ci) == 2 and all(isinstance(v, float) for v in ci)

"""Every command takes --json; CLI messages name the flags the user typed; a missing --data-home creates nothing."""

import json
import re

import pytest

from ratecast import io
from cli_helpers import FAST, Result, cli, one_line_error, strict_json
from synthetic import make_dataset


def json_error(res: Result, code: int, *needles: str) -> str:
    assert res.code == code, (res.code, res.stdout, res.stderr, res.exception)
    body = strict_json(res.stdout)
    assert set(body) == {"error", "exit_code"} and body["exit_code"] == code, body
    for needle in needles:
        assert needle in body["error"], body["error"]
    return body["error"]


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
    assert row["name"] == "dot" and row["kind"] == "lab" and set(body["best"].values()) == {"dot"}
    assert [len(shown["items"]["dot"]) for shown in body["lists"]] == [10, 10, 10]  # three users' top 10
    assert body["lists"][0]["user"] == 5 and "fewest training ratings" in body["lists"][1]["about"]
    json_error(cli("demo", "--out", tmp_path / "d2", "--models", "svd", "--json"), 1, "--models must name models")
    json_error(cli("demo", "--out", tmp_path / "d2", "--epochs", "0", "--json"), 1, "--epochs")
    assert not (tmp_path / "d2").exists()


def test_every_command_offers_json():
    for verb in (["data", "fetch"], ["data", "info"], ["data", "stats"], ["train"], ["evaluate"], ["recommend"],
                 ["similar"], ["map"], ["compare"], ["report"], ["demo"]):
        text = cli(*verb, "--help").stdout
        assert re.search(r"--json\s+Print JSON", text), verb


# --- messages name the command line's flags, not Python's arguments -------------------------------------------------
PYTHON_NAMES = ("user_col", "item_col", "rating_col", "timestamp_col", "item_key", "user_key", "rating_scale",
                "data_home", "random_state", "test_size", "embedding_dim", "batch_size", "learning_rate", "encoding=",
                "argument ")


def names_flags(message: str) -> None:
    for name in PYTHON_NAMES:
        assert not re.search(rf"(?<![-\w]){re.escape(name)}", message), (name, message)


@pytest.fixture(scope="module")
def files(data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("meta")
    (folder / "items.csv").write_text("movie,title\n101,A (1990)\n102,B (1991)\n")
    (folder / "home.txt").write_text("not a folder")
    (folder / "one.csv").write_text("user_id;item_id;rating\n1;2;3\n")
    return folder


@pytest.mark.parametrize("args,needles", [
    (["--user-col", "uid"], ["missing column 'uid' (--user-col)"]),
    (["--timestamp-col", "ts"], ["missing column 'ts' (--timestamp-col)"]),
    (["--encoding", "nope"], ["unknown encoding: --encoding='nope' names no codec"]),
    (["--encoding", "utf-16"], ["cannot be decoded as utf-16", "e.g. --encoding='utf-8'"]),
    (["--sep", ""], ["--sep must be a field separator", "got ''"]),
    (["--items", "{files}/items.csv"], ["items.csv: missing key column 'item_id' (--item-key not given: the "
                                        "--item-col column)"]),
    (["--items", "{files}/items.csv", "--item-key", "mid"], ["missing key column 'mid' (--item-key)"]),
    (["--rating-scale", "5,1"], ["--rating-scale '5,1': rating scale maximum must be > minimum"]),
])
def test_data_messages_name_the_flags(data, files, args, needles):
    args = [a.format(files=files) for a in args]
    line = one_line_error(cli("data", "info", data, *args), 1, *needles)
    names_flags(line)


def test_separator_hint_and_movielens_options(files):
    line = one_line_error(cli("data", "info", files / "one.csv", "--sep", ","), 1,
                          "missing column 'user_id' (--user-col)", "is --sep right?")
    names_flags(line)
    names_flags(one_line_error(cli("data", "info", "ml-100k", "--rating-scale", "1,5", "--user-col", "u"), 1,
                               "options ['--rating-scale', '--user-col'] apply to your own ratings file"))
    names_flags(one_line_error(cli("data", "info", "ml-100k", "--data-home", files / "home.txt"), 1,
                               "--data-home must be a folder, got the file"))


@pytest.mark.parametrize("args,needle", [
    (["--seed", "99999999999999999999"], "--seed must be an integer in [0, 4294967295], got 99999999999999999999"),
    (["--split", "u9"], "--split must be one of"),
    (["--test-size", "0"], "--test-size must be a number in (0, 1), got 0.0"),
    (["--model", "svd"], "--model must be one of"),
    (["--embedding-dim", "0"], "--embedding-dim must be a positive integer, got 0"),
    (["--batch-size", "0"], "--batch-size must be a positive integer, got 0"),
    (["--learning-rate", "0"], "--learning-rate must be a finite number in (0, 10], got 0.0"),
    (["--dropout", "1.5"], "--dropout must be in [0, 1), got 1.5"),
    (["--set", "early_stopping=0"], "--set early_stopping must be a positive integer, got 0"),
    (["--set", "foo=1"], "--set foo: unknown option(s) ['foo'] for model 'deep'"),
])
def test_train_messages_name_the_flags(data, tmp_path, args, needle):
    line = one_line_error(cli("train", "--data", data, "--model", "deep", *args, "--out", tmp_path / "r"), 1,
                          needle)
    if args[0] != "--set":  # --set takes the option names themselves
        names_flags(line)
    assert not (tmp_path / "r").exists() and not list(tmp_path.iterdir())


def test_config_file_keys_are_named_with_the_file(data, tmp_path):
    cfg = tmp_path / "cfg.toml"
    cfg.write_text('model = "dot"\nrandom_state = 3\n')
    one_line_error(cli("train", "--data", data, "--config", cfg, "--out", tmp_path / "r"), 1,
                   f"{cfg}: random_state is not a model option; use --seed")
    cfg.write_text('model = "svd"\n')
    one_line_error(cli("train", "--data", data, "--config", cfg, "--out", tmp_path / "r"), 1,
                   f"{cfg}: model must be one of")
    cfg.write_text('model = "dot"\nepochs = 0\n')
    one_line_error(cli("train", "--data", data, "--config", cfg, "--out", tmp_path / "r"), 1,
                   f"{cfg}: epochs must be a positive integer, got 0")
    assert not (tmp_path / "r").exists()


def test_evaluate_and_map_messages_name_the_flags(run, tmp_path):
    one_line_error(cli("evaluate", run, "--split", "u9"), 1, "--split must be one of")
    one_line_error(cli("map", run, "--out", tmp_path / "m.html", "--perplexity", "1000"), 1,
                   "--perplexity must be a number in (0, ", "got 1000.0")
    assert not (tmp_path / "m.html").exists()


# --- a --data-home that does not exist is reported, never created ---------------------------------------------------
@pytest.mark.parametrize("verb", [["data", "fetch", "ml-100k"], ["data", "info", "ml-100k"],
                                  ["data", "stats", "ml-100k"], ["train", "--data", "ml-100k", "--out", "{tmp}/r"],
                                  ["demo", "--out", "{tmp}/d", "--models", "dot"]])
def test_missing_data_home_is_not_created(tmp_path, verb):
    home = tmp_path / "no" / "such-home"
    args = [a.format(tmp=tmp_path) for a in verb]
    one_line_error(cli(*args, "--data-home", home), 4, f"{home}: --data-home folder not found")
    assert list(tmp_path.iterdir()) == []  # nothing at all was written
    json_error(cli(*args, "--data-home", home, "--json"), 4, "--data-home folder not found")
    assert list(tmp_path.iterdir()) == []


# --- a failed start leaves nothing behind -----------------------------------------------------------------------------
def test_fold_split_on_own_data_is_refused_before_any_write(data, run, tmp_path):
    one_line_error(cli("train", "--data", data, "--split", "u1", "--out", tmp_path / "r"), 1,
                   "--split u1 is a canonical fold of ml-100k", "use holdout, temporal or last1")
    one_line_error(cli("evaluate", run, "--split", "ua"), 1, "--split ua is a canonical fold of ml-100k")
    assert list(tmp_path.iterdir()) == []


def test_a_run_that_fails_before_its_first_epoch_leaves_no_partial_folder(data, tmp_path, monkeypatch):
    from ratecast.errors import DownloadError, MissingFileError
    from ratecast.runs import RunSpec, train_run

    out = tmp_path / "runs" / "r"
    out.parent.mkdir()
    with pytest.raises(MissingFileError, match="u1.base"):
        train_run(RunSpec(data=str(data), model="dot", split="u1", params={"epochs": 1}), out)
    assert list(out.parent.iterdir()) == []
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("RATECAST_MIRROR", "http://127.0.0.1:9/")
    with pytest.raises(DownloadError):
        train_run(RunSpec(data="ml-100k", model="dot", params={"epochs": 1}, data_home=str(home)), out,
                  progress=False)
    assert list(out.parent.iterdir()) == []


def test_model_on_the_command_line_wins_over_the_config_file(data, tmp_path):
    cfg = tmp_path / "cfg.toml"
    cfg.write_text('model = "svd"\nepochs = 1\n')
    one_line_error(cli("train", "--data", data, "--config", cfg, "--model", "dot", "--out", tmp_path / "r"), 1,
                   f"{cfg}: model must be one of")
    cfg.write_text('model = "deep"\nepochs = 1\n')
    res = cli("train", "--data", data, "--config", cfg, "--model", "dot", "--embedding-dim", "4", "-q", "--out",
              tmp_path / "r", "--json")
    assert res.code == 0, (res.stdout, res.stderr)
    assert json.loads((tmp_path / "r" / "run.json").read_text())["spec"]["model"] == "dot"


def test_a_library_warning_is_one_plain_line_even_with_quiet(data, tmp_path, monkeypatch):
    import warnings

    from ratecast.recommender import Recommender

    fit = Recommender.fit

    def warning_fit(self, *args, **kwargs):  # a library warning raised during the fit
        warnings.warn("model 'dot': a library warning", UserWarning, stacklevel=2)
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(Recommender, "fit", warning_fit)
    res = cli("train", "--data", data, "--model", "dot", *FAST, "-q", "--out", tmp_path / "dot")
    assert res.code == 0, (res.stdout, res.stderr, res.exception)
    said = [line for line in res.stderr.splitlines() if "a library warning" in line]
    assert said == ["warning: model 'dot': a library warning"]
    assert "UserWarning" not in res.stderr and "warnings.warn" not in res.stderr

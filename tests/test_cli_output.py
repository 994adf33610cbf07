"""What the command line prints into a pipe or a log: whole lines (never hard-wrapped at 80 columns), no control
characters, and ids as the data holds them."""

import re

import pytest

from cli_helpers import cli
from synthetic import make_dataset

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
PIPED = {"COLUMNS": ""}  # a pipe: no terminal width


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("piped")
    make_dataset(n_users=40, n_items=30).ratings.to_csv(folder / "r.csv", index=False)  # no titles
    res = cli("train", "--data", folder / "r.csv", "--model", "dot", "--epochs", "1", "--embedding-dim", "4", "-q",
              "--out", folder / ("a run folder with a name long enough to need more than eighty columns " * 2).strip())
    assert res.code == 0, res.stderr
    return next(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def test_tables_are_never_wrapped_into_a_pipe(run):
    res = cli("compare", run, run, env=PIPED)
    assert res.code == 0, res.stderr
    rows = [line for line in res.stdout.splitlines() if " dot " in line]
    assert len(rows) == 2 and all(str(run) in line for line in rows)  # each run's path whole, on its row
    assert not CONTROL.search(res.stdout)


def test_titles_stay_on_one_line(run):
    res = cli("recommend", run, "--user", "1", "-k", "3", env=PIPED)
    assert res.code == 0, res.stderr
    assert res.stdout.splitlines()[0] == "Recommendations for user 1"


def test_integer_ids_print_as_integers_without_titles(run):
    res = cli("recommend", run, "--user", "1", "-k", "3", env=PIPED)
    body = [line for line in res.stdout.splitlines() if re.search(r"\d", line)][1:]
    ids = [re.findall(r"[\d.]+", line)[0] for line in body]
    assert len(ids) == 3 and all(re.fullmatch(r"\d+", i) for i in ids), res.stdout


def test_the_scripts_wrapper_runs_the_checkouts_command(tmp_path):
    import subprocess
    from pathlib import Path

    wrapper = Path(__file__).resolve().parents[1] / "scripts" / "ratecast"
    if not (wrapper.parent.parent / ".venv" / "bin" / "ratecast").exists():
        pytest.skip("no .venv in this checkout")
    res = subprocess.run([str(wrapper), "--version"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.startswith("ratecast "), res.stderr


def test_report_of_data_without_titles_names_items_by_id(run, tmp_path):
    res = cli("report", run, "--out", tmp_path / "report.html", env=PIPED)
    assert res.code == 0, res.stderr
    page = (tmp_path / "report.html").read_text()
    cards = page[page.index("<h2>Most similar items</h2>"):]
    assert "None" not in cards and "<b>item " in cards
    assert "<th>item_id</th>" in cards and "<th>title</th>" not in cards


def test_every_option_of_every_command_has_help():
    import typer

    from ratecast.cli import app

    missing = []

    def walk(command, path):
        subs = getattr(command, "commands", None)
        if subs:
            for name, sub in subs.items():
                walk(sub, [*path, name])
            return
        missing.extend(f"{' '.join(path)} {p.opts[0]}" for p in command.params
                       if p.param_type_name == "option" and not p.help)

    walk(typer.main.get_command(app), [])
    assert not missing, missing


def test_a_run_keeps_the_data_folder_it_read_a_release_from(tmp_path, monkeypatch):
    from ratecast.runs import RunSpec, resolve_spec

    monkeypatch.setenv("RATECAST_DATA", str(tmp_path))
    assert resolve_spec(RunSpec(data="ml-100k")).data_home == str(tmp_path.resolve())
    monkeypatch.delenv("RATECAST_DATA")
    given = tmp_path / "elsewhere"
    given.mkdir()
    assert resolve_spec(RunSpec(data="ml-100k", data_home=str(given))).data_home == str(given.resolve())


# --- every command through a pipe -------------------------------------------------------------------------------------
LONG = "A Title Long Enough To Need More Than Eighty Columns On One Line, Kept Whole In Every Log Line Of Every Command"
SPINNER = re.compile(r"[\u2800-\u28ff\u2500-\u257f]")  # braille spinner frames, box-drawing corners of live displays
TIMED = re.compile(r" \(\d+\.\d s\)$")


def leaf_commands() -> set[str]:
    from typer.main import get_command

    from ratecast.cli import app

    def walk(command, path):
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                yield from walk(sub, path + [name])
        else:
            yield " ".join(path)

    return set(walk(get_command(app), []))


def test_every_command_through_a_pipe(tmp_path):
    """Each command, as a log or a pipe receives it: no control characters, no spinner frames, long lines whole
    (a title and a run folder of over 100 characters each on one line), and a timed line per long step."""
    import socket

    from conftest import SHARED_DATA

    ds = make_dataset(n_users=40, n_items=30)
    ds.ratings.to_csv(tmp_path / "r.csv", index=False)
    items = ds.items.assign(title=[f"{LONG} {k}" for k in range(len(ds.items))])
    items.rename_axis("item_id").reset_index()[["item_id", "title"]].to_csv(tmp_path / "items.csv", index=False)
    (tmp_path / "pairs.csv").write_text("user_id,item_id\n1,101\n2,102\n99,103\n")
    run = tmp_path / ("a run folder whose name is long enough to need more than eighty columns " * 2).strip()
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = str(busy.getsockname()[1])
    calls = {  # command: (arguments, exit code, whether a long step prints a timed line)
        "train": (["--data", tmp_path / "r.csv", "--items", tmp_path / "items.csv", "--model", "dot", "--epochs", "2",
                   "--embedding-dim", "4", "-v", "--out", run], 0, True),
        "data info": ([tmp_path / "r.csv"], 0, False),
        "data stats": ([tmp_path / "r.csv", "--out", tmp_path / "stats"], 0, False),
        "tune": (["--data", tmp_path / "r.csv", "--model", "dot", "--trials", "2", "--set", "epochs=1",
                  "--set", "embedding_dim=4", "-v", "--out", tmp_path / "tune"], 0, True),
        "serve": ([run, "--port", port], 1, False),  # the port is taken: one line, as a log shows it
        "evaluate": ([run], 0, True),
        "recommend": ([run, "--user", "1", "-k", "3"], 0, False),
        "predict": ([run, "--pairs", tmp_path / "pairs.csv"], 0, False),
        "similar": ([run, "--item", "101", "-k", "3"], 0, False),
        "map": ([run, "--out", tmp_path / "map.html"], 0, True),
        "compare": ([run, run], 0, False),
        "report": ([run, "--out", tmp_path / "report.html"], 0, True),
        "demo": (["--data", tmp_path / "r.csv", "--models", "dot", "--epochs", "1", "--out", tmp_path / "demo"], 0,
                 True),
    }
    if "refit" in leaf_commands():  # where the command line trains a served run again
        calls["refit"] = ([run, "--out", tmp_path / "refit"], 0, True)
    if (SHARED_DATA / "ml-100k" / "u.data").exists():  # a local copy: nothing is downloaded
        calls["data fetch"] = (["ml-100k", "--data-home", SHARED_DATA], 0, False)
    missing = leaf_commands() - set(calls) - ({"data fetch"} if "data fetch" not in calls else set())
    assert not missing, f"commands not run through a pipe: {sorted(missing)}"
    try:
        for name, (args, code, timed) in calls.items():
            res = cli(*name.split(), *args, env=PIPED)
            assert res.code == code, (name, res.stdout, res.stderr, res.exception)
            text = res.stdout + res.stderr
            assert not CONTROL.search(text) and not SPINNER.search(res.stderr), (name, text)
            for whole in (LONG, run.name):  # a line that starts one holds all of it
                assert all(whole in line for line in text.splitlines() if whole[:30] in line), (name, text)
            if timed:
                assert any(TIMED.search(line) for line in res.stderr.splitlines()), (name, res.stderr)
        assert LONG in cli("recommend", run, "--user", "1", env=PIPED).stdout  # the title was shown at all
    finally:
        busy.close()

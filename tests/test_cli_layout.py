"""The command line's package: its start-up cost, and the options every command takes."""

import json
import re
import subprocess
import sys

HEAVY = ("keras", "jax", "jaxlib", "optuna", "matplotlib", "fastapi", "uvicorn", "sklearn", "scipy", "plotly", "umap")

HELP_THEN_MODULES = """
import json, sys
base = set(sys.modules)
import ratecast
light = set(sys.modules)
from ratecast.cli import app
try:
    app(["--help"], prog_name="ratecast")
except SystemExit as exc:
    code = exc.code
sys.stderr.write(json.dumps({"code": code, "package": sorted(light - base), "cli": sorted(set(sys.modules) - light)}))
"""


def test_help_imports_no_machine_learning_or_plotting_library():
    proc = subprocess.run([sys.executable, "-c", HELP_THEN_MODULES], capture_output=True, text=True, timeout=120)
    found = json.loads(proc.stderr.strip().splitlines()[-1])
    assert found["code"] == 0 and "Usage" in proc.stdout
    top = {m.split(".")[0] for m in found["package"] + found["cli"]}
    assert not top & set(HEAVY), sorted(top & set(HEAVY))
    # neither the library's own import nor the command line's help loads a data library
    assert not top & {"pandas", "numpy", "pyarrow"}, sorted(top & {"pandas", "numpy", "pyarrow"})


def leaf_commands():
    from typer.main import get_command

    from ratecast.cli import app

    def walk(command, path):
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                yield from walk(sub, path + [name])
        else:
            yield " ".join(path), command

    return list(walk(get_command(app), []))


def test_every_command_takes_quiet_and_verbose():
    commands = leaf_commands()
    assert len(commands) >= 14, [name for name, _ in commands]
    for name, command in commands:
        opts = {opt for param in command.params for opt in param.opts}
        assert {"-q", "--quiet", "-v", "--verbose"} <= opts, name


def test_quiet_and_verbose_together_is_a_usage_error(tmp_path):
    from tests.cli_helpers import cli

    res = cli("compare", tmp_path / "absent", "-q", "-v")
    assert res.code == 2 and "not both" in res.stderr, (res.code, res.stderr)


def train_args(tmp_path):
    from tests.synthetic import make_dataset

    ratings = tmp_path / "ratings.csv"
    make_dataset().ratings.to_csv(ratings, index=False)
    return ["train", "--data", ratings, "--model", "biased_dot", "--epochs", "3", "--embedding-dim", "4",
            "--batch-size", "64", "--set", "early_stopping=null"]


def test_piped_verbose_training_prints_one_plain_line_per_epoch(tmp_path):
    from tests.cli_helpers import cli

    res = cli(*train_args(tmp_path), "-v", "--out", tmp_path / "run")
    assert res.code == 0, (res.stderr, res.exception)
    epochs = [line for line in res.stderr.splitlines() if line.startswith("epoch ")]
    assert len(epochs) == 3, res.stderr
    assert all(re.fullmatch(r"epoch [1-3]/3: .* \(\d+\.\d s\)", line) for line in epochs), epochs
    steps = [line for line in res.stderr.splitlines() if "…" in line]
    assert steps and all(re.search(r"… \(\d+\.\d s\)$", line) for line in steps), steps  # long steps, timed
    assert "\x1b" not in res.stderr and "\r" not in res.stderr


def test_piped_training_prints_no_epoch_lines_by_default_and_nothing_with_quiet(tmp_path):
    from tests.cli_helpers import cli

    plain = cli(*train_args(tmp_path), "--out", tmp_path / "a")
    assert plain.code == 0 and plain.stderr and not any(line.startswith("epoch ") for line in plain.stderr.splitlines())
    quiet = cli(*train_args(tmp_path), "-q", "--out", tmp_path / "b")
    assert quiet.code == 0 and "test MAE" in quiet.stdout
    assert not any("…" in line or line.startswith("epoch ") for line in quiet.stderr.splitlines()), quiet.stderr


SPINNERS = re.compile(r"[\u2800-\u28ff\u2500-\u259f]|[\x00-\x08\x0b-\x1f\x7f]")  # braille and box-drawing frames


def test_piped_demo_prints_plain_timed_progress_lines(tmp_path):
    from tests.cli_helpers import cli
    from tests.synthetic import make_dataset

    make_dataset().ratings.to_csv(tmp_path / "r.csv", index=False)
    args = ["demo", "--data", tmp_path / "r.csv", "--models", "dot", "--epochs", "1"]
    res = cli(*args, "--out", tmp_path / "demo")
    assert res.code == 0, (res.stderr, res.exception)
    progress = res.stderr.splitlines()
    assert any(line.startswith("dot: done (test MAE") for line in progress), res.stderr
    assert progress and all(re.search(r" \(\d+\.\d s\)$", line) for line in progress), progress
    assert not SPINNERS.search(res.stderr) and not SPINNERS.search(res.stdout.split("Test results")[0])

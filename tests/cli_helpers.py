"""Running the command line in-process for tests, and checking what it printed."""

import json

import pytest
from typer.testing import CliRunner

from ratecast.cli import app

FAST = ["--epochs", "1", "--batch-size", "256", "--embedding-dim", "4", "-q"]


class Result:
    def __init__(self, result):
        self.code, self.stdout = result.exit_code, result.stdout
        self.stderr = result.stderr if result.stderr_bytes is not None else ""
        self.exception = result.exception


def cli(*args, env=None) -> Result:
    return Result(CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200", **(env or {})}))


def strict_json(text: str):
    return json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in JSON output"))


def one_line_error(res: Result, code: int, *needles: str) -> str:
    assert res.code == code, (res.code, res.stdout, res.stderr, res.exception)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]

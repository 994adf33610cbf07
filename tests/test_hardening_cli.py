"""Command-line cases of the hardening probe: missing or conflicting required input is a usage error (exit 2)."""

import json

import pytest

from cli_helpers import cli


@pytest.mark.parametrize("args, needle", [
    ((), "give --user ID (or --all)"),
    (("--user", "5", "--all"), "give --user ID or --all, not both"),
])
def test_recommend_without_user_or_all_is_a_usage_error(tmp_path, args, needle):
    res = cli("recommend", tmp_path / "no-run", *args)
    assert res.code == 2, (res.code, res.stdout, res.stderr)
    assert needle in res.stdout + res.stderr
    assert "Traceback" not in res.stdout + res.stderr


def test_recommend_without_user_is_a_usage_error_in_json_mode(tmp_path):
    res = cli("recommend", tmp_path / "no-run", "--json")
    assert res.code == 2
    doc = json.loads(res.stdout)
    assert doc["exit_code"] == 2 and "--user" in doc["error"]

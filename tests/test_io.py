"""Output writing never loses data: folders are written whole or not at all, under a lock, and only folders or files
that ratecast wrote are ever replaced. JSON is strict (no NaN)."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ratecast import io
from ratecast.errors import IntegrityError, LockedError, MissingFileError, OutputExistsError


def _write_run(dest, text="new", overwrite=False):
    from ratecast import manifest

    with io.output_dir(dest, overwrite=overwrite) as tmp:
        (tmp / "run.json").write_text("{}")
        (tmp / "result.txt").write_text(text)
        manifest.write(tmp)  # as every ratecast output folder does: its files are listed
    return dest


def test_non_empty_foreign_folder_is_refused_and_kept(tmp_path):
    dest = tmp_path / "mine"
    dest.mkdir()
    (dest / "ratings.csv").write_text("u,i,r\n1,2,3\n")
    for overwrite in (False, True):  # not even --overwrite replaces a folder ratecast did not write
        with pytest.raises(OutputExistsError, match=r"mine.*not empty and was not written by ratecast"):
            _write_run(dest, overwrite=overwrite)
    assert (dest / "ratings.csv").read_text() == "u,i,r\n1,2,3\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # no temp folder, no lock file left


def test_ratecast_folder_needs_overwrite(tmp_path):
    dest = _write_run(tmp_path / "run", "first")
    with pytest.raises(OutputExistsError, match="pass --overwrite"):
        _write_run(dest, "second")
    assert (dest / "result.txt").read_text() == "first"
    _write_run(dest, "second", overwrite=True)
    assert (dest / "result.txt").read_text() == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # the old copy is gone once replaced


def test_empty_folder_is_used(tmp_path):
    (tmp_path / "empty").mkdir()
    _write_run(tmp_path / "empty")
    assert (tmp_path / "empty" / "result.txt").read_text() == "new"


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()])
def test_failure_leaves_destination_untouched(tmp_path, exc):
    dest = _write_run(tmp_path / "run", "first")
    with pytest.raises(type(exc)):
        with io.output_dir(dest, overwrite=True) as tmp:
            (tmp / "run.json").write_text("{}")
            (tmp / "half").write_text("written")
            raise exc
    assert sorted(p.name for p in dest.iterdir()) == ["MANIFEST.json", "result.txt", "run.json"]
    assert (dest / "result.txt").read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


@pytest.mark.parametrize("name", [".", "..", "/"])
def test_dot_dotdot_root_are_refused(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OutputExistsError, match="name a new folder"):
        _write_run(Path(name))
    assert list(tmp_path.iterdir()) == []


def test_working_directory_and_its_parents_are_refused(tmp_path, monkeypatch):
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    (work / "run.json").write_text("{}")  # even one that looks like a run
    monkeypatch.chdir(work)
    for dest in (work, tmp_path / "a", Path("../../a")):
        with pytest.raises(OutputExistsError, match="working directory"):
            _write_run(dest, overwrite=True)
    assert (work / "run.json").exists()


def test_file_and_symlink_are_refused(tmp_path):
    (tmp_path / "f").write_text("keep")
    with pytest.raises(OutputExistsError, match="not a folder"):
        _write_run(tmp_path / "f")
    target = _write_run(tmp_path / "real")
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(OutputExistsError, match="symbolic link"):
        _write_run(tmp_path / "link", overwrite=True)
    assert (tmp_path / "f").read_text() == "keep" and (target / "result.txt").exists()


def test_second_writer_fails_at_once(tmp_path):
    dest = tmp_path / "run"
    with io.output_dir(dest) as tmp:
        (tmp / "run.json").write_text("{}")
        start = time.perf_counter()
        with pytest.raises(LockedError, match=r"run: another process is writing it"):
            _write_run(dest)
        assert time.perf_counter() - start < 5
    assert (dest / "run.json").exists() and not io.lock_path(dest).exists()


def test_lock_is_seen_by_another_process(tmp_path):
    dest = tmp_path / "run"
    code = ("import sys\nfrom ratecast import io\nfrom ratecast.errors import LockedError\n"
            "try:\n    io.output_dir(sys.argv[1]).__enter__()\nexcept LockedError as e:\n    print('locked:', e)\n")
    with io.lock_output(dest):
        proc = subprocess.run([sys.executable, "-c", code, str(dest)], capture_output=True, text=True, timeout=120)
    assert "locked:" in proc.stdout, proc.stderr
    assert not dest.exists()


def test_json_is_strict():
    text = io.to_json({"mae": float("nan"), "ci": [np.float32("inf"), 1.5], "n": np.int64(3), "p": Path("a")})
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in JSON")) == {
        "mae": None, "ci": [None, 1.5], "n": 3, "p": "a"}


def test_write_json_and_read_json_object(tmp_path):
    io.write_json(tmp_path / "m.json", {"x": float("nan")})
    assert "NaN" not in (tmp_path / "m.json").read_text()
    assert io.read_json_object(tmp_path / "m.json") == {"x": None}
    for text, kind in (("[1, 2]", "array"), ('"s"', "string"), ("3", "number"), ("{", "not valid JSON")):
        (tmp_path / "bad.json").write_text(text)
        with pytest.raises(IntegrityError, match=kind):
            io.read_json_object(tmp_path / "bad.json")
    with pytest.raises(MissingFileError):
        io.read_json_object(tmp_path / "nope.json")


def test_files_written_by_others_are_not_replaced(tmp_path):
    mine = tmp_path / "notes.html"
    mine.write_text("<html>my notes</html>")
    with pytest.raises(OutputExistsError, match="was not written by ratecast; .* --overwrite"):
        io.check_replaceable(mine)
    io.check_replaceable(mine, overwrite=True)
    with pytest.raises(OutputExistsError, match="is a folder"):
        io.check_replaceable(tmp_path)
    ours = io.write_text(tmp_path / "r.html", f"<html><head>{io.HTML_MARKER}</head></html>")
    io.check_replaceable(ours)
    table = io.write_table(pd.DataFrame({"a": [1]}), tmp_path / "t.parquet")
    io.check_replaceable(table)
    assert pd.read_parquet(table)["a"].tolist() == [1]
    io.write_table(pd.DataFrame({"a": [1]}), tmp_path / "t.csv")
    with pytest.raises(OutputExistsError):  # a CSV carries no mark: replacing it needs --overwrite
        io.check_replaceable(tmp_path / "t.csv")
    assert sorted(os.listdir(tmp_path)) == ["notes.html", "r.html", "t.csv", "t.parquet"]

"""A kill at any moment of writing a run or a file leaves only states that ratecast recognises and recovers from:
the partial folder of a training is never left without its spec, and the temporaries of killed writes are removed by
the next write, while those of live writers and the user's own files are kept."""

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import ratecast
from ratecast import io, manifest
from ratecast.engine import checkpoint
from ratecast.runs import load_run
from cli_helpers import FAST, cli, one_line_error
from synthetic import make_dataset

SRC = Path(ratecast.__file__).resolve().parents[1]


def dead_pid() -> int:
    """The id of a process that has ended."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def temporary(folder: Path, target: str, kind: str = "tmp", pid: int | None = None, suffix: str = "") -> Path:
    """A path named as ratecast names its temporaries (``.TARGET.ratecast-KIND-PID-TOKEN``)."""
    return folder / f".{target}.ratecast-{kind}-{pid or dead_pid()}-0123456789ab{suffix}"


@pytest.fixture(scope="module")
def ratings(tmp_path_factory):
    path = tmp_path_factory.mktemp("own") / "ratings.csv"
    make_dataset(n_users=30, n_items=20, density=0.6).ratings.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def trained(ratings, tmp_path_factory):
    """A finished run ``r`` and a copy of the partial folder (spec and a real checkpoint) it was trained from."""
    base = tmp_path_factory.mktemp("trained")
    real_fit = ratecast.Recommender.fit

    def fit_then_interrupt(self, *args, **kwargs):
        real_fit(self, *args, **kwargs)
        raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ratecast.Recommender, "fit", fit_then_interrupt)
        one_line_error(cli("train", "--data", ratings, "--model", "dot", *FAST, "--out", base / "r"), 130)
    shutil.copytree(base / ".r.partial", base / "partial")
    assert (base / "partial" / "checkpoint" / checkpoint.FILE).is_file()
    res = cli("train", "--resume", base / "r", "-q")
    assert res.code == 0, (res.stdout, res.stderr, res.exception)
    assert sorted(p.name for p in base.iterdir()) == ["partial", "r"]
    return base


# --- a kill while a run's partial folder is cleaned up ---------------------------------------------------------------
def _legacy_spec_removed_first(part):  # an earlier version removed files in any order
    (part / "spec.json").unlink()


def _legacy_only_empty_checkpoint_folder(part):
    _legacy_spec_removed_first(part)
    (part / "checkpoint" / checkpoint.FILE).unlink()


def _legacy_empty(part):
    _legacy_only_empty_checkpoint_folder(part)
    (part / "checkpoint").rmdir()


def _legacy_spec_not_yet_in_place(part):  # an earlier version made the folder, then wrote its spec
    _legacy_empty(part)
    (part / ".spec.json-ab12cd_9.json").write_text('{"spec": ')


def _run_in_place_partial_not_yet_renamed(part):
    run_json = part.parent / "r" / "run.json"
    os.utime(part / "spec.json", ns=(run_json.stat().st_mtime_ns - 10**9,) * 2)  # started before the run was written


def _renamed_away_and_partly_removed(part):
    (part / "spec.json").unlink()
    part.rename(temporary(part.parent, part.name, "del"))


CLEAN_UP_STATES = [_legacy_spec_removed_first, _legacy_only_empty_checkpoint_folder, _legacy_empty,
                   _legacy_spec_not_yet_in_place, _run_in_place_partial_not_yet_renamed,
                   _renamed_away_and_partly_removed]


@pytest.mark.parametrize("state", CLEAN_UP_STATES, ids=lambda f: f.__name__.strip("_"))
def test_kill_during_run_clean_up_is_recoverable(trained, ratings, tmp_path, state):
    shutil.copytree(trained / "r", tmp_path / "r")
    shutil.copytree(trained / "partial", tmp_path / ".r.partial")
    state(tmp_path / ".r.partial")
    before = (tmp_path / "r" / "MANIFEST.json").read_text()
    # --resume says why there is nothing to resume, and what to do
    line = one_line_error(cli("train", "--resume", tmp_path / "r"), 4, "no interrupted run to resume")
    assert "cut short" in line or not (tmp_path / ".r.partial").exists()
    assert (tmp_path / "r" / "MANIFEST.json").read_text() == before  # the finished run is kept
    # --overwrite trains again, and nothing that the cut-short clean-up left remains
    res = cli("train", "--data", ratings, "--model", "dot", *FAST, "--out", tmp_path / "r", "--overwrite")
    assert res.code == 0, (res.stdout, res.stderr, res.exception)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]
    load_run(tmp_path / "r")


def test_kill_during_run_clean_up_never_finds_the_partial_folder_without_its_spec(ratings, tmp_path, monkeypatch):
    """Every folder removal during a training happens after the partial folder was renamed away: whatever moment a
    kill hits, ``.r.partial`` is either absent or holds its spec."""
    part = tmp_path / ".r.partial"
    seen = []
    real_rmtree, real_mkdir = shutil.rmtree, os.mkdir

    def check(path):
        seen.append(Path(path).name)
        assert not part.exists() or (part / "spec.json").is_file(), sorted(os.listdir(tmp_path))

    def rmtree(path, *args, **kwargs):
        check(path)
        return real_rmtree(path, *args, **kwargs)

    def mkdir(path, *args, **kwargs):
        check(path)
        real_mkdir(path, *args, **kwargs)
        check(path)

    monkeypatch.setattr(shutil, "rmtree", rmtree)
    monkeypatch.setattr(os, "mkdir", mkdir)
    res = cli("train", "--data", ratings, "--model", "dot", *FAST, "--out", tmp_path / "r")
    assert res.code == 0, (res.stdout, res.stderr, res.exception)
    assert ".r.partial" not in seen and any(name.startswith("..r.partial.ratecast-del-") for name in seen)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


# --- temporaries of killed writes -----------------------------------------------------------------------------------
def _write_run(dest: Path) -> None:
    with io.output_dir(dest, overwrite=True) as tmp:
        (tmp / "run.json").write_text("{}")
        manifest.write(tmp)


WRITERS = {
    "text": lambda folder: io.write_text(folder / "report.html", "<html></html>"),
    "table": lambda folder: io.write_table(pd.DataFrame({"a": [1]}), folder / "recs.parquet"),
    "run folder": lambda folder: _write_run(folder / "run"),
}


@pytest.mark.parametrize("writer", WRITERS)
def test_killed_write_temporaries_are_removed_by_the_next_write(tmp_path, writer):
    dead = dead_pid()
    file_tmp = temporary(tmp_path, "recs.parquet", pid=dead, suffix=".parquet")
    file_tmp.write_bytes(b"half a table")
    run_tmp = temporary(tmp_path, "run", pid=dead)
    (run_tmp / "model").mkdir(parents=True)
    (run_tmp / "model" / "weights.npz").write_bytes(b"half")
    partial_del = temporary(tmp_path, ".run.partial", "del", pid=dead)
    (partial_del / "checkpoint").mkdir(parents=True)
    WRITERS[writer](tmp_path)
    assert not any(".ratecast-" in p.name for p in tmp_path.iterdir()), sorted(os.listdir(tmp_path))


def test_killed_write_temporaries_of_a_real_kill_are_removed_by_the_next_write(tmp_path):
    code = ("import os, signal, sys\nfrom pathlib import Path\nfrom ratecast import io\n"
            "with io.output_dir(Path(sys.argv[1]) / 'run') as tmp:\n    (tmp / 'run.json').write_text('{}')\n"
            "    with io.atomic_path(Path(sys.argv[1]) / 'report.html') as part:\n        part.write_text('half')\n"
            "        os.kill(os.getpid(), signal.SIGKILL)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], env={**os.environ, "PYTHONPATH": str(SRC)},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    left = sorted(p.name for p in tmp_path.iterdir() if ".ratecast-" in p.name)
    assert [name.split("-")[1] for name in left] == ["tmp", "tmp"], left  # the run folder's and the report's
    io.write_text(tmp_path / "report.html", "<html></html>")
    assert not any(".ratecast-" in p.name for p in tmp_path.iterdir()), sorted(os.listdir(tmp_path))
    _write_run(tmp_path / "run")  # the lock file the kill left is taken over
    assert sorted(os.listdir(tmp_path)) == ["report.html", "run"]


def test_killed_write_temporaries_of_live_writers_are_kept(tmp_path):
    target = tmp_path / "report.html"
    code = ("import sys\nfrom ratecast import io\nwith io.atomic_path(sys.argv[1]) as tmp:\n"
            "    tmp.write_text('being written')\n    print(tmp, flush=True)\n    sys.stdin.read()\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(target)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(SRC)})
    try:
        live = Path(proc.stdout.readline().strip())
        assert live.name.startswith(".report.html.ratecast-tmp-") and live.is_file()
        # a writer whose process id reads as ended here (another machine or container) but holds the lock
        held = temporary(tmp_path, "notes.html", pid=dead_pid(), suffix=".html")
        held.write_text("being written elsewhere")
        fd = os.open(held, os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            io.write_text(target, "<html></html>")
            assert live.read_text() == "being written" and held.read_text() == "being written elsewhere"
        finally:
            os.close(fd)
    finally:
        proc.communicate("", timeout=60)
    assert proc.returncode == 0 and not live.exists()  # the live writer finished its own write
    io.write_text(target, "<html></html>")
    assert not held.exists()  # its lock is free now and its process has ended


def test_killed_write_temporaries_never_include_the_users_files(tmp_path):
    dead = dead_pid()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "data.csv").write_text("u,i,r\n")
    lookalikes = [
        ".report.html-abcd1234.html",  # how earlier versions named temporaries: no owner to check
        ".run.tmp-abcd1234",
        f".report.html.ratecast-tmp-{dead}-nothexnothex.html",  # not a token
        f".report.html.ratecast-tmp-{dead}-0123456789ab.txt",  # not the target's suffix
        f"report.html.ratecast-tmp-{dead}-0123456789ab.html",  # no leading dot
        f".report.html.ratecast-keep-{dead}-0123456789ab",  # not a kind of temporary
        f".report.html.ratecast-tmp-x{dead}-0123456789ab.html",  # not a process id
        f".run.ratecast-old-{dead}-0123456789ab",  # a file, where ratecast moves aside folders only
    ]
    for name in lookalikes:
        (tmp_path / name).write_text("mine")
    link = temporary(tmp_path, "run", "del", pid=dead)
    link.symlink_to(mine, target_is_directory=True)  # ratecast never makes links: never followed, never removed
    io.write_text(tmp_path / "report.html", "<html></html>")
    _write_run(tmp_path / "run")
    assert all((tmp_path / name).read_text() == "mine" for name in lookalikes)
    assert link.is_symlink() and (mine / "data.csv").read_text() == "u,i,r\n"


def test_killed_write_between_the_renames_of_a_folder_swap_puts_the_old_folder_back(tmp_path):
    """A kill after the old run was moved aside and before the new one was renamed in: the next writer there puts the
    old run back (and removes the unfinished new one) before it checks anything."""
    _write_run(tmp_path / "run")
    dead = dead_pid()
    (tmp_path / "run").rename(temporary(tmp_path, "run", "old", pid=dead))
    (temporary(tmp_path, "run", pid=dead) / "model").mkdir(parents=True)
    with pytest.raises(ratecast.errors.OutputExistsError, match="pass --overwrite"):
        with io.output_dir(tmp_path / "run"):
            pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    manifest.verify(tmp_path / "run")

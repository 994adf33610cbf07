"""A kill at any moment of writing a file or a folder leaves only states that ratecast recognises and recovers from:
the temporaries of killed writes are removed by the next write, while those of live writers and the user's own files
are kept."""

import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import ratecast
from ratecast import io, manifest

SRC = Path(ratecast.__file__).resolve().parents[1]


def dead_pid() -> int:
    """The id of a process that has ended."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def temporary(folder: Path, target: str, kind: str = "tmp", pid: int | None = None, suffix: str = "") -> Path:
    """A path named as ratecast names its temporaries (``.TARGET.ratecast-KIND-PID-TOKEN``)."""
    return folder / f".{target}.ratecast-{kind}-{pid or dead_pid()}-0123456789ab{suffix}"


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

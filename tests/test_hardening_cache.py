"""Compilation across processes: one on-disk cache setting, used by the library and the command line alike, and a
new process that finds every program of a fit in it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import platformdirs
import pytest

from ratecast import compile_cache as cache
from synthetic import make_dataset

TESTS = Path(__file__).resolve().parent

# A fit in a fresh process that reports how many programs it compiled or loaded (every backend compilation) and
# how many of them it found in the on-disk cache.
FIT = f"""
import json, sys
import jax

counts = {{"programs": 0, "cache_hits": 0}}


def on_event(event, *args, **kwargs):
    if event == "/jax/compilation_cache/cache_hits":
        counts["cache_hits"] += 1


def on_duration(event, duration, *args, **kwargs):
    if event == "/jax/core/compile/backend_compile_duration":
        counts["programs"] += 1


jax.monitoring.register_event_listener(on_event)
jax.monitoring.register_event_duration_secs_listener(on_duration)
sys.path.insert(0, {str(TESTS)!r})
from synthetic import make_dataset
import ratecast as rc

rc.Recommender("biased_dot", random_state=0, epochs=2, embedding_dim=4, batch_size=64, verbose=0).fit(make_dataset())
print(json.dumps(counts))
"""


def _env(cache_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}  # no cache folder given to JAX
    return {**env, "RATECAST_CACHE": str(cache_dir), "KERAS_BACKEND": "jax", "COLUMNS": "200"}


def _entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*-cache")) if folder.is_dir() else []


def test_compilation_across_processes_one_cache_folder_for_the_cli_and_the_library(tmp_path, monkeypatch):
    monkeypatch.delenv("RATECAST_CACHE", raising=False)
    assert cache.compilation_cache_folder() == Path(platformdirs.user_cache_dir("ratecast")) / "jax"
    monkeypatch.setenv("RATECAST_CACHE", str(tmp_path / "mine"))
    assert cache.compilation_cache_folder() == tmp_path / "mine" / "jax"

    # the command line, in a fresh process, keeps its compiled programs in $RATECAST_CACHE/jax
    ratings = tmp_path / "ratings.csv"
    make_dataset().ratings.to_csv(ratings, index=False)
    cli_cache = tmp_path / "cli-cache"
    proc = subprocess.run([sys.executable, "-m", "ratecast.cli", "train", "--data", ratings, "--model", "biased_dot",
                           "--epochs", "1", "--embedding-dim", "4", "--batch-size", "64", "-q", "--out",
                           tmp_path / "run"], capture_output=True, text=True, env=_env(cli_cache), timeout=600)
    assert proc.returncode == 0, proc.stderr
    cli_entries = _entries(cli_cache / "jax")
    assert any(name.startswith("jit__run_batches-") for name in cli_entries), cli_entries

    # the library, in a fresh process, uses the same folder: the programs the command line compiled are found there
    lib = subprocess.run([sys.executable, "-c", FIT], capture_output=True, text=True, env=_env(cli_cache),
                         timeout=600)
    assert lib.returncode == 0, lib.stderr
    assert json.loads(lib.stdout.strip().splitlines()[-1])["cache_hits"] > 0
    assert set(cli_entries) <= set(_entries(cli_cache / "jax"))


def test_compilation_across_processes_a_second_process_finds_every_program(tmp_path):
    runs = []
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-c", FIT], capture_output=True, text=True, env=_env(tmp_path),
                              timeout=600)
        assert proc.returncode == 0, proc.stderr
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    first, second = runs
    assert first["programs"] > 0 and len(_entries(tmp_path / "jax")) > 0
    # the second process compiles nothing: every program of its fit (initialisers, first call, training loop,
    # evaluation) is loaded from the cache the first one wrote
    assert second["programs"] > 0 and second["cache_hits"] == second["programs"], runs


def test_compilation_across_processes_an_unusable_cache_folder_warns_and_leaves_the_cache_off(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("RATECAST_CACHE", str(blocker))
    configured = jax.config.jax_compilation_cache_dir
    try:
        jax.config.update("jax_compilation_cache_dir", None)  # as in a process that has not set it up yet
        with pytest.warns(RuntimeWarning, match=r"\$RATECAST_CACHE .*a-file.* must be a writable folder"):
            assert cache.use_compilation_cache() is None
        assert jax.config.jax_compilation_cache_dir is None
    finally:
        jax.config.update("jax_compilation_cache_dir", configured)


def test_compilation_across_processes_a_folder_given_to_jax_is_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("RATECAST_CACHE", str(tmp_path / "ignored"))
    configured = jax.config.jax_compilation_cache_dir
    try:
        jax.config.update("jax_compilation_cache_dir", str(tmp_path / "given"))
        assert cache.use_compilation_cache() == str(tmp_path / "given")
        assert not (tmp_path / "ignored").exists()
    finally:
        jax.config.update("jax_compilation_cache_dir", configured)

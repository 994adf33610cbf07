"""Wall time of command-line lookups in a fresh process, as a user runs them: ``ratecast recommend RUN --user 5``,
``ratecast similar RUN --item 50`` and ``ratecast predict RUN --pairs`` (three pairs) answered by loading the full model
(``--before-src``, e.g. the source of an earlier version) and by this version's command line, which answers from the
run's stored tables (:mod:`ratecast.lookup`) where they hold the answer; also ``ratecast --help`` and ``ratecast data
info``, and the fresh-process cost of the start-up imports on their own. For each command of this version, whether
Keras or JAX was imported (one extra run in a wrapper that reads ``sys.modules``). Prints one JSON line; medians of
``--repeats`` runs.

    ratecast train --data ml-100k --model deep --epochs 3 --out RUN     # with this version: RUN/model/lookup.npz
    python benchmarks/lookup_cli.py RUN --before-src /path/to/older/src
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
LOOKUPS = {"recommend": ["--user", "5"], "similar": ["--item", "50"], "predict": ["--pairs", "{pairs}"]}
OTHERS = {"help": ["--help"], "data info": ["data", "info", "ml-100k", "--json"]}
IMPORTS = {"python": "pass", "numpy": "import numpy", "pandas": "import pandas", "pyarrow.parquet":
           "import pyarrow.parquet", "typer+rich": "import typer, rich.table", "ratecast.cli": "import ratecast.cli",
           "ratecast.lookup": "import ratecast.lookup"}
#: runs the command line with the given arguments, then says on stderr which of Keras and JAX it imported
WRAPPER = """
import json, sys
from ratecast.cli import app
try:
    app(sys.argv[1:], prog_name="ratecast")
except SystemExit as exc:
    code = exc.code
sys.stderr.write("\\n" + json.dumps({"code": code, "loaded": sorted(m for m in ("keras", "jax") if m in sys.modules)}))
"""


def timed(argv: list[str], src: str, cpu: list[float] | None = None) -> tuple[float, subprocess.CompletedProcess]:
    """Wall seconds of a fresh process running ``argv`` with ``src`` as its PYTHONPATH (its CPU seconds, user and
    system, appended to ``cpu``: a figure that a busy machine inflates less than the wall time)."""
    env = {**os.environ, "PYTHONPATH": src, "KERAS_BACKEND": "jax"}
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    seconds = time.perf_counter() - start
    now = resource.getrusage(resource.RUSAGE_CHILDREN)
    if cpu is not None:
        cpu.append(now.ru_utime - used.ru_utime + now.ru_stime - used.ru_stime)
    if done.returncode:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {(done.stderr + done.stdout).strip()[-500:]}")
    return seconds, done


def same(a: list[dict], b: list[dict]) -> bool:
    """Same ids and titles in the same order, values within 1e-5."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if x.keys() != y.keys():
            return False
        for key in x:
            if isinstance(x[key], float) or isinstance(y[key], float):
                if abs(x[key] - y[key]) > 1e-5:
                    return False
            elif x[key] != y[key]:
                return False
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="an ML-100k run directory trained with this version")
    ap.add_argument("--before-src", default=None, help="source folder of a version to compare with (optional)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    run = str(Path(args.run).resolve())
    result: dict = {"benchmark": "lookup_cli", "run": run, "repeats": args.repeats,
                    "load_average": [round(v, 2) for v in os.getloadavg()], "cpus": os.cpu_count()}
    before, after, before_cpu, after_cpu, equal, loaded = {}, {}, {}, {}, {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        pairs = Path(tmp) / "pairs.csv"
        pairs.write_text("user_id,item_id\n5,50\n1,181\n943,1\n")
        commands = {name: [name, run, *(a.format(pairs=pairs) for a in option), "--json"]
                    for name, option in LOOKUPS.items()}
        commands.update(OTHERS)
        for name, argv in commands.items():
            b_times, a_times, b_cpu, a_cpu = [], [], [], []
            for _ in range(args.repeats):
                if args.before_src and name in LOOKUPS:
                    seconds, b_done = timed([sys.executable, "-m", "ratecast.cli", *argv], args.before_src, b_cpu)
                    b_times.append(seconds)
                seconds, a_done = timed([sys.executable, "-m", "ratecast.cli", *argv], str(SRC), a_cpu)
                a_times.append(seconds)
            after[name], after_cpu[name] = round(statistics.median(a_times), 3), round(statistics.median(a_cpu), 3)
            if b_times:
                before[name], before_cpu[name] = (round(statistics.median(b_times), 3),
                                                  round(statistics.median(b_cpu), 3))
                equal[name] = same(json.loads(b_done.stdout), json.loads(a_done.stdout))
            _, wrapped = timed([sys.executable, "-c", WRAPPER, *argv], str(SRC))
            loaded[name] = json.loads(wrapped.stderr.strip().splitlines()[-1])["loaded"]
    imports = {}
    for name, code in IMPORTS.items():
        imports[name] = round(statistics.median(timed([sys.executable, "-c", code], str(SRC))[0]
                                                for _ in range(args.repeats)), 3)
    result.update({"after_s": after, "after_cpu_s": after_cpu, "before_s": before, "before_cpu_s": before_cpu,
                   "same_answers": equal, "keras_or_jax_imported": loaded, "import_s": imports,
                   "load_average_after": [round(v, 2) for v in os.getloadavg()]})
    print(json.dumps(result))


if __name__ == "__main__":
    main()

"""Wall time of a command-line lookup in a fresh process: ``ratecast recommend RUN --user 5`` and ``ratecast similar
RUN --item 50`` answered by loading the full model (``--before-src``, e.g. /work/main/src), and the same answers from
the run's stored tables (:mod:`ratecast.lookup`) in a process that imports only what the command line imports at
start-up (typer, rich, ratecast.datasets.dataset, ratecast.errors) plus ratecast.lookup. Also the fresh-process cost
of the start-up imports on their own. Prints one JSON line; medians of ``--repeats`` runs.

    ratecast train --data ml-100k --model deep --epochs 3 --out RUN     # with this version: RUN/model/lookup.npz
    python benchmarks/lookup_cli.py RUN --before-src /work/main/src
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
COMMANDS = {"recommend": ["--user", "5"], "similar": ["--item", "50"]}
IMPORTS = {"python": "pass", "numpy": "import numpy", "pandas": "import pandas", "pyarrow.parquet":
           "import pyarrow.parquet", "typer+rich": "import typer, rich.table",
           "cli start-up": "import typer, rich.table, ratecast.datasets.dataset, ratecast.errors",
           "ratecast.lookup": "import ratecast.lookup"}


def answer(command: str, run: str, value: str) -> None:
    """What the command line will do for ``command`` (run in a fresh process): the stored tables' answer as JSON."""
    import typer  # noqa: F401  the command line's start-up imports
    import rich.table  # noqa: F401

    import ratecast.datasets.dataset  # noqa: F401
    import ratecast.errors  # noqa: F401
    from ratecast import lookup
    from ratecast.io import to_json

    if command == "recommend":
        df = lookup.answer_recommend(run, value, k=10)
    else:
        found = lookup.answer_similar(run, value, k=10)
        df = None if found is None else found[0]
    if df is None:
        raise SystemExit(f"{run}: the stored tables do not answer {command} {value}")
    sys.stdout.write(to_json(df.to_dict(orient="records")) + "\n")
    sys.stderr.write(json.dumps({"loaded": sorted(m for m in ("keras", "jax") if m in sys.modules)}) + "\n")


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
    if len(sys.argv) > 1 and sys.argv[1] == "--answer":
        return answer(*sys.argv[2:5])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="an ML-100k run directory trained with this version")
    ap.add_argument("--before-src", default="/work/main/src", help="source folder of the version to compare with")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    run = str(Path(args.run).resolve())
    result: dict = {"benchmark": "lookup_cli", "run": run, "repeats": args.repeats,
                    "load_average": [round(v, 2) for v in os.getloadavg()], "cpus": os.cpu_count()}
    before, after, before_cpu, after_cpu, equal, loaded = {}, {}, {}, {}, {}, set()
    for command, option in COMMANDS.items():
        full = [sys.executable, "-m", "ratecast.cli", command, run, *option, "--json"]
        fast = [sys.executable, __file__, "--answer", command, run, option[1]]
        b_times, a_times, b_cpu, a_cpu = [], [], [], []
        for _ in range(args.repeats):
            seconds, b_done = timed(full, args.before_src, b_cpu)
            b_times.append(seconds)
            seconds, a_done = timed(fast, str(SRC), a_cpu)
            a_times.append(seconds)
            loaded.update(json.loads(a_done.stderr.strip().splitlines()[-1])["loaded"])
        before[command] = round(statistics.median(b_times), 3)
        after[command] = round(statistics.median(a_times), 3)
        before_cpu[command] = round(statistics.median(b_cpu), 3)
        after_cpu[command] = round(statistics.median(a_cpu), 3)
        equal[command] = same(json.loads(b_done.stdout), json.loads(a_done.stdout))
    imports = {}
    for name, code in IMPORTS.items():
        imports[name] = round(statistics.median(timed([sys.executable, "-c", code], str(SRC))[0]
                                                for _ in range(args.repeats)), 3)
    result.update({"before_s": before, "after_s": after, "before_cpu_s": before_cpu, "after_cpu_s": after_cpu,
                   "same_answers": equal,
                   "after_imports_keras_or_jax": sorted(loaded), "import_s": imports,
                   "load_average_after": [round(v, 2) for v in os.getloadavg()]})
    print(json.dumps(result))


if __name__ == "__main__":
    main()

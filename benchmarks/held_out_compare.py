"""Held-out users, end to end as a user runs it: each preset trained with ``ratecast train --split held-out-users``
(20% of ML-100k's users out of training, 80% of each one's ratings folded in, the rest scored over the whole
catalogue), then one ``ratecast compare`` of all the runs with its HTML report.

Measured per run: the fit (``fit_seconds`` of the run), the evaluation inside ``train`` (fold-in, whole-catalogue
lists, every metric with its bootstrap intervals: the ``evaluating`` step of the command's own timed lines) and the
command's wall time; then the wall time of ``ratecast compare RUNS --json --out compare.html`` (a new process:
start-up, reading the kept evaluations, the paired tests, groups and gaps, the report). Targets: the compare step at
most 2x the fits (``compare_over_fits``); also given, evaluation and comparison together over the fits
(``evaluation_and_compare_over_fits``). The headline figures come from the compare's JSON: recall@20, NDCG@100,
novelty, diversity per run, the largest gaps by gender, age, occupation and popularity band, and the pairs whose
difference is significant. Prints one JSON line.

    RATECAST_DATA=../shared/data python benchmarks/held_out_compare.py [--presets fast,topn,accurate]
        [--users 0.2] [--keep DIR]

Measured once on two shared CPU cores (load average 5-8), 189 held-out users, 42 paired rows:

    preset    fit s   evaluation s   train wall s   recall@20   NDCG@100   novelty@10   diversity@10
    fast        6.0            7.1           24.0      0.096      0.146        2.541          0.924
    topn       62.0           18.9           92.0      0.458      0.503        1.656          0.918
    accurate  145.2           38.3          191.4      0.144      0.203        2.289          0.452

    compare (with its report) 16.0 s: 0.075x the fits; evaluation and compare together 0.377x the fits
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STEP = re.compile(r"^(?P<step>.+?)… \((?P<at>\d+(\.\d+)?) s\)$")


def ratecast(*args: str) -> list[str]:
    return [sys.executable, "-m", "ratecast.cli", *args]


def timed(cmd: list[str]) -> tuple[float, str, str]:
    """Wall seconds, stdout and stderr of ``cmd`` (which must succeed)."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        why = (proc.stderr.strip() or proc.stdout.strip())[-2000:]
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {why}")
    return wall, proc.stdout, proc.stderr


def step_seconds(stderr: str, step: str, following: str) -> float | None:
    """Seconds between the timed lines of ``step`` and of ``following`` of a command's progress."""
    at = {m["step"]: float(m["at"]) for m in map(STEP.match, stderr.splitlines()) if m}
    return round(at[following] - at[step], 2) if step in at and following in at else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="fast,topn,accurate")
    ap.add_argument("--data", default="ml-100k")
    ap.add_argument("--users", type=float, default=0.2, help="share of the users held out")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", type=Path, help="write the runs and the report here (default: a temporary folder)")
    args = ap.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="ratecast-held-out-"))
    folder.mkdir(parents=True, exist_ok=True)
    runs, out = [], {"benchmark": "held_out_compare", "data": args.data, "split": "held-out-users",
                     "users_held_out": args.users, "seed": args.seed, "runs": {}}
    try:
        for preset in args.presets.split(","):
            run = folder / preset
            wall, _, err = timed(ratecast("train", "--data", args.data, "--preset", preset, "--split",
                                          "held-out-users", "--test-size", str(args.users), "--seed",
                                          str(args.seed), "--overwrite", "--out", str(run)))
            info = json.loads((run / "run.json").read_text())
            out["runs"][preset] = {"model": info["spec"]["model"], "fit_s": round(info["fit_seconds"], 2),
                                   "evaluation_s": step_seconds(err, "evaluating", "writing the run"),
                                   "train_wall_s": round(wall, 2)}
            runs.append(str(run))
        report = folder / "compare.html"
        html = ["--overwrite", "--out", str(report)] if len(runs) >= 2 else []  # a report compares two runs or more
        wall, stdout, _ = timed(ratecast("compare", *runs, "--json", *html))
        doc = json.loads(stdout)
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    fits = sum(r["fit_s"] for r in out["runs"].values())
    evaluations = sum(r["evaluation_s"] or 0.0 for r in out["runs"].values())
    out["compare_s"] = round(wall, 2)
    out["fits_s"] = round(fits, 2)
    out["compare_over_fits"] = round(wall / fits, 3)
    out["evaluation_and_compare_over_fits"] = round((evaluations + wall) / fits, 3)
    out["test_users"] = doc["paired"][0]["users"] if doc["paired"] else None
    figures = {}
    for row in doc["lists"]:
        figures.setdefault(row["run"], {})[row["metric"]] = round(row["value"], 4)
    out["figures"] = figures
    out["gaps_recall@10"] = {f"{g['run']} by {g['by']}": [round(g["gap"], 4), round(g["ci_low"], 4),
                                                          round(g["ci_high"], 4)] for g in doc["gaps"]}
    out["significant"] = [f"{r['metric']}: {r['a']} - {r['b']} = {r['difference']:+.4f}" for r in doc["paired"]
                          if r["significant"]]
    out["rows_compared"] = len(doc["paired"])
    print(json.dumps(out))


if __name__ == "__main__":
    main()

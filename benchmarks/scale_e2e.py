"""The recommended models end to end at scale, as the command line runs them, beside implicit's ALS on the same file.

Protocol: a synthetic ratings file with ML-25M's vocabulary (162,541 users x 59,047 items, power-law popularity,
one rating per (user, item) pair, half stars, seed 0; ``benchmarks/load_big.py``'s ``unique_ratings``), written
once as CSV (``userId,movieId,rating,timestamp``) into ``--work`` (kept between runs of the same size). Then each step
runs as its own process, timed by wall clock, with its peak RSS (``wait4``'s ``ru_maxrss`` of that process):

* ``train_<preset>``: ``ratecast train --data ratings.csv --rating-scale 0.5,5,0.5 --preset P --out RUN --json`` for
  each of ``--presets`` (default ``fast,topn,accurate``); the fit time and test RMSE / recall@10 come from the run;
* ``recommend_all``: ``ratecast recommend RUN --all --out recs.parquet`` on the first preset's run (``fast``);
* ``serve``: ``ratecast serve RUN`` on a free port of 127.0.0.1: seconds until ``/ready`` and until its item map
  (made in the background after it) answers, its RSS, then ``--requests`` sequential
  ``GET /v1/users/{id}/recommendations?k=10`` for random known users (p50, p99 in ms);
* ``als``: implicit's ``AlternatingLeastSquares(factors=64, iterations=15, num_threads=2)`` on the same file's
  user x item matrix of ratings (implicit's confidence), fit seconds, in its own process
  (``pip install -e '.[peers]'``; listed as skipped without it).

Each step stops at its ``--timeout`` (its own default per step), and is then reported as ``timed_out``. Prints one
JSON line with every step, the ratios the targets name (topn fit / ALS fit, fast wall / fast fit) and the targets.
Without ``train`` in ``--steps``, ``recommend_all`` and ``serve`` use the run that an earlier ``train`` left in
``--work``.

    python benchmarks/scale_e2e.py [--ratings 25e6] [--presets fast,topn,accurate] [--work /tmp/ratecast-scale]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
TIMEOUTS = {"fast": 900, "topn": 1200, "accurate": 3600, "recommend_all": 600, "serve": 600, "als": 1200}
COLUMNS = ("--user-col", "userId", "--item-col", "movieId", "--timestamp-col", "timestamp")
TARGETS = {"topn_wall_s": 600, "topn_rss_gb": 10, "topn_fit_over_als": 2.0, "accurate_wall_s": 2700,
           "accurate_rss_gb": 16, "fast_wall_over_fit": 2.0, "recommend_all_s": 30, "serve_ready_s": 60,
           "serve_rss_gb": 6, "serve_p99_ms": 20}


def ratings_file(work: Path, n: int) -> Path:
    """The synthetic CSV of ``n`` ratings (written once per size)."""
    path = work / f"ratings-{n}.csv"
    if path.exists():
        return path
    sys.path.insert(0, str(HERE))
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from load_big import HALF_STARS, unique_ratings

    import numpy as np

    r = unique_ratings(n, seed=0)
    stars = pa.array(HALF_STARS).take(pa.array(np.rint(r["rating"].to_numpy() * 2).astype("int32")))
    table = pa.table({"userId": r["userId"].to_numpy("int64"), "movieId": r["movieId"].to_numpy("int64"),
                      "rating": stars, "timestamp": r["timestamp"].to_numpy("int64")})
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as fh:
        fh.write(b"userId,movieId,rating,timestamp\n")
        pacsv.write_csv(table, fh, pacsv.WriteOptions(include_header=False, quoting_style="none"))
    tmp.rename(path)
    return path


def timed(cmd: list[str], timeout: float, env: dict | None = None) -> dict:
    """Run ``cmd``; wall seconds, peak RSS in GB of that process (``wait4``), exit code, whether it ran out of time."""
    import tempfile
    import threading

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, env=env)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        timer.cancel()
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read().strip()
    return {"wall_s": round(wall, 1), "peak_rss_gb": round(usage.ru_maxrss / 1e6, 2), "exit_code": proc.returncode,
            "timed_out": wall >= timeout, "stdout": stdout, "stderr_tail": stderr.splitlines()[-3:]}


def ratecast(*args: str) -> list[str]:
    return [sys.executable, "-m", "ratecast.cli", *args]


def train(preset: str, data: Path, run: Path, timeout: float) -> dict:
    if run.exists():
        shutil.rmtree(run)
    res = timed(ratecast("train", "--data", str(data), *COLUMNS, "--rating-scale", "0.5,5,0.5", "--preset", preset,
                         "--out", str(run), "--json"), timeout)
    step = {k: v for k, v in res.items() if k != "stdout"}
    if res["exit_code"] == 0:
        test = json.loads(res["stdout"]).get("test", {})
        info = json.loads((run / "run.json").read_text())
        step.update(fit_s=info.get("fit_seconds"), rmse=test.get("rmse"), mae=test.get("mae"),
                    recall_at_10=test.get("recall@10"), ndcg_at_10=test.get("ndcg@10"))
    elif res["stdout"].strip():
        step["error"] = json.loads(res["stdout"]).get("error")
    return step


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(run: Path, data: Path, requests: int, timeout: float) -> dict:
    """Start-up to /ready, RSS, and the latency of sequential top-10 requests for random known users."""
    import numpy as np
    import pandas as pd

    users = pd.read_csv(data, usecols=["userId"])["userId"].unique().tolist()  # nearly all of them train
    port = free_port()
    start = time.perf_counter()
    proc = subprocess.Popen(ratecast("serve", str(run), "--host", "127.0.0.1", "--port", str(port)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    ready = None
    try:
        while time.perf_counter() - start < timeout and proc.poll() is None:
            try:
                with urllib.request.urlopen(base + "/ready", timeout=5) as r:
                    if json.loads(r.read()).get("ready"):
                        ready = time.perf_counter() - start
                        break
            except OSError:
                time.sleep(0.5)
        if ready is None:
            return {"ready_s": None, "exit_code": proc.poll(), "timed_out": proc.poll() is None}
        map_ready = None  # the item map is made in the background after /ready: the requests are timed after it
        while time.perf_counter() - start < timeout and proc.poll() is None:
            try:
                with urllib.request.urlopen(base + "/v1/map", timeout=30) as r:
                    r.read()
                map_ready = time.perf_counter() - start
                break
            except urllib.error.HTTPError as err:
                if err.code != 503:
                    break
                time.sleep(0.5)
            except OSError:
                time.sleep(0.5)
        rng = random.Random(0)
        latencies, errors = [], 0
        for _ in range(requests):
            user = users[rng.randrange(len(users))]
            t = time.perf_counter()
            try:
                with urllib.request.urlopen(f"{base}/v1/users/{user}/recommendations?k=10", timeout=10) as r:
                    r.read()
            except OSError:
                errors += 1
            latencies.append((time.perf_counter() - t) * 1000)
        rss = None
        for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                rss = round(int(line.split()[1]) / 1e6, 2)
        lat = np.asarray(latencies)
        return {"ready_s": round(ready, 1), "map_ready_s": None if map_ready is None else round(map_ready, 1),
                "peak_rss_gb": rss, "requests": requests, "errors": errors,
                "p50_ms": round(float(np.percentile(lat, 50)), 2), "p99_ms": round(float(np.percentile(lat, 99)), 2)}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def als_worker(data: str) -> None:
    """(In its own process.) implicit's ALS, 64 factors, 15 iterations, 2 threads, on the file's rating matrix."""
    import numpy as np
    import pandas as pd
    import scipy.sparse as sp
    from threadpoolctl import threadpool_limits

    from implicit.als import AlternatingLeastSquares

    r = pd.read_csv(data, usecols=["userId", "movieId", "rating"])
    users, items = r["userId"].to_numpy(), r["movieId"].to_numpy()
    matrix = sp.csr_matrix((r["rating"].to_numpy("float32"), (users, items)),
                           shape=(users.max() + 1, items.max() + 1))
    del r
    model = AlternatingLeastSquares(factors=64, iterations=15, num_threads=2, random_state=0,
                                    calculate_training_loss=False)
    with threadpool_limits(1, "blas"):
        start = time.perf_counter()
        model.fit(matrix, show_progress=False)
        fit = time.perf_counter() - start
    print(json.dumps({"fit_s": round(fit, 2), "per_iteration_s": round(fit / 15, 3)}))


def als(data: Path, timeout: float) -> dict:
    try:
        import implicit  # noqa: F401
    except ImportError:
        return {"skipped": "implicit is not installed (pip install -e '.[peers]')"}
    res = timed([sys.executable, __file__, "--als-worker", str(data)], timeout,
                env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})  # as implicit asks
    step = {k: v for k, v in res.items() if k != "stdout"}
    if res["exit_code"] == 0:
        step.update(json.loads(res["stdout"].strip().splitlines()[-1]))
    return step


def ratio(a, b):
    return round(a / b, 2) if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ratings", type=float, default=25e6)
    p.add_argument("--presets", default="fast,topn,accurate")
    p.add_argument("--steps", default="train,recommend_all,serve,als")
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "ratecast-scale")
    p.add_argument("--timeout", type=float, default=None, help="One limit for every step (default: per step).")
    p.add_argument("--als-worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.als_worker:
        return als_worker(args.als_worker)
    n = int(args.ratings)
    args.work.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    data = ratings_file(args.work, n)
    made = round(time.perf_counter() - t, 1)
    limit = lambda step: args.timeout or TIMEOUTS[step]  # noqa: E731
    presets = [s for s in args.presets.split(",") if s]
    steps = set(args.steps.split(","))
    result: dict = {"benchmark": "scale_e2e", "ratings": n, "data_s": made, "cpus": os.cpu_count(), "steps": {}}
    runs = {preset: args.work / f"run-{preset}-{n}" for preset in presets}  # without train: the runs made before
    if "train" in steps:
        for preset in presets:
            result["steps"][f"train_{preset}"] = train(preset, data, runs[preset], limit(preset))
    first = runs.get(presets[0]) if presets else None
    if "recommend_all" in steps and first is not None and (first / "run.json").exists():
        out = args.work / "recs.parquet"
        res = timed(ratecast("recommend", str(first), "--all", "--out", str(out), "--overwrite"),
                    limit("recommend_all"))
        result["steps"]["recommend_all"] = {k: v for k, v in res.items() if k != "stdout"}
    if "serve" in steps and first is not None and (first / "run.json").exists():
        result["steps"]["serve"] = serve(first, data, args.requests, limit("serve"))
    if "als" in steps:
        result["steps"]["als"] = als(data, limit("als"))
    s = result["steps"]
    get = lambda step, key: s.get(step, {}).get(key)  # noqa: E731
    result["ratios"] = {"topn_fit_over_als": ratio(get("train_topn", "fit_s"), get("als", "fit_s")),
                        "fast_wall_over_fit": ratio(get("train_fast", "wall_s"), get("train_fast", "fit_s")),
                        "accurate_rmse_minus_fast": (round(get("train_accurate", "rmse") - get("train_fast", "rmse"), 4)
                                                     if get("train_accurate", "rmse") is not None
                                                     and get("train_fast", "rmse") is not None else None)}
    result["targets"] = TARGETS
    print(json.dumps(result))


if __name__ == "__main__":
    main()

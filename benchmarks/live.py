"""Live ratings: how long taking in a user's new ratings takes, through the library and through
``POST /v1/users/{id}/ratings`` on 127.0.0.1.

Protocol, for each size of ``--sizes``:

* ``ml-100k``: the real release; ``ml-25m-vocab``: ML-25M's vocabulary (162,541 users x 59,047 items), synthetic:
  ``--ratings`` ratings drawn by ``ratecast.datasets.synthetic.movielens_like`` plus one rating per user and per item
  (so that every id is known), written to a CSV file.
* A run of ``--model`` is trained briefly into a temporary folder (1 epoch: latency does not depend on accuracy;
  ``hybrid`` on synthetic data with its one feature that needs no metadata, items' popularity; ``bayesian`` at
  its defaults, or with ``--time-budget`` seconds of sampling: fewer chains and sweeps, stored tables of the
  default fit's shape, which the JSON reports with the budget; ``--test-size`` of the ratings held out, small so
  that the run's own evaluation stays short), or ``--run`` names a run this script trained before (copied).
* Library: the run's recommender takes ``--repeats`` new users with 10 ratings of random items, each
  ``rec.update(frame)`` from the recommender the previous call returned (as the server chains them: the arrays it
  holds grow), then ``--repeats`` more ratings of users it already knows (one of the new users, 10 random items):
  p50 and p99 in ms of each kind, after 3 warm-up calls of each.
* HTTP (unless ``--no-http``): ``ratecast serve RUN`` (one worker) on a free port of 127.0.0.1, timed once it is
  ready and its item map is made (the map's t-SNE runs in the background at start-up); one keep-alive connection
  (``http.client``) posts the same two kinds of requests, each answered only once its ratings are in the run's
  fsync'd log; after each, a ``GET .../recommendations`` checks that the answer is the user's own
  (``"fallback": null``; not timed).

Prints one JSON line. Load goes only to 127.0.0.1.

Measured on two shared, loaded CPU cores (biased_dot; p50 / p99 ms, 200 requests of each kind, 100 over HTTP):

    size                                   library new    library known   POST new     POST known
    ml-100k                                1.0 / 5.8      1.0 / 5.6       4.0 / 6.3    3.2 / 6.8
    ml-25m-vocab (1 M synthetic ratings)   1.2 / 4.5      8.5 / 15.5      not run (the server's start-up top-100
                                                                          lists and t-SNE map of 59,047 items take
                                                                          many minutes on this box)

bayesian (the ``accurate`` preset; 200 requests of each kind, the box at a load of about 10; ML-25M's vocabulary
with ``--time-budget 120``: 15 stored samples, tables of 240 columns as at the defaults):

    ml-100k (400 stored samples)           2.3 / 7.8      3.3 / 9.8       11.5 / 21.2  15.0 / 23.4
    ml-25m-vocab (1 M synthetic ratings)   3.3 / 10.5     2.7 / 11.9      11.2 / 22.9  8.3 / 30.3

    RATECAST_DATA=../shared/data python benchmarks/live.py [--sizes ml-100k,ml-25m-vocab] [--model biased_dot]
        [--repeats 200] [--ratings 1000000] [--no-http] [--time-budget SECONDS] [--run RUN]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

RATED = 10  # ratings per request


def synthetic_file(folder: Path, n_ratings: int) -> Path:
    from ratecast.datasets.synthetic import ML25M_ITEMS, ML25M_USERS, movielens_like

    r = movielens_like(n_ratings, seed=0)
    cover = pd.DataFrame({"userId": np.r_[np.arange(1, ML25M_USERS + 1), np.arange(ML25M_ITEMS) % ML25M_USERS + 1],
                          "movieId": np.r_[np.arange(ML25M_USERS) % ML25M_ITEMS + 1, np.arange(1, ML25M_ITEMS + 1)],
                          "rating": 3.0, "timestamp": 1_500_000_000})
    r = pd.concat([r, cover], ignore_index=True).drop_duplicates(["userId", "movieId"])
    path = folder / "ratings.csv"
    r.rename(columns={"userId": "user_id", "movieId": "item_id"}).to_csv(path, index=False)
    return path


def train(size: str, folder: Path, model: str, n_ratings: int, test_size: float,
          time_budget: float | None = None) -> Path:
    from ratecast.runs import RunSpec, train_run

    data = "ml-100k" if size == "ml-100k" else str(synthetic_file(folder, n_ratings))
    out = folder / "run"
    from ratecast.models import MODELS

    # one epoch for the models trained by gradient; the others (bayesian) at their defaults, sized by their budget
    params = {"epochs": 1, "batch_size": 8192} if MODELS[model].trained_by_gradient else {}
    if time_budget is not None:  # fewer sweeps; the stored tables keep their shape (sized from items and options)
        params["time_budget"] = time_budget
    if model == "hybrid" and size != "ml-100k":  # synthetic data has no metadata: the feature that needs none
        params.update(item_features=["popularity"], user_features=[])
    train_run(RunSpec(data=data, model=model, test_size=test_size, params=params), out, progress=False)
    return out


def tables(run: Path) -> dict:
    """What the timed model is: its training ratings, its user table's shape and (bayesian) its sampling time
    budget (seconds; None: the default). A lower time budget samples fewer chains and sweeps; the stored tables keep
    the default fit's shape (sized from the items and the options, not the time)."""
    from ratecast.runs import load_run

    state = load_run(run).recommender().state_
    out = {"train_ratings": int(state.n_train), "user_table_shape": list(state.model.user_embedding.embeddings.shape)}
    if hasattr(state.model_config, "time_budget"):
        out["sampling_time_budget_s"] = state.model_config.time_budget
        out["stored_samples"] = int(state.model.stored)
    return out


def percentiles(ms: list[float]) -> dict:
    a = np.asarray(ms)
    return {"p50_ms": round(float(np.percentile(a, 50)), 2), "p99_ms": round(float(np.percentile(a, 99)), 2),
            "n": len(a)}


def frames(items: np.ndarray, repeats: int, prefix: str, seed: int):
    """(user, items, ratings) of 3 + repeats new users, then 3 + repeats ratings of known ones."""
    rng = np.random.default_rng(seed)
    new = [(f"{prefix}{k}", rng.choice(items, RATED, replace=False), rng.integers(1, 6, RATED).astype(float))
           for k in range(3 + repeats)]
    known = [(new[k % len(new)][0], rng.choice(items, RATED, replace=False), rng.integers(1, 6, RATED).astype(float))
             for k in range(3 + repeats)]
    return new, known


def library(run: Path, repeats: int) -> dict:
    from ratecast.runs import load_run

    rec = load_run(run).recommender()
    new, known = frames(rec.item_index_.ids, repeats, "lib", 0)
    out = {}
    for kind, batches in (("new_user", new), ("known_user", known)):
        times = []
        for user, items, ratings in batches:
            frame = pd.DataFrame({"user_id": pd.Series([user] * RATED, dtype=object), "item_id": items,
                                  "rating": ratings})
            start = time.perf_counter()
            rec = rec.update(frame)
            times.append((time.perf_counter() - start) * 1e3)
        out[kind] = percentiles(times[3:])
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def over_http(run: Path, repeats: int) -> dict:
    from ratecast.runs import load_run

    # the requests are made before the server starts: loading the run again can outlast the server's keep-alive
    # timeout, which would close the connection in between
    new, known = frames(load_run(run).recommender().item_index_.ids, repeats, "http", 1)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "ratecast.cli", "serve", str(run), "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)

    def call(method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        conn.request(method, path, None if body is None else json.dumps(body),
                     {} if body is None else {"Content-Type": "application/json"})
        r = conn.getresponse()
        return r.status, json.loads(r.read() or b"{}")

    try:
        started = time.perf_counter()
        while True:
            if server.poll() is not None:
                raise RuntimeError("the server exited")
            try:
                if call("GET", "/ready")[0] == 200 and call("GET", "/v1/map")[0] != 503:
                    break
            except (OSError, http.client.HTTPException):
                conn.close()
            time.sleep(0.5)
        ready_s = time.perf_counter() - started
        out = {"server_ready_s": round(ready_s, 1)}
        for kind, batches in (("new_user", new), ("known_user", known)):
            times = []
            for user, items, ratings in batches:
                body = {"ratings": [{"item_id": int(i), "rating": float(r)} for i, r in zip(items, ratings)]}
                start = time.perf_counter()
                status, answer = call("POST", f"/v1/users/{user}/ratings", body)
                times.append((time.perf_counter() - start) * 1e3)
                if status != 200:
                    raise RuntimeError(f"POST answered {status}: {answer}")
                status, recs = call("GET", f"/v1/users/{user}/recommendations")
                if status != 200 or recs["fallback"] is not None:
                    raise RuntimeError(f"the recommendations are not the user's own: {status} {recs}")
            out[kind] = percentiles(times[3:])
        return out
    finally:
        conn.close()
        server.terminate()
        server.wait(timeout=60)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="ml-100k,ml-25m-vocab")
    ap.add_argument("--model", default="biased_dot")
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--ratings", type=int, default=1_000_000, help="synthetic ratings of ml-25m-vocab")
    ap.add_argument("--test-size", type=float, default=0.01)
    ap.add_argument("--no-http", action="store_true")
    ap.add_argument("--time-budget", type=float, default=None,
                    help="bayesian: seconds of sampling (default: the model's, 1800); fewer chains and samples, "
                         "tables of the default fit's shape")
    ap.add_argument("--run", type=Path, default=None,
                    help="a run trained before by this script (one size) to time instead of training one")
    args = ap.parse_args()
    if args.time_budget is not None and args.model != "bayesian":
        raise SystemExit(f"--time-budget applies to --model bayesian only, got --model {args.model}")
    if args.run is not None and (args.time_budget is not None or "," in args.sizes):
        raise SystemExit("--run times one run trained before: give it one size of --sizes and no --time-budget")
    out = {"benchmark": "live", "model": args.model, "ratings_per_request": RATED, "results": {}}
    for size in filter(None, args.sizes.split(",")):
        if size not in ("ml-100k", "ml-25m-vocab"):
            raise SystemExit(f"--sizes: unknown size {size!r}; use ml-100k and/or ml-25m-vocab")
        with tempfile.TemporaryDirectory() as tmp:
            if args.run is not None:  # a copy without its ratings log: the server writes one into the run's folder
                from ratecast.live_log import LOG_NAME

                run = Path(shutil.copytree(args.run, Path(tmp) / "run", ignore=shutil.ignore_patterns(LOG_NAME)))
            else:
                run = train(size, Path(tmp), args.model, args.ratings, args.test_size, args.time_budget)
            result = {**tables(run), "library": library(run, args.repeats)}
            if size != "ml-100k" and args.run is None:
                result["synthetic_ratings"] = args.ratings
            if not args.no_http:
                result["http"] = over_http(run, args.repeats)
            out["results"][size] = result
    print(json.dumps(out))


if __name__ == "__main__":
    main()

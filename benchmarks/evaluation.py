"""Scoring speed of ``ratecast.evaluation``: every metric and its 95% bootstrap interval (1000 resamples of the
users) from arrays of lists, on synthetic lists.

* ``small``: ML-100k's shape, 943 users x 1,682 items (target: <= 2 s);
* ``large``: ML-25M's shape, 162,541 users x 59,047 items by default (target: <= 60 s on a 2-core machine);
  ``--users N`` scores N users of that catalogue instead (e.g. 20,000: the time grows linearly with the users,
  so ``seconds_per_1k_users`` extrapolates to the full size).

Lists are 100 deep (ndcg@100), distinct items per user, skewed to popular items; each user has 5 relevant test
items (some of them listed, so there are hits), 10 rating errors, 32-dimensional item vectors and 18 genre flags.
Prints one JSON line.

    python benchmarks/evaluation.py [--users 20000] [--skip-large]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from ratecast.datasets.synthetic import ML25M_ITEMS, ML25M_USERS
from ratecast.evaluation import score_lists

DEPTH = 100


def synthetic_case(n_users: int, n_items: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    popularity = np.sort(rng.zipf(1.3, n_items).clip(1, 50_000))[::-1].astype("int64")
    by_popularity = np.arange(n_items)  # positions are already in popularity order
    start = (rng.pareto(1.0, n_users) * n_items / 50).astype("int64") % n_items
    step = rng.integers(1, max(2, n_items // DEPTH), n_users)
    lists = by_popularity[(start[:, None] + np.arange(DEPTH) * step[:, None]) % n_items]
    n_rel = 5
    rel_rows = np.repeat(np.arange(n_users), n_rel)
    from_list = rng.random(len(rel_rows)) < 0.3
    rel_items = np.where(from_list, lists[rel_rows, rng.integers(0, DEPTH, len(rel_rows))],
                         rng.integers(0, n_items, len(rel_rows)))
    error_rows = np.repeat(np.arange(n_users), 10)
    return {"lists": lists, "rel_rows": rel_rows, "rel_items": rel_items, "popularity": popularity,
            "n_train_users": n_users, "item_vectors": rng.normal(size=(n_items, 32)).astype("float32"),
            "genre_vectors": (rng.random((n_items, 18)) < 0.15).astype("float32"),
            "error_rows": error_rows, "errors": rng.normal(0, 0.9, len(error_rows))}


def timed(n_users: int, n_items: int) -> dict:
    case = synthetic_case(n_users, n_items)
    start = time.perf_counter()
    ev = score_lists(**case, n_resamples=1000, random_state=0)
    seconds = time.perf_counter() - start
    return {"users": n_users, "items": n_items, "k": DEPTH, "metrics": len(ev.summary), "seconds": round(seconds, 2),
            "seconds_per_1k_users": round(1000 * seconds / n_users, 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=ML25M_USERS, help="users of the large case")
    ap.add_argument("--skip-large", action="store_true")
    args = ap.parse_args()
    out = {"benchmark": "evaluation", "small": timed(943, 1682)}
    out["seconds_943_users"] = out["small"]["seconds"]
    if not args.skip_large:
        large = timed(args.users, ML25M_ITEMS)
        large["extrapolated_seconds_162541_users"] = round(large["seconds_per_1k_users"] * ML25M_USERS / 1000, 1)
        out["large"] = large
    print(json.dumps(out))


if __name__ == "__main__":
    main()

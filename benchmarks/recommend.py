"""Recommendation latency: top-10 for one user over every ML-100k item, and for all users in one batch.

Protocol: ML-100k lab split (holdout 0.2, seed 0), each model fitted 2 epochs (latency does not depend on accuracy),
then loaded back from disk as a service would; one warm-up call; median over ``--calls`` single-user calls (users
cycled), and the time of ``recommend_all()`` for every training user (943). Baseline in the same run: the naive
pipeline that predicts every (user, item) pair with ``predict`` and ranks with numpy (``argsort`` per user, seen items
masked), warmed up the same way; ``speedup_all_users`` = naive seconds / ratecast seconds. Prints one JSON line.

    RATECAST_DATA=../shared/data python benchmarks/recommend.py [--models dot,hybrid] [--calls 500]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np

import ratecast as rc


def naive(rec, k: int) -> np.ndarray:
    """Every pair predicted, then a full numpy sort per user with seen items masked: the baseline."""
    users, items = rec.user_index.ids, rec.item_index.ids
    scores = rec.predict(np.repeat(users, len(items)), np.tile(items, len(users))).reshape(len(users), len(items))
    seen = rec.seen_mask(np.repeat(users, len(items)), np.tile(items, len(users))).reshape(scores.shape)
    scores[seen] = -np.inf
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="dot,biased_dot,deep,hybrid,classification")
    ap.add_argument("--calls", type=int, default=500)
    args = ap.parse_args()
    ds = rc.datasets.load_movielens("ml-100k", progress=False)
    train, _ = rc.split.holdout(ds, test_size=0.2, random_state=0)
    users = train.ratings["user_id"].unique()
    out = {}
    for model in args.models.split(","):
        rec = rc.Recommender(model, random_state=0, verbose=0, epochs=2, batch_size=256).fit(train)
        with tempfile.TemporaryDirectory() as tmp:
            rec.save(f"{tmp}/m")
            rec = rc.Recommender.load(f"{tmp}/m")
        rec.recommend(users[0], k=10)
        times = []
        for c in range(args.calls):
            t = time.perf_counter()
            rec.recommend(users[c % len(users)], k=10)
            times.append(time.perf_counter() - t)
        rec.recommend_all(k=10)  # warm-up (compiles the batch shapes)
        t = time.perf_counter()
        allrec = rec.recommend_all(k=10)
        all_s = time.perf_counter() - t
        naive(rec, k=10)  # warm-up
        t = time.perf_counter()
        naive(rec, k=10)
        naive_s = time.perf_counter() - t
        out[model] = {"one_user_median_ms": round(float(np.median(times)) * 1e3, 3),
                      "one_user_p95_ms": round(float(np.percentile(times, 95)) * 1e3, 3),
                      "all_users_s": round(all_s, 3), "all_users_rows": int(len(allrec)),
                      "naive_all_users_s": round(naive_s, 3), "speedup_all_users": round(naive_s / all_s, 2)}
    print(json.dumps({"benchmark": "recommend", "dataset": "ml-100k lab split", "k": 10,
                      "n_items": int(train.ratings["item_id"].nunique()), "results": out}))


if __name__ == "__main__":
    main()

"""Fold-in: quality against a full refit, and latency of folding in one user, on ML-100k.

Quality (``--presets``, default fast): ``split.held_out_users(ds, users=0.1, fold_in=0.8, random_state=0)``; the
preset is fitted on ``train`` (no rating of a held-out user), each held-out user is folded in from their 80% (one
batched ``fold_in``) and scored on their other 20%: RMSE of the predicted ratings and recall@10 over the whole
catalogue (every item the user did not rate in train or fold-in ranked; a test rating >= 4 is relevant). Beside it, a
full refit on train plus the 80% (the bound fold-in is held to: within 10%).

Latency (``--models``, one per family; default all): each model fitted briefly (latency does not depend on accuracy),
one warm-up fold-in per shape bucket, then ``--repeats`` fold-ins of one new user with 10 ratings of random items
(each from the fitted recommender, so each returns a new one); p50 and p99 in milliseconds, through the library.
Prints one JSON line.

    RATECAST_DATA=../shared/data python benchmarks/fold_in.py [--presets fast,topn,accurate] [--models dot,deep]
        [--repeats 200]

Measured on two shared, heavily loaded CPU cores (so with few repeats: 50, bayesian 30), 94 held-out users:

    preset    model       RMSE fold-in / refit   recall@10 fold-in / refit
    fast      biased_dot  0.9006 / 0.8898        0.0876 / 0.0944
    topn      implicit    0.9057 / 0.9872        0.4266 / 0.4309
    accurate  bayesian    0.8427 / 0.8422        0.1375 / 0.1327

    fold-in latency, one user of 10 ratings, p50 / p99 ms: dot 1.2 / 9.6, biased_dot 3.1 / 8.9, baseline 1.1 / 9.2,
    deep 1.5 / 6.5, hybrid 1.7 / 1.9, classification 1.4 / 7.3, implicit 6.9 / 14.5, bayesian (defaults) 4.9 / 11.0
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd

import ratecast as rc
from ratecast import metrics as M

FAMILIES = "dot,biased_dot,baseline,deep,hybrid,classification,implicit,bayesian"
# brief fits (latency does not depend on accuracy); bayesian at its defaults, the width of its tables
# (samples x chains x rank) being what its fold-in costs
BRIEF = {"implicit": {"epochs": 2, "set_model_epochs": 5}, "bayesian": {}}


def quality(rec: rc.Recommender, test: rc.Dataset) -> dict[str, float]:
    r = test.ratings
    pred = rec.predict(r["user_id"].to_numpy(), r["item_id"].to_numpy())
    lists = rec.top_n_metrics(test, ks=[10], threshold=4.0)
    return {"rmse": round(M.rmse(r["rating"].to_numpy(dtype="float64"), pred), 4),
            "recall@10": round(float(lists["recall@10"]), 4)}


def compare(preset: str, ds: rc.Dataset) -> dict:
    split = rc.split.held_out_users(ds, users=0.1, fold_in=0.8, random_state=0)
    start = time.perf_counter()
    rec = rc.Recommender.from_preset(preset, random_state=0, verbose=0).fit(split.train)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    folded = rec.fold_in(split.fold_in.ratings[["user_id", "item_id", "rating"]])
    fold_s = time.perf_counter() - start
    both = split.train.with_ratings(pd.concat([split.train.ratings, split.fold_in.ratings]), "train+fold_in")
    refit = rc.Recommender.from_preset(preset, random_state=0, verbose=0).fit(both)
    fq, rq = quality(folded, split.test), quality(refit, split.test)
    return {"model": rec.model, "held_out_users": int(len(split.held_out_users)), "fold_in": fq, "refit": rq,
            "rmse_ratio": round(fq["rmse"] / rq["rmse"], 4),
            "recall_ratio": round(fq["recall@10"] / rq["recall@10"], 4) if rq["recall@10"] else None,
            "fit_s": round(fit_s, 1), "fold_in_all_users_s": round(fold_s, 3)}


def latency(model: str, ds: rc.Dataset, repeats: int) -> dict:
    rec = rc.Recommender(model, random_state=0, verbose=0, **BRIEF.get(model, {"epochs": 2})).fit(ds)
    items = rec.item_index_.ids
    rng = np.random.default_rng(0)

    def one(k: int) -> float:
        frame = pd.DataFrame({"user_id": [f"new{k}"] * 10, "item_id": rng.choice(items, 10, replace=False),
                              "rating": rng.integers(1, 6, 10).astype(float)})
        start = time.perf_counter()
        rec.fold_in(frame)
        return time.perf_counter() - start

    for k in range(3):  # warm-up: grows the user tables once, compiles the bucket
        one(-k - 1)
    times = np.array([one(k) for k in range(repeats)]) * 1e3
    return {"p50_ms": round(float(np.percentile(times, 50)), 2), "p99_ms": round(float(np.percentile(times, 99)), 2),
            "repeats": repeats}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="fast", help="presets whose fold-in is compared with a refit ('' for none)")
    ap.add_argument("--models", default=FAMILIES, help="models whose fold-in latency is measured ('' for none)")
    ap.add_argument("--repeats", type=int, default=200)
    args = ap.parse_args()
    ds = rc.datasets.load_movielens("ml-100k", progress=False)
    out = {"benchmark": "fold_in", "dataset": "ml-100k", "quality": {}, "latency_ms": {}}
    for preset in filter(None, args.presets.split(",")):
        out["quality"][preset] = compare(preset, ds)
    for model in filter(None, args.models.split(",")):
        out["latency_ms"][model] = latency(model, ds, args.repeats)
    print(json.dumps(out))


if __name__ == "__main__":
    main()

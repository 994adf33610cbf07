"""Tuning benchmark: each model at its defaults against the options ``rc.tune`` finds in N trials, same run, same
protocol.

Protocol: ML-100k, the lab split (holdout 0.2, seed 0). The search sees the lab training set only: each trial fits
on it less a 10% validation split (seed 0) and is scored by RMSE on that validation split; seeded TPE sampler,
median pruning from per-epoch validation RMSE, the first trial at the model's defaults. ``defaults`` is
``Recommender(model)`` fitted the same way (same fitting part, same validation part), so both validation RMSEs are
comparable. Then the defaults and the best options are each fitted on the whole training set (early stopping on
its own 10% split, as every fit) and scored once on the test set. Prints one JSON line: per model, validation and
test RMSE / MAE of defaults and tuned, the search's wall seconds, and the trials complete / pruned / failed;
``test_rmse_ratio`` = tuned / defaults.

    RATECAST_DATA=../shared/data python benchmarks/tune.py [--models biased_dot,deep,hybrid] [--trials 30]
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import ratecast as rc
from ratecast.tuning.search import _folds, validation_scores, Metric


def scores(rec, data) -> dict:
    r = data.ratings
    pred = rec.predict(r["user_id"], r["item_id"])
    return {"rmse": round(rc.metrics.rmse(r["rating"], pred), 4), "mae": round(rc.metrics.mae(r["rating"], pred), 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="biased_dot,deep,hybrid")
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    ds = rc.datasets.load_movielens("ml-100k")
    split = rc.split.holdout(ds, 0.2, random_state=args.seed)
    (fit, validation), = _folds(split.train, None, 0.1, args.seed)
    out = {}
    for model in args.models.split(","):
        row: dict = {}
        default = rc.Recommender(model, random_state=args.seed, verbose=0).fit(fit, validation=validation)
        row["defaults_validation"] = {k: round(v, 4) for k, v in
                                      validation_scores(default, validation, Metric.parse("rmse"), 4.0).items()}
        start = time.perf_counter()
        result = rc.tune(split.train, model=model, n_trials=args.trials, metric="rmse", random_state=args.seed)
        row["search_seconds"] = round(time.perf_counter() - start, 1)
        row["trials"] = result.counts()
        row["tuned_validation"] = {k: round(v, 4) for k, v in result.best_validation.items()}
        row["best_params"] = result.best_params
        start = time.perf_counter()
        row["defaults_test"] = scores(rc.Recommender(model, random_state=args.seed, verbose=0).fit(split.train),
                                      split.test)
        row["defaults_fit_seconds"] = round(time.perf_counter() - start, 1)
        start = time.perf_counter()
        row["tuned_test"] = scores(result.best_recommender(), split.test)
        row["tuned_fit_seconds"] = round(time.perf_counter() - start, 1)
        row["test_rmse_ratio"] = round(row["tuned_test"]["rmse"] / row["defaults_test"]["rmse"], 4)
        out[model] = row
    print(json.dumps({"benchmark": "tune", "protocol": "ML-100k lab split (holdout 0.2, seed 0); search on train "
                      "only: 10% validation split, RMSE, seeded TPE, median pruning; test scored once per config",
                      "trials": args.trials, "machine": platform.machine(), "models": out}))


if __name__ == "__main__":
    main()

"""Accuracy benchmark: each model on the lab's split and on the canonical u1 fold, with the lab's settings and with
ratecast's defaults, side by side in one run.

Protocol: ML-100k; split = holdout(test_size=0.2, random_state=0) (the lab's) and movielens_fold("u1"); seed 0.
``halfstar``: a half-star stand-in (each ML-100k rating moved down half a star with probability 1/2, so ratings run
0.5..5 in half steps; fixed seed), lab holdout: a check that settings carry over to half-star data unchanged.
``lab``: the ``lab`` preset (Keras fit, Adam 0.001, embedding 64, batch 64, 10 epochs; classification: embedding 16,
15 epochs). ``defaults``: ``Recommender(model)`` with nothing set (each model's training defaults, compiled
engine). Early stopping and every default were chosen on a 10% validation split of the training set only; the
test set is used once, for the numbers. Peers (``benchmarks/peers.py``: Surprise SVD and SVD++, myFM Bayesian MF
and timeSVD++ flipped) are fitted on the same training sets in the same run when the ``peers`` extra is installed,
and listed as skipped otherwise. Prints one JSON line: per split, settings and model, test RMSE and MAE with 95%
bootstrap intervals, recall@10 and NDCG@10 over the whole catalogue (ratecast models), fit seconds.

    RATECAST_DATA=../shared/data python benchmarks/accuracy.py [--models dot,deep,preset:accurate]
        [--splits holdout,u1,halfstar] [--settings lab,defaults] [--seeds 0,1,2] [--peers surprise_svd,myfm_flipped | none]
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np

import ratecast as rc
from peers import PEERS, available

LAB = {
    "dot": dict(embedding_dim=64),
    "biased_dot": dict(embedding_dim=64),
    "deep": dict(embedding_dim=64),
    "hybrid": dict(embedding_dim=64),
    "classification": dict(embedding_dim=16, epochs=15),
}


def make(settings: str, model: str, seed: int) -> "rc.Recommender":
    """``model`` is a model name, or ``preset:NAME`` for a preset (with settings ``defaults``)."""
    if model.startswith("preset:"):
        return rc.Recommender.from_preset(model.split(":", 1)[1], random_state=seed, verbose=0)
    if settings == "lab":
        return rc.Recommender.from_preset("lab", model=model, random_state=seed, verbose=0, **LAB[model])
    return rc.Recommender(model, random_state=seed, verbose=0)


def runs_with(settings: str, model: str) -> bool:
    """Lab settings exist for the lab's models; presets and the other models run at their defaults."""
    return settings == "defaults" or (model in LAB and not model.startswith("preset:"))


def spread(rows: list[dict]) -> dict:
    """Mean and standard deviation over seeds of each rating figure."""
    out = {}
    for key in ("rmse", "mae", "fit_seconds"):
        values = np.array([r[key] for r in rows], dtype="float64")
        out[f"{key}_mean"] = round(float(values.mean()), 4)
        out[f"{key}_std"] = round(float(values.std(ddof=1)), 4) if len(values) > 1 else 0.0
    return out
LAB_PUBLISHED_MAE = {"dot": 0.733, "deep": 0.734, "hybrid": 0.718, "classification": 0.717}


def peer_row(name: str, train, test, seed: int, skipped: str | None) -> dict:
    """A peer's test RMSE and MAE (95% bootstrap intervals, as for ratecast's models) and fit seconds."""
    if skipped:
        return {"skipped": skipped}
    y = test.ratings["rating"].to_numpy(float)
    start = time.perf_counter()
    pred = PEERS[name](train, test, seed)
    seconds = time.perf_counter() - start
    ci = rc.metrics.bootstrap_cis(y, pred, ("rmse", "mae"), random_state=seed)
    return {"rmse": round(rc.metrics.rmse(y, pred), 4), "rmse_ci95": [round(v, 4) for v in ci["rmse"]],
            "mae": round(rc.metrics.mae(y, pred), 4), "mae_ci95": [round(v, 4) for v in ci["mae"]],
            "fit_and_predict_seconds": round(seconds, 2)}


def fit_and_score(rec: "rc.Recommender", train, test) -> dict:
    """Fit on ``train`` (gradient models stop early on a 10% validation share of it), then score ``test`` once."""
    t = time.perf_counter()
    rec.fit(train, validation_split=0.1)
    fit_s = time.perf_counter() - t
    ev = rec.evaluate(test)
    return {"rmse": round(ev["rmse"], 4), "rmse_ci95": [round(v, 4) for v in ev["rmse_ci95"]],
            "mae": round(ev["mae"], 4), "mae_ci95": [round(v, 4) for v in ev["mae_ci95"]],
            "recall@10": round(ev["recall@10"], 4), "ndcg@10": round(ev["ndcg@10"], 4),
            "fit_seconds": round(fit_s, 2), "epochs_run": len(rec.history_["loss"])}


def half_star(ds: rc.Dataset, seed: int = 0) -> rc.Dataset:
    """ML-100k on a half-star scale: each rating moves down half a star with probability 1/2 (1 may become 0.5)."""
    r = ds.ratings.copy()
    r["rating"] = r["rating"].astype("float64") - 0.5 * (np.random.default_rng(seed).random(len(r)) < 0.5)
    return rc.Dataset(r, items=ds.items, users=ds.users, name=f"{ds.name}-halfstar")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join([*LAB, "bayesian", "preset:accurate"]))
    ap.add_argument("--splits", default="holdout,u1")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seeds", default=None, help="comma-separated seeds: the first one's figures, plus the mean and "
                    "standard deviation over all of them (default: --seed alone)")
    ap.add_argument("--settings", default="lab,defaults")
    ap.add_argument("--peers", default=",".join(PEERS))
    args = ap.parse_args()
    peers = [] if args.peers == "none" else args.peers.split(",")
    unknown = sorted(set(peers) - set(PEERS))
    if unknown:
        raise SystemExit(f"--peers must name peers from {list(PEERS)} or 'none', got {unknown}")
    why = available()
    ds = rc.datasets.load_movielens("ml-100k", progress=False)
    splits = {
        "holdout": lambda: rc.split.holdout(ds, test_size=0.2, random_state=0),
        "u1": lambda: rc.split.movielens_fold(ds, "u1"),
        "halfstar": lambda: rc.split.holdout(half_star(ds), test_size=0.2, random_state=0),
    }
    seeds = [args.seed] if args.seeds is None else [int(v) for v in args.seeds.split(",")]
    results: dict = {}
    for split_name in args.splits.split(","):
        train, test = splits[split_name]()
        for settings, model in ((s, m) for s in args.settings.split(",") for m in args.models.split(",")):
            if not runs_with(settings, model):
                continue
            rows = [fit_and_score(make(settings, model, seed), train, test) for seed in seeds]
            row = {**rows[0], **(spread(rows) if len(rows) > 1 else {})}
            if split_name == "holdout" and model in LAB_PUBLISHED_MAE:
                row["lab_mae"] = LAB_PUBLISHED_MAE[model]
                row["meets_lab"] = row["mae"] <= LAB_PUBLISHED_MAE[model]
            results.setdefault(split_name, {}).setdefault(settings, {})[model] = row
        for name in peers:
            rows = [peer_row(name, train, test, seed, why[name]) for seed in seeds]
            row = rows[0] if why[name] or len(rows) == 1 else {
                **rows[0], **spread([{**r, "fit_seconds": r["fit_and_predict_seconds"]} for r in rows])}
            results.setdefault(split_name, {}).setdefault("peers", {})[name] = row
    print(json.dumps({
        "benchmark": "accuracy", "dataset": "ml-100k", "seeds": seeds,
        "protocol": "lab preset and defaults; gradient models stop early on a 10% validation split of train (bayesian "
                    "samples on all of it); test used once; "
                    "peers fitted on the same training sets",
        "machine": f"{platform.machine()} {platform.system()}", "results": results,
    }))


if __name__ == "__main__":
    main()

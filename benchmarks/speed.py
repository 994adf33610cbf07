"""Training speed: ratecast's fit against Surprise's SVD and against a plain ``keras.Model.fit`` of the same network.

Part 1 (``peers``): on the ML-100k lab split, the ``fast`` preset (biased_dot at its defaults: compiled engine,
early stopping on a validation split carved from train) against Surprise's SVD at its defaults, both fitted in this
command after one warm-up fit each; fit seconds (medians of ``--repeats``) and test RMSE side by side. Skipped with
a message when Surprise (the ``peers`` extra) is not installed.

Part 2 (``plain``), the lab's Keras engine: ML-100k lab split train set (80,000 ratings), ``--epochs`` epochs, no validation, no early stopping,
batch 64 (the lab's). Both timings cover a fresh model from compile to the end of fit (ratecast's also covers its
id indexing and baseline); one throwaway fit first warms the process. The plain run uses numpy arrays with Keras'
own shuffling. Each pair is timed ``--repeats`` times, interleaved; medians are reported. Prints one JSON line:
ratings/s for both and the ratio ratecast_seconds / plain_seconds (<= 1 means ratecast adds no overhead).

    RATECAST_DATA=../shared/data python benchmarks/speed.py [--models dot,deep] [--epochs 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

import ratecast as rc


def time_plain(rec, train, epochs: int, batch_size: int) -> float:
    """Same architecture, fresh weights, compiled the same way, trained with plain keras fit on arrays."""
    m = rec.model_
    plain = type(m).from_config(m.get_config())
    plain.build_now()
    plain.set_weights(m.get_weights())  # feature tables included
    r = train.ratings
    x = {"user": rec.user_index_.index(r["user_id"]), "item": rec.item_index_.index(r["item_id"])}
    y = plain.output_rule.targets(r["rating"].to_numpy())
    t = time.perf_counter()
    plain.compile(optimizer="adam", loss=plain.output_rule.training_loss(), metrics=plain.output_rule.metric_names())
    plain.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0)
    return time.perf_counter() - t


def against_surprise(train, test, repeats: int) -> dict:
    try:
        import surprise
    except ImportError:
        return {"skipped": "Surprise is not installed: pip install -e '.[peers]'"}
    tr, te = train.ratings, test.ratings
    reader = surprise.Reader(rating_scale=(1, 5))
    data = surprise.Dataset.load_from_df(tr[["user_id", "item_id", "rating"]], reader).build_full_trainset()

    def fit_surprise():
        algo = surprise.SVD(random_state=0)
        t = time.perf_counter()
        algo.fit(data)
        return time.perf_counter() - t, algo

    def fit_ours():
        t = time.perf_counter()
        rec = rc.Recommender.from_preset("fast", random_state=0, verbose=0).fit(train)
        return time.perf_counter() - t, rec

    fit_surprise(), fit_ours()  # warm both
    s_runs, o_runs = [], []
    for _ in range(repeats):
        s_runs.append(fit_surprise())
        o_runs.append(fit_ours())
    algo, rec = s_runs[-1][1], o_runs[-1][1]
    y = te["rating"].to_numpy()
    s_pred = np.array([algo.predict(u, i).est for u, i in zip(te["user_id"], te["item_id"])])
    o_pred = rec.predict(te["user_id"], te["item_id"])
    s_fit = float(np.median([t for t, _ in s_runs]))
    o_fit = float(np.median([t for t, _ in o_runs]))
    return {"surprise_svd": {"fit_s": round(s_fit, 3), "test_rmse": round(float(np.sqrt(np.mean((s_pred - y) ** 2))), 4)},
            "ratecast_fast": {"fit_s": round(o_fit, 3), "test_rmse": round(float(np.sqrt(np.mean((o_pred - y) ** 2))), 4),
                              "epochs": len(rec.history_["loss"])},
            "ratio_ratecast_over_surprise_fit_s": round(o_fit / s_fit, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="dot,deep,hybrid,classification")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--parts", default="peers,plain")
    args = ap.parse_args()
    ds = rc.datasets.load_movielens("ml-100k", progress=False)
    train, test = rc.split.holdout(ds, test_size=0.2, random_state=0)
    peers = against_surprise(train, test, args.repeats) if "peers" in args.parts else None
    n = len(train.ratings)
    out = {}
    for model in (args.models.split(",") if "plain" in args.parts else []):
        common = dict(engine="keras", random_state=0, verbose=0, batch_size=args.batch_size, early_stopping=None, validation_split=0.0)
        dim = 16 if model == "classification" else 64
        rc.Recommender(model, epochs=1, embedding_dim=dim, **common).fit(train)  # warm the process
        ours_runs, plain_runs = [], []
        for _ in range(args.repeats):  # interleaved, so that machine noise hits both alike
            t = time.perf_counter()
            rec = rc.Recommender(model, epochs=args.epochs, embedding_dim=dim, **common).fit(train)
            ours_runs.append(time.perf_counter() - t)
            plain_runs.append(time_plain(rec, train, args.epochs, args.batch_size))
        ours, plain = float(np.median(ours_runs)), float(np.median(plain_runs))
        out[model] = {
            "ratecast_ratings_per_s": round(n * args.epochs / ours),
            "plain_keras_ratings_per_s": round(n * args.epochs / plain),
            "ratio_ratecast_over_plain_seconds": round(ours / plain, 3),
        }
    print(json.dumps({"benchmark": "speed", "dataset": "ml-100k lab split", "peers": peers,
                      "plain": {"engine": "keras (the lab's)", "epochs": args.epochs, "batch_size": args.batch_size,
                                "results": out}}))


if __name__ == "__main__":
    main()

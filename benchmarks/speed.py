"""Training speed: ratecast's fit against a plain ``keras.Model.fit`` of the very same network, same run.

Protocol: ML-100k lab split train set (80,000 ratings), ``--epochs`` epochs, no validation, no early stopping,
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
    y = plain.targets(r["rating"].to_numpy())
    t = time.perf_counter()
    plain.compile(optimizer="adam", loss=plain.training_loss(), metrics=plain.metric_names())
    plain.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="dot,deep,hybrid,classification")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    ds = rc.datasets.load_movielens("ml-100k", progress=False)
    train, _ = rc.split.holdout(ds, test_size=0.2, random_state=0)
    n = len(train.ratings)
    out = {}
    for model in args.models.split(","):
        common = dict(random_state=0, verbose=0, batch_size=args.batch_size, early_stopping=None, validation_split=0.0)
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
    print(json.dumps({"benchmark": "speed", "dataset": "ml-100k lab split train", "epochs": args.epochs,
                      "batch_size": args.batch_size, "results": out}))


if __name__ == "__main__":
    main()

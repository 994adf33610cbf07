"""Choose how many passes ``topn``'s large-catalogue trainers make, on validation data at the size they run at.

``sampled_epochs`` only matters where a pass is longer than ``sampled.MIN_STEPS`` steps (about 6 M ratings and
more, with more than 12,000 items); ML-100k cannot choose it. Protocol: the synthetic file of ``--ratings`` ratings
over ML-25M's vocabulary (as ``scale_e2e.py`` makes it), the lab split (holdout 0.2, seed 0), then its training set
less a 0.2 validation holdout (seed 0): the preset is fitted on the rest for each value of ``--epochs`` and scored on
``--users`` sampled validation users (whole-catalogue lists, relevant = rating >= 4). The test set is never read.
Prints one JSON line.

    python benchmarks/topn_passes.py [--ratings 25e6] [--epochs 2,4] [--work /tmp/ratecast-scale]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ratings", type=float, default=25e6)
    ap.add_argument("--epochs", default="2,4")
    ap.add_argument("--users", type=int, default=10000)
    ap.add_argument("--work", default="/tmp/ratecast-scale")
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    import ratecast as rc
    from ratecast.datasets.scale import RatingScale
    from scale_e2e import ratings_file

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    raw = pd.read_csv(ratings_file(work, int(args.ratings)), usecols=[0, 1, 2])
    ds = rc.Dataset(ratings=pd.DataFrame({"user_id": raw.iloc[:, 0], "item_id": raw.iloc[:, 1],
                                          "rating": raw.iloc[:, 2].astype("float64")}),
                    rating_scale=RatingScale(0.5, 5.0, 0.5))
    del raw
    train, _ = rc.split.holdout(ds, test_size=0.2, random_state=0)
    fit_part, validation = rc.split.holdout(train, test_size=0.2, random_state=0)
    del ds, train
    v = validation.ratings
    users = v["user_id"].unique()
    chosen = np.random.default_rng(0).choice(users, min(args.users, len(users)), replace=False)
    val = rc.Dataset(ratings=v[v["user_id"].isin(chosen)].reset_index(drop=True),
                     rating_scale=validation.rating_scale)
    rows = []
    for epochs in (int(e) for e in args.epochs.split(",")):
        start = time.perf_counter()
        rec = rc.Recommender.from_preset("topn", random_state=0, verbose=0, sampled_epochs=epochs).fit(fit_part)
        fit_s = time.perf_counter() - start
        m = rec.top_n_metrics(val, ks=(10,))
        rows.append({"sampled_epochs": epochs, "val_recall@10": round(m["recall@10"], 4),
                     "val_ndcg@10": round(m["ndcg@10"], 4), "fit_s": round(fit_s, 1)})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        del rec
    print(json.dumps({"benchmark": "topn_passes", "ratings": int(args.ratings), "val_users": len(chosen),
                      "selection": "lab train less a 0.2 validation holdout (seed 0); the test set is not read",
                      "candidates": rows}))


if __name__ == "__main__":
    main()

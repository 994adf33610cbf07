"""Data loading time: ML-100k from the local copy (parse + validate everything), median of ``--repeats`` loads.

    RATECAST_DATA=../shared/data python benchmarks/load.py
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

import ratecast as rc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", default="ml-100k")
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        ds = rc.datasets.load_movielens(args.name, download=False)
        times.append(time.perf_counter() - t)
    print(json.dumps({"benchmark": "load", "dataset": args.name, "n_ratings": ds.n_ratings,
                      "median_s": round(float(np.median(times)), 4), "max_s": round(max(times), 4)}))


if __name__ == "__main__":
    main()

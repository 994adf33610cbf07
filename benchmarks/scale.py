"""Training throughput at ML-25M size: ratecast's engine against a plain ``keras.Model.fit``, same data, same run.

Protocol: synthetic ratings with ML-25M's vocabulary (162,541 users x 59,047 items, power-law popularity, seed 0;
``ratecast.datasets.synthetic.movielens_like``), ``--ratings`` of them (default 25 M). For each model, one process
builds the model at embedding size 64 and trains ``--epochs`` epochs with ratecast's default engine and the model's
default training options; another trains the same model with plain ``keras.Model.fit`` (dense Adam, batch 8192) on
``--plain-ratings`` of the same ratings (default: all of them), timed per rating. Seconds per epoch are the steady
epochs (the first, which compiles, is reported apart) and are extrapolated per rating to 25 M. Peak RSS is the
process's. Prints one JSON line.

    python benchmarks/scale.py [--models biased_dot,deep,hybrid] [--ratings 25e6] [--plain-ratings 2e6]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

FULL = 25_000_000


def worker(model: str, n: int, engine: str, epochs: int) -> dict:
    import numpy as np

    from ratecast.datasets.synthetic import ML25M_ITEMS, ML25M_USERS, movielens_like
    from ratecast.engine.compiled import CompiledTrainer, learning_rate
    from ratecast.engine.progress import EpochProgress
    from ratecast.models import MODELS, split_params

    r = movielens_like(n, seed=0)
    u, i = r["userId"].to_numpy("int32"), r["movieId"].to_numpy("int32")
    y = r["rating"].to_numpy("float32")
    del r
    options = {"embedding_dim": 16 if model == "classification" else 64}
    if model == "hybrid":  # metadata tables of ML-25M's width: 20 genres + year + popularity; no user metadata
        options.update(user_features=[])
    mcfg, tcfg = split_params(model, options)
    scale = {"minimum": 0.5, "maximum": 5.0, "step": 0.5}
    m = MODELS[model](mcfg, ML25M_USERS + 1, ML25M_ITEMS + 1, rating_scale=scale, global_mean=float(y.mean()),
                      item_feature_dim=22 if model == "hybrid" else 0, seed=0)
    m.build_now()
    if model == "hybrid":
        m.set_feature_tables(np.random.default_rng(0).random((ML25M_ITEMS + 1, 22), dtype="float32"),
                             np.zeros((ML25M_USERS + 1, 0), "float32"))
    targets = m.output_rule.targets(y)
    times = []
    if engine == "ratecast":
        trainer = CompiledTrainer(m, tcfg, n)
        state = trainer.initial_state()
        data = trainer.device_data({"user": u, "item": i}, targets)
        bar = EpochProgress(epochs, enabled=False)
        for epoch in range(epochs):
            t = time.perf_counter()
            state, logs = trainer.run_epoch(state, data, 0, epoch, learning_rate(tcfg, epoch), bar)
            times.append(time.perf_counter() - t)
        batch, optimizer = trainer.batch, tcfg.optimizer
        if tcfg.table_optimizer not in ("same", tcfg.optimizer):
            optimizer = f"{tcfg.optimizer} (tables: {tcfg.table_optimizer})"
    else:
        m.compile(optimizer="adam", loss=m.output_rule.training_loss())
        for epoch in range(epochs):
            t = time.perf_counter()
            m.fit({"user": u, "item": i}, targets, batch_size=8192, epochs=1, verbose=0, shuffle=True)
            times.append(time.perf_counter() - t)
        batch, optimizer = 8192, "adam (dense)"
    steady = float(np.median(times[1:])) if len(times) > 1 else times[0]
    return {"ratings": n, "batch_size": batch, "optimizer": optimizer, "first_epoch_s": round(times[0], 2),
            "seconds_per_epoch_25m": round(steady * FULL / n, 2), "ratings_per_s": round(n / steady),
            "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2)}


def run(model: str, n: int, engine: str, epochs: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", model, str(n), engine, str(epochs)],
                         capture_output=True, text=True, env={**os.environ, "KERAS_BACKEND": "jax"})
    if out.returncode:
        raise SystemExit(f"{model} ({engine}) failed: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        model, n, engine, epochs = sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
        print(json.dumps(worker(model, n, engine, epochs)))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="biased_dot,deep,hybrid")
    ap.add_argument("--ratings", type=float, default=FULL)
    ap.add_argument("--plain-ratings", type=float, default=None)
    ap.add_argument("--epochs", type=int, default=3)
    args = ap.parse_args()
    n = int(args.ratings)
    plain_n = int(args.plain_ratings or n)
    import jax

    results = {}
    for model in args.models.split(","):
        ours = run(model, n, "ratecast", args.epochs)
        plain = run(model, plain_n, "plain", 2)
        results[model] = {"ratecast": ours, "plain_keras_fit": plain,
                          "speedup": round(plain["seconds_per_epoch_25m"] / ours["seconds_per_epoch_25m"], 1)}
    print(json.dumps({"benchmark": "scale", "data": "synthetic ML-25M vocabulary, power-law popularity, seed 0",
                      "device": str(jax.devices()[0].device_kind), "cpu_count": os.cpu_count(),
                      "extrapolated_to": FULL, "results": results}))


if __name__ == "__main__":
    main()

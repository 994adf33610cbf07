"""Loading ML-25M-size files: ratecast's pyarrow readers against the pandas reading they replace, each in its own
process.

Protocol: writes an ML-25M-format folder ``ml-25m`` in a temporary folder (or under ``--data-home``, kept and reused
when it is complete): ``ratings.csv`` with ``--ratings`` distinct (user, item) pairs (default 25 M) drawn by
``ratecast.datasets.synthetic.movielens_like`` (ML-25M's vocabulary, power-law popularity; draws of a pair already
drawn are dropped, and further seeds drawn until there are enough), sorted by userId then movieId and written the way
GroupLens writes it (``userId,movieId,rating,timestamp``, ratings like ``3.5`` and ``4.0``); ``movies.csv`` with
59,047 movies (``movieId,title,genres``: titles with a year, some quoted because they hold a comma, ``|``-separated
genres); and the same ratings as ``ratings.parquet``. Then, each in a fresh process:

- ``csv``: ``load_movielens("ml-25m", data_home=...)`` (ratings, movies, validation, Dataset);
- ``parquet``: ``load_ratings("ratings.parquet", ..., items="movies.csv")`` (the same, from Parquet);
- ``pandas``: the reading they replace, ``pandas.read_csv`` of the same files with the same options and dtypes,
  then the same validation and Dataset (``pandas_read_s`` is the ``read_csv`` of ratings.csv alone).

Each reports seconds (wall clock, after imports) and peak RSS (``ru_maxrss``, imports included; ``import_rss_gb``
is the RSS after imports); with ``--repeats``, the median run's seconds (``s_each``: every run's) and the largest
peak. ``--before SRC`` also times ``load_movielens`` as the ratecast in ``SRC`` has it (e.g. ``src/`` of a checkout
of the commit before pyarrow, whose validation was slower too). Prints one JSON line; ``speedup`` and ``rss_ratio``
are pandas (``_before``: that checkout) over csv; ``same_dataset`` says every run gave the same ratings.

    python benchmarks/load_big.py [--ratings 25e6] [--data-home DIR] [--only csv,parquet,pandas] [--repeats 3]
                                  [--before SRC]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FULL = 25_000_000
GENRES = ["Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
          "Film-Noir", "Horror", "IMAX", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western"]
HALF_STARS = [f"{k / 2:.1f}" for k in range(11)]  # "0.0" .. "5.0", as GroupLens writes ratings


def unique_ratings(n: int, seed: int = 0):
    """``n`` ratings with distinct (userId, movieId) pairs, sorted by userId then movieId (ML-25M's order)."""
    import numpy as np
    import pandas as pd

    from ratecast.datasets.synthetic import ML25M_ITEMS, movielens_like

    parts, have, k = [], 0, 0
    while True:
        parts.append(movielens_like(max(int((n - have) * 1.5), 1000), seed=seed + k))
        k += 1
        r = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
        # pair keys < 2**34 and row numbers < 2**29 packed in one int64: one sort finds each pair's first draw
        pair = r["userId"].to_numpy("int64") * (ML25M_ITEMS + 1) + r["movieId"].to_numpy("int64")
        packed = np.sort((pair << 29) | np.arange(len(r), dtype="int64"))
        first = np.ones(len(packed), dtype=bool)
        first[1:] = (packed[1:] >> 29) != (packed[:-1] >> 29)
        rows = packed[first] & ((1 << 29) - 1)  # in (userId, movieId) order
        have = len(rows)
        if have >= n:
            break
    keep = np.sort(np.random.default_rng(seed).choice(have, n, replace=False))
    return r.iloc[rows[keep]].reset_index(drop=True)


def write_movielens_folder(folder: Path, n: int, seed: int = 0, *, parquet: bool = True) -> Path:
    """An ML-25M-format folder (ratings.csv, movies.csv, and ratings.parquet unless ``parquet`` is false)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from ratecast.datasets.synthetic import ML25M_ITEMS

    folder.mkdir(parents=True, exist_ok=True)
    r = unique_ratings(n, seed)
    stars = pa.array(HALF_STARS).take(pa.array(np.rint(r["rating"].to_numpy() * 2).astype("int32")))
    table = pa.table({"userId": r["userId"].to_numpy("int64"), "movieId": r["movieId"].to_numpy("int64"),
                      "rating": stars, "timestamp": r["timestamp"].to_numpy("int64")})
    with open(folder / "ratings.csv", "wb") as fh:
        fh.write(b"userId,movieId,rating,timestamp\n")
        pacsv.write_csv(table, fh, pacsv.WriteOptions(include_header=False, quoting_style="none"))
    if parquet:
        pq.write_table(table.set_column(2, "rating", pa.array(r["rating"].to_numpy("float32"))),
                       folder / "ratings.parquet")
    del table, r
    rng = np.random.default_rng(seed)
    with open(folder / "movies.csv", "w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh, lineterminator="\n")
        out.writerow(["movieId", "title", "genres"])
        for movie in range(1, ML25M_ITEMS + 1):
            title = f"Movie {movie}" + (", The" if movie % 7 == 0 else "") + f" ({rng.integers(1900, 2020)})"
            picked = rng.choice(len(GENRES), rng.integers(0, 4), replace=False)
            out.writerow([movie, title, "|".join(sorted(GENRES[g] for g in picked)) or "(no genres listed)"])
    return folder


def _complete(folder: Path, n: int) -> bool:
    if not all((folder / f).exists() for f in ("ratings.csv", "movies.csv", "ratings.parquet")):
        return False
    import pyarrow.parquet as pq

    return pq.read_metadata(folder / "ratings.parquet").num_rows == n


def worker(kind: str, home: Path) -> dict:
    import ratecast as rc

    rss_import = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    folder = home / "ml-25m"
    out: dict = {}
    t = time.perf_counter()
    if kind == "csv":
        getattr(rc.datasets.movielens, "KNOWN_COUNTS", {}).pop("ml-25m", None)  # synthetic: not GroupLens's count
        ds = rc.datasets.load_movielens("ml-25m", data_home=home, download=False)
    elif kind == "parquet":
        ds = rc.datasets.load_ratings(folder / "ratings.parquet", user_col="userId", item_col="movieId",
                                      timestamp_col="timestamp", rating_scale=(0.5, 5, 0.5),
                                      items=folder / "movies.csv", item_key="movieId", name="ml-25m")
    else:
        ds, out["pandas_read_s"] = pandas_path(folder)
    seconds = time.perf_counter() - t
    r = ds.ratings
    return {"s": round(seconds, 2), "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2),
            "import_rss_gb": round(rss_import, 2), **out, "n_ratings": len(r), "n_items": len(ds.items),
            "dtypes": {c: str(r[c].dtype) for c in r.columns},
            "check": [int(r["user_id"].sum()), int(r["item_id"].sum()), float(r["rating"].to_numpy("float64").sum()),
                      int(r["timestamp"].sum())]}


def pandas_path(folder: Path):
    """The reading ratecast did before pyarrow: ``pandas.read_csv`` with the options of its ``read_delimited``
    (every column typed by pandas, as ``load_movielens`` asked), then the same validation and Dataset."""
    import pandas as pd

    from ratecast.datasets import Dataset, RatingScale
    from ratecast.datasets.readers import normalise_items
    from ratecast.datasets.validate import check_table, validate_ratings

    options = {"sep": ",", "header": 0, "index_col": False, "skip_blank_lines": False, "quoting": csv.QUOTE_MINIMAL,
               "encoding": "utf-8"}
    t = time.perf_counter()
    raw = pd.read_csv(folder / "ratings.csv", **options)
    read_s = time.perf_counter() - t
    raw.columns = ["user_id", "item_id", "rating", "timestamp"]
    scale = RatingScale(0.5, 5, 0.5)
    ratings, _ = validate_ratings(raw, path=str(folder / "ratings.csv"), rating_scale=scale, first_line=2,
                                  require_timestamp=True)
    movies = pd.read_csv(folder / "movies.csv", **options).rename(columns={"movieId": "item_id"})
    check_table(movies, path=str(folder / "movies.csv"), key="item_id", first_line=2)
    items, genres = normalise_items(movies.set_index("item_id"))
    return Dataset(ratings, items, None, name="ml-25m", rating_scale=scale, genres=genres), round(read_s, 2)


def run(kind: str, home: Path, src: Path | None = None) -> dict:
    env = {**os.environ, "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "jax")}
    if src is not None:  # another checkout's ratecast (e.g. the commit before pyarrow) in front of the installed one
        env["PYTHONPATH"] = os.pathsep.join([str(src), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    out = subprocess.run([sys.executable, __file__, "--worker", kind, str(home)], capture_output=True, text=True,
                         env=env)
    if out.returncode:
        raise SystemExit(f"{kind} failed: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def median_run(runs: list[dict]) -> dict:
    """The run of median seconds, with every run's seconds and the largest peak RSS."""
    ordered = sorted(runs, key=lambda r: r["s"])
    out = dict(ordered[(len(ordered) - 1) // 2])
    if len(runs) > 1:
        out["s_each"] = [r["s"] for r in runs]
        out["peak_rss_gb"] = max(r["peak_rss_gb"] for r in runs)
    return out


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        print(json.dumps(worker(sys.argv[2], Path(sys.argv[3]))))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ratings", type=float, default=FULL)
    ap.add_argument("--data-home", type=Path, help="keep the generated folder here (reused when complete)")
    ap.add_argument("--only", default="csv,parquet,pandas")
    ap.add_argument("--repeats", type=int, default=1, help="runs of each kind, interleaved; the median is reported")
    ap.add_argument("--before", type=Path, metavar="SRC",
                    help="also time load_movielens from this source folder (e.g. src/ of a checkout before pyarrow)")
    args = ap.parse_args()
    n = int(args.ratings)
    with tempfile.TemporaryDirectory() as tmp:
        home = args.data_home or Path(tmp)
        folder = home / "ml-25m"
        t = time.perf_counter()
        if not _complete(folder, n):
            write_movielens_folder(folder, n)
        written_s = time.perf_counter() - t
        kinds = [(kind, None) for kind in args.only.split(",")]
        if args.before is not None:
            kinds.append(("before", args.before.resolve()))
        runs: dict[str, list[dict]] = {kind: [] for kind, _ in kinds}
        for _ in range(args.repeats):  # interleaved, so that a busy spell on the machine hits every kind alike
            for kind, src in kinds:
                runs[kind].append(run("csv" if kind == "before" else kind, home, src))
        results = {kind: median_run(r) for kind, r in runs.items()}
        checks = {json.dumps([r["check"], r["n_ratings"], r["n_items"]]) for r in results.values()}
        line = {"benchmark": "load_big", "ratings": n, "csv_mb": round((folder / "ratings.csv").stat().st_size / 1e6),
                "parquet_mb": round((folder / "ratings.parquet").stat().st_size / 1e6), "write_s": round(written_s, 1),
                "cpus": os.cpu_count(), "same_dataset": len(checks) == 1}
        for kind, r in results.items():
            line[kind] = {k: v for k, v in r.items() if k not in ("check", "n_ratings", "n_items")}
        for old in ("pandas", "before"):
            if "csv" in results and old in results:
                suffix = "" if old == "pandas" else "_before"
                line["speedup" + suffix] = round(results[old]["s"] / results["csv"]["s"], 2)
                line["rss_ratio" + suffix] = round(results[old]["peak_rss_gb"] / results["csv"]["peak_rss_gb"], 2)
        print(json.dumps(line))


if __name__ == "__main__":
    main()

"""Scoring speed and correctness of ``ratecast.evaluation``: every metric and its 95% bootstrap interval (1000
resamples of the users) from arrays of whole-catalogue lists, and the shared metrics checked against an independent
implementation on the same lists, in the same run.

* ``small``: ML-100k's shape, 943 users x 1,682 items (target: scored in <= 2 s);
* ``peer_check``: on the ``small`` lists, recall, NDCG, precision and hit rate of each user computed by trec_eval
  (``ir-measures`` over ``pytrec-eval-terrier``, the ``peers`` extra) beside ratecast's; the largest absolute
  difference per metric (target: <= 1e-6). trec_eval's ``R@k`` divides the hits by every relevant item, ratecast's
  recall by ``min(relevant, k)`` (the top-N protocol's), so ratecast's recall is checked against trec_eval's
  ``P@k * k / min(relevant, k)``. Catalogue coverage is in no maintained library that installs beside NumPy 2 and
  pandas 3 (LensKit 2025 needs pandas 2 and torch, RecTools NumPy < 2), so it is checked against a plain-Python count
  of the listed items;
* ``large``: ML-25M's shape, 162,541 users x 59,047 items by default (target: scored in <= 60 s on a 2-core
  machine). Ratings from ``ratecast.datasets.synthetic.movielens_like`` (``--ratings``, split 80/20 at random:
  training popularity and seen items from the 80%, relevant test items and rating errors from the 20%); lists made
  by biased-dot embeddings (32 factors and an item bias, random) over the whole catalogue minus each user's seen
  items, by chunks of users (NumPy ``argpartition``, bounded memory: ``list_seconds``, reported apart from the
  scoring); ``--users N`` takes the first N users instead (``seconds_per_1k_users`` extrapolates).

Lists are 100 deep (ndcg@100). Prints one JSON line.

    python benchmarks/evaluation.py [--users 20000] [--ratings 5e6] [--skip-large] [--skip-peers]

Measured once on two shared CPU cores (load average 6-7): 943 users scored in 0.12 s; trec_eval agrees to 1.1e-16
(coverage exactly); 162,541 users x 59,047 items scored in 14.3 s, their lists made in 101.8 s; peak RSS 0.9 GB.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd

from ratecast.datasets.synthetic import ML25M_ITEMS, ML25M_USERS, movielens_like
from ratecast.evaluation import score_lists
from ratecast.evaluation.figures import ACCURACY, K

DEPTH = 100
#: ratecast's liked threshold on the 0.5..5 scale of the synthetic ratings (RatingScale.liked_threshold)
LIKED = 4.0
#: users whose scores are held at once while the large case's lists are made (rows x items float32)
LIST_CHUNK = 256


def synthetic_case(n_users: int, n_items: int, seed: int = 0) -> dict:
    """Lists skewed to popular items with distinct items per user; 5 relevant test items per user (some listed, so
    there are hits), 10 rating errors, 32-dimensional item vectors and 18 genre flags."""
    rng = np.random.default_rng(seed)
    popularity = np.sort(rng.zipf(1.3, n_items).clip(1, 50_000))[::-1].astype("int64")
    by_popularity = np.arange(n_items)  # positions are already in popularity order
    start = (rng.pareto(1.0, n_users) * n_items / 50).astype("int64") % n_items
    step = rng.integers(1, max(2, n_items // DEPTH), n_users)
    lists = by_popularity[(start[:, None] + np.arange(DEPTH) * step[:, None]) % n_items]
    n_rel = 5
    rel_rows = np.repeat(np.arange(n_users), n_rel)
    from_list = rng.random(len(rel_rows)) < 0.3
    rel_items = np.where(from_list, lists[rel_rows, rng.integers(0, DEPTH, len(rel_rows))],
                         rng.integers(0, n_items, len(rel_rows)))
    error_rows = np.repeat(np.arange(n_users), 10)
    return {"lists": lists, "rel_rows": rel_rows, "rel_items": rel_items, "popularity": popularity,
            "n_train_users": n_users, "item_vectors": rng.normal(size=(n_items, 32)).astype("float32"),
            "genre_vectors": (rng.random((n_items, 18)) < 0.15).astype("float32"),
            "error_rows": error_rows, "errors": rng.normal(0, 0.9, len(error_rows))}


def top_lists(user_vectors: np.ndarray, item_vectors: np.ndarray, item_bias: np.ndarray, seen_rows: np.ndarray,
              seen_items: np.ndarray, depth: int = DEPTH, chunk: int = LIST_CHUNK) -> np.ndarray:
    """Each user's ``depth`` best items by ``user . item + bias`` over the catalogue minus the user's seen items
    (``seen_rows``/``seen_items`` pairs, sorted by row), best first: ``(n_users, depth)`` positions. One chunk of
    users' scores at a time (``chunk x n_items`` float32), ``argpartition`` then a sort of the ``depth`` kept."""
    n_users, n_items = len(user_vectors), len(item_vectors)
    out = np.empty((n_users, depth), "int64")
    bounds = np.searchsorted(seen_rows, np.arange(0, n_users + chunk, chunk))
    items_t = np.ascontiguousarray(item_vectors.T)
    for c, start in enumerate(range(0, n_users, chunk)):
        stop = min(start + chunk, n_users)
        scores = user_vectors[start:stop] @ items_t
        scores += item_bias
        lo, hi = bounds[c], bounds[c + 1]
        scores[seen_rows[lo:hi] - start, seen_items[lo:hi]] = -np.inf
        part = np.argpartition(scores, n_items - depth, axis=1)[:, n_items - depth:]  # the depth largest
        kept = np.take_along_axis(scores, part, axis=1)
        order = np.argsort(-kept, axis=1, kind="stable")
        out[start:stop] = np.take_along_axis(part, order, axis=1)
    return out


def embedding_case(n_users: int, n_items: int, n_ratings: int, seed: int = 0) -> tuple[dict, float]:
    """The large case (see the module's text) and the seconds its lists took to make."""
    rng = np.random.default_rng(seed)
    r = movielens_like(n_ratings, n_users, n_items, seed=seed)
    r = r.drop_duplicates(["userId", "movieId"])
    users, items = r["userId"].to_numpy() - 1, r["movieId"].to_numpy() - 1
    rating = r["rating"].to_numpy("float64")
    is_test = rng.random(len(r)) < 0.2
    popularity = np.bincount(items[~is_test], minlength=n_items)
    n_train_users = int(len(np.unique(users[~is_test])))
    dim = 32
    user_vectors = rng.normal(0, 0.3, (n_users, dim)).astype("float32")
    item_vectors = rng.normal(0, 0.3, (n_items, dim)).astype("float32")
    item_bias = (0.2 * np.log1p(popularity)).astype("float32")
    order = np.argsort(users[~is_test], kind="stable")
    seen_rows, seen_items = users[~is_test][order], items[~is_test][order]
    start = time.perf_counter()
    lists = top_lists(user_vectors, item_vectors, item_bias, seen_rows, seen_items)
    list_seconds = time.perf_counter() - start
    t_users, t_items = users[is_test], items[is_test]
    prediction = 3.5 + item_bias[t_items] + np.einsum("ij,ij->i", user_vectors[t_users], item_vectors[t_items])
    liked = rating[is_test] >= LIKED
    case = {"lists": lists, "rel_rows": t_users[liked], "rel_items": t_items[liked], "popularity": popularity,
            "n_train_users": n_train_users, "item_vectors": item_vectors,
            "genre_vectors": (rng.random((n_items, 18)) < 0.15).astype("float32"),
            "error_rows": t_users, "errors": rating[is_test] - prediction}
    return case, list_seconds


def timed(case: dict) -> dict:
    n_users, n_items = len(case["lists"]), len(case["popularity"])
    start = time.perf_counter()
    ev = score_lists(**case, n_resamples=1000, random_state=0)
    seconds = time.perf_counter() - start
    return {"users": n_users, "items": n_items, "k": DEPTH, "metrics": len(ev.summary), "seconds": round(seconds, 2),
            "seconds_per_1k_users": round(1000 * seconds / n_users, 4)}


# --- the independent check ----------------------------------------------------------------------------------------
def trec_eval_figures(lists: np.ndarray, rel_rows: np.ndarray, rel_items: np.ndarray) -> pd.DataFrame:
    """ratecast's list-accuracy metrics (``ACCURACY``) of each list row that has a relevant item and a listed item,
    computed by trec_eval through ir-measures: ``P@k`` (precision), ``Success@k`` (hit), ``nDCG@k`` (binary gains)
    and recall as ``P@k * k / min(relevant, k)``. Index: list row."""
    import ir_measures as irm

    lists = np.asarray(lists)
    depth = lists.shape[1]
    qrels: dict[str, dict[str, int]] = {}
    for row, item in zip(np.asarray(rel_rows).tolist(), np.asarray(rel_items).tolist()):
        qrels.setdefault(str(row), {})[f"i{item}"] = 1
    run: dict[str, dict[str, float]] = {}
    for row, items in enumerate(lists.tolist()):
        listed = {f"i{item}": float(depth - rank) for rank, item in enumerate(items) if item >= 0}  # no ties
        if listed:
            run[str(row)] = listed
    ks = sorted({int(name.split("@")[1]) for name in ACCURACY})
    measures = [m @ k for k in ks for m in (irm.P, irm.Success, irm.nDCG)]
    values: dict[str, dict[str, float]] = {}
    for metric in irm.iter_calc(measures, qrels, run):
        values.setdefault(str(metric.measure), {})[metric.query_id] = metric.value
    table = pd.DataFrame(values)
    table.index = table.index.astype(int)
    table = table.sort_index()
    n_relevant = pd.Series({int(q): len(docs) for q, docs in qrels.items()}).reindex(table.index)
    out = pd.DataFrame(index=table.index)
    for k in ks:
        out[f"recall@{k}"] = table[f"P@{k}"] * k / np.minimum(n_relevant, k)
        out[f"precision@{k}"] = table[f"P@{k}"]
        out[f"hit@{k}"] = table[f"Success@{k}"]
        out[f"ndcg@{k}"] = table[f"nDCG@{k}"]
    return out[[c for c in ACCURACY if c in out.columns]]


def peer_check(case: dict) -> dict:
    """ratecast against trec_eval (and coverage against a plain count) on ``case``'s lists: the largest absolute
    difference per metric, over the users' figures and the means over users."""
    import ir_measures
    from importlib.metadata import version

    ev = score_lists(**case, n_resamples=1, random_state=0)
    theirs = trec_eval_figures(case["lists"], case["rel_rows"], case["rel_items"])
    ours = ev.per_user.iloc[theirs.index.to_numpy()]
    if ours[list(theirs.columns)].isna().any().any():
        raise AssertionError("ratecast leaves a figure undefined that trec_eval gives")
    undefined_elsewhere = int(ev.per_user["recall@10"].notna().sum()) - len(theirs)
    differences = {}
    for metric in theirs.columns:
        per_user = np.abs(ours[metric].to_numpy() - theirs[metric].to_numpy()).max()
        mean = abs(ev.summary.loc[metric, "value"] - theirs[metric].mean())
        differences[metric] = float(max(per_user, mean))
    top = np.asarray(case["lists"])[:, :K]
    n_items = len(case["popularity"])
    listed = {item for row in top.tolist() for item in row if item >= 0}
    differences[f"coverage@{K}"] = float(abs(ev.summary.loc[f"coverage@{K}", "value"] - len(listed) / n_items))
    worst = max(differences.values())
    return {"library": f"ir-measures {ir_measures.__version__} (trec_eval: pytrec-eval-terrier "
                       f"{version('pytrec-eval-terrier')})",
            "coverage_reference": "plain Python count of the listed items",
            "users_compared": int(len(theirs)), "users_ratecast_only": undefined_elsewhere,
            "max_abs_difference": differences, "max": worst, "agree_to_1e-6": bool(worst <= 1e-6)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=ML25M_USERS, help="users of the large case")
    ap.add_argument("--ratings", type=float, default=5e6, help="synthetic ratings of the large case")
    ap.add_argument("--skip-large", action="store_true")
    ap.add_argument("--skip-peers", action="store_true", help="leave out the check against trec_eval")
    args = ap.parse_args()
    small = synthetic_case(943, 1682)
    out = {"benchmark": "evaluation", "small": timed(small)}
    out["seconds_943_users"] = out["small"]["seconds"]
    if not args.skip_peers:
        try:
            out["peer_check"] = peer_check(small)
        except ImportError:
            out["peer_check"] = {"skipped": "ir-measures is not installed (pip install -e '.[peers]')"}
    if not args.skip_large:
        case, list_seconds = embedding_case(args.users, ML25M_ITEMS, int(args.ratings))
        large = timed(case)
        large["ratings"] = int(args.ratings)
        large["list_seconds"] = round(list_seconds, 2)
        large["extrapolated_seconds_162541_users"] = round(large["seconds_per_1k_users"] * ML25M_USERS / 1000, 1)
        out["large"] = large
    print(json.dumps(out))


if __name__ == "__main__":
    main()

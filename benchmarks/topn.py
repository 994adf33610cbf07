"""Top-N over the whole catalogue: ratecast's models against popularity, EASE and PureSVD, same run, same protocol.

Protocol (LensKit's and Cornac's): ML-100k, the lab split (holdout 0.2, seed 0) and canonical u1. For each test user,
every item not in their training ratings is ranked; relevant = a test rating >= 4; accuracy averages over users with
a relevant item (recall@k = hits / min(relevant, k)); coverage and popularity bias over every test user's list; long
tail = items with fewer than 10 training ratings. All metrics come from ``ratecast.topn.list_metrics`` (for ratecast
models through ``Recommender.top_n_metrics``). ratecast models run with their defaults (``Recommender(model)``, early
stopping on a 10% validation split of train) or a preset. Peers, a few numpy lines each, fitted on all of train:

* EASE: closed form on the binarised training matrix, lambda = 300;
* PureSVD: truncated SVD (k = 20) of the user x item rating matrix, scores U S V^T.

Prints one JSON line; ``recall_ratio_to_ease`` = recall@10 / EASE's recall@10 on the same split.

``--tune MODEL`` chooses MODEL's list settings instead: a grid of options, each fitted on the lab training set less
a validation holdout (0.2, seed 0) and scored on that validation set only (recall@10 + NDCG@10); the test set is
never read. It prints every candidate's validation figures and the chosen options. ``--tune-support MODELS``
chooses each model's default minimum support of its lists (``min_support``) the same way.

    RATECAST_DATA=../shared/data python benchmarks/topn.py [--models popularity,baseline,biased_dot] [--splits lab,u1]
    RATECAST_DATA=../shared/data python benchmarks/topn.py --tune implicit
    RATECAST_DATA=../shared/data python benchmarks/topn.py --tune implicit-large  # the large-catalogue variants
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.linalg import svds

import ratecast as rc
from ratecast.topn import list_metrics

KEEP = ("recall@10", "ndcg@10", "precision@10", "mrr@10", "hit@10", "recall@20", "ndcg@20", "distinct_items@10",
        "coverage@10", "mean_popularity@10", "long_tail_share@10")


def _rounded(m: dict) -> dict:
    return {k: (round(m[k], 4) if isinstance(m[k], float) else m[k]) for k in KEEP}


def peer_metrics(train: rc.Dataset, test: rc.Dataset, score_fn) -> dict:
    """Lists from a (users x items) score matrix over training items, scored with ratecast's metric code."""
    tr, te = train.ratings, test.ratings
    items = pd.Index(pd.unique(tr["item_id"]))
    users = pd.Index(pd.unique(tr["user_id"]))
    R = sp.csr_matrix((tr["rating"].to_numpy(float), (users.get_indexer(tr["user_id"]), items.get_indexer(tr["item_id"]))),
                      shape=(len(users), len(items)))
    start = time.perf_counter()
    scores = score_fn(R)
    fit_s = time.perf_counter() - start
    codes, test_users = pd.factorize(te["user_id"])
    rows = users.get_indexer(test_users)
    depth = 20
    lists = np.full((len(test_users), depth), -1)
    pop = np.asarray((R > 0).sum(axis=0)).ravel()
    fallback = np.argsort(-pop, kind="stable")[:depth]
    for start_row in range(0, len(rows), 512):  # batches of users, vectorised within a batch
        r = rows[start_row:start_row + 512]
        known = r >= 0
        s = scores(r[known]) if callable(scores) else scores[r[known]]
        s = np.where(R[r[known]].toarray() > 0, -np.inf, s)
        top = np.argsort(-s, axis=1, kind="stable")[:, :depth]
        block = np.tile(fallback, (len(r), 1))
        block[known] = top
        lists[start_row:start_row + 512] = block
    rel = (te["rating"] >= 4).to_numpy()
    item_pos = items.get_indexer(te["item_id"][rel])
    unseen = item_pos < 0
    item_pos[unseen] = len(items) + pd.factorize(te["item_id"][rel][unseen])[0]
    out = _rounded(list_metrics(lists, codes[rel], item_pos, pop))
    out["fit_s"] = round(fit_s, 2)
    return out


def ease(lam: float = 300.0):
    def fit(R: sp.csr_matrix):
        X = (R > 0).astype(np.float64)
        G = (X.T @ X).toarray()
        G[np.diag_indices_from(G)] += lam
        P = np.linalg.inv(G)
        B = P / (-np.diag(P))
        B[np.diag_indices_from(B)] = 0.0
        return np.asarray(X @ B)
    return fit


def pure_svd(k: int = 20):
    def fit(R: sp.csr_matrix):
        U, s, Vt = svds(R.astype(np.float64), k=k, random_state=0)
        return (U * s) @ Vt
    return fit


def ratecast_metrics(name: str, train: rc.Dataset, test: rc.Dataset) -> dict:
    preset = name.startswith("preset:")
    rec = (rc.Recommender.from_preset(name.split(":", 1)[1], random_state=0, verbose=0) if preset
           else rc.Recommender(name, random_state=0, verbose=0))
    start = time.perf_counter()
    rec.fit(train)
    fit_s = time.perf_counter() - start
    out = _rounded(rec.top_n_metrics(test))
    out["fit_s"] = round(fit_s, 2)
    return out


#: stages of the search: each stage's grid is tried with the options chosen by the stages before it
GRIDS = {"implicit": [
    [{"embedding_dim": d, "l2": l2, "interaction_weight": w} for d in (64, 128) for l2 in (1e-5, 0.02)
     for w in (1.0, 3.0)],  # training
    [{"item_item_weight": a, "rating_weight": b} for a in (0.0, 0.25, 0.5) for b in (0.0, 0.25, 0.5)],  # lists
    [{"set_model_weight": c, "set_model_hidden": h, "set_model_epochs": e} for c in (0.25, 0.5, 0.75)
     for h, e in ((600, 100), (600, 50), (300, 100))],  # the set head (Mult-DAE)
], "implicit-large": [
    [{"sampled_optimizer": o, "sampled_learning_rate": lr} for o, lr in
     (("adam", 3e-3), ("adagrad", 0.03), ("adagrad", 0.1), ("adagrad", 0.3), ("sgd", 0.03), ("sgd", 0.1))],
    [{"sampled_epochs": e} for e in (2, 4, 8)],
]}
#: tuning targets that are a model with fixed options: ``implicit-large`` is ``implicit`` with every head on its
#: large-catalogue variant (thresholds at 1 item), so that its settings are chosen on ML-100k's validation lists
TARGETS = {"implicit-large": ("implicit", {"softmax_max_items": 1, "item_item_max_items": 1,
                                           "set_model_max_items": 1})}


def tune(model: str, ds: rc.Dataset, limit: int | None) -> None:
    """Choose ``model``'s options on a validation split of the lab training set (the test set is not read)."""
    train, _ = rc.split.holdout(ds, test_size=0.2, random_state=0)
    fit_part, validation = rc.split.holdout(train, test_size=0.2, random_state=0)
    chosen: dict = {}
    rows = []
    name, fixed = TARGETS.get(model, (model, {}))
    for stage, grid in enumerate(GRIDS[model]):
        stage_rows = []
        for options in grid[:limit]:
            rec = rc.Recommender(name, random_state=0, verbose=0, **fixed, **chosen, **options)
            start = time.perf_counter()
            rec.fit(fit_part)
            m = rec.top_n_metrics(validation)
            stage_rows.append({"stage": stage, "options": {**chosen, **options},
                               "val_recall@10": round(m["recall@10"], 4), "val_ndcg@10": round(m["ndcg@10"], 4),
                               "val_distinct_items@10": m["distinct_items@10"],
                               "fit_s": round(time.perf_counter() - start, 1)})
            print(json.dumps(stage_rows[-1]), flush=True, file=sys.stderr)
        chosen = max(stage_rows, key=lambda r: r["val_recall@10"] + r["val_ndcg@10"])["options"]
        rows += stage_rows
    print(json.dumps({"benchmark": "topn-tune", "model": model, "selection": "lab train less a 0.2 validation "
                      "holdout (seed 0); recall@10 + NDCG@10 on validation, stage by stage", "chosen": chosen,
                      "candidates": rows}))


SUPPORTS = (0, 3, 5, 10, 20, 50)


def tune_support(models: list[str], ds: rc.Dataset) -> None:
    """Choose each model's ``min_support`` (lists leave out items with fewer training ratings) on a validation split
    of the lab training set: one fit per model, lists scored at each candidate (the test set is not read)."""
    train, _ = rc.split.holdout(ds, test_size=0.2, random_state=0)
    fit_part, validation = rc.split.holdout(train, test_size=0.2, random_state=0)
    out = {}
    for model in models:
        rec = rc.Recommender(model, random_state=0, verbose=0).fit(fit_part)
        rows = []
        for support in SUPPORTS:
            m = rec.top_n_metrics(validation, ks=(10,), min_ratings=support)
            rows.append({"min_support": support, "val_recall@10": round(m["recall@10"], 4),
                         "val_ndcg@10": round(m["ndcg@10"], 4), "val_distinct_items@10": m["distinct_items@10"],
                         "val_long_tail_share@10": round(m["long_tail_share@10"], 4)})
        # the best lists that keep the catalogue they cover: support trades variety for popular items
        keeps = [r for r in rows if r["val_distinct_items@10"] >= rows[0]["val_distinct_items@10"]]
        best = max(keeps, key=lambda r: (r["val_recall@10"] + r["val_ndcg@10"], -r["min_support"]))
        out[model] = {"chosen": best["min_support"], "candidates": rows}
        print(json.dumps({model: out[model]}), file=sys.stderr, flush=True)
    print(json.dumps({"benchmark": "topn-support", "selection": "lab train less a 0.2 validation holdout (seed 0); "
                      "the best recall@10 + NDCG@10 of whole-catalogue validation lists among the supports that keep at least "
                      "the distinct items of unfiltered lists; ties: the smaller support",
                      "models": out}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="popularity,baseline,dot,biased_dot,deep,hybrid,classification,"
                                        "preset:topn")
    ap.add_argument("--splits", default="lab,u1")
    ap.add_argument("--tune", default=None, help="choose this model's options on validation instead")
    ap.add_argument("--limit", type=int, default=None, help="only the first N candidates of the grid")
    ap.add_argument("--tune-support", default=None, metavar="MODELS",
                    help="choose these models' min_support (comma-separated) on validation instead")
    args = ap.parse_args()
    ds = rc.datasets.load_movielens("ml-100k", progress=False)
    if args.tune:
        return tune(args.tune, ds, args.limit)
    if args.tune_support:
        return tune_support(args.tune_support.split(","), ds)
    splits = {"lab": lambda: rc.split.holdout(ds, test_size=0.2, random_state=0),
              "u1": lambda: rc.split.movielens_fold(ds, "u1")}
    results = {}
    for split in args.splits.split(","):
        train, test = splits[split]()
        rows = {"EASE (lambda 300)": peer_metrics(train, test, ease()),
                "PureSVD (k 20)": peer_metrics(train, test, pure_svd())}
        for name in (m for m in args.models.split(",") if m):
            rows[name] = ratecast_metrics(name, train, test)
        base = rows["EASE (lambda 300)"]["recall@10"]
        for row in rows.values():
            row["recall_ratio_to_ease"] = round(row["recall@10"] / base, 3)
        results[split] = rows
    print(json.dumps({"benchmark": "topn", "dataset": "ml-100k", "splits": {"lab": "holdout 0.2 seed 0",
                      "u1": "u1.base/u1.test"}, "protocol": "whole catalogue minus each user's training items; "
                      "relevant = test rating >= 4; recall@k = hits / min(relevant, k)", "results": results}))


if __name__ == "__main__":
    main()

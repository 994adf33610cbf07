"""Top-N over the whole catalogue: each model's recommendation lists against plain popularity, same run.

Protocol: ML-100k lab split (holdout 0.2, seed 0); each model with the ``lab`` preset (Keras fit, Adam 0.001,
embedding 64, batch 64, 10 epochs; classification 16 / 15) and with its defaults (``Recommender(model)``), early
stopping on a 10% validation split of train. For each user, every item not in
their training ratings is ranked; relevant = a test rating >= 4; users with at least one relevant item count.
Popularity ranks unseen items by their number of training ratings. Reports recall@10 (hits / min(relevant, 10)),
NDCG@10, the distinct items in
all top-10 lists, the mean training popularity of recommended items and the share of slots from items with fewer
than 10 training ratings. Prints one JSON line; ``recall_ratio_to_popularity`` = model recall / popularity recall.

    RATECAST_DATA=../shared/data python benchmarks/topn.py [--models dot,biased_dot] [--settings lab,defaults]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd

import ratecast as rc

K = 10
LAB = {"dot": (64, 10), "biased_dot": (64, 10), "deep": (64, 10), "hybrid": (64, 10), "classification": (16, 15)}


def list_metrics(lists: dict, relevant: dict, popularity: pd.Series) -> dict:
    """recall@K, NDCG@K over users with a relevant item; coverage and popularity bias over all lists."""
    discount = 1.0 / np.log2(np.arange(2, K + 2))
    recall, ndcg = [], []
    for user, rel in relevant.items():
        items = lists.get(user, [])
        hits = np.array([i in rel for i in items[:K]], dtype=float)
        recall.append(hits.sum() / min(len(rel), K))  # LensKit's recall@K: a full list of hits scores 1
        ndcg.append((hits * discount[:len(hits)]).sum() / discount[:min(len(rel), K)].sum())
    slots = np.concatenate([np.asarray(v[:K]) for v in lists.values()])
    pop = popularity.reindex(slots).fillna(0).to_numpy()
    return {"recall@10": round(float(np.mean(recall)), 4), "ndcg@10": round(float(np.mean(ndcg)), 4),
            "distinct_items": int(len(np.unique(slots))), "mean_train_popularity": round(float(pop.mean()), 1),
            "long_tail_slots": round(float((pop < 10).mean()), 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(LAB))
    ap.add_argument("--settings", default="lab,defaults")
    args = ap.parse_args()
    ds = rc.datasets.load_movielens("ml-100k", progress=False)
    train, test = rc.split.holdout(ds, test_size=0.2, random_state=0)
    tr, te = train.ratings, test.ratings
    relevant = te[te["rating"] >= 4].groupby("user_id")["item_id"].apply(set).to_dict()
    popularity = tr.groupby("item_id").size()
    seen = tr.groupby("user_id")["item_id"].apply(set).to_dict()
    ranked = popularity.sort_values(ascending=False, kind="stable").index.to_numpy()
    pop_lists = {u: [i for i in ranked if i not in seen.get(u, ())][:K] for u in tr["user_id"].unique()}
    results = {"popularity": list_metrics(pop_lists, relevant, popularity)}
    for settings, model in ((s, m) for s in args.settings.split(",") for m in args.models.split(",")):
        dim, epochs = LAB[model]
        rec = (rc.Recommender.from_preset("lab", model=model, random_state=0, verbose=0, embedding_dim=dim,
                                          epochs=epochs) if settings == "lab"
               else rc.Recommender(model, random_state=0, verbose=0)).fit(train)
        top = rec.recommend_all(k=K)
        lists = top.groupby("user_id")["item_id"].apply(list).to_dict()
        row = list_metrics(lists, relevant, popularity)
        row["recall_ratio_to_popularity"] = round(row["recall@10"] / results["popularity"]["recall@10"], 3)
        results[f"{model} ({settings})"] = row
    print(json.dumps({"benchmark": "topn", "dataset": "ml-100k lab split", "k": K,
                      "protocol": "whole catalogue minus each user's training items; relevant = test rating >= 4",
                      "results": results}))


if __name__ == "__main__":
    main()

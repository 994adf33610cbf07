"""Whole-catalogue top-N metrics: the vectorised metrics against a per-user reference, and the estimator's lists."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ratecast as rc
from ratecast import topn
from ratecast.datasets.dataset import Dataset


def reference(lists, relevant, popularity, k, long_tail=10):
    """Per-user loop, the textbook definitions."""
    rec, prec, ndcg, mrr, hit = [], [], [], [], []
    for row, rel in enumerate(relevant):
        if not rel:
            continue
        items = [i for i in lists[row][:k]]
        h = [1.0 if (i >= 0 and i in rel) else 0.0 for i in items]
        rec.append(sum(h) / min(len(rel), k))
        prec.append(sum(h) / k)
        dcg = sum(g / np.log2(r + 2) for r, g in enumerate(h))
        ndcg.append(dcg / sum(1 / np.log2(r + 2) for r in range(min(len(rel), k))))
        first = next((r for r, g in enumerate(h) if g), None)
        mrr.append(0.0 if first is None else 1 / (first + 1))
        hit.append(float(sum(h) > 0))
    slots = [i for row in lists for i in row[:k] if i >= 0]
    pop = popularity[slots]
    return {f"recall@{k}": np.mean(rec), f"precision@{k}": np.mean(prec), f"ndcg@{k}": np.mean(ndcg),
            f"mrr@{k}": np.mean(mrr), f"hit@{k}": np.mean(hit), f"distinct_items@{k}": len(set(slots)),
            f"long_tail_share@{k}": float((pop < long_tail).mean()) if pop.size else np.nan,
            f"mean_popularity@{k}": float(pop.mean()) if pop.size else np.nan}  # no list items: undefined


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 8), st.integers(3, 30), st.integers(0, 2**31 - 1))
def test_vectorised_metrics_equal_the_per_user_definitions(n_users, n_items, seed):
    rng = np.random.default_rng(seed)
    depth = 5
    lists = np.full((n_users, depth), -1)
    for r in range(n_users):
        m = rng.integers(0, min(depth, n_items) + 1)
        lists[r, :m] = rng.choice(n_items, m, replace=False)
    relevant = [set(rng.choice(n_items + 3, rng.integers(0, 5), replace=True).tolist()) for _ in range(n_users)]
    rows = np.array([r for r, rel in enumerate(relevant) for _ in rel], dtype=int)
    items = np.array([i for rel in relevant for i in rel], dtype=int)
    popularity = rng.integers(0, 30, n_items)
    ours = topn.list_metrics(lists, rows, items, popularity, ks=(1, 3, 5))
    for k in (1, 3, 5):
        if not any(relevant):
            assert ours[f"recall@{k}"] is None
            continue
        ref = reference(lists, relevant, popularity, k)
        for name, value in ref.items():
            if np.isnan(value):
                continue
            assert ours[name] == pytest.approx(value), name


def test_relevant_items_outside_the_catalogue_count_but_are_never_hit():
    lists = np.array([[0, 1]])
    # one relevant item is listed, one (position 7, past a 3-item catalogue) the model never saw
    out = topn.list_metrics(lists, np.array([0, 0]), np.array([1, 7]), np.array([5, 5, 5]), ks=(2,))
    assert out["recall@2"] == pytest.approx(0.5) and out["hit@2"] == 1.0 and out["mrr@2"] == pytest.approx(0.5)


def test_lists_shorter_than_k_are_refused():
    with pytest.raises(ValueError, match="lists must have shape"):
        topn.list_metrics(np.zeros((2, 3), int), [], [], np.ones(4), ks=(5,))


def _toy(seed=0):
    rng = np.random.default_rng(seed)
    rows = [(u, i, float(rng.integers(1, 6))) for u in range(30) for i in rng.choice(40, 12, replace=False)]
    df = pd.DataFrame(rows, columns=["user_id", "item_id", "rating"])
    return Dataset(df, name="toy")


def test_evaluate_scores_the_lists_that_recommend_all_gives():
    ds = _toy()
    train, test = rc.split.holdout(ds, test_size=0.3, random_state=0)
    rec = rc.Recommender("biased_dot", random_state=0, verbose=0, epochs=3, embedding_dim=4).fit(train)
    got = rec.evaluate(test, ci=False)
    top = rec.recommend_all(k=10)
    te = test.ratings[test.ratings["rating"] >= 4]
    relevant = te.groupby("user_id")["item_id"].apply(set)
    recalls = []
    for user, rel in relevant.items():
        items = top.loc[top["user_id"] == user].sort_values("rank")["item_id"].tolist()
        recalls.append(len(set(items) & rel) / min(len(rel), 10))
    assert got["recall@10"] == pytest.approx(np.mean(recalls))
    # lists never hold a training item of the user
    seen = set(zip(train.ratings["user_id"], train.ratings["item_id"]))
    assert not any((u, i) in seen for u, i in zip(top["user_id"], top["item_id"]))
    assert {"ndcg@10_within_test_items", "mrr@20", "coverage@10", "long_tail_share@5"} <= set(got)


def test_a_user_unknown_to_the_model_gets_the_popular_list():
    ds = _toy()
    train, test = rc.split.holdout(ds, test_size=0.3, random_state=0)
    rec = rc.Recommender("biased_dot", random_state=0, verbose=0, epochs=1, embedding_dim=4).fit(train)
    best = rec.recommend_popular(k=1)["item_id"].iloc[0]
    stranger = pd.DataFrame({"user_id": [999], "item_id": [best], "rating": [5.0]})
    out = rec.top_n_metrics(Dataset(stranger, name="one"), ks=(1,))
    assert out["hit@1"] == 1.0 and out["users"] == 1


@pytest.mark.parametrize("call,match", [
    (lambda r, t: r.top_n_metrics(t, ks=[5, 0]), r"ks must be a non-empty list of positive integers, got \[5, 0\]"),
    (lambda r, t: r.top_n_metrics(t, ks="10"), r"ks must be a non-empty list of positive integers, got '10'"),
    (lambda r, t: r.top_n_metrics(t, ks=[]), r"ks must be a non-empty list of positive integers, got \[\]"),
    (lambda r, t: r.top_n_metrics(t, long_tail=-1), r"long_tail must be an integer >= 0, got -1"),
    (lambda r, t: r.top_n_metrics(t, threshold=float("nan")), r"threshold must be a finite number, got nan"),
    (lambda r, t: r.evaluate(t, top_n="yes"), r"top_n must be true or false"),
])
def test_bad_arguments_name_the_argument_and_the_value(call, match):
    ds = _toy()
    train, test = rc.split.holdout(ds, test_size=0.3, random_state=0)
    rec = rc.Recommender("popularity", random_state=0, verbose=0, epochs=1).fit(train)
    with pytest.raises(ValueError, match=match):
        call(rec, test)


def test_early_stopping_can_watch_the_lists_on_validation():
    from ratecast.engine.checkpoint import Progress

    p = Progress("x")
    assert p.record(0, {"val_top_n": 0.2}, True, "val_top_n")
    assert p.record(1, {"val_top_n": 0.3}, True, "val_top_n")  # higher is better for a list metric
    assert not p.record(2, {"val_top_n": 0.25}, True, "val_top_n") and p.wait == 1 and p.best_epoch == 2
    ds = _toy()
    train, _ = rc.split.holdout(ds, test_size=0.3, random_state=0)
    rec = rc.Recommender("biased_dot", random_state=0, verbose=0, epochs=4, embedding_dim=4,
                         monitor="val_top_n").fit(train)
    h = rec.history_
    assert len(h["val_top_n"]) == len(h["loss"]) and all(0 <= v <= 2 for v in h["val_top_n"])
    np.testing.assert_allclose(h["val_top_n"], np.add(h["val_recall@10"], h["val_ndcg@10"]))
    with pytest.raises(ValueError, match=r"monitor must be one of \['val_loss', 'val_top_n'\], got 'recall'"):
        rc.Recommender("biased_dot", monitor="recall").fit(train)


def test_the_list_monitor_scores_the_models_current_lists():
    ds = _toy()
    train, _ = rc.split.holdout(ds, test_size=0.3, random_state=0)
    rec = rc.Recommender("popularity", random_state=0, verbose=0, epochs=1).fit(train)
    m = rec.model_
    r = train.ratings
    u, i = rec.user_index_.index(r["user_id"]), rec.item_index_.index(r["item_id"])
    half = np.arange(len(u)) % 2 == 0  # fit on half, validate on the other half
    watch = topn.validation_monitor(m, u[half], i[half], u[~half], i[~half], r["rating"].to_numpy()[~half],
                                    threshold=4.0, seed=0)
    got = watch()
    # the same lists by hand: every item not in the user's fitting half, by the model's ranking key
    out = rec._scorer.pairs(np.repeat(np.arange(1, m.n_users), m.n_items - 1),
                            np.tile(np.arange(1, m.n_items), m.n_users - 1))[0]
    key = np.asarray(m.output_rule.ranking_key(out)).reshape(m.n_users - 1, m.n_items - 1)
    seen = {(a, b) for a, b in zip(u[half], i[half])}
    rel = {}
    for a, b, y in zip(u[~half], i[~half], r["rating"].to_numpy()[~half]):
        if y >= 4:
            rel.setdefault(a, set()).add(b)
    recalls = []
    for a, items in rel.items():
        order = [b + 1 for b in np.argsort(-key[a - 1], kind="stable") if (a, b + 1) not in seen][:10]
        recalls.append(len(set(order) & items) / min(len(items), 10))
    assert got["val_recall@10"] == pytest.approx(np.mean(recalls), abs=0.02)
    assert got["val_top_n"] == pytest.approx(got["val_recall@10"] + got["val_ndcg@10"])


@pytest.mark.parametrize("model", ["biased_dot", "popularity"])
def test_a_catalogue_shorter_than_the_deepest_list_gives_short_lists_not_a_crash(model):
    from synthetic import make_dataset

    ds = make_dataset(n_users=40, n_items=6, density=0.8, seed=3)
    split = rc.split.holdout(ds, 0.25, random_state=0)
    rec = rc.Recommender(model, random_state=0, verbose=0, **({"epochs": 2} if model == "biased_dot" else {}))
    rec.fit(split.train)
    metrics = rec.top_n_metrics(split.test, ks=[5, 10, 20])
    # at most 6 items exist, so a list holds at most 6 (fewer once the user's training items are left out)
    assert 0 < metrics["distinct_items@20"] <= 6
    assert metrics["distinct_items@20"] == metrics["distinct_items@10"]
    assert 0.0 <= metrics["recall@20"] <= 1.0 and metrics["recall@20"] == metrics["recall@10"]
    assert "rmse" in rec.evaluate(split.test)

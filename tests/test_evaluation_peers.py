"""ratecast's list metrics against an independent implementation (trec_eval through ir-measures, the ``peers`` and
``test`` extras) on the same lists, as ``benchmarks/evaluation.py`` checks them; and that benchmark's list maker."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest


def _benchmark():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "evaluation.py"
    spec = importlib.util.spec_from_file_location("evaluation_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_case(seed: int = 0) -> dict:
    """40 users, 30 items: lists of 0..25 items (some short, one empty), relevant items that are listed, unlisted,
    repeated or never seen by the model (positions past the catalogue), and users with no relevant item."""
    rng = np.random.default_rng(seed)
    n_users, n_items = 40, 30
    lists = np.full((n_users, 25), -1)
    for u in range(n_users):
        length = 0 if u == 3 else int(rng.integers(1, 26))
        lists[u, :length] = rng.choice(n_items, length, replace=False)
    rel_rows = rng.integers(0, n_users - 5, 150)  # the last 5 users have no relevant item
    rel_items = np.where(rng.random(150) < 0.5, lists[rel_rows, rng.integers(0, 10, 150)], -1)
    rel_items = np.where(rel_items < 0, rng.integers(0, n_items + 4, 150), rel_items)
    return {"lists": lists, "rel_rows": rel_rows, "rel_items": rel_items,
            "popularity": rng.integers(0, 50, n_items), "n_train_users": 60}


def test_recall_ndcg_precision_hit_and_coverage_agree_with_trec_eval_to_1e_6():
    pytest.importorskip("ir_measures", reason="the independent implementation (ir-measures) is not installed")
    check = _benchmark().peer_check(tiny_case())
    assert set(check["max_abs_difference"]) == {"recall@10", "recall@20", "ndcg@10", "ndcg@100", "precision@10",
                                                "hit@10", "coverage@10"}
    assert check["agree_to_1e-6"] and check["max"] <= 1e-6, check["max_abs_difference"]
    assert check["users_compared"] >= 30 and check["users_ratecast_only"] == 0  # the empty list's user too


def test_the_benchmarks_lists_are_the_best_unseen_items_of_each_user():
    bench = _benchmark()
    rng = np.random.default_rng(1)
    users, items = rng.normal(size=(7, 3)).astype("float32"), rng.normal(size=(40, 3)).astype("float32")
    bias = rng.normal(size=40).astype("float32")
    seen_rows, seen_items = np.repeat(np.arange(7), 5), rng.integers(0, 40, 35)
    lists = bench.top_lists(users, items, bias, seen_rows, seen_items, depth=10, chunk=3)
    for u in range(7):
        scores = users[u] @ items.T + bias
        scores[seen_items[seen_rows == u]] = -np.inf
        assert lists[u].tolist() == np.argsort(-scores, kind="stable")[:10].tolist()

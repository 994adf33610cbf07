"""ratecast.evaluation: each metric against a hand-computed example, the bootstrap, groups, paired comparisons, and
the held-out-users split."""

import math

import numpy as np
import pandas as pd
import pytest
from synthetic import make_dataset

import ratecast as rc
from ratecast import topn
from ratecast.datasets import Dataset, RatingScale
from ratecast.errors import DataError
from ratecast.evaluation import compare, holm, liked_threshold, score_lists
from ratecast.evaluation import figures
from ratecast.evaluation.figures import band_gap

# --- a hand-computed example ------------------------------------------------------------------------------------
# 6 items, training popularity below (20 training users); three users' lists, best first
POPULARITY = np.array([10, 5, 5, 2, 1, 1])
LISTS = [[0, 1, 2], [3, 0], [0, 1]]
RELEVANT = {0: [1, 4], 1: [3]}  # user 2 has no relevant test item
VECTORS = np.array([[1, 0], [0, 1], [1, 1], [-1, 0], [1, 0], [1, 0]], float)
GENRES = np.array([[1, 0], [1, 0], [0, 1], [0, 0], [1, 0], [0, 1]], float)  # item 3 has no genre
ERRORS = {0: [1.0, -1.0], 1: [2.0], 2: [0.0, 0.0]}


def hand_example(**kwargs):
    lists = np.full((3, 5), -1)
    for row, items in enumerate(LISTS):
        lists[row, :len(items)] = items
    rel_rows = [r for r, items in RELEVANT.items() for _ in items]
    rel_items = [i for items in RELEVANT.values() for i in items]
    err_rows = [r for r, e in ERRORS.items() for _ in e]
    errors = [x for e in ERRORS.values() for x in e]
    return score_lists(lists, rel_rows, rel_items, POPULARITY, 20, user_ids=["a", "b", "c"], item_vectors=VECTORS,
                       genre_vectors=GENRES, error_rows=err_rows, errors=errors, n_resamples=200, **kwargs)


def test_each_metric_equals_the_hand_computed_value():
    s = hand_example().summary["value"]
    ndcg_a = (1 / math.log2(3)) / (1 + 1 / math.log2(3))  # hit at rank 2 of 2 relevant
    novelty = {i: -math.log2(p / 20) for i, p in enumerate(POPULARITY)}
    expected = {
        "rmse": math.sqrt((1 + 1 + 4) / 5), "mae": (1 + 1 + 2) / 5,
        "recall@10": (1 / 2 + 1) / 2, "recall@20": (1 / 2 + 1) / 2,
        "precision@10": (1 / 10 + 1 / 10) / 2, "hit@10": 1.0,
        "ndcg@10": (ndcg_a + 1) / 2, "ndcg@100": (ndcg_a + 1) / 2,
        "novelty@10": np.mean([np.mean([novelty[i] for i in items]) for items in LISTS]),
        "popularity@10": np.mean([(10 + 5 + 5) / 3, (2 + 10) / 2, (10 + 5) / 2]),
        # 1 - cosine over the pairs: (1, 1 - 1/sqrt2, 1 - 1/sqrt2), (2), (1)
        "diversity@10": np.mean([(1 + 2 * (1 - 1 / math.sqrt(2))) / 3, 2.0, 1.0]),
        # genres: (0, 1, 1), (1: item 3 has no genre), (0)
        "genre_diversity@10": np.mean([2 / 3, 1.0, 0.0]),
        # exposure 3, 2, 1, 1, 0, 0 -> sorted 0 0 1 1 2 3: sum((2i - n - 1) x) / (n sum x) = 21 / 42
        "gini@10": 0.5, "coverage@10": 4 / 6,
    }
    assert set(s.index) == set(expected)
    for name, value in expected.items():
        assert s[name] == pytest.approx(value), name


def test_the_deeper_cutoffs_count_hits_past_the_top_10_by_hand():
    # one user, a list of 60 items; 4 relevant items, hit at ranks 1, 15 and 50 (one relevant item is not listed)
    lists = np.arange(60)[None, :]
    ev = score_lists(lists, [0, 0, 0, 0], [0, 14, 49, 70], np.ones(71), 5, n_resamples=10)
    s = ev.per_user.iloc[0]
    ideal = 1 + 1 / math.log2(3) + 1 / math.log2(4) + 1 / math.log2(5)  # 4 relevant items, all at the top
    assert s["recall@10"] == pytest.approx(1 / 4) and s["recall@20"] == pytest.approx(2 / 4)
    assert s["precision@10"] == pytest.approx(1 / 10) and s["hit@10"] == 1.0
    assert s["ndcg@10"] == pytest.approx(1 / ideal)
    assert s["ndcg@100"] == pytest.approx((1 + 1 / math.log2(16) + 1 / math.log2(51)) / ideal)


def test_the_largest_gap_between_popularity_bands_is_hand_computed(monkeypatch):
    monkeypatch.setattr(figures, "MIN_GAP_USERS", 1)
    ev = hand_example()
    gap = band_gap(ev.per_user, n_resamples=200).loc["recall@10"]
    # bands: head 1.0 (user a hits item 1), mid 1.0 (b hits item 3), tail 0.0 (a misses item 4)
    assert gap["gap"] == 1.0 and (gap["highest"], gap["lowest"]) == ("head", "tail")
    assert gap["ci_low"] <= gap["gap"] <= gap["ci_high"]


def test_per_user_table_and_popularity_bands():
    ev = hand_example()
    pu = ev.per_user
    assert list(pu.index) == ["a", "b", "c"]
    assert pu["n_relevant"].tolist() == [2, 1, 0] and pu["n_test"].tolist() == [2, 1, 2]
    assert pu.loc["a", "recall@10"] == 0.5 and pu.loc["b", "recall@10"] == 1.0
    assert np.isnan(pu.loc["c", "recall@10"])  # no relevant item: undefined, and left out of the mean
    assert pu.loc["a", "rmse"] == pytest.approx(1.0) and pu.loc["b", "mae"] == pytest.approx(2.0)
    # bands by training popularity: head {0, 1}, mid {2, 3}, tail {4, 5}; a hits 1 (head) and misses 4 (tail)
    assert ev.bands["value"].to_dict() == {"head": 1.0, "mid": 1.0, "tail": 0.0}
    assert ev.bands["users"].to_dict() == {"head": 1, "mid": 1, "tail": 1}
    assert ev.groups is None and ev.gaps is None


def test_recall_and_ndcg_agree_with_topn_on_random_lists():
    rng = np.random.default_rng(3)
    n_users, n_items = 50, 40
    lists = np.array([rng.choice(n_items, 20, replace=False) for _ in range(n_users)])
    rel_rows = rng.integers(0, n_users, 120)
    rel_items = rng.integers(0, n_items + 5, 120)  # some never seen by the model
    popularity = rng.integers(1, 30, n_items)
    ours = score_lists(lists, rel_rows, rel_items, popularity, 40, n_resamples=10).summary["value"]
    theirs = topn.list_metrics(lists, rel_rows, rel_items, popularity, ks=(10, 20))
    for name in ("recall@10", "recall@20", "ndcg@10", "precision@10", "hit@10"):
        assert ours[name] == pytest.approx(theirs[name]), name
    assert ours["coverage@10"] == pytest.approx(theirs["coverage@10"])


def test_intervals_hold_the_value_and_are_seeded():
    a, b, c = hand_example(random_state=1), hand_example(random_state=1), hand_example(random_state=2)
    s = a.summary
    assert ((s["ci_low"] <= s["value"] + 1e-9) & (s["value"] <= s["ci_high"] + 1e-9)).all()
    pd.testing.assert_frame_equal(a.summary, b.summary)
    assert not a.summary.equals(c.summary)


def test_metrics_the_data_cannot_give_are_left_out_not_nan():
    lists = np.array([[0, 1], [1, 0]])
    ev = score_lists(lists, [], [], np.array([3, 1]), 4, n_resamples=20)
    assert not ev.summary.isna().any().any()
    assert "recall@10" not in ev.summary.index and "rmse" not in ev.summary.index
    assert "diversity@10" not in ev.summary.index  # no item vectors given
    assert {"novelty@10", "gini@10", "coverage@10", "popularity@10"} <= set(ev.summary.index)


def test_liked_threshold_is_the_scales_one_definition():
    for scale, liked in ((RatingScale(1, 5), 4.0), (RatingScale(0.5, 5, 0.5), 4.0), (RatingScale(1, 10), 8.0)):
        assert liked_threshold(scale) == scale.liked_threshold == liked


def test_holm_adjusts_step_down():
    assert holm([0.01, 0.04, 0.03]).tolist() == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]).tolist() == pytest.approx([1.0, 1.0])


# --- groups ------------------------------------------------------------------------------------------------------
def test_groups_on_a_user_column_give_each_group_and_the_largest_gap(monkeypatch):
    monkeypatch.setattr(figures, "MIN_GAP_USERS", 1)  # the hand example's groups have a user or two
    users = pd.DataFrame({"gender": ["F", "M", "F"], "age": [20, 30, 40]}, index=pd.Index(["a", "b", "c"]))
    ev = hand_example(users=users, by="gender")
    g = ev.groups["value"]
    assert g[("recall@10", "F")] == 0.5 and g[("recall@10", "M")] == 1.0
    assert g[("mae", "F")] == pytest.approx(2 / 4) and g[("mae", "M")] == pytest.approx(2.0)
    assert ev.groups.loc[("recall@10", "F"), "users"] == 1  # c has no relevant item
    gap = ev.gaps.loc["recall@10"]
    assert gap["gap"] == pytest.approx(0.5) and (gap["highest"], gap["lowest"]) == ("M", "F")
    assert {"ci_low", "ci_high"} <= set(ev.groups.columns) | set(ev.gaps.columns)


def test_the_largest_gap_leaves_out_groups_of_too_few_users():
    # 30 users: 12 "big" with recall 1, 12 "mid" with recall 0.5, and 6 "tiny" (below MIN_GAP_USERS) with recall 0
    n = 30
    kind = np.array(["big"] * 12 + ["mid"] * 12 + ["tiny"] * 6)
    lists = np.tile([0, 1, 9, 9], (n, 1))
    lists[:, 2:] = -1
    relevant = {"big": [0], "mid": [0, 5], "tiny": [5]}
    rel_rows = [u for u in range(n) for _ in relevant[kind[u]]]
    rel_items = [i for u in range(n) for i in relevant[kind[u]]]
    users = pd.DataFrame({"kind": kind}, index=pd.RangeIndex(n))
    ev = score_lists(lists, rel_rows, rel_items, np.ones(10), n, users=users, by="kind", n_resamples=50)
    assert ev.groups.loc[("recall@10", "tiny"), "value"] == 0.0  # its figure is still shown
    gap = ev.gaps.loc["recall@10"]
    assert gap["gap"] == pytest.approx(0.5) and (gap["highest"], gap["lowest"]) == ("big", "mid")


def test_groups_band_a_numeric_age_and_refuse_an_unknown_column():
    users = pd.DataFrame({"age": [17, 19, 23, 24, 30, 40, 47, 52, 61]}, index=pd.Index(range(9)))
    lists = np.tile(np.arange(3), (9, 1))
    ev = score_lists(lists, range(9), [0] * 9, np.array([5, 3, 1]), 9, users=users, by="age", n_resamples=20)
    bands = {"under 18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+"}
    assert set(ev.groups.index.get_level_values("group")) == bands
    with pytest.raises(ValueError, match=r"by must name a column of the user table \['age'\], got 'job'"):
        score_lists(lists, range(9), [0] * 9, np.array([5, 3, 1]), 9, users=users, by="job", n_resamples=20)


# --- paired comparison -------------------------------------------------------------------------------------------
def lists_case(good: bool, seed: int = 0, n_users: int = 60, n_items: int = 50):
    """Each user has 3 relevant items; the good lists put them first, the bad ones are random."""
    rng = np.random.default_rng(seed)
    relevant = np.array([rng.choice(n_items, 3, replace=False) for _ in range(n_users)])
    lists = np.array([rng.permutation(n_items)[:20] for _ in range(n_users)])
    if good:
        for u in range(n_users):
            rest = [i for i in lists[u] if i not in relevant[u]]
            lists[u] = np.concatenate([relevant[u], rest])[:20]
    popularity = np.arange(n_items, 0, -1)
    return score_lists(lists, np.repeat(np.arange(n_users), 3), relevant.ravel(), popularity, n_users,
                       n_resamples=300)


def test_compare_marks_random_lists_significantly_worse():
    out = compare({"good": lists_case(True), "random": lists_case(False)})
    assert list(out.columns[:8]) == ["metric", "a", "b", "value_a", "value_b", "difference", "ci_low", "ci_high"]
    row = out.set_index("metric").loc["recall@10"]
    assert (row["a"], row["b"]) == ("good", "random")
    assert row["difference"] == pytest.approx(row["value_a"] - row["value_b"]) and row["difference"] > 0.5
    assert row["ci_low"] > 0 and row["significant"] and row["test"] == "wilcoxon"
    assert (out["p_value"] >= out["p_raw"]).all()  # Holm never lowers a p-value
    assert not out["significant"][out["p_value"] >= 0.05].any()


def test_compare_refuses_evaluations_of_other_users():
    small = lists_case(True, n_users=40)
    with pytest.raises(ValueError, match=r"compare: 'b' was evaluated on other test users than 'a' \(40 and 60"):
        compare({"a": lists_case(True), "b": small})
    with pytest.raises(ValueError, match="models must map at least two names"):
        compare({"a": small})


def tastes(n_users=80, n_items=40, seed=0) -> Dataset:
    """Two kinds of users with opposite tastes: the first half of the items is loved by one kind, hated by the
    other; every item is about as popular as any other."""
    rng = np.random.default_rng(seed)
    u, i = np.nonzero(rng.random((n_users, n_items)) < 0.5)
    loves = (u % 2 == 0) == (i < n_items // 2)
    rating = np.where(loves, rng.choice([4, 5], len(u)), rng.choice([1, 2], len(u))).astype(float)
    ratings = pd.DataFrame({"user_id": u + 1, "item_id": i + 101, "rating": rating, "timestamp": np.arange(len(u))})
    users = pd.DataFrame({"kind": np.where(np.arange(n_users) % 2, "odd", "even")},
                         index=pd.Index(np.arange(n_users) + 1, name="user_id"))
    return Dataset(ratings, users=users, rating_scale=RatingScale(1, 5))


def test_compare_marks_the_popularity_model_significantly_worse_on_strong_tastes():
    train, test = rc.split.holdout(tastes(), 0.3, random_state=0)
    good = rc.Recommender("biased_dot", random_state=0, verbose=0, epochs=10, batch_size=256, embedding_dim=4,
                          learning_rate=0.05).fit(train)
    worse = rc.Recommender("popularity", random_state=0, verbose=0, epochs=1).fit(train)
    out = compare({"biased_dot": good, "popularity": worse}, test, n_resamples=200).set_index("metric")
    for metric in ("recall@10", "ndcg@10"):
        assert out.loc[metric, "difference"] > 0 and out.loc[metric, "significant"], metric
    assert out.loc["rmse", "test"] == "paired t-test"


# --- evaluate on a fitted recommender, with held-out users ------------------------------------------------------
def test_evaluate_folds_held_out_users_into_a_copy_and_groups_by_a_user_column():
    ds = make_dataset(n_users=40, n_items=30, density=0.6)
    split = rc.split.held_out_users(ds, users=4, random_state=0)
    rec = rc.Recommender("biased_dot", random_state=0, verbose=0, epochs=3, embedding_dim=4).fit(split.train)
    n_known = len(rec.user_index_)
    ev = rc.evaluate(rec, split.test, fold_in=split.fold_in, by="occupation", n_resamples=50)
    assert len(rec.user_index_) == n_known  # the recommender itself is unchanged
    assert set(ev.per_user.index) == set(split.test.ratings["user_id"]) and len(ev.per_user) == 4
    assert not ev.per_user["fallback"].any()  # every held-out user was folded in
    assert set(ev.groups.index.get_level_values("group")) <= {"writer", "student", "doctor"}
    assert {"rmse", "recall@10", "ndcg@100", "diversity@10", "genre_diversity@10", "gini@10"} <= set(ev.summary.index)
    # held-out items of the fold-in ratings are never recommended back
    seen = split.fold_in.ratings.groupby("user_id")["item_id"].apply(set)
    catalogue = rec.item_index_.ids
    for row, user in enumerate(ev.per_user.index):
        listed = set(catalogue[ev.lists[row][ev.lists[row] >= 0]])
        assert not listed & seen[user]
    cold = rc.evaluate(rec, split.test, n_resamples=50)  # without fold-in: the popular fallback
    assert cold.per_user["fallback"].all()


def test_evaluate_refuses_fold_in_of_a_known_user():
    ds = make_dataset(n_users=20, n_items=12)
    rec = rc.Recommender("baseline", random_state=0, verbose=0, epochs=1).fit(ds)
    with pytest.raises(ValueError, match=r"fold_in: user_id 1 is already known to the model"):
        rc.evaluate(rec, ds, fold_in=ds.with_ratings(ds.ratings[ds.ratings["user_id"] == 1]))


# --- the held-out-users split -----------------------------------------------------------------------------------
def rows(frame: pd.DataFrame) -> list:
    return sorted(map(tuple, frame[["user_id", "item_id", "rating"]].to_numpy().tolist()))


@pytest.mark.parametrize("users", [0.25, 5])
def test_held_out_users_split_keeps_every_rating_and_each_user_on_both_sides(users):
    ds = make_dataset(n_users=20, n_items=15, density=0.5, seed=1)
    s = rc.split.held_out_users(ds, users=users, fold_in=0.8, random_state=3)
    assert rows(pd.concat([s.train.ratings, s.fold_in.ratings, s.test.ratings])) == rows(ds.ratings)
    held = set(s.held_out_users)
    assert len(held) == 5
    assert not held & set(s.train.ratings["user_id"])
    assert set(s.fold_in.ratings["user_id"]) == held == set(s.test.ratings["user_id"])
    counts = ds.ratings[ds.ratings["user_id"].isin(held)].groupby("user_id").size()
    n_fold = s.fold_in.ratings.groupby("user_id").size()
    expected = np.clip(np.round(0.8 * counts), 1, counts - 1)
    assert (n_fold.reindex(counts.index) == expected).all()
    again = rc.split.held_out_users(ds, users=users, fold_in=0.8, random_state=3)
    assert rows(again.test.ratings) == rows(s.test.ratings)
    assert s.train.items is ds.items and s.test.users is ds.users  # metadata kept


def test_held_out_users_never_holds_out_a_single_rating_user_and_reports_cold_items():
    ratings = pd.DataFrame({"user_id": [1, 2, 2, 3, 3, 3], "item_id": [10, 10, 11, 10, 12, 13],
                            "rating": [3.0, 4, 5, 1, 2, 3]})
    s = rc.split.held_out_users(Dataset(ratings), users=2, random_state=0)
    assert set(s.held_out_users) == {2, 3} and set(s.train.ratings["user_id"]) == {1}
    assert set(s.cold_items) == {11, 12, 13}
    assert s.report()["n_cold_items"] == 3 and s.report()["n_held_out_users"] == 2
    with pytest.raises(DataError, match=r"users=3 needs 3 users with at least 2 ratings .* has 2 such users of 3"):
        rc.split.held_out_users(Dataset(ratings), users=3)


@pytest.mark.parametrize("kwargs, message", [
    ({"users": 0}, r"users must be a fraction in \(0, 1\) or a count >= 1, got 0"),
    ({"users": 1.5}, r"users must be a fraction in \(0, 1\), got 1.5"),
    ({"users": "10%"}, r"users must be a fraction in \(0, 1\) or a count >= 1, got '10%'"),
    ({"fold_in": 1.0}, r"fold_in must be a fraction in \(0, 1\), got 1.0"),
])
def test_held_out_users_refuses_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        rc.split.held_out_users(make_dataset(n_users=10, n_items=8), **kwargs)


@pytest.mark.parametrize("change, message", [
    ({"lists": np.array([[0, 7]])}, r"lists must hold item positions 0..5 \(or -1\), got 0..7"),
    ({"rel_rows": [0, 1]}, r"rel_rows/rel_items must be 1-D arrays of one length, got shapes \(2,\) and \(1,\)"),
    ({"rel_rows": [3]}, r"rel_rows/rel_items: rows must be list rows 0..0, got 3..3"),
    ({"item_vectors": np.ones((2, 2))}, r"item_vectors must have one row per catalogue item \(6\), got shape"),
    ({"n_train_users": 0}, r"n_train_users must be an integer >= 1, got 0"),
])
def test_score_lists_refuses_arrays_that_do_not_fit(change, message):
    args = {"lists": np.array([[0, 1]]), "rel_rows": [0], "rel_items": [1], "popularity": POPULARITY,
            "n_train_users": 5, **change}
    with pytest.raises(ValueError, match=message):
        score_lists(**args)


def test_an_evaluation_rebuilt_from_its_tables_summarises_and_compares_the_same():
    ev = hand_example()
    again = rc.evaluation.Evaluation.from_per_user(ev.per_user, ev.lists, ev.catalogue_size, n_resamples=200)
    pd.testing.assert_frame_equal(again.summary, ev.summary)
    out = compare({"then": again, "now": ev})
    assert (out["difference"] == 0).all() and not out["significant"].any()

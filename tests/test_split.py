import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

import ratecast as rc
from ratecast.errors import DataError


def lab_split(folder):
    """The lab's own code, verbatim in substance: merge items and ratings, add popularity, split."""
    raw = pd.read_csv(folder / "u.data", sep="\t", names=["user_id", "item_id", "rating", "timestamp"])
    m_cols = ["item_id", "title", "release_date", "video_release_date", "imdb_url"]
    items = pd.read_csv(folder / "u.item", sep="|", names=m_cols, usecols=range(5), encoding="latin-1")
    all_ratings = pd.merge(items, raw)
    popularity = all_ratings.groupby("item_id").size().reset_index(name="popularity")
    all_ratings = pd.merge(popularity, all_ratings)
    return train_test_split(all_ratings, test_size=0.2, random_state=0)


def test_holdout_reproduces_lab_row_for_row(ml100k, data_home):
    lab_train, lab_test = lab_split(data_home / "ml-100k")
    train, test = rc.split.holdout(ml100k, test_size=0.2, random_state=0)
    cols = ["user_id", "item_id", "rating", "timestamp"]
    assert np.array_equal(train.ratings[cols].to_numpy(), lab_train[cols].to_numpy())
    assert np.array_equal(test.ratings[cols].to_numpy(), lab_test[cols].to_numpy())
    # a plain split of u.data gives another test set: the ordering matters
    plain_train, plain_test = train_test_split(ml100k.ratings, test_size=0.2, random_state=0)
    assert not np.array_equal(plain_test[cols].to_numpy(), lab_test[cols].to_numpy())


def test_split_keeps_metadata_and_reports_cold_ids(lab_split):
    train, test = lab_split
    assert train.items is test.items and train.users is not None
    assert lab_split.report()["n_cold_items"] == len(lab_split.cold_items) > 0
    assert not np.isin(lab_split.cold_items, train.ratings["item_id"]).any()
    assert np.isin(lab_split.cold_items, test.ratings["item_id"]).all()


def test_canonical_fold(ml100k):
    train, test = rc.split.movielens_fold(ml100k, "u1")
    assert len(train.ratings) == 80_000 and len(test.ratings) == 20_000
    ua_train, ua_test = rc.split.movielens_fold(ml100k, "ua")
    assert (ua_test.ratings.groupby("user_id").size() == 10).all()
    with pytest.raises(ValueError, match=r"fold must be one of .*got 'u9'"):
        rc.split.movielens_fold(ml100k, "u9")


def test_kfold_partitions(ml100k):
    folds = list(rc.split.kfold(ml100k, n_splits=5, random_state=1))
    tests = pd.concat([f.test.ratings for f in folds])
    assert len(folds) == 5 and len(tests) == 100_000
    assert not tests.duplicated(["user_id", "item_id"]).any()
    with pytest.raises(ValueError, match="n_splits must be an integer >= 2, got 1"):
        next(rc.split.kfold(ml100k, n_splits=1))


def test_temporal_splits(ml100k):
    train, test = rc.split.temporal(ml100k, test_size=0.1)
    assert len(test.ratings) == 10_000
    assert train.ratings["timestamp"].max() <= test.ratings["timestamp"].min()
    tr, te = rc.split.temporal_per_user(ml100k, n_test=2)
    assert (te.ratings.groupby("user_id").size() == 2).all() and len(te.ratings) == 2 * 943
    last_train = tr.ratings.groupby("user_id")["timestamp"].max()
    first_test = te.ratings.groupby("user_id")["timestamp"].min()
    assert (last_train <= first_test.reindex(last_train.index)).all()


def test_temporal_needs_timestamps(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("user_id,item_id,rating\n1,1,3\n1,2,4\n")
    ds = rc.datasets.load_ratings(p)
    with pytest.raises(DataError, match="timestamp on every rating; 2 are missing"):
        rc.split.temporal(ds)


def test_validation_split_and_bad_fraction(lab_split):
    fit, val = rc.split.validation_split(lab_split.train, 0.1, random_state=0)
    # 10% drawn (8,000), less the few ratings that are a user's or an item's only one: they stay to be fitted
    assert 7900 <= len(val.ratings) <= 8000 and len(fit.ratings) + len(val.ratings) == 80000
    with pytest.raises(ValueError, match=r"test_size must be a fraction in \(0, 1\), got 1.5"):
        rc.split.holdout(lab_split.train, test_size=1.5)


# --- splits too small to make ---------------------------------------------------------------------------------------


def _ratings(tmp_path, n):
    p = tmp_path / "r.csv"
    p.write_text("user_id,item_id,rating,timestamp\n" + "".join(f"1,{i},3,{100 + i}\n" for i in range(n)))
    return rc.datasets.load_ratings(p, timestamp_col="timestamp")


@pytest.mark.parametrize(
    "n,split,match",
    [
        (1, lambda ds: rc.split.holdout(ds), r"^holdout needs at least 2 ratings to split with test_size=0.2, got 1$"),
        (1, lambda ds: rc.split.validation_split(ds), r"^validation_split needs at least 2 ratings to split with "
                                                      r"fraction=0.1, got 1$"),
        (2, lambda ds: rc.split.holdout(ds, test_size=0.99), r"^holdout with test_size=0.99 would leave the train set "
                                                             r"empty: 2 ratings, 2 of them to test$"),
        (1, lambda ds: list(rc.split.kfold(ds)), r"^kfold needs at least n_splits=5 ratings, got 1$"),
        (3, lambda ds: list(rc.split.kfold(ds, n_splits=4)), r"^kfold needs at least n_splits=4 ratings, got 3$"),
        (1, lambda ds: rc.split.temporal(ds), r"^temporal needs at least 2 ratings to split with test_size=0.2, got 1$"),
        (3, lambda ds: rc.split.temporal(ds, test_size=0.1), r"^temporal with test_size=0.1 would leave the test set "
                                                             r"empty: 3 ratings, 0 of them to test$"),
        (3, lambda ds: rc.split.temporal(ds, test_size=0.9), r"^temporal with test_size=0.9 would leave the train set "
                                                             r"empty: 3 ratings, 3 of them to test$"),
        (2, lambda ds: rc.split.temporal_per_user(ds, n_test=2), r"^temporal_per_user with n_test=2, min_train=1 would "
                                                                 r"leave the test set empty: no user has 3 ratings$"),
        (2, lambda ds: rc.split.temporal_per_user(ds, min_train=-1), r"^min_train must be an integer >= 0, got -1$"),
    ],
)
def test_too_few_ratings_to_split(tmp_path, n, split, match):
    ds = _ratings(tmp_path, n)
    with pytest.raises(DataError, match=match):
        split(ds)


def test_smallest_splits_that_work(tmp_path):
    ds = _ratings(tmp_path, 2)
    train, test = rc.split.holdout(ds, test_size=0.5)
    assert len(train.ratings) == len(test.ratings) == 1
    assert [len(f.test.ratings) for f in rc.split.kfold(ds, n_splits=2)] == [1, 1]
    train, test = rc.split.temporal(ds, test_size=0.5)
    assert test.ratings["timestamp"].tolist() == [101]


def test_validation_split_leaves_every_user_and_item_a_rating_to_fit():
    from synthetic import make_dataset

    ds = make_dataset(n_users=30, n_items=20)
    r = ds.ratings
    extra = pd.DataFrame({"user_id": [901, 902, 902], "item_id": r["item_id"].iloc[:3].to_numpy(),
                          "rating": [4.0, 3.0, 5.0], "timestamp": [0, 1, 2]})
    ds = ds.with_ratings(pd.concat([r, extra], ignore_index=True))
    for seed in range(5):
        fit, val = rc.split.validation_split(ds, 0.5, random_state=seed)
        assert set(fit.ratings["user_id"]) == set(ds.ratings["user_id"])
        assert set(fit.ratings["item_id"]) == set(ds.ratings["item_id"])
        assert len(fit.ratings) + len(val.ratings) == len(ds.ratings)

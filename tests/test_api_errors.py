"""Bad arguments to the estimator get one clear error naming the argument, the constraint and the value; nothing is
silently turned into a NaN or a wrong answer, and a failed call changes nothing."""

import numpy as np
import pandas as pd
import pytest

import ratecast as rc
from ratecast.errors import DataError
from synthetic import make_dataset

FAST = dict(embedding_dim=4, epochs=1, batch_size=32, verbose=0)


@pytest.fixture(scope="module")
def ds():
    return make_dataset()


@pytest.fixture(scope="module")
def hybrid(ds):
    return rc.Recommender("hybrid", random_state=0, **FAST).fit(ds)


@pytest.fixture(scope="module")
def clf(ds):
    return rc.Recommender("classification", random_state=0, **FAST).fit(ds)


def frame(**cols):
    base = {"user_id": [1, 2, 3, 1], "item_id": [10, 10, 11, 11], "rating": [4.0, 3.0, 5.0, 2.0]}
    return pd.DataFrame({**base, **cols})


@pytest.mark.parametrize("kwargs,match", [
    (dict(model=["dot"]), r"model must be one of .*got \['dot'\]"),
    (dict(model="dot", random_state=2**40), r"random_state must be an integer in \[0, 2\*\*32\)"),
    (dict(model="dot", verbose="loud"), r"verbose must be 'auto', true/false or an integer, got 'loud'"),
    (dict(model="deep", hidden={8: 1}), r"hidden must be a list, got \{8: 1\}"),
])
def test_constructor(kwargs, match):
    with pytest.raises(ValueError, match=match):
        rc.Recommender(**kwargs)


def test_numpy_integers_and_integer_learning_rates_are_accepted(ds):
    rec = rc.Recommender("dot", random_state=np.int64(0), embedding_dim=np.int64(4), epochs=1, batch_size=32,
                         learning_rate=1, verbose=0).fit(ds)
    assert np.isfinite(rec.predict([1], [101])).all()


@pytest.mark.parametrize("ratings,match", [
    (frame(rating=[4.0, np.nan, 5.0, 2.0]), r"train: row 1 \(user_id=2, item_id=10\): rating must be a finite number"),
    (frame(rating=[4.0, np.nan, 5.0, 2.0], timestamp=[1, 2, 3, 4]),  # ids stay integers beside other number columns
     r"train: row 1 \(user_id=2, item_id=10\): rating must be a finite number, got nan"),
    (frame(rating=[4.0, 7.0, 5.0, 2.0]), r"train: row 1 .*rating must lie on the scale 1..5 \(step 1\), got 7.0"),
    (frame(item_id=[10, 10, 11, 10], user_id=[1, 2, 3, 1]), r"train: row 3 .*rated twice"),
    (frame(rating=[True, False, True, True]), r"train: row 0 .*rating must be a number, got True"),
])
def test_fit_checks_the_training_ratings(ratings, match):
    train = rc.Dataset(ratings, rating_scale=rc.datasets.RatingScale(1, 5))
    with pytest.raises(DataError, match=match):
        rc.Recommender("dot", random_state=0, **FAST).fit(train)


def test_fit_checks_validation(ds):
    rec = rc.Recommender("dot", random_state=0, **FAST)
    off = rc.Dataset(frame(user_id=[1, 2, 3, 4], item_id=[101, 101, 102, 103], rating=[4.0, 9.0, 3.0, 1.0]),
                     rating_scale=rc.datasets.RatingScale(1, 9))
    with pytest.raises(DataError, match=r"validation: rating 9.0 is not on the training scale 1..5"):
        rec.fit(ds, validation=off)
    strangers = rc.Dataset(frame(user_id=[900, 901, 902, 903]))
    with pytest.raises(DataError, match=r"validation: none of its 4 ratings is of a user and an item in train"):
        rec.fit(ds, validation=strangers)
    with pytest.raises(ValueError, match=r"validation_split must be a number in \[0, 1\), got 1"):
        rec.fit(ds, validation_split=1)
    with pytest.raises(TypeError, match=r"validation must be a ratecast Dataset, got DataFrame"):
        rec.fit(ds, validation=ds.ratings)
    with pytest.raises(TypeError, match=r"checkpoint_dir must be a folder path, got 123"):
        rec.fit(ds, checkpoint_dir=123)
    with pytest.raises(rc.NotFittedError):
        rec.predict([1], [101])


def test_dataset_types():
    with pytest.raises(TypeError, match=r"Dataset.ratings must be a pandas DataFrame, got dict"):
        rc.Dataset({"user_id": [1]})
    with pytest.raises(TypeError, match=r"Dataset.rating_scale must be a RatingScale"):
        rc.Dataset(frame(), rating_scale="1-5")
    assert rc.Dataset(frame(), rating_scale=(1, 5)).rating_scale == rc.datasets.RatingScale(1, 5)


@pytest.mark.parametrize("ids,error,match", [
    ({1, 2}, TypeError, r"user_ids must be a list, array or Series of ids, got set"),
    ((u for u in [1, 2]), TypeError, r"user_ids must be a list, array or Series of ids, got generator"),
    ([[1], [2, 3]], TypeError, r"user_ids must be a flat list of ids"),
    (np.ones((2, 2)), ValueError, r"user_ids must be 1-D, got shape \(2, 2\)"),
])
def test_predict_ids(hybrid, ids, error, match):
    with pytest.raises(error, match=match):
        hybrid.predict(ids, [101, 102])


def test_evaluate_checks(hybrid, ds):
    with pytest.raises(DataError, match=r"test: row 0 .*rating must be a finite number, got nan"):
        hybrid.evaluate(rc.Dataset(frame(rating=[np.nan, 3, 4, 5]), rating_scale=(1, 5)))
    with pytest.raises(ValueError, match=r"threshold must be a finite number, got nan"):
        hybrid.evaluate(ds, threshold=float("nan"))


@pytest.mark.parametrize("call,error,match", [
    (lambda r: r.recommend([1, 2]), TypeError, r"user_id must be one id .*got \[1, 2\]"),
    (lambda r: r.recommend(1, exclude_seen="no"), ValueError, r"exclude_seen must be true or false, got 'no'"),
    (lambda r: r.similarity([101], [102]), TypeError, r"item_id must be one id"),
    (lambda r: r.recommend_new_user({"foo": 1}), ValueError,
     r"demographics: unknown key\(s\) \['foo'\]; this model uses \['age', 'gender', 'occupation'\]"),
    (lambda r: r.recommend_new_user({"gender": "X"}), ValueError, r"demographics\['gender'\] must be one of \['F', 'M'\]"),
    (lambda r: r.recommend_new_user({"age": "old"}), ValueError, r"demographics\['age'\] must be a finite number"),
    (lambda r: r.predict_new_item({"Action": 5}, [1]), ValueError, r"metadata\['Action'\] must be 0 or 1"),
    (lambda r: r.predict_new_item({"popularity": -3}, [1]), ValueError, r"metadata\['popularity'\] must be a finite"),
    (lambda r: r.predict_new_item({"colour": "red"}, [1]), ValueError, r"metadata: unknown key\(s\) \['colour'\]"),
    (lambda r: r.fold_in((5,), {101: 4}), TypeError, r"user_id must be one id .*got \(5,\)"),
    (lambda r: r.fold_in(b"x", {101: 4}), TypeError, r"user_id must be one id"),
    (lambda r: r.fold_in("n", {101: True}), ValueError, r"ratings must be numbers"),
    (lambda r: r.fold_in("n", {101: 4}, demographics={"foo": 1}), ValueError, r"demographics: unknown key"),
    (lambda r: r.save(None), TypeError, r"path must be a folder path, got None"),
    (lambda r: r.save("x", overwrite="no"), ValueError, r"overwrite must be true or false, got 'no'"),
])
def test_bad_arguments_change_nothing(hybrid, call, error, match):
    n_users = len(hybrid.user_index_)
    before = hybrid.recommend(1, k=3)
    with pytest.raises(error, match=match):
        call(hybrid)
    assert len(hybrid.user_index_) == n_users and hybrid.recommend(1, k=3).equals(before)


def test_predict_proba_refuses_unknown_ids(clf):
    with pytest.raises(KeyError, match=r"predict_proba needs users and items seen in training; pair 1"):
        clf.predict_proba([1, 999], [101, 101])


def test_float_and_folded_in_ids_survive_save_and_load(ds, tmp_path):
    r = ds.ratings.assign(user_id=ds.ratings["user_id"].astype(float) + 0.5)
    rec = rc.Recommender("dot", random_state=0, **FAST).fit(rc.Dataset(r))
    rec.fold_in(7.25, {101: 5, 102: 4}, epochs=2)
    loaded = rc.Recommender.load(rec.save(tmp_path / "m"))
    assert 7.25 in loaded.user_index_ and loaded.predict([1.5, 7.25], [101, 101]) == pytest.approx(
        rec.predict([1.5, 7.25], [101, 101]))


def test_mixed_id_types_after_fold_in_stay_known(ds):
    rec = rc.Recommender("dot", random_state=0, **FAST).fit(ds)
    rec.fold_in("alice", {101: 5}, epochs=2)
    rec.fold_in(7.5, {102: 4}, epochs=2)
    d = rec.predict_details([1, "alice", 7.5, "1"], [101, 101, 101, 101])
    assert d["known_user"].tolist() == [True, True, True, False]  # "1" is not 1
    assert list(d["user_id"]) == [1, "alice", 7.5, "1"]

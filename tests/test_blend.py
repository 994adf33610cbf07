"""Blend: stacking weights learned on a validation share of train, refitted members, and the recommender surface
(predict, recommend, evaluate, save/load); the test ratings never reach a member's fit."""

import json

import numpy as np
import pytest

import ratecast as rc
from ratecast.blend import stack
from synthetic import make_dataset

FAST = dict(embedding_dim=4, epochs=2, batch_size=32, verbose=0)
BASE = dict(FAST, embedding_dim=1)


@pytest.fixture(scope="module")
def data():
    return rc.split.holdout(make_dataset(n_users=40), test_size=0.2, random_state=0)


@pytest.fixture(scope="module")
def blend(data):
    members = [rc.Recommender("bayesian", random_state=0, samples=4, burn_in=2, embedding_dim=4, chains=1,
                                 verbose=0),
               rc.Recommender("biased_dot", random_state=0, **FAST), rc.Recommender("baseline", random_state=0,
                                                                                     **BASE)]
    return rc.Blend(members, random_state=0).fit(data.train)


def test_stack_recovers_known_weights():
    rng = np.random.default_rng(0)
    p = rng.normal(3, 1, (500, 3))
    y = 0.5 + 0.7 * p[:, 0] + 0.2 * p[:, 2] + rng.normal(0, 0.01, 500)
    w, b = stack(p, y)
    np.testing.assert_allclose(w, [0.7, 0.0, 0.2], atol=0.01)
    assert b == pytest.approx(0.5, abs=0.05)
    w, _ = stack(np.column_stack([p[:, 0], -p[:, 0]]), p[:, 0])  # a member that hurts gets weight 0, never < 0
    assert w[1] == 0 and w[0] == pytest.approx(1.0)


def test_predicts_the_weighted_sum_of_its_refitted_members(blend, data):
    r = data.test.ratings
    assert blend.weights_.shape == (3,) and (blend.weights_ >= 0).all() and blend.weights_.sum() > 0
    members = np.column_stack([m.predict(r["user_id"], r["item_id"]) for m in blend.members])
    expected = np.clip(blend.intercept_ + members @ blend.weights_, 1, 5)
    np.testing.assert_allclose(blend.predict(r["user_id"], r["item_id"]), expected)
    # the members were refitted on all of train: each saw every training pair
    n_train = len(data.train.ratings)
    assert all(m.state_.n_train + 0 <= n_train for m in blend.members)
    v = blend.validation_
    assert v["n"] > 0 and v["rmse"] <= min(v["member_rmse"]) + 1e-9  # stacking never does worse on validation
    users, items = list(r["user_id"][:3]) + ["nobody"], list(r["item_id"][:3]) + [r["item_id"].iloc[0]]
    details = blend.predict_details(users, items)
    np.testing.assert_allclose(details["prediction"], blend.predict(users, items))
    assert details["known_user"].tolist() == [True, True, True, False]
    assert details["was_impossible"].tolist() == [False, False, False, True]


def test_recommends_by_blended_rating_among_unseen_items(blend):
    user = blend.members[0].user_index_.ids[0]
    top = blend.recommend(user, k=5)
    seen = set(blend.members[0].seen_items(user))
    assert len(top) == 5 and not set(top["item_id"]) & seen
    items = np.array([i for i in blend.members[0].item_index_.ids if i not in seen])
    scores = blend.predict(np.full(len(items), user), items)
    best = np.sort(scores)[::-1][:5]
    np.testing.assert_allclose(top["score"].to_numpy(), best, rtol=1e-6)
    fallback = blend.recommend("nobody", k=3)
    assert fallback.attrs.get("fallback") is True and len(fallback) == 3


def test_evaluates_ratings_and_whole_catalogue_lists(blend, data):
    out = blend.evaluate(data.test)
    assert 0 < out["rmse"] < 2 and len(out["rmse_ci95"]) == 2
    assert 0 <= out["recall@10"] <= 1 and out["distinct_items@10"] > 0


def test_saves_and_loads_with_identical_predictions(blend, data, tmp_path):
    r = data.test.ratings
    blend.save(tmp_path / "b")
    with pytest.raises(Exception, match="overwrite"):
        blend.save(tmp_path / "b")
    again = rc.Blend.load(tmp_path / "b")
    np.testing.assert_array_equal(again.predict(r["user_id"], r["item_id"]), blend.predict(r["user_id"], r["item_id"]))
    assert [m.model for m in again.members] == ["bayesian", "biased_dot", "baseline"]
    meta = json.loads((tmp_path / "b" / "blend.json").read_text())
    assert meta["format_version"] == 2 and (tmp_path / "b" / "MANIFEST.json").is_file()
    meta["weights"] = meta["weights"][:1]
    (tmp_path / "b" / "blend.json").write_text(json.dumps(meta))
    with pytest.raises(rc.errors.IntegrityError, match=r"blend.json: size \d+ bytes, expected \d+ \(truncated"):
        rc.Blend.load(tmp_path / "b")
    with pytest.raises(rc.errors.MissingFileError, match=r"nothing: blend.json missing: not a saved Blend"):
        rc.Blend.load(tmp_path / "nothing")
    # the other kind of saved model is named, with the call that loads it
    with pytest.raises(rc.errors.MissingFileError, match=r"a saved Recommender, not a Blend: load it with "
                                                         r"ratecast.Recommender.load"):
        rc.Blend.load(tmp_path / "b" / "members" / "0")
    with pytest.raises(rc.errors.MissingFileError, match=r"a saved Blend, not a single recommender: load it with "
                                                         r"ratecast.Blend.load"):
        rc.Recommender.load(tmp_path / "b")


def test_fit_never_receives_test_ratings(data, monkeypatch):
    test_pairs = set(zip(data.test.ratings["user_id"], data.test.ratings["item_id"]))
    seen = []
    real_fit = rc.Recommender.fit

    def fit(self, train, *args, **kwargs):
        seen.append(set(zip(train.ratings["user_id"], train.ratings["item_id"])))
        return real_fit(self, train, *args, **kwargs)

    monkeypatch.setattr(rc.Recommender, "fit", fit)
    rc.Blend([rc.Recommender("baseline", random_state=0, **BASE), rc.Recommender("dot", random_state=0, **FAST)],
             random_state=0).fit(data.train)
    assert len(seen) == 4  # each member on the fitting share, then on all of train
    assert all(not (s & test_pairs) for s in seen)
    train_pairs = set(zip(data.train.ratings["user_id"], data.train.ratings["item_id"]))
    assert seen[0] < train_pairs and seen[2] == train_pairs  # validation carved from train, then refitted


def test_unfitted_and_bad_arguments():
    with pytest.raises(rc.NotFittedError, match="not fitted yet"):
        rc.Blend([rc.Recommender("dot")]).predict([1], [2])
    with pytest.raises(ValueError, match="members must be a non-empty list"):
        rc.Blend([])
    with pytest.raises(TypeError, match=r"members\[1\] must be a ratecast Recommender, got str"):
        rc.Blend([rc.Recommender("dot"), "svd"])
    with pytest.raises(ValueError, match=r"validation_split must be a number in \(0, 1\), got 0"):
        rc.Blend([rc.Recommender("dot")], validation_split=0)

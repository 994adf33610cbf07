"""Nothing about the test split may reach a fitted model. A signal is planted that exists only in the test ratings:
if any feature, baseline, popularity or seen-item mask were computed from more than the training data, it shows."""

import numpy as np
import pandas as pd
import pytest

import ratecast as rc
from synthetic import make_dataset

FAST = dict(embedding_dim=4, epochs=2, batch_size=32, verbose=0)


@pytest.fixture(scope="module")
def planted():
    """A split whose test part makes item 101 the most rated and best rated item; in train it has one 1-star."""
    ds = make_dataset(n_users=40, n_items=24)
    r = ds.ratings[ds.ratings["item_id"] != 101]
    train = pd.concat([r, pd.DataFrame({"user_id": [1], "item_id": [101], "rating": [1.0], "timestamp": [0]})])
    test = pd.DataFrame({"user_id": np.arange(2, 41), "item_id": 101, "rating": 5.0, "timestamp": 1})
    full = ds.with_ratings(pd.concat([train, test], ignore_index=True))
    return full, full.with_ratings(train, "train"), full.with_ratings(test, "test")


@pytest.mark.parametrize("model", ["biased_dot", "hybrid"])
def test_planted_test_signal_never_reaches_the_model(planted, model):
    full, train, test = planted
    rec = rc.Recommender(model, random_state=0, **FAST).fit(train)
    assert rec.item_popularity[101] == 1  # popularity from train only
    assert rec.baseline_.item_bias[rec.item_index_.index([101])[0]] < 0  # its only training rating is 1 star
    # nobody but user 1 has seen it: it stays a candidate for everyone else
    assert rec.seen_items(2).tolist().count(101) == 0 and 101 in rec.seen_items(1)
    # a model fitted on the same training ratings taken from a data set without the planted test rows is identical
    clean = full.with_ratings(train.ratings.copy(), "clean train")
    twin = rc.Recommender(model, random_state=0, **FAST).fit(clean)
    users = test.ratings["user_id"].to_numpy()
    np.testing.assert_array_equal(rec.predict(users, np.full(len(users), 101)),
                                  twin.predict(users, np.full(len(users), 101)))


def test_hybrid_popularity_feature_counts_training_ratings_only(planted):
    _, train, _ = planted
    rec = rc.Recommender("hybrid", random_state=0, **FAST).fit(train)
    names = rec.encoder_.item_feature_names()
    table = np.asarray(rec.model_.item_feature_table)
    pop = table[:, names.index("popularity")]
    row = rec.item_index_.index([101])[0]
    # one training rating puts it at the very bottom of the popularity quantiles, not at the top
    assert pop[row] <= np.quantile(pop[1:], 0.05)

"""The parts of a model fitted apart from the engine (models.fitting): concurrent parts run at the same time, keep
the caller's progress reporter, share what they derive from the ratings, and hand their errors to the caller."""

import threading

import numpy as np
import pytest

import ratecast as rc
from ratecast.models.fitting import Fitter, Ratings, fit_after, report, reporting
from synthetic import make_dataset


def _given():
    return Ratings(np.array([1, 2]), np.array([1, 1]), np.array([4.0, 3.0]))


def test_concurrent_parts_run_at_the_same_time_and_keep_the_reporter():
    barrier = threading.Barrier(2, timeout=10)  # one after the other, the first part would wait here in vain
    lines, order = [], []

    class Meeting(Fitter):
        concurrent = True

        def __init__(self, name):
            self.name = name

        def after(self, model, given):
            barrier.wait()
            report(f"{self.name} met")
            return {self.name: [1.0]}

    class Last(Fitter):
        def after(self, model, given):
            order.append("last")  # runs once both concurrent parts have stopped
            assert len(lines) == 2

    with reporting(lines.append):
        history = fit_after((Meeting("a"), Meeting("b"), Last()), None, _given())
    assert sorted(lines) == ["a met", "b met"] and history == {"a": [1.0], "b": [1.0]} and order == ["last"]


def test_a_concurrent_part_error_reaches_the_caller_after_its_group_stops():
    finished = []

    class Fails(Fitter):
        concurrent = True

        def after(self, model, given):
            raise ArithmeticError("diverged")

    class Slow(Fitter):
        concurrent = True

        def after(self, model, given):
            threading.Event().wait(0.3)
            finished.append(True)

    with pytest.raises(ArithmeticError, match="diverged"):
        fit_after((Fails(), Slow()), None, _given())
    assert finished == [True]


def test_derived_data_is_made_once_per_fit_and_shared():
    given, calls = _given(), []
    make = lambda: calls.append(1) or np.arange(3)  # noqa: E731
    first = given.derived("x", make)
    assert given.derived("x", make) is first and calls == [1]
    assert _given().derived("x", make) is not first  # another fit's ratings derive their own


def test_implicit_heads_fitted_at_once_give_the_same_model_as_one_after_the_other(monkeypatch):
    train, test = rc.split.holdout(make_dataset(), test_size=0.2, random_state=0)
    options = dict(softmax_max_items=5, item_item_max_items=5, set_model_max_items=5, item_item_rank=4,
                   sampled_negatives=16, sampled_epochs=2, set_model_sampled_hidden=8, embedding_dim=4)
    together = rc.Recommender("implicit", random_state=0, verbose=0, **options).fit(train)
    monkeypatch.setattr(Fitter, "concurrent", False)
    from ratecast.models import implicit

    for part in ("FitItemItem", "FitSampledHeads", "FitSetHead"):
        monkeypatch.setattr(getattr(implicit, part), "concurrent", False)
    apart = rc.Recommender("implicit", random_state=0, verbose=0, **options).fit(train)
    users = test.ratings["user_id"].unique()[:5]
    pairs = test.ratings.head(50)
    np.testing.assert_array_equal(together.predict(pairs["user_id"], pairs["item_id"]),
                                  apart.predict(pairs["user_id"], pairs["item_id"]))
    for user in users:
        assert list(together.recommend(user, k=5)["item_id"]) == list(apart.recommend(user, k=5)["item_id"])

"""Training hardening: defaults that work on a small file, training options honoured or refused on each engine, a
memory check before training, and a validation share that never makes a training user unknown."""

import numpy as np
import pandas as pd
import pytest

import ratecast as rc
from ratecast import memory, presets
from ratecast.datasets import RatingScale
from ratecast.errors import TrainingError
from ratecast.models import MODELS, TrainingConfig
from cli_helpers import cli, one_line_error
from synthetic import make_dataset


def small_file(seed: int = 0) -> rc.Dataset:
    """3,000 ratings of 20 users over 500 items with item and user metadata; 150 ratings per user on average,
    skewed as real files are (the most active user has about 470, some 60 times in a batch of 1024)."""
    rng = np.random.default_rng(seed)
    n_users, n_items = 20, 500
    weight = np.arange(1, n_users + 1) ** -0.6
    counts = np.round(weight / weight.sum() * 3000).astype(int)
    users = np.repeat(np.arange(n_users), counts)
    pop = np.arange(1, n_items + 1) ** -0.5
    items = np.concatenate([rng.choice(n_items, c, replace=False, p=pop / pop.sum()) for c in counts])
    p, q = rng.normal(0, 0.5, (n_users, 4)), rng.normal(0, 0.5, (n_items, 4))
    raw = (3.5 + rng.normal(0, 0.5, n_users)[users] + rng.normal(0, 0.5, n_items)[items]
           + (p[users] * q[items]).sum(1) + rng.normal(0, 0.6, len(users)))
    ratings = pd.DataFrame({"user_id": users + 1, "item_id": items + 1, "rating": np.clip(np.round(raw), 1, 5),
                            "timestamp": 880_000_000 + 3600 * np.arange(len(users))})
    item_table = pd.DataFrame({"title": [f"Film {k} ({1950 + k % 60})" for k in range(1, n_items + 1)],
                               "release_year": 1950 + np.arange(1, n_items + 1) % 60,
                               "Drama": (np.arange(n_items) % 3 == 0).astype("int8")},
                              index=pd.Index(np.arange(1, n_items + 1), name="item_id"))
    user_table = pd.DataFrame({"age": 18 + 2 * np.arange(n_users), "gender": np.where(np.arange(n_users) % 2, "M", "F"),
                               "occupation": np.array(["writer", "student"])[np.arange(n_users) % 2]},
                              index=pd.Index(np.arange(1, n_users + 1), name="user_id"))
    return rc.Dataset(ratings, item_table, user_table, name="small", rating_scale=RatingScale(1, 5, 1),
                      genres=["Drama"])


@pytest.fixture(scope="module")
def small():
    return rc.split.holdout(small_file(), 0.2, random_state=0)


# only where the defaults take long on two cores: bayesian samples 8 chains of 55 sweeps (a minute on its own)
QUICKER = {"bayesian": {"chains": 2, "samples": 10}}


def _rmse(rec, test) -> float:
    r = test.ratings
    predicted = rec.predict(r["user_id"], r["item_id"])
    assert np.isfinite(predicted).all()
    return float(np.sqrt(np.mean((r["rating"].to_numpy() - predicted) ** 2)))


def _mean_rmse(split) -> float:
    mean = split.train.ratings["rating"].mean()
    return float(np.sqrt(np.mean((split.test.ratings["rating"].to_numpy() - mean) ** 2)))


@pytest.mark.parametrize("model", sorted(MODELS))
def test_defaults_that_fail_on_small_data_every_model(small, model):
    """Every model at its defaults trains on a 3,000-rating file of 20 users: no divergence, finite predictions,
    a training loss that falls, and held-out ratings predicted better than by the training mean."""
    rec = rc.Recommender(model, random_state=0, verbose=0, **QUICKER.get(model, {})).fit(small.train)
    rmse = _rmse(rec, small.test)
    loss = rec.history_["loss"]
    assert np.isfinite(loss).all() and loss[-1] < loss[0], loss
    assert rmse < _mean_rmse(small)


@pytest.mark.parametrize("preset", ["fast", "topn", "accurate", "lab"])
def test_defaults_that_fail_on_small_data_every_preset(small, preset):
    """The recommended presets train on the small file and predict held-out ratings better than the training
    mean does."""
    model = presets.resolve(preset)[0]
    rec = rc.Recommender.from_preset(preset, random_state=0, verbose=0, **QUICKER.get(model, {})).fit(small.train)
    assert _rmse(rec, small.test) < _mean_rmse(small)


def test_defaults_that_fail_on_small_data_the_summed_row_step_is_bounded():
    """The mechanism: under per-example SGD, a row seen c times in a batch moves by its c summed gradients only
    while learning_rate * c stays within ROW_RATE_LIMIT (or the learning rate, where larger); beyond it the step
    is the limit's worth."""
    import jax.numpy as jnp

    from ratecast.optim import ROW_RATE_LIMIT, Update

    rule, lr = Update("sgd"), 0.01
    table = jnp.zeros((3, 2), "float32")
    many = int(4 * ROW_RATE_LIMIT / lr)
    ids = jnp.asarray([1] * many + [2] * 3, "int32")
    grads = jnp.ones((len(ids), 2), "float32")
    new, _, _ = rule.apply_rows(table, (), ids, grads, jnp.int32(1), lr)
    new = np.asarray(new)
    np.testing.assert_allclose(new[1], -ROW_RATE_LIMIT, rtol=1e-5)  # capped: not -4 * ROW_RATE_LIMIT
    np.testing.assert_allclose(new[2], -3 * lr, rtol=1e-5)  # a few repeats: summed as before
    assert not new[0].any()
    big = 2 * ROW_RATE_LIMIT  # a learning rate above the limit is the user's: a repeated row moves by it, once
    new, _, _ = rule.apply_rows(table, (), ids, grads, jnp.int32(1), big)
    np.testing.assert_allclose(np.asarray(new)[1], -big, rtol=1e-5)


# each training option, a base value and another; None: the option is the engine itself
OTHER_VALUE = {
    "epochs": 3, "batch_size": 16, "learning_rate": 0.03, "optimizer": "sgd", "early_stopping": 1,
    "validation_split": 0.3, "lr_schedule": "cosine", "monitor": "val_top_n", "table_optimizer": "adagrad",
    "table_learning_rate": 0.05, "engine": None,
}
BASE = dict(embedding_dim=4, epochs=4, batch_size=32, learning_rate=0.01, optimizer="adam", early_stopping=None,
            validation_split=0.2, lr_schedule="constant", monitor="val_loss", verbose=0)
# where an option acts only in some fits: a fast learning rate that overfits, so early stopping has epochs to stop
ACTS_IN = {"early_stopping": dict(learning_rate=0.1, epochs=8),
           "monitor": dict(learning_rate=0.1, epochs=8, early_stopping=1)}


def test_options_must_never_be_silently_ignored_every_option_is_listed():
    assert set(OTHER_VALUE) == TrainingConfig.field_names()


@pytest.fixture(scope="module")
def synthetic_train():
    return rc.split.holdout(make_dataset(n_users=40, n_items=30), test_size=0.2, random_state=0).train


@pytest.mark.parametrize("engine", ["jax", "keras"])
@pytest.mark.parametrize("option", sorted(k for k, v in OTHER_VALUE.items() if k != "engine"))
def test_options_must_never_be_silently_ignored(synthetic_train, engine, option):
    """On each engine, changing a training option changes the fit (its weights or its history), or the option is
    refused with an error that names it."""
    base = {**BASE, **ACTS_IN.get(option, {}), "engine": engine}
    changed = {**base, option: OTHER_VALUE[option]}
    try:
        other = rc.Recommender("biased_dot", random_state=0, **changed).fit(synthetic_train)
    except ValueError as exc:
        assert option in str(exc) and engine == "keras", exc
        return
    fit = rc.Recommender("biased_dot", random_state=0, **base).fit(synthetic_train)
    r = synthetic_train.ratings
    same_weights = np.allclose(fit.predict(r["user_id"], r["item_id"]), other.predict(r["user_id"], r["item_id"]),
                               rtol=0, atol=1e-7)
    same_history = fit.history_.keys() == other.history_.keys() and all(
        np.allclose(fit.history_[k], other.history_[k], rtol=0, atol=1e-7) if len(fit.history_[k]) ==
        len(other.history_[k]) else False for k in fit.history_)
    assert not (same_weights and same_history), f"{option} changed nothing on engine {engine}"


def test_memory_check_before_training(monkeypatch, synthetic_train):
    """A configuration that cannot fit in the memory available is refused before training, in one line that names
    the option, the estimate and the memory available; one whose coarse bound is too large but whose measured need
    fits is trained."""
    monkeypatch.setattr(memory, "device_memory", lambda: None)
    monkeypatch.setattr(memory, "available_memory", lambda: 10 << 20)  # 10 MB: embedding_dim 4096 needs ~40 here
    rec = rc.Recommender("deep", embedding_dim=4096, epochs=1, random_state=0, verbose=0)
    with pytest.raises(TrainingError, match=r"training 'deep' with embedding_dim=4096.* needs about [\d.]+ MB "
                                            r"of memory, more than the 10.0 MB available; lower embedding_dim"):
        rec.fit(synthetic_train)
    with pytest.raises(rc.NotFittedError):
        rec.predict([1], [101])
    rc.Recommender("deep", embedding_dim=8, epochs=1, random_state=0, verbose=0).fit(synthetic_train)  # small fits
    monkeypatch.setattr(memory, "available_memory", lambda: 50 << 20)  # over the bound (~100 MB), not the need
    rec.fit(synthetic_train)


def test_memory_check_before_training_a_sampled_model(monkeypatch, synthetic_train):
    """The sampled model, which the training engine does not fit, shares the rule: one chain that cannot fit is
    refused before sampling."""
    monkeypatch.setattr(memory, "device_memory", lambda: None)
    monkeypatch.setattr(memory, "available_memory", lambda: 1 << 20)
    with pytest.raises(TrainingError, match=r"'bayesian' with embedding_dim=4096, stored_samples=2 over [\d,]+ users "
                                            r"and [\d,]+ items needs about [\d.]+ MB of memory, more than the 1.0 MB "
                                            r"available"):
        rc.Recommender("bayesian", embedding_dim=4096, chains=1, samples=2, random_state=0).fit(synthetic_train)


def test_memory_check_before_training_on_the_command_line(monkeypatch, tmp_path):
    monkeypatch.setattr(memory, "available_memory", lambda: 10 << 20)
    monkeypatch.setattr(memory, "device_memory", lambda: None)
    ratings = tmp_path / "ratings.csv"
    make_dataset(n_users=40, n_items=30).ratings.to_csv(ratings, index=False)
    res = cli("train", "--data", ratings, "--model", "deep", "--embedding-dim", "4096", "--epochs", "1", "-q",
              "--out", tmp_path / "run")
    one_line_error(res, 1, "embedding_dim=4096", "needs about", "10.0 MB available")
    assert not (tmp_path / "run").exists()


def test_users_who_lose_every_rating_to_the_early_stopping_share():
    """The validation share carved from train never takes a user's or an item's last rating: every training user
    stays known, and is never recommended an item they rated."""
    ds = make_dataset(n_users=30, n_items=24)
    r = ds.ratings
    rng = np.random.default_rng(1)
    sparse = [pd.DataFrame({"user_id": 1000 + u, "item_id": rng.choice(r["item_id"].unique(), 1 + u % 2,
                                                                        replace=False), "rating": 4.0,
                            "timestamp": 0}) for u in range(20)]
    ds = ds.with_ratings(pd.concat([r, *sparse], ignore_index=True))
    rec = rc.Recommender("biased_dot", embedding_dim=4, epochs=2, validation_split=0.5, random_state=0,
                         verbose=0).fit(ds)
    known = rec.state_.user_index
    every_user = ds.ratings["user_id"].unique()
    assert (known.index(every_user) > 0).all()
    assert (rec.state_.item_index.index(ds.ratings["item_id"].unique()) > 0).all()
    assert len(rec.history_["val_loss"]) == 2  # a validation share was still carved
    for user in range(1000, 1020):
        rated = set(ds.ratings.loc[ds.ratings["user_id"] == user, "item_id"])
        out = rec.recommend(user, k=5)
        assert not out.attrs.get("fallback") and not rated & set(out["item_id"])


def test_options_must_never_be_silently_ignored_table_rule_on_keras_fit():
    """A model's default table rule goes with the compiled engine (engine "keras" drops it); one the user gives is
    refused wherever Keras fit would train: engine "keras", or "auto" with an optimizer only Keras implements."""
    from ratecast.models import split_params

    _, tcfg = split_params("deep", {"engine": "keras"})
    assert (tcfg.table_optimizer, tcfg.table_learning_rate) == ("same", None)
    for options in ({"engine": "keras", "table_optimizer": "adagrad"}, {"optimizer": "rmsprop",
                                                                       "table_learning_rate": 0.05}):
        with pytest.raises(ValueError, match=r"table_(optimizer|learning_rate)=.* needs engine 'jax'.*engine 'keras'"):
            rc.Recommender("deep", **options)


def test_a_default_batch_gives_small_data_enough_steps_and_a_given_one_is_kept(small):
    rec = rc.Recommender("dot", random_state=0, verbose=0, epochs=1).fit(small.train)
    n_fit = len(small.train.ratings) * 0.9
    assert rec.training_config_.batch_size <= n_fit // TrainingConfig.MIN_STEPS_PER_EPOCH < 1024
    given = rc.Recommender("dot", random_state=0, verbose=0, epochs=1, batch_size=1024).fit(small.train)
    assert given.training_config_.batch_size == 1024
    assert TrainingConfig(batch_size=1024).with_batch_for(80_000).batch_size == 1024  # ML-100k keeps its default


@pytest.fixture
def python_sigint():
    """SIGINT handled as Python does in a terminal (a test runner started in the background has it ignored)."""
    import signal

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("engine", ["jax", "keras"])
def test_ctrl_c_in_a_finaliser_still_stops_a_fit_at_the_end_of_the_epoch(engine, python_sigint):
    """SIGINT that lands while Python runs a weak-reference callback (a JAX buffer's or a driver's finaliser) is not
    swallowed: the fit stops at the end of that epoch with KeyboardInterrupt, and the estimator is left unfitted."""
    import os
    import signal
    import weakref

    class Token:
        pass

    def interrupt_inside_a_finaliser(ref) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(10_000):  # the signal is handled here, inside the callback
            pass

    refs = []

    def on_epoch(epoch, logs) -> None:
        if epoch == 0:
            token = Token()
            refs.append(weakref.ref(token, interrupt_inside_a_finaliser))
            del token

    seen = []
    rec = rc.Recommender("biased_dot", random_state=0, verbose=0, epochs=20, early_stopping=None, engine=engine)
    with pytest.raises(KeyboardInterrupt):
        rec.fit(make_dataset(n_users=30, n_items=20), on_epoch=lambda e, logs: (seen.append(e), on_epoch(e, logs)))
    assert seen[-1] <= 1  # it stopped at the end of an epoch, not after all 20
    with pytest.raises(rc.NotFittedError):
        rec.state_

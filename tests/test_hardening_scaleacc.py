"""Model ``bayesian`` inside a budget: a fit that cannot stay inside its memory budget is refused in one line before
it samples; its chains, samples and stored tables are sized from the budgets; its extra features are drawn jointly
(conjugate gradients), not one sequential step per feature."""

import numpy as np
import pytest

import ratecast as rc
from ratecast import memory
from ratecast.errors import TrainingError
from cli_helpers import cli, one_line_error
from synthetic import make_dataset

SMALL = dict(samples=4, burn_in=2, embedding_dim=4, chains=1, verbose=0)
ML25M = (162_542, 59_048)  # ML-25M's vocabulary, index 0 (unknown) included


@pytest.fixture
def idle_machine(monkeypatch):
    """A 24 GB machine with nothing else running (the budget's cap by the available memory is not what is tested)."""
    monkeypatch.setattr(memory, "available_memory", lambda: 24 << 30)
    monkeypatch.setattr(memory, "device_memory", lambda: None)


def test_fit_over_its_memory_budget_is_refused_in_one_line_before_sampling(idle_machine, monkeypatch):
    import ratecast.models.gibbs as gibbs

    sampled = []
    monkeypatch.setattr(gibbs, "sample", lambda *a, **k: sampled.append(1))
    rec = rc.Recommender("bayesian", random_state=0, memory_budget=0.0001, **SMALL)  # 100 kB
    with pytest.raises(TrainingError) as err:
        rec.fit(make_dataset())
    message = str(err.value)
    assert "\n" not in message and not sampled
    for needle in ("needs about", "budget of 97.7 KB", "memory_budget", "embedding_dim=4", "stored_samples="):
        assert needle in message, message


def test_cli_fit_over_its_memory_budget_exits_1_with_one_line(idle_machine, tmp_path):
    ratings = tmp_path / "ratings.csv"
    make_dataset().ratings.to_csv(ratings, index=False)
    res = cli("train", "--data", ratings, "--preset", "accurate", "--set", "memory_budget=0.0001", "-q",
              "--out", tmp_path / "run")
    one_line_error(res, 1, "memory_budget", "needs about", "more than its budget")
    assert not (tmp_path / "run").exists()


def test_tables_store_fewer_samples_at_ml25m_vocabulary_and_every_sample_at_ml100k():
    from ratecast.models.sampling_budget import DEFAULT_MEMORY_GB, TABLE_SHARE, stored_samples, table_bytes

    assert stored_samples(1683, 16, 400, None, None) == 400  # ML-100k: every sample, as before
    stored = stored_samples(ML25M[1], 16, 400, None, None)
    assert 1 <= stored < 400
    assert table_bytes(*ML25M, 16, stored) <= 1.5 * TABLE_SHARE * DEFAULT_MEMORY_GB * 1e9  # users counted 2 per item
    assert stored_samples(ML25M[1], 16, 400, 300, None) == 300  # an option given is kept
    assert stored_samples(ML25M[1], 16, 400, None, 4 * DEFAULT_MEMORY_GB) > stored  # a larger budget stores more


def test_stored_samples_sizes_the_tables_and_fold_in(idle_machine):
    ds = make_dataset()
    rec = rc.Recommender("bayesian", random_state=0, **{**SMALL, "chains": 2, "stored_samples": 3}).fit(ds)
    assert rec.model_.user_embedding.embeddings.shape[1] == 3 * 4
    assert rec.model_.summarised and rec.model_.fold_in_blocks() == 1 and len(rec.history_["loss"]) == 2 + 4
    r = ds.ratings.iloc[:50]
    assert np.isfinite(rec.predict(r["user_id"], r["item_id"])).all()
    new = r.head(5).assign(user_id=999)
    folded = rec.fold_in(new[["user_id", "item_id", "rating"]])
    assert np.isfinite(folded.predict([999] * 3, r["item_id"].iloc[:3])).all()
    # stored samples sized by the budget: a fold-in that grows the user rows keeps the tables' width
    capped = rc.Recommender("bayesian", random_state=0, memory_budget=0.0006, **{**SMALL, "samples": 8}).fit(ds)
    assert 1 < capped.model_.stored < 8
    grown = capped.fold_in(new[["user_id", "item_id", "rating"]])
    assert np.isfinite(grown.predict([999] * 3, r["item_id"].iloc[:3])).all()


def test_time_budget_lowers_chains_then_samples_and_keeps_options_given(idle_machine):
    from ratecast.models.sampling_budget import Shape, plan, stored_samples

    shape = Shape(25_000_000, *ML25M, sum(ML25M), 16, 50_000_000)
    stored = stored_samples(ML25M[1], 16, 400, None, None)
    # the defaults fit 25 M ratings at ML-25M's vocabulary on a 24 GB, 2-core machine
    auto = plan(shape, chains=None, samples=None, burn_in=5, stored=stored, n_cores=2)
    assert auto.memory_bytes <= auto.memory_budget <= 16e9
    assert auto.chains * auto.samples >= stored and auto.chains < 8 and auto.samples < 50
    assert auto.seconds <= auto.time_budget
    given = plan(shape, chains=8, samples=50, burn_in=5, stored=20, n_cores=2, memory_gb=20)
    assert (given.chains, given.samples) == (8, 50) and given.seconds > given.time_budget
    small = Shape(80_000, 944, 1683, 944 + 1683 + 40, 16)
    assert (plan(small, chains=None, samples=None, burn_in=5, stored=400, n_cores=2).chains,
            plan(small, chains=None, samples=None, burn_in=5, stored=400, n_cores=2).samples) == (8, 50)


def test_list_sums_are_the_sparse_products_and_conjugate_gradients_solve():
    import jax.numpy as jnp

    from ratecast.models.gibbs import conjugate_gradients, list_sums, padded_lists

    rng = np.random.default_rng(0)
    X = (rng.random((30, 20)) < 0.2) * rng.random((30, 20))
    owner, feature = np.nonzero(X)
    table = rng.normal(size=(20, 3)).astype("float32")
    by_owner = [tuple(map(jnp.asarray, b)) for b in padded_lists(owner, feature, X[owner, feature], 30, 2,
                                                                 empty=False)]
    by_feature = [tuple(map(jnp.asarray, b)) for b in padded_lists(feature, owner, X[owner, feature], 20, 2)]
    np.testing.assert_allclose(list_sums(by_owner, jnp.asarray(table), 30), X @ table, atol=1e-5)
    np.testing.assert_allclose(list_sums(by_feature, jnp.asarray(X @ table), 20), X.T @ X @ table, atol=1e-4)
    A = X.T @ X + 0.1 * np.eye(20)
    b = rng.normal(size=(20, 3)).astype("float32")
    x, steps = conjugate_gradients(lambda v: jnp.asarray(A, "float32") @ v, jnp.asarray(b), lambda r: r, 1e-6, 200)
    np.testing.assert_allclose(x, np.linalg.solve(A, b), rtol=1e-3, atol=1e-3)
    assert 0 < int(steps) <= 60


def test_features_are_drawn_jointly_in_few_steps_whatever_the_vocabulary():
    """The implicit features (one per user and per item) are drawn in one joint solve a side: its steps stay few
    at a vocabulary ten times larger, instead of one sequential step per feature."""
    from ratecast.models.bayesian import implicit_group
    from ratecast.models.gibbs import CG_MAX_STEPS, Block, sample

    steps = []
    for n_users, n_items in ((60, 40), (600, 400)):
        rng = np.random.default_rng(0)
        u = rng.integers(1, n_users, 2000)
        i = rng.integers(1, n_items, 2000)
        y = 3 + rng.normal(0, 1, 2000)
        ub = Block.from_sparse(n_users, [implicit_group(u, i, n_users, n_items)])
        ib = Block.from_sparse(n_items, [implicit_group(i, u, n_items, n_users)])
        post = sample(u, i, y, ub, ib, rank=3, samples=4, burn_in=2, seed=0)
        assert np.isfinite(post.user_factors).all()
        steps.append(post.solver_steps.max())
    assert max(steps) < CG_MAX_STEPS and steps[1] < 10 * steps[0], steps


def test_summarised_tables_predict_closer_to_every_sample_than_a_few_samples(idle_machine):
    """Where the tables cannot store every sample, each chain's mean factors (from every sample) plus a few
    samples' deviations from it predict closer to the average over every sample than a few samples alone."""
    ds = make_dataset(n_users=40, n_items=30, density=0.4)
    kw = {**SMALL, "chains": 2, "samples": 6, "embedding_dim": 3}
    fits = {stored: rc.Recommender("bayesian", random_state=0, stored_samples=stored, **kw).fit(ds)
            for stored in (None, 2, 4)}  # every sample; two of them (one a chain); each chain's mean and one more
    assert not fits[None].model_.summarised and not fits[2].model_.summarised and fits[4].model_.summarised
    r = ds.ratings
    full, few, summarised = (fits[k].predict(r["user_id"], r["item_id"]) for k in (None, 2, 4))
    assert np.sqrt(np.mean((summarised - full) ** 2)) < 0.5 * np.sqrt(np.mean((few - full) ** 2))


def test_sampler_reports_its_sweeps_from_every_chain_when_verbose(idle_machine, capsys):
    rc.Recommender("bayesian", random_state=0, **{**SMALL, "chains": 2, "verbose": True}).fit(make_dataset())
    lines = capsys.readouterr().err.splitlines()
    assert any(line.startswith("Gibbs sampling") and "2 chains" in line for line in lines), lines
    # the last sweep ends in a chain's own thread, and is reported with the training RMSE
    assert any("sweep 12/12, training RMSE" in line for line in lines), lines
    rc.Recommender("bayesian", random_state=0, **SMALL).fit(make_dataset())
    assert "Gibbs sampling" not in capsys.readouterr().err  # quiet unless verbose


def test_prior_scale_is_found_in_few_sweeps_where_most_rows_have_one_rating():
    from ratecast.models.gibbs import Block, sample

    # 3,000 items, each rated twice for fitting and once for testing, with biases of spread 1 (noise 0.5): the
    # bias prior's precision must come from the rows' data, not from their draws (which follow the prior)
    rng = np.random.default_rng(0)
    n_items, n_users = 3000, 50
    bias = rng.normal(0, 1, n_items + 1)
    items = np.repeat(np.arange(1, n_items + 1), 3)
    users = rng.integers(1, n_users + 1, len(items))
    y = 3 + bias[items] + rng.normal(0, 0.5, len(items))
    test = np.arange(len(items)) % 3 == 2
    post = sample(users[~test], items[~test], y[~test], Block.from_sparse(n_users + 1, []),
                  Block.from_sparse(n_items + 1, []), rank=1, samples=10, burn_in=5, seed=0)
    pred = post.w0 + post.user_bias[users] + post.item_bias[items]
    rmse = np.sqrt(np.mean((pred[test] - y[test]) ** 2))
    # the Bayes estimate knowing the spreads: each item's mean fitting rating shrunk by 1 / (1 + 0.25 / 2)
    oracle = 3 + (y[~test].reshape(-1, 2).mean(1) - 3) / 1.125
    best = np.sqrt(np.mean((oracle - y[test]) ** 2))
    assert rmse < 1.03 * best, (rmse, best)


def test_priors_are_drawn_collapsed_only_where_the_median_user_or_item_is_sparsely_rated():
    from ratecast.models.bayesian import BayesianConfig, sparse

    rng = np.random.default_rng(0)
    dense_users, dense_items = rng.integers(1, 50, 5000), rng.integers(1, 80, 5000)  # ~100 and ~60 ratings each
    sparse_users = rng.integers(1, 2000, 5000)  # ~2.5 ratings a user
    assert not sparse(dense_users, dense_items, 10)
    assert sparse(sparse_users, dense_items, 10)
    assert not sparse(sparse_users, dense_items, 0)  # 0: never
    assert BayesianConfig.saved_before({"embedding_dim": 8}, 10)["collapse_below"] == 0  # fitted as before

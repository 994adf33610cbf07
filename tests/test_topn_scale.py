"""The implicit model (the ``topn`` preset) above its large-catalogue thresholds: the sampled softmax and its log-Q
correction, the low-rank item-item head against exact EASE, every head on and fitted, memory refused in one line."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ratecast as rc
from ratecast.models import item_item as ii
from ratecast.models.sampled import PackedSets, sampled_log_partition, sampler
from synthetic import make_dataset

LARGE = dict(softmax_max_items=5, item_item_max_items=5, set_model_max_items=5, item_item_rank=4,
             sampled_negatives=16, sampled_epochs=2, set_model_sampled_hidden=8, embedding_dim=4)


def test_sampled_softmax_with_log_q_matches_the_full_gradient_in_expectation():
    logits = jnp.asarray([2.0, -1.0, 0.5, 1.5, -0.5, 0.0])
    q = jnp.asarray([0.4, 0.3, 0.1, 0.1, 0.05, 0.05])  # far from the softmax: the correction has work to do
    target, draws, k = 3, 4000, 64
    full = jax.grad(lambda o: -(o[target] - jax.nn.logsumexp(o)))(logits)

    def sampled_grad(key, corrected):
        negs = jax.random.choice(key, len(q), (k,), p=q)
        log_q = jnp.log(q[negs]) if corrected else jnp.full(k, -np.log(len(q)))
        return jax.grad(lambda o: -(o[target] - sampled_log_partition(o[negs], log_q, k)))(logits)

    keys = jax.random.split(jax.random.PRNGKey(0), draws)
    with_q = jnp.mean(jax.vmap(lambda key: sampled_grad(key, True))(keys), axis=0)
    without = jnp.mean(jax.vmap(lambda key: sampled_grad(key, False))(keys), axis=0)
    np.testing.assert_allclose(with_q, full, atol=0.02)
    assert float(jnp.max(jnp.abs(without - full))) > 0.1  # the uncorrected estimate learns the sampler instead


def test_sampler_never_draws_the_unknown_item_and_follows_popularity():
    q = sampler(np.array([0, 10, 0, 100]))
    assert q[0] == 0 and q[3] > q[1] > q[2] > 0 and q.sum() == pytest.approx(1)


def test_packed_steps_hold_every_pair_once_with_whole_users_in_one_shape():
    rng = np.random.default_rng(0)
    counts = np.array([0, 3, 40, 9, 0, 64, 1, 17, 33, 5])
    sets = np.zeros((len(counts), 64), "int32")
    for u, c in enumerate(counts):
        sets[u, :c] = rng.choice(np.arange(1, 100), c, replace=False)
    weights = np.where(sets > 0, rng.random(sets.shape), 0).astype("float32")
    packed = PackedSets(sets, weights, pairs=80)
    batches = list(packed.batches(np.random.default_rng(1)))
    assert len(batches) == packed.steps()
    seen = []
    for batch in batches:
        assert batch.items.shape == (80,) and batch.users.shape == (packed.users_per_step,)
        assert np.all(np.diff(batch.slot) >= 0)  # pairs grouped by user, in slot order
        for slot, user in enumerate(batch.users):
            mine = (batch.slot == slot) & (batch.items > 0)
            if user:
                assert sorted(batch.items[mine]) == sorted(sets[user, :counts[user]])  # the whole set, together
                np.testing.assert_array_equal(np.sort(batch.values[0][mine]), np.sort(weights[user, :counts[user]]))
                seen.append(user)
            else:
                assert not mine.any()
    assert sorted(seen) == [1, 2, 3, 5, 6, 7, 8, 9]
    filled = sum(int((b.items > 0).sum()) for b in batches)
    assert filled == counts.sum() and len(batches) < len(seen)  # several users share a step


def _sets(seed=0, users=40, items=15):
    rng = np.random.default_rng(seed)
    sets = np.zeros((users, 8), "int32")
    weights = np.zeros((users, 8), "float32")
    for u in range(users):
        k = rng.integers(1, 8)
        sets[u, :k] = rng.choice(np.arange(1, items), k, replace=False)
        weights[u, :k] = rng.choice([1.0, 0.5], k)
    return ii.set_matrix(sets, weights, items)


def test_low_rank_item_item_at_full_rank_is_exact_ease():
    X = _sets()
    B = ii.exact_weights(X, 10.0)
    U, inv_d = ii.low_rank_factors(X, 10.0, rank=X.shape[1], seed=0)
    x = X.toarray()
    np.testing.assert_allclose(ii.low_rank_scores(x, U, inv_d), x @ B, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(ii.low_rank_stats(X, U, inv_d), ii.exact_stats(X, B), rtol=1e-3, atol=1e-4)


def test_low_rank_stats_are_those_of_the_scores():
    X = _sets(seed=1)
    U, inv_d = ii.low_rank_factors(X, 10.0, rank=3, seed=0)
    scores = ii.low_rank_scores(X.toarray(), U, inv_d)[:, 1:]
    np.testing.assert_allclose(ii.low_rank_stats(X, U, inv_d), np.stack([scores.mean(1), scores.std(1)], 1),
                               rtol=1e-3, atol=1e-5)


@pytest.fixture(scope="module")
def data():
    return rc.split.holdout(make_dataset(), test_size=0.2, random_state=0)


@pytest.fixture(scope="module")
def large(data):
    return rc.Recommender("implicit", random_state=0, verbose=0, **LARGE).fit(data.train)


def test_every_head_is_on_and_fitted_above_the_thresholds(large, data):
    m = large.model_
    assert m.n_items - 1 > 5
    assert m.sampled_training and not m.trained_by_gradient  # rating and pick heads: the sampled trainer
    assert m.item_item.low_rank and tuple(m.item_item.weights_table.shape) == (m.n_items, 4)
    assert m.set_model_sampled and float(np.asarray(m.set_head.fitted)) == 1
    assert np.abs(np.asarray(m.item_item.weights_table)).sum() > 0 and np.asarray(m.item_item.stats)[1:, 1].max() > 0
    assert len(large.history_["loss"]) >= LARGE["sampled_epochs"]  # more passes on data this small
    fresh = type(m).from_config(m.get_config()).build_now()  # the same seeded start, untrained
    for table in (lambda x: x.pick.factors, lambda x: x.implicit_factors.embeddings,
                  lambda x: x.item_embedding.embeddings):
        trained, start = (np.asarray(table(x)) for x in (m, fresh))
        assert np.all(np.isfinite(trained)) and not np.allclose(trained, start)
    r = data.test.ratings
    pred = large.predict(r["user_id"], r["item_id"])
    assert np.all(np.isfinite(pred))
    metrics = large.top_n_metrics(data.test)
    assert 0 <= metrics["recall@10"] <= 1


def test_all_items_scoring_equals_pair_scoring_above_the_thresholds(large):
    m = large.model_
    users = np.arange(1, 6, dtype="int32")
    every = np.asarray(m.score_items(users))  # (users, items - 1, 3)
    items = np.tile(np.arange(1, m.n_items, dtype="int32"), len(users))
    pairs = np.asarray(m({"user": np.repeat(users, m.n_items - 1), "item": items}, training=False))
    np.testing.assert_allclose(every.reshape(-1, 3), pairs, rtol=1e-4, atol=1e-4)


def test_exact_item_item_head_that_does_not_fit_is_refused_in_one_line(large):
    m = large.model_
    exact = type(m).from_config({**m.get_config(), "config": {**m.cfg.to_dict(), "item_item_max_items": 12000}})
    with pytest.raises(ValueError, match=r"^item_item_max_items: the exact item-item head of \d+ items needs .* "
                                         r"set item_item_max_items below") as info:
        exact.check_memory(available=100)
    assert "\n" not in str(info.value)


def test_low_rank_item_item_head_that_does_not_fit_is_refused_in_one_line(large):
    with pytest.raises(ValueError, match=r"^item_item_rank: the low-rank item-item head of rank 4 .* needs .* lower "
                                         r"item_item_rank") as info:
        large.model_.check_memory(available=100)
    assert "\n" not in str(info.value)


def test_pairs_are_scored_in_chunks_that_bound_the_whole_catalogue_rows(large, monkeypatch):
    from ratecast import ranking

    m = large.model_
    assert m.pair_row_floats >= m.n_items - 1
    monkeypatch.setattr(ranking, "SCORE_BUDGET", 300 * m.pair_row_floats)  # chunks of 300 pairs: four of them
    u = np.ones(1000, "int32")
    i = (np.arange(1000) % (m.n_items - 1) + 1).astype("int32")
    out, _ = ranking.Scorer(m).pairs(u, i)
    assert out.shape == (1000, 3)
    np.testing.assert_allclose(out, np.asarray(m({"user": u, "item": i}, training=False)), rtol=1e-4, atol=1e-4)


def test_a_verbose_fit_reports_each_pass_of_the_sampled_trainers(data, capsys):
    rc.Recommender("implicit", random_state=0, verbose=1, epochs=1, **LARGE).fit(data.train)
    err = capsys.readouterr().err
    assert "item-item head (low-rank EASE, rank 4)" in err
    assert "rating and pick heads (sampled softmax): pass 1/" in err
    assert "set head (sampled softmax): pass 1/" in err
    rc.Recommender("implicit", random_state=0, verbose=0, epochs=1, **LARGE).fit(data.train)
    assert "sampled softmax" not in capsys.readouterr().err  # quiet fits say nothing


def test_ratings_by_user_give_the_pairs_ratings_in_the_callers_order(large, monkeypatch):
    from ratecast import ranking

    m = large.model_
    assert m.capabilities.rates_by_user
    rng = np.random.default_rng(0)
    u = rng.integers(1, m.n_users, 500).astype("int32")  # users repeat, in no order
    i = rng.integers(1, m.n_items, 500).astype("int32")
    expected = ranking.Scorer(m).pairs(u, i)[1]
    np.testing.assert_allclose(ranking.Scorer(m).ratings(u, i), expected, rtol=1e-5, atol=1e-5)
    monkeypatch.setattr(ranking, "PAIR_CHUNK", 7)  # a user's pairs split across chunks
    np.testing.assert_allclose(ranking.Scorer(m).ratings(u, i), expected, rtol=1e-5, atol=1e-5)


def test_low_rank_stats_are_the_same_in_chunks_bounded_by_set_entries():
    X = _sets(seed=2)
    U, inv_d = ii.low_rank_factors(X, 10.0, rank=3, seed=0)
    np.testing.assert_allclose(ii.low_rank_stats(X, U, inv_d, nonzeros=5), ii.low_rank_stats(X, U, inv_d),
                               rtol=1e-6, atol=1e-7)


def test_a_config_saved_before_the_large_variants_keeps_the_model_it_was():
    from ratecast.models.implicit import ImplicitConfig

    today = ImplicitConfig().to_dict()
    old = {k: v for k, v in today.items() if k not in ImplicitConfig.LARGE_CATALOGUE_OPTIONS}
    small = ImplicitConfig.saved_before(old, 1682)
    assert small["item_item_weight"] == old["item_item_weight"] and small["softmax_max_items"] == 1 << 24
    ImplicitConfig.from_dict(small)  # a complete, valid config
    large = ImplicitConfig.saved_before(old, 59047)  # its item-item and set heads were off
    assert large["item_item_weight"] == 0 and large["set_model_weight"] == 0
    assert ImplicitConfig.saved_before(today, 59047) == today  # a config saved with the options is kept as saved


def test_a_model_that_its_size_keeps_off_the_engine_carves_no_validation_share(data, monkeypatch):
    import ratecast.recommender as recommender

    def carve(*args, **kwargs):
        raise AssertionError("carved a validation share that nothing reads")

    monkeypatch.setattr(recommender, "validation_share", carve)
    rec = rc.Recommender("implicit", random_state=0, verbose=0, **LARGE).fit(data.train)  # every rating kept
    assert not rec.model_.trained_by_gradient
    small = dict(LARGE, softmax_max_items=10**6)  # trained by the engine: it needs the share to stop early
    with pytest.raises(AssertionError, match="carved"):
        rc.Recommender("implicit", random_state=0, verbose=0, **small).fit(data.train)

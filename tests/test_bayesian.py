"""The Bayesian factorisation model: its Gibbs sampler recovers planted structure, its feature blocks hold every
entry once, it uses the metadata the data has, and the accurate preset trains it (command line included) without
ever seeing the test ratings."""

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import ratecast as rc
from ratecast.cli import app
from ratecast.errors import TrainingError
from ratecast.models.bayesian import implicit_group
from ratecast.models.gibbs import Block, chain_seed, owner_sums, padded_lists, sample
from synthetic import make_dataset

SMALL = dict(samples=4, burn_in=2, embedding_dim=4, chains=1, verbose=0)


def planted(n_users=60, n_items=40, density=0.6, noise=0.5, seed=0):
    """Ratings = 3 + user bias + item bias + a rank-2 product + Gaussian noise (not rounded)."""
    rng = np.random.default_rng(seed)
    bu, bi = rng.normal(0, 0.5, n_users), rng.normal(0, 0.5, n_items)
    p, q = rng.normal(0, 0.7, (n_users, 2)), rng.normal(0, 0.7, (n_items, 2))
    u, i = np.nonzero(rng.random((n_users, n_items)) < density)
    clean = 3 + bu[u] + bi[i] + (p[u] * q[i]).sum(1)
    return u + 1, i + 1, clean, clean + rng.normal(0, noise, len(u))


def test_sampler_recovers_a_planted_low_rank_model_and_its_noise():
    u, i, clean, y = planted()
    hold = np.random.default_rng(1).random(len(y)) < 0.2
    empty_u, empty_i = Block.from_sparse(61, []), Block.from_sparse(41, [])
    post = sample(u[~hold], i[~hold], y[~hold], empty_u, empty_i, rank=4, samples=60, burn_in=20, seed=0)
    pred = post.w0 + post.user_bias[u] + post.item_bias[i] + np.einsum(
        "snk,snk->n", post.user_factors[:, u], post.item_factors[:, i]) / 60
    rmse_clean = np.sqrt(np.mean((pred[hold] - clean[hold]) ** 2))
    mean_only = np.sqrt(np.mean((y[~hold].mean() - clean[hold]) ** 2))
    assert rmse_clean < 0.35 * mean_only, (rmse_clean, mean_only)  # it found the structure, not just the mean
    assert 0.4 < post.noise_std < 0.62, post.noise_std  # and the noise level it was planted with (0.5)


def test_noise_scales_weigh_erratic_raters_less_and_keep_the_planted_model():
    u, i, clean, y = planted()
    erratic = u % 6 == 0  # one user in six rates at random around the truth, with 4x the noise
    y = np.where(erratic, clean + 4 * (y - clean), y)
    hold = np.random.default_rng(1).random(len(y)) < 0.2
    blocks = Block.from_sparse(61, []), Block.from_sparse(41, [])
    fit = dict(rank=4, samples=60, burn_in=20, seed=0)

    def clean_rmse(post):
        pred = post.w0 + post.user_bias[u] + post.item_bias[i] + np.einsum(
            "snk,snk->n", post.user_factors[:, u], post.item_factors[:, i]) / 60
        keep = hold & ~erratic
        return np.sqrt(np.mean((pred[keep] - clean[keep]) ** 2))

    plain = sample(u[~hold], i[~hold], y[~hold], *blocks, **fit)
    robust = sample(u[~hold], i[~hold], y[~hold], *blocks, noise_groups=((u[~hold], 61, 2.0),), **fit)
    assert plain.noise_scales == () and len(robust.noise_scales) == 1
    scales = robust.noise_scales[0]
    rows = np.unique(u[~hold])
    bad, good = rows[rows % 6 == 0], rows[rows % 6 != 0]
    assert scales[bad].mean() < 0.25 * scales[good].mean(), (scales[bad].mean(), scales[good].mean())
    assert clean_rmse(robust) < 0.9 * clean_rmse(plain), (clean_rmse(robust), clean_rmse(plain))


def test_rao_blackwellised_item_rows_average_with_less_monte_carlo_noise():
    """Two chains of different seeds agree more closely, and the planted model is met as well, when each sweep's
    item id rows enter the average as their conditional means."""
    u, i, clean, y = planted(density=0.3)
    blocks = Block.from_sparse(61, []), Block.from_sparse(41, [])

    def predict(post):
        return post.w0 + post.user_bias[u] + post.item_bias[i] + np.einsum(
            "snk,snk->n", post.user_factors[:, u], post.item_factors[:, i]) / 10

    spread, error = {}, {}
    for rb in (False, True):
        a, b = (predict(sample(u, i, y, *blocks, rank=2, samples=10, burn_in=20, seed=s, rao_blackwell=rb))
                for s in (0, 1))
        spread[rb] = np.sqrt(np.mean((a - b) ** 2))
        error[rb] = np.sqrt(np.mean(((a + b) / 2 - clean) ** 2))
    assert spread[True] < 0.85 * spread[False], spread
    assert error[True] < 1.02 * error[False], error


def test_sampler_is_reproducible_and_seeded():
    u, i, _, y = planted(n_users=20, n_items=15)
    blocks = Block.from_sparse(21, [implicit_group(u, i, 21, 16)]), Block.from_sparse(16, [])
    a = sample(u, i, y, *blocks, rank=3, samples=3, burn_in=1, seed=5)
    b = sample(u, i, y, *blocks, rank=3, samples=3, burn_in=1, seed=5)
    c = sample(u, i, y, *blocks, rank=3, samples=3, burn_in=1, seed=6)
    np.testing.assert_array_equal(a.user_factors, b.user_factors)
    assert not np.allclose(a.user_factors, c.user_factors)


def test_blocks_hold_every_entry_once_in_buckets_of_similar_support():
    rng = np.random.default_rng(0)
    owner = rng.integers(1, 50, 400)
    feature = np.minimum(rng.zipf(1.5, 400) - 1, 29)  # a few features with many owners, many with few
    pairs = np.unique(np.stack([owner, feature], 1), axis=0)
    value = rng.random(len(pairs)).astype("float32") + 0.1
    block = Block.from_sparse(50, [(pairs[:, 0], pairs[:, 1], value, 30), (np.array([3]), np.array([1]),
                                                                           np.array([2.0]), 2)])
    assert block.m == 32 and block.groups.tolist() == [0] * 30 + [1] * 2
    seen = {}
    for features, owners, values in block.buckets:
        support = (owners > 0).sum(1)
        assert owners.shape[1] < 8 * max(support.min(), 1) or owners.shape[1] == 1  # padding stays bounded (ratio 8)
        for f, o, v in zip(features, owners, values):
            for own, val in zip(o[o > 0], v[o > 0]):
                seen[(int(f), int(own))] = float(val)
    expected = {(int(f), int(o)): float(v) for o, f, v in zip(pairs[:, 0], pairs[:, 1], value)}
    expected[(31, 3)] = 2.0
    assert seen.keys() == expected.keys()
    listed = np.concatenate([features for features, _, _ in block.buckets])
    assert sorted(listed.tolist()) == list(range(32))  # features without owners too (feature 30: their prior draw)
    assert all(seen[k] == pytest.approx(v) for k, v in expected.items())


def test_rating_lists_cover_each_rating_once_and_leave_out_owners_without_ratings():
    rng = np.random.default_rng(1)
    owner = np.minimum(rng.zipf(1.3, 500), 39)  # owners 1..39, long-tailed; owner 0 and some others rate nothing
    buckets = padded_lists(owner, np.arange(len(owner)), np.ones(len(owner)), 40, 2, empty=False)
    seen = []
    for keys, members, values in buckets:
        counts = values.sum(1)
        assert counts.min() > 0 and members.shape[1] <= 2 * counts.min()  # no empty list; padding within ratio 2
        for k, m, v in zip(keys, members, values):
            assert (owner[m[v > 0]] == k).all() and (m[v == 0] == 0).all()
            seen += m[v > 0].tolist()
    assert sorted(seen) == list(range(len(owner)))  # rating 0 included: padding is told apart by its value
    listed = np.concatenate([keys for keys, _, _ in buckets])
    assert sorted(listed.tolist()) == sorted(set(owner.tolist()))


def test_owner_sums_over_rating_lists_equal_sums_of_outer_products():
    import jax

    rng = np.random.default_rng(2)
    owner = np.minimum(rng.zipf(1.4, 300), 24)  # owners 1..24, long-tailed: some rate nothing (and owner 0)
    owner[0] = 5  # rating 0 is a real rating, told apart from padding by its value
    z = rng.standard_normal((300, 4)).astype("float32")
    weight = rng.random(300).astype("float32") + 0.5
    residual = rng.standard_normal(300).astype("float32")
    lists = [tuple(jax.numpy.asarray(a) for a in bucket)
             for bucket in padded_lists(owner, np.arange(300), np.ones(300), 26, 2, empty=False)]
    G, E = owner_sums(jax.numpy.asarray(z), jax.numpy.asarray(weight), jax.numpy.asarray(residual), lists, 26)
    want_G = np.zeros((26, 4, 4))
    want_E = np.zeros((26, 4))
    np.add.at(want_G, owner, weight[:, None, None] * z[:, :, None] * z[:, None, :])
    np.add.at(want_E, owner, residual[:, None] * z)
    np.testing.assert_allclose(np.asarray(G), want_G, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(E), want_E, rtol=1e-4, atol=1e-4)
    assert not np.asarray(G)[np.bincount(owner, minlength=26) == 0].any()  # owners without ratings: zeros


def test_implicit_group_normalises_by_the_square_root_of_the_set():
    owner, feature, value, n = implicit_group(np.array([1, 1, 1, 1, 2]), np.array([3, 4, 5, 3, 3]), 3, 6)
    assert n == 6 and sorted(zip(owner.tolist(), feature.tolist())) == [(1, 3), (1, 4), (1, 5), (2, 3)]
    np.testing.assert_allclose(value[owner == 1], 1 / np.sqrt(3))  # the repeated pair counts once
    np.testing.assert_allclose(value[owner == 2], 1.0)


def test_uses_the_metadata_the_data_has_and_no_more():
    ds = make_dataset()
    full = rc.Recommender("bayesian", random_state=0, **SMALL).fit(ds)
    assert full.encoder_.user_features == ("age", "gender", "occupation")
    assert full.model_.user_feature_dim > 0 and full.model_.item_feature_dim > 0
    bare = rc.Dataset(ds.ratings, name="ratings only")
    plain = rc.Recommender("bayesian", random_state=0, **SMALL).fit(bare)
    assert plain.encoder_ is None and plain.model_.user_feature_dim == 0
    assert not np.allclose(full.predict([1, 2], [101, 102]), plain.predict([1, 2], [101, 102]))
    # a model whose features are required still says what is missing
    with pytest.raises(rc.DataError, match="the model uses item_features 'release_year'"):
        rc.Recommender("hybrid", random_state=0, epochs=1, verbose=0).fit(bare)


def test_keeps_every_training_rating_and_knows_every_training_item():
    """Sampling needs no validation share: every training rating is used, and a rare item (one rating) is known
    and has its own prediction, whatever the seed."""
    ds = make_dataset()
    r = ds.ratings
    rare = r.iloc[[0]].assign(item_id=999_999, rating=5.0)
    data = rc.Dataset(pd.concat([r, rare], ignore_index=True), name="with a rare item")
    fits = [rc.Recommender("bayesian", random_state=seed, **SMALL).fit(data) for seed in (0, 1)]
    for rec in fits:
        assert rec.item_index_.size - 1 == r["item_id"].nunique() + 1
        assert rec.user_index_.size - 1 == r["user_id"].nunique()
        assert rec.state_.n_train == len(data.ratings)
    user = rare["user_id"].iloc[0]
    details = fits[0].predict_details([user, user], [999_999, -5])
    assert details["known_item"].tolist() == [True, False]
    assert details["prediction"].iloc[0] != pytest.approx(details["prediction"].iloc[1])


def test_chains_pool_their_samples_into_one_posterior_mean():
    """``chains=2`` predicts the mean of its two chains' predictions, each of them a single-chain fit of its own
    seed; the first chain is the single-chain fit of the same seed."""
    ds = make_dataset()
    both = rc.Recommender("bayesian", random_state=3, **{**SMALL, "chains": 2}).fit(ds)
    first = rc.Recommender("bayesian", random_state=3, **SMALL).fit(ds)
    second = rc.Recommender("bayesian", random_state=chain_seed(3, 1), **SMALL).fit(ds)
    assert len(both.history_["loss"]) == len(first.history_["loss"]) == 2 + 4  # one mean loss per sweep
    assert both.model_.user_embedding.embeddings.shape[1] == 2 * first.model_.user_embedding.embeddings.shape[1]
    r = ds.ratings.iloc[:200]
    p, a, b = (rec.predict(r["user_id"], r["item_id"], r["timestamp"]) for rec in (both, first, second))
    inside = (np.minimum(a, b) > 1) & (np.maximum(a, b) < 5)  # no clipping at the scale's ends
    assert inside.sum() > 100 and np.abs(a - b).max() > 1e-2
    np.testing.assert_allclose(p[inside], (a[inside] + b[inside]) / 2, atol=1e-4)
    assert chain_seed(3, 0) == 3 and len({chain_seed(s, c) for s in range(4) for c in range(4)}) == 16


def test_a_failing_chain_stops_the_others_and_its_own_error_is_raised(monkeypatch):
    import ratecast.models.gibbs as gibbs

    original, seen = gibbs.sample, []

    def sample_or_fail(*args, seed, on_sweep, **kwargs):
        def sweep(t, rmse):
            seen.append(seed)
            if seed == chain_seed(0, 2) and t == 1:
                raise TrainingError("chain 2 went wrong")
            on_sweep(t, rmse)
        return original(*args, seed=seed, on_sweep=sweep, **kwargs)

    monkeypatch.setattr(gibbs, "sample", sample_or_fail)
    rec = rc.Recommender("bayesian", random_state=0, **{**SMALL, "chains": 3, "samples": 200})
    with pytest.raises(TrainingError, match="chain 2 went wrong"):
        rec.fit(make_dataset())
    assert len(seen) < 3 * 202  # the other chains stopped early
    with pytest.raises(rc.NotFittedError):
        rec.predict([1], [101])


def test_chains_run_at_once_only_where_the_memory_budget_allows(monkeypatch):
    from ratecast import memory
    from ratecast.models.sampling_budget import Shape, chain_bytes, plan, shared_bytes

    monkeypatch.setattr(memory, "available_memory", lambda: 24 << 30)  # a 24 GB machine, idle

    ml100k = Shape(80_000, 944, 1683, 944 + 1683 + 40, 16)
    one = chain_bytes(ml100k)
    assert plan(ml100k, chains=3, samples=10, burn_in=2, stored=30, n_cores=8).concurrent == 3
    assert plan(ml100k, chains=8, samples=50, burn_in=5, stored=400, n_cores=2).concurrent == 2  # one per core
    room = (shared_bytes(ml100k, 30) + 2.5 * one) / 1e9  # the tables and data, and two chains and a half
    small = plan(ml100k, chains=3, samples=10, burn_in=2, stored=30, n_cores=8, memory_gb=room)
    assert small.concurrent == 2 and small.memory_bytes <= small.memory_budget
    ml25m = Shape(25_000_000, 162_542, 59_048, 162_542 + 59_048, 16)
    assert plan(ml25m, chains=8, samples=50, burn_in=5, stored=11, n_cores=2, memory_gb=20).concurrent == 1


@pytest.mark.parametrize("params,match", [
    ({"samples": 0}, r"samples must be a positive integer, got 0"),
    ({"burn_in": -1}, r"burn_in must be an integer >= 0, got -1"),
    ({"embedding_dim": 64, "samples": 2000}, r"embedding_dim \* samples \* chains must be at most 65536"),
    ({"embedding_dim": 64, "samples": 600, "chains": 2}, r"embedding_dim \* samples \* chains must be at most 65536 "
                                                         r"\(the width of the stored tables\), got 64 \* 600 \* 2"),
    ({"chains": 0}, r"chains must be a positive integer, got 0"),
    ({"user_features": ["height"]}, r"user_features must be drawn from .*got \['height'\]"),
    ({"loss": "mae"}, r"loss for model 'bayesian' must be one of \['mse'\]"),
    ({"l2": 0.5}, r"l2 does not apply to model 'bayesian' \(its priors are sampled\), got 0.5"),
    ({"epochs": 3, "learning_rate": 0.1, "batch_size": 7},
     r"option\(s\) \['batch_size', 'epochs', 'learning_rate'\] do not apply to model 'bayesian': it is not trained "
     r"by gradient"),
])
def test_bad_options(params, match):
    with pytest.raises(ValueError, match=match):
        rc.Recommender("bayesian", **params)


def test_accurate_preset_is_the_bayesian_model():
    rec = rc.Recommender.from_preset("accurate", random_state=0)
    assert rec.model == "bayesian" and rec.params == {}
    with pytest.raises(ValueError, match="preset 'accurate' is for model 'bayesian'"):
        rc.Recommender.from_preset("accurate", model="dot")


def test_cli_accurate_preset_never_fits_on_test_ratings(tmp_path, monkeypatch):
    ds = make_dataset()
    path = tmp_path / "ratings.csv"
    ds.ratings.to_csv(path, index=False)
    fitted_on = []
    real_fit = rc.Recommender.fit

    def fit(self, train, *args, **kwargs):
        fitted_on.append(set(zip(train.ratings["user_id"], train.ratings["item_id"])))
        return real_fit(self, train, *args, **kwargs)

    monkeypatch.setattr(rc.Recommender, "fit", fit)
    res = CliRunner().invoke(app, ["train", "--data", str(path), "--preset", "accurate", "--set", "samples=3",
                                   "--set", "burn_in=1", "--set", "chains=2", "--out", str(tmp_path / "run"),
                                   "--json", "-q"])
    assert res.exit_code == 0, (res.stdout, res.exception)
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["spec"]["model"] == "bayesian"
    test = json.loads(res.stdout)["test"]
    assert np.isfinite(test["rmse"]) and test["n"] > 0
    from ratecast import runs

    spec = runs.RunSpec.from_dict(run["spec"], "run.json")
    test_pairs = set(zip(*(runs.make_split(runs.load_data(spec, progress=False), spec).test.ratings[c]
                           for c in ("user_id", "item_id"))))
    assert len(test_pairs) == test["n"]
    assert len(fitted_on) == 1 and not fitted_on[0] & test_pairs, "fit saw test ratings"


def test_half_star_ratings_stay_on_their_scale():
    ds = make_dataset(half_stars=True)
    train, test = rc.split.holdout(ds, test_size=0.2, random_state=0)
    rec = rc.Recommender.from_preset("accurate", random_state=0, samples=30, burn_in=10, verbose=0).fit(train)
    pred = rec.predict(test.ratings["user_id"], test.ratings["item_id"])
    assert np.isfinite(pred).all() and pred.min() >= 0.5 and pred.max() <= 5
    baseline = rc.Recommender("baseline", random_state=0, embedding_dim=1, epochs=2, verbose=0).fit(train)
    y = test.ratings["rating"].to_numpy(float)
    base = baseline.predict(test.ratings["user_id"], test.ratings["item_id"])
    assert np.sqrt(np.mean((pred - y) ** 2)) < np.sqrt(np.mean((base - y) ** 2))  # it learns more than biases


# --- a bias per user and day ------------------------------------------------------------------------------------
def test_sampler_recovers_planted_rating_level_biases():
    """A bias per (user, day) planted in the ratings: with the rating-level group the sampler finds it (close to
    the planted values) and predicts held-out ratings of those days better than without it."""
    u, i, clean, y = planted(n_users=40, n_items=60, density=0.7, noise=0.3)
    rng = np.random.default_rng(3)
    day = rng.integers(0, 3, len(u))  # every user rates on three days
    slot = (u - 1) * 3 + day
    shift = rng.normal(0, 0.6, 40 * 3)
    y, clean = y + shift[slot], clean + shift[slot]
    hold = rng.random(len(y)) < 0.2
    blocks = Block.from_sparse(41, []), Block.from_sparse(61, [])
    kw = dict(rank=2, samples=40, burn_in=10, seed=0)
    with_group = sample(u[~hold], i[~hold], y[~hold], *blocks, rating_groups=((slot[~hold], 120),), **kw)
    without = sample(u[~hold], i[~hold], y[~hold], *blocks, **kw)

    def rmse(post, extra):
        pred = post.w0 + post.user_bias[u] + post.item_bias[i] + np.einsum(
            "snk,snk->n", post.user_factors[:, u], post.item_factors[:, i]) / 40 + extra
        return np.sqrt(np.mean((pred[hold] - clean[hold]) ** 2))

    found = with_group.rating_biases[0]
    # the day biases are identified up to the user's own bias: compare them within each user
    centred = lambda b: (b.reshape(40, 3) - b.reshape(40, 3).mean(1, keepdims=True)).ravel()
    assert np.corrcoef(centred(found), centred(shift))[0, 1] > 0.9
    assert rmse(with_group, found[slot]) < 0.8 * rmse(without, 0.0)


def test_user_day_slots_keep_each_users_most_rated_days():
    from ratecast.models.bayesian import BayesianModel

    scale = {"minimum": 1, "maximum": 5, "step": 1}
    m = BayesianModel({"max_days": 2, "samples": 2, "embedding_dim": 2}, 4, 5, rating_scale=scale, seed=0)
    users = np.array([1, 1, 1, 1, 1, 1, 2, 2, 3])
    days = np.array([10, 10, 11, 12, 12, 13, 40, -1, 7])  # user 1: days 10 and 12 twice, 11 and 13 once
    slots, table, (rows, cols) = m.user_day_slots(users, days)
    assert table[1].tolist() == [12, 10] and table[2].tolist() == [40, -1] and table[3].tolist() == [7, -1]
    assert table[0].tolist() == [-1, -1]
    assert slots[[2, 5, 7]].tolist() == [-1, -1, -1]  # days not kept, and a missing day, have no bias
    assert len(set(slots[slots >= 0])) == len(rows) == 4
    for k in np.flatnonzero(slots >= 0):  # each rating's slot sits at its own user and day
        assert rows[slots[k]] == users[k] and table[rows[slots[k]], cols[slots[k]]] == days[k]
    no_days, empty, _ = m.user_day_slots(users, None)
    assert (no_days == -1).all() and (empty == -1).all()


def test_day_numbers_from_seconds_datetimes_and_gaps():
    from ratecast.features import day_numbers

    assert day_numbers(np.array([0, 86399, 86400, 881250949])).tolist() == [0, 0, 1, 10199]
    assert day_numbers(pd.Series([1.5e9, None, np.nan])).tolist() == [17361, -1, -1]
    when = pd.to_datetime(pd.Series(["1970-01-02 23:00:00", None, "2024-02-29 00:00:00"]))
    assert day_numbers(when).tolist() == [1, -1, 19782]
    assert day_numbers(pd.Series(pd.to_datetime(["1970-01-03"]).tz_localize("UTC"))).tolist() == [2]


def _sessions(seed=0):
    """make_dataset with each user's ratings over two days, the second one rated a star higher."""
    ds = make_dataset(n_users=40, n_items=30, density=0.6, seed=seed)
    r = ds.ratings.copy()
    second = (r.groupby("user_id").cumcount() % 2 == 1).to_numpy()
    r["timestamp"] = 86400 * (100 + second)
    r.loc[second, "rating"] = np.minimum(r.loc[second, "rating"] + 1, 5)
    return rc.Dataset(r, items=ds.items, users=ds.users, name="sessions")


def test_the_day_of_a_rating_reaches_predict_and_evaluate_and_survives_save(tmp_path):
    from ratecast.recommender import Recommender

    split = rc.split.holdout(_sessions(), test_size=0.2, random_state=0)
    test = split.test.ratings
    rec = Recommender("bayesian", random_state=0, samples=20, burn_in=5, embedding_dim=4, verbose=0,
                      noise_per=[]).fit(split.train)
    with_days = rec.predict(test["user_id"], test["item_id"], test["timestamp"])
    without = rec.predict(test["user_id"], test["item_id"])
    rmse = lambda p: float(np.sqrt(np.mean((test["rating"].to_numpy() - p) ** 2)))
    assert rmse(with_days) < 0.85 * rmse(without)
    # the day's bias carries the planted star: the second day's predictions move up against the first day's
    second = (test["timestamp"] == 86400 * 101).to_numpy()
    assert (with_days - without)[second].mean() - (with_days - without)[~second].mean() > 0.45
    assert rec.evaluate(split.test, top_n=False, ci=False)["rmse"] == pytest.approx(rmse(with_days), rel=1e-6)
    off = Recommender("bayesian", random_state=0, samples=20, burn_in=5, embedding_dim=4, verbose=0,
                      day_bias=False).fit(split.train)
    np.testing.assert_allclose(off.predict(test["user_id"], test["item_id"], test["timestamp"]),
                               off.predict(test["user_id"], test["item_id"]))
    rec.save(tmp_path / "m")
    again = Recommender.load(tmp_path / "m")
    np.testing.assert_allclose(again.predict(test["user_id"], test["item_id"], test["timestamp"]), with_days,
                               rtol=1e-6)
    with pytest.raises(ValueError, match="timestamps must be 1-D with one entry per pair"):
        rec.predict(test["user_id"], test["item_id"], test["timestamp"][:3])
    other = Recommender("biased_dot", random_state=0, epochs=2, verbose=0).fit(split.train)
    np.testing.assert_array_equal(other.predict(test["user_id"], test["item_id"], test["timestamp"]),
                                  other.predict(test["user_id"], test["item_id"]))
    # a timestamp that is there but is not a time is refused (for every model); NaN or None means none
    n = len(test)
    for model in (rec, other):
        with pytest.raises(ValueError, match=r"timestamps must be seconds since 1970 or datetimes \(NaN or None for a "
                                             r"pair without one\), got 'x' at position 0"):
            model.predict(test["user_id"], test["item_id"], ["x"] * n)
        with pytest.raises(ValueError, match=r"got inf at position 1"):
            model.predict(test["user_id"], test["item_id"], [0.0, np.inf] + [0.0] * (n - 2))
    np.testing.assert_allclose(rec.predict(test["user_id"], test["item_id"], [np.nan] * n), without, rtol=1e-6)

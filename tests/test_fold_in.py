"""Batched fold-in of new and known users, update + refit, explanations, and the saved training ratings."""

import numpy as np
import pandas as pd
import pytest

import ratecast as rc
from ratecast import foldin
from ratecast.errors import IntegrityError, UnknownIdError
from synthetic import make_dataset

FAST = {
    "dot": dict(epochs=3), "biased_dot": dict(epochs=3), "baseline": dict(epochs=3), "popularity": dict(epochs=3),
    "deep": dict(epochs=3), "hybrid": dict(epochs=3), "classification": dict(epochs=3),
    "implicit": dict(epochs=3, set_model_epochs=2, set_model_hidden=8, embedding_dim=8),
    "bayesian": dict(samples=3, burn_in=1, chains=1, embedding_dim=4),
}
_FITTED: dict = {}


@pytest.fixture(scope="module")
def data():
    return make_dataset(n_users=30, n_items=24, density=0.5, seed=0)


def fitted(name, data):
    if name not in _FITTED:
        _FITTED[name] = rc.Recommender(name, random_state=0, verbose=False, **FAST[name]).fit(data)
    return _FITTED[name]


def frame(rows):
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating"])


NEW_AND_KNOWN = [("newcomer", 101, 5), ("newcomer", 102, 1), ("newcomer", 103, 4), (5, 104, 1), (5, 105, 5),
                 ("other", 106, 3), ("other", 999, 4)]


@pytest.mark.parametrize("name", sorted(FAST))
def test_every_model_folds_in_new_and_known_users(name, data):
    rec = fitted(name, data)
    before = rec.predict([5, 5], [110, 111])
    n_users = len(rec.user_index_)
    new = rec.fold_in(frame(NEW_AND_KNOWN))
    # rec is left as it was
    assert len(rec.user_index_) == n_users and "newcomer" not in rec.user_index_
    np.testing.assert_allclose(rec.predict([5, 5], [110, 111]), before)
    assert rec.state_.user_values is None
    # the new one knows the new users, and re-solved the known one
    assert {"newcomer", "other"} <= set(new.user_index_.ids) and len(new.user_index_) == n_users + 2
    p = new.predict(["newcomer", "other", 5], [110, 110, 110])
    assert np.isfinite(p).all()
    assert not new.recommend("newcomer", k=3).attrs.get("fallback")
    assert 101 not in set(new.recommend("newcomer", k=24)["item_id"])  # its ratings are excluded from its lists
    assert set(new.seen_items(5)) >= {104, 105}
    u = int(rec.user_index_.index([5])[0])
    table = new.state_.model.user_embedding.embeddings
    assert not np.allclose(np.asarray(new.state_.value(table))[u],
                           np.asarray(rec.state_.value(rec.state_.model.user_embedding.embeddings))[u])
    # the other users are untouched
    np.testing.assert_allclose(new.predict([7], [110]), rec.predict([7], [110]), rtol=1e-5)


def test_fold_in_leaves_weights_of_other_users_and_items_shared(data):
    rec = fitted("biased_dot", data)
    new = rec.fold_in(frame(NEW_AND_KNOWN))
    m = new.state_.model
    user_paths = {v.path for v in m.user_variables()}
    assert set(new.state_.user_values) == user_paths
    # item-side weights are the very same arrays as the ones the original uses
    np.testing.assert_array_equal(np.asarray(m.item_embedding.embeddings)[:len(rec.item_index_) + 1],
                                  np.asarray(rec.state_.model.item_embedding.embeddings))


def test_second_call_of_a_bucket_compiles_nothing(data):
    from ratecast import ranking

    rec = fitted("deep", data)
    rec.fold_in(frame([("a", 101, 5), ("a", 102, 2), ("a", 106, 2)])).recommend("a", k=3)
    traces = foldin.trace_count()
    new = rec.fold_in(frame([("b", 103, 1), ("b", 104, 4), ("b", 105, 5), ("b", 107, 3)]))  # same bucket (1, 4)
    top_k = ranking._programs(new.state_.model)[1]
    cached = top_k._cache_size()
    new.recommend("b", k=3)
    assert foldin.trace_count() == traces
    assert top_k._cache_size() == cached


def test_update_adds_training_ratings_and_refit_trains_on_them(data):
    rec = fitted("biased_dot", data)
    folded = rec.fold_in(frame([("x", 101, 5), ("x", 102, 4)]))
    updated = rec.update(frame([("x", 101, 5), ("x", 102, 4)]))
    assert folded.state_.n_train == rec.state_.n_train
    assert updated.state_.n_train == rec.state_.n_train + 2
    assert not folded.state_.seen_ratings.trained[-2:].any() or "x" in folded.user_index_
    refitted = updated.refit()
    assert "x" in refitted.user_index_
    assert refitted.params == rec.params and refitted.model == rec.model
    assert "x" not in folded.refit().user_index_  # folded-in ratings are not training data


@pytest.mark.parametrize("name", ["biased_dot", "implicit", "bayesian", "baseline"])
def test_explain_contributions_sum_to_the_score(name, data):
    rec = fitted(name, data).fold_in(frame([("n", 101, 5), ("n", 102, 1), ("n", 103, 4), ("n", 104, 2)]))
    out = rec.explain("n", 110, k=100)
    assert list(out.columns) == ["item_id", "feature", "contribution"]
    assert (np.diff(out["contribution"].to_numpy()) <= 0).all()
    np.testing.assert_allclose(out["contribution"].sum() + out.attrs["offset"], out.attrs["score"], rtol=1e-6)
    # the score is the folded-in user's own rating (before clipping)
    scale = rec.rating_scale_
    np.testing.assert_allclose(np.clip(out.attrs["score"], scale.minimum, scale.maximum),
                               rec.predict(["n"], [110])[0], atol=1e-4)
    if name == "bayesian":  # its user metadata moves the prior: one row per metadata group
        assert {"age", "gender", "occupation"} <= {f.split(":")[0] for f in out["feature"]}
    top3 = rec.explain("n", 110, k=3)
    assert len(top3) == 3
    np.testing.assert_allclose(top3["contribution"].sum() + top3.attrs["base"], top3.attrs["score"])


@pytest.mark.parametrize("name", ["biased_dot", "deep"])
def test_explain_is_faithful_removing_the_top_rating_lowers_the_score(name, data):
    base = rc.Recommender(name, random_state=0, verbose=False, epochs=30).fit(data)
    ratings = [("n", 100 + k, r) for k, r in zip(range(1, 9), [5, 1, 4, 2, 5, 1, 3, 4])]
    rec = base.fold_in(frame(ratings))
    out = rec.explain("n", 120, k=1)
    top = out["item_id"].iloc[0]
    assert top is not None and out["contribution"].iloc[0] > 0
    without = base.fold_in(frame([r for r in ratings if r[1] != top]))
    assert without.explain("n", 120, k=1).attrs["score"] < out.attrs["score"]


def test_closed_form_solves_agree_in_dual_and_primal_form():
    rng = np.random.default_rng(0)
    K = 5
    prior = foldin.Prior(rng.normal(size=K), rng.uniform(0.5, 2, K), 0.7)
    for R in (3, 8):  # fewer ratings than columns: dual; more: primal
        X, y = rng.normal(size=(2, R, K)), rng.normal(size=(2, R))
        offset, mask = rng.normal(size=(2, R)), np.ones((2, R), bool)
        mask[1, -1] = False
        means = np.broadcast_to(prior.mean, (2, K))
        theta, alpha = foldin.ridge(X, offset, y, mask, prior, means)
        for u in range(2):
            Xu, tu = X[u][mask[u]], (y[u] - offset[u])[mask[u]]
            A = Xu.T @ Xu / prior.noise + np.diag(1 / prior.var)
            expected = np.linalg.solve(A, Xu.T @ tu / prior.noise + prior.mean / prior.var)
            np.testing.assert_allclose(theta[u], expected, rtol=1e-8)
            np.testing.assert_allclose(theta[u], prior.mean + prior.var * (alpha[u] @ X[u]), rtol=1e-8)


def test_a_block_fit_averages_independent_fits_of_each_block():
    rng = np.random.default_rng(1)
    B, w, R = 3, 2, 6
    K = B * w + 1  # the blocks' columns, then a shared bias column
    prior = foldin.Prior(rng.normal(size=K), rng.uniform(0.5, 2, K), 0.5)
    X = np.concatenate([rng.normal(size=(1, R, B * w)), np.ones((1, R, 1))], axis=2)
    y, offset, mask = rng.normal(size=(1, R)), rng.normal(size=(1, R)), np.ones((1, R), bool)
    fit = foldin.block_ridge(X, offset, y, mask, prior, prior.mean[None], B, w)
    rating = offset[0] + X[0] @ fit.theta[0]
    alone = []
    for b in range(B):  # block b alone: its columns (scaled by B, the prediction being the mean) and a bias
        cols = list(range(b * w, (b + 1) * w)) + [K - 1]
        Xb = X[0][:, cols] * np.array([B] * w + [1])
        sub = foldin.Prior(prior.mean[cols], prior.var[cols], prior.noise)
        theta, _ = foldin.ridge(Xb[None], offset, y, mask, sub, prior.mean[cols][None])
        alone.append(offset[0] + Xb @ theta[0])
    np.testing.assert_allclose(rating, np.mean(alone, axis=0), rtol=1e-8)
    per_item, prior_part = fit.contributions(X[:, 0])
    np.testing.assert_allclose(offset[0, 0] + per_item.sum() + prior_part[0], rating[0], rtol=1e-8)


def test_hybrid_explain_includes_metadata_features(data):
    rec = fitted("hybrid", data)
    out = rec.explain(5, 110, k=100)
    assert {"age"} <= set(out["feature"]) and any(f.startswith("gender:") for f in out["feature"])
    assert out["item_id"].isna().any()
    np.testing.assert_allclose(out["contribution"].sum() + out.attrs["offset"], out.attrs["score"])


def test_blend_folds_into_each_member(data):
    blend = rc.Blend([rc.Recommender("baseline", random_state=0, verbose=False, epochs=3),
                      rc.Recommender("biased_dot", random_state=0, verbose=False, epochs=3)], random_state=0).fit(data)
    new = blend.fold_in(frame(NEW_AND_KNOWN))
    assert all("newcomer" in m.user_index_ for m in new.members)
    assert not any("newcomer" in m.user_index_ for m in blend.members)
    assert np.isfinite(new.predict(["newcomer"], [110])).all()
    assert blend.update(frame(NEW_AND_KNOWN)).members[0].state_.n_train > blend.members[0].state_.n_train


def test_one_user_form_still_adds_the_user_to_rec_itself(data):
    rec = rc.Recommender("biased_dot", random_state=0, verbose=False, epochs=3).fit(data)
    assert rec.fold_in("solo", {101: 5, 102: 3}) is rec
    assert "solo" in rec.user_index_


def test_state_round_trip_keeps_the_training_ratings(tmp_path, data):
    rec = fitted("biased_dot", data)
    new = rec.update(frame(NEW_AND_KNOWN))
    new.save(tmp_path / "m")
    back = rc.Recommender.load(tmp_path / "m")
    s, b = new.state_, back.state_
    np.testing.assert_array_equal(b.seen_ratings.ratings, s.seen_ratings.ratings)
    np.testing.assert_array_equal(b.seen_ratings.trained, s.seen_ratings.trained)
    assert b.model.n_users == len(b.user_index) + 1  # saved without spare rows
    np.testing.assert_allclose(back.predict(["newcomer", 5], [110, 110]), new.predict(["newcomer", 5], [110, 110]),
                               rtol=1e-5)
    # a known user's stored ratings are what a later fold-in re-solves them from
    items, ratings = b.user_ratings(int(b.user_index.index([5])[0]))
    assert len(items) == len(ratings) > 2


def test_load_refuses_training_ratings_off_the_scale(tmp_path, data):
    from ratecast import manifest
    from ratecast.state import ARRAYS

    fitted("baseline", data).save(tmp_path / "m")
    path = tmp_path / "m" / ARRAYS
    with np.load(path) as npz:
        arrays = dict(npz)
    arrays["seen_ratings"] = arrays["seen_ratings"] + 10
    np.savez_compressed(path, **arrays)
    manifest.write(tmp_path / "m")
    with pytest.raises(IntegrityError, match="seen_ratings must be finite and within the rating scale"):
        rc.Recommender.load(tmp_path / "m")


def test_fold_in_rejects_bad_frames(data):
    rec = fitted("baseline", data)
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['rating'\]"):
        rec.fold_in(pd.DataFrame({"user_id": [1], "item_id": [101]}))
    with pytest.raises(ValueError, match="ratings must lie on the scale"):
        rec.fold_in(frame([("z", 101, 9)]))
    with pytest.raises(ValueError, match="at least one rating of a known item"):
        rec.fold_in(frame([("z", 999, 3)]))


def test_compiled_scoring_programs_do_not_keep_a_model_alive():
    import gc
    import weakref

    from ratecast.models import MODELS
    from ratecast.ranking import Scorer

    model = MODELS["dot"](MODELS["dot"].config_class(embedding_dim=4), 5, 7,
                          rating_scale={"minimum": 1, "maximum": 5, "step": 1}).build_now()
    Scorer(model).pairs(np.array([1, 2]), np.array([3, 4]))  # compiles the programs every scorer of it shares
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None


def test_a_model_saved_without_training_ratings_still_loads_and_folds_in(tmp_path, data):
    from ratecast import manifest
    from ratecast.errors import DataError
    from ratecast.state import ARRAYS

    fitted("baseline", data).save(tmp_path / "m")
    path = tmp_path / "m" / ARRAYS
    with np.load(path) as npz:
        arrays = {k: v for k, v in npz.items() if k not in ("seen_ratings", "seen_trained")}
    np.savez_compressed(path, **arrays)
    manifest.write(tmp_path / "m")
    rec = rc.Recommender.load(tmp_path / "m")
    assert rec.state_.seen_ratings is None
    assert "n" in rec.fold_in(frame([("n", 101, 5)])).user_index_
    with pytest.raises(DataError, match="saved by a version that kept none"):
        rec.refit()


def test_a_known_user_keeps_the_rows_fold_in_does_not_solve(data):
    rec = fitted("bayesian", data)  # its day tables: a known user keeps theirs, a new one gets none
    new = rec.fold_in(frame(NEW_AND_KNOWN))
    m, u = new.state_.model, int(rec.user_index_.index([5])[0])
    for table in (m.user_days, m.user_day_bias):
        old = np.asarray(rec.state_.value(getattr(rec.state_.model, table.path.split("/")[-1])))
        np.testing.assert_array_equal(np.asarray(new.state_.value(table))[u], old[u])
    assert (np.asarray(new.state_.value(m.user_days))[new.user_index_.index(["newcomer"])[0]] == -1).all()


@pytest.mark.parametrize("name", ["biased_dot", "hybrid", "bayesian"])
def test_explain_items_gives_each_item_what_explain_gives(name, data):
    rec = fitted(name, data)
    targets = [110, 111, 112]
    many = rec.explain_items(5, targets, k=100)
    for item, got in zip(targets, many):  # the same rows (a list's batch may order near-ties otherwise)
        want = rec.explain(5, item, k=100)
        assert sorted(zip(got["feature"], got["item_id"].astype(str))) == sorted(
            zip(want["feature"], want["item_id"].astype(str)))
        np.testing.assert_allclose(np.sort(got["contribution"]), np.sort(want["contribution"]), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(got.attrs["score"], want.attrs["score"], rtol=1e-5)
    assert rec.explain_items(5, [], k=3) == []
    with pytest.raises(UnknownIdError, match="999"):
        rec.explain_items(5, [110, 999])


def test_explain_gives_no_metadata_rows_to_a_user_who_gave_none(data):
    rec = fitted("hybrid", data).fold_in(frame([("visitor", 101, 5), ("visitor", 102, 1)]))
    out = rec.explain("visitor", 110, k=100)
    assert out["item_id"].notna().all() and len(out) == 2  # the two ratings; no age, gender or occupation rows
    np.testing.assert_allclose(out["contribution"].sum() + out.attrs["offset"], out.attrs["score"])


def test_a_chain_of_known_users_fold_ins_writes_their_rows_not_the_whole_user_tables(data):
    import tracemalloc

    # many users, so that the per-user tables are much larger than what one user's fold-in computes
    rec = fitted("implicit", data).update(frame([(f"n{k}", 101 + k % 24, 3) for k in range(600)]))
    m = rec.state_.model
    table_bytes = sum(np.asarray(rec.state_.value(table)).nbytes for table in m.user_tables().values())
    current = rec
    for k in range(3):  # as the server chains them, each from the one the previous call returned
        current = current.update(frame([(5, 101 + k, 4), (7, 110 + k, 2)]))
    tracemalloc.start()
    try:
        current = current.update(frame([(5, 115, 1), (7, 116, 5)]))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < table_bytes / 8  # not a copy of each whole table
    sets, before = (np.asarray(r.state_.value(m.sets.items)) for r in (current, rec))
    u5, u7 = current.user_index_.index([5, 7])
    item = current.item_index_.index
    assert set(item([101, 102, 103, 115])) <= set(sets[u5]) and item([116])[0] in set(sets[u7])
    assert item([115])[0] not in set(before[u5])  # rec is left as it was
    np.testing.assert_array_equal(np.delete(sets, [u5, u7], axis=0)[:len(rec.user_index_)],
                                  np.delete(before, [u5, u7], axis=0)[:len(rec.user_index_)])
    once = rec.update(frame([(5, 101, 4), (5, 102, 4), (5, 103, 4), (5, 115, 1)]))
    np.testing.assert_allclose(current.predict([5], [120]), once.predict([5], [120]), rtol=1e-5)


def test_closed_form_fold_in_runs_blas_on_one_thread_and_restores_the_count(data, monkeypatch):
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas_threads():
        return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]

    seen = []
    solve = np.linalg.solve

    def spying_solve(*args, **kwargs):
        seen.append(blas_threads())
        return solve(*args, **kwargs)

    rec = fitted("bayesian", data)
    with threadpool_limits(limits=2, user_api="blas"):  # a second thread may stall a small solve on a busy machine
        before = blas_threads()
        assert before and max(before) == 2
        monkeypatch.setattr(np.linalg, "solve", spying_solve)
        rec.update(frame([("threads", 101, 4), ("threads", 102, 2), (5, 103, 1)]))
        monkeypatch.undo()
        assert seen and all(n == [1] * len(n) for n in seen)
        assert blas_threads() == before  # set back once the fold-in is done


def test_a_known_users_new_ratings_write_the_stored_ratings_after_them_once(data):
    import tracemalloc

    # many ratings after the first trained user's, so that a copy of them stands out
    rec = fitted("biased_dot", data).update(frame([(f"m{k}", 101 + j, 3) for k in range(2000) for j in range(24)]))
    s = rec.state_
    stored = s.seen.indices.nbytes + s.seen_ratings.ratings.nbytes + s.seen_ratings.trained.nbytes
    first = rec.user_index_.ids[0]
    current = rec
    for k in range(3):  # as the server chains them
        current = current.update(frame([(first, 101 + k, 4)]))
    tracemalloc.start()
    try:
        current = current.update(frame([(first, 110, 1), (first, 111, 2)]))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < stored / 4  # the rows after the user's written into the lineage's buffer, not copied first
    u = int(current.user_index_.index([first])[0])
    items, ratings = current.state_.user_ratings(u)
    before_items, _ = rec.state_.user_ratings(u)
    item = current.item_index_.index
    assert set(items) == set(before_items) | set(item([101, 102, 103, 110, 111]))
    assert ratings[items == item([110])[0]][0] == 1 and ratings[items == item([111])[0]][0] == 2
    last = rec.user_index_.ids[-1]  # a user after the first keeps their ratings
    np.testing.assert_array_equal(current.state_.user_ratings(int(current.user_index_.index([last])[0]))[1],
                                  rec.state_.user_ratings(int(rec.user_index_.index([last])[0]))[1])


@pytest.mark.parametrize("name", ["dot", "biased_dot", "bayesian", "implicit"])
def test_a_users_list_contracts_the_whole_item_table_not_a_slice_of_it(name, data):
    import jax

    # XLA on CPU copies a sliced, transposed table for one user's scores: bayesian's list after a rating on ML-100k
    # (6,400 columns) took about 35 ms instead of 1 ms
    m = fitted(name, data).model_
    program = jax.make_jaxpr(lambda users: m.score_items(users))(np.array([1], "int32"))
    operands = {tuple(v.aval.shape) for e in program.jaxpr.eqns if e.primitive.name == "dot_general" for v in e.invars}
    for table in [m.item_embedding.embeddings] + ([m.pick.factors] if name == "implicit" else []):  # implicit: its
        assert tuple(table.shape) in operands  # pick head's too
    n = len(fitted(name, data).item_index_)
    assert np.asarray(m.score_items(np.array([1, 2], "int32"))).shape[:2] == (2, n)

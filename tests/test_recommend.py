"""Embeddings, similarity, recommendations (agreeing with predict), batch export and cold start."""

import numpy as np
import pandas as pd
import pytest

import ratecast as rc
from ratecast.similarity import cosine, cosine_similarities, top_k
from synthetic import make_dataset

FAST = dict(embedding_dim=4, epochs=3, batch_size=32, verbose=0, learning_rate=0.01)


@pytest.fixture(scope="module")
def ds():
    return make_dataset(n_users=40, n_items=30)


@pytest.fixture(scope="module", params=["dot", "deep", "hybrid", "classification"])
def rec(request, ds):
    return rc.Recommender(request.param, random_state=0, **FAST).fit(ds)


def seen_items(rec, ds, user):
    return set(ds.ratings.loc[ds.ratings["user_id"] == user, "item_id"]) & set(rec.item_index_.ids)


def test_recommend_agrees_with_predict(rec, ds):
    for user in (1, 7, 40):
        top = rec.recommend(user, k=5)
        assert list(top.columns) == ["item_id", "title", "score"] and len(top) == 5
        # scores are exactly what predict says
        np.testing.assert_allclose(top["score"].to_numpy(), rec.predict(np.full(5, user), top["item_id"]))
        # titles belong to the returned items (the lab's bug mapped sorted positions to other titles)
        assert top["title"].tolist() == ds.items.loc[top["item_id"], "title"].tolist()
        # nothing rated in training, and no unrated item scores higher than the k-th returned one
        seen = seen_items(rec, ds, user)
        assert not set(top["item_id"]) & seen
        others = [i for i in rec.item_index_.ids if i not in seen and i not in set(top["item_id"])]
        assert rec.predict(np.full(len(others), user), others).max() <= top["score"].min() + 1e-12
        assert top["score"].is_monotonic_decreasing


def test_the_last_item_can_be_recommended(ds):
    """The lab's recommend() never scored the last item id; make it the best and it must come first."""
    rec = rc.Recommender("dot", random_state=0, **FAST).fit(ds)
    last = rec.item_index_.ids.max()
    user = next(u for u in rec.user_index_.ids if last not in seen_items(rec, ds, u))
    U = rec.model_.user_embedding.embeddings
    V = rec.model_.item_embedding.embeddings
    u_pos, i_pos = rec.user_index_.index([user])[0], rec.item_index_.index([last])[0]
    v = np.asarray(V).copy()
    v[i_pos] = 10 * np.asarray(U)[u_pos]
    V.assign(v)
    assert rec.recommend(user, k=3)["item_id"].iloc[0] == last


def test_filters_and_unknown_user(rec, ds):
    top = rec.recommend(1, k=5)
    excluded = rec.recommend(1, k=5, exclude=top["item_id"].iloc[:2])
    assert not set(excluded["item_id"]) & set(top["item_id"].iloc[:2])
    popular_only = rec.recommend(1, k=30, min_ratings=20)
    pop = ds.ratings.groupby("item_id").size()
    assert (pop.reindex(popular_only["item_id"]) >= 20).all()
    with_seen = rec.recommend(1, k=len(rec.item_index_), exclude_seen=False)
    assert len(with_seen) == len(rec.item_index_)
    fallback = rec.recommend("nobody", k=4)
    assert fallback.attrs.get("fallback") is True and len(fallback) == 4
    with pytest.raises(ValueError, match="k must be a positive integer, got 0"):
        rec.recommend(1, k=0)


def test_batch_recommendations_match_single_and_export(rec, tmp_path):
    allrec = rec.recommend_all(k=3, batch_size=7)
    assert list(allrec.columns) == ["user_id", "rank", "item_id", "title", "score"]
    assert len(allrec) == 3 * len(rec.user_index_)
    assert allrec["user_id"].is_monotonic_increasing  # users in order of their ids, not of first appearance
    one = allrec[allrec["user_id"] == 5]
    single = rec.recommend(5, k=3)
    assert one["item_id"].tolist() == single["item_id"].tolist() and one["rank"].tolist() == [1, 2, 3]
    rc.io.write_table(allrec, tmp_path / "recs.csv")
    rc.io.write_table(allrec, tmp_path / "recs.parquet")
    assert pd.read_csv(tmp_path / "recs.csv")["item_id"].tolist() == allrec["item_id"].tolist()
    assert pd.read_parquet(tmp_path / "recs.parquet").shape == allrec.shape
    with pytest.raises(ValueError, match=r"must end in .csv, .tsv or .parquet, got '.*recs.xlsx'"):
        rc.io.write_table(allrec, tmp_path / "recs.xlsx")


def test_embeddings_and_similarity(rec, ds):
    items = rec.item_embeddings()
    assert items.index.name == "item_id" and items["title"].loc[101] == ds.items.loc[101, "title"]
    assert items.shape[1] == 1 + rec.model_config_.embedding_dim
    users = rec.user_embeddings()
    assert users.index.name == "user_id" and len(users) == len(rec.user_index_)
    sim = rec.similar_items(101, k=5)
    assert list(sim.columns) == ["item_id", "title", "similarity"] and 101 not in set(sim["item_id"])
    assert sim["similarity"].is_monotonic_decreasing
    all_sims = rec.similarities(101)
    assert all_sims.loc[101] == pytest.approx(1.0)
    expected = all_sims.drop(101).sort_values(ascending=False, kind="stable").head(5)
    np.testing.assert_allclose(sim["similarity"].to_numpy(), expected.to_numpy())
    assert rec.similarity(101, 102) == pytest.approx(all_sims.loc[102])
    su = rec.similar_users(1, k=3)
    assert 1 not in set(su["user_id"]) and len(su) == 3
    with pytest.raises(KeyError, match="unknown item_id 999999") as caught:
        rec.similar_items(999999)
    assert str(caught.value).startswith("unknown item_id 999999: it has no learned embedding")  # no quotes around it


def test_cosine_handles_zero_vectors():
    m = np.array([[1.0, 0.0], [0.0, 0.0], [2.0, 0.0], [0.0, 3.0]])
    np.testing.assert_allclose(cosine_similarities(m, np.array([1.0, 0.0])), [1, 0, 1, 0])
    assert cosine([0, 0], [1, 2]) == 0.0
    assert np.all(cosine_similarities(m, np.zeros(2)) == 0)
    assert top_k(np.array([0.1, 0.9, 0.5, 0.9]), 2).tolist() == [1, 3]
    assert top_k(np.array([0.1, 0.9, 0.5]), 5, np.array([True, False, True])).tolist() == [2, 0]


def test_cold_start_new_user_and_item(ds):
    rec = rc.Recommender("hybrid", random_state=0, **FAST).fit(ds)
    young = rec.recommend_new_user({"age": 19, "gender": "F", "occupation": "student"}, k=5)
    assert len(young) == 5 and "fallback" not in young.attrs and np.isfinite(young["score"]).all()
    old = rec.recommend_new_user({"age": 66, "gender": "M", "occupation": "doctor"}, k=len(rec.item_index_))
    assert not np.allclose(np.sort(young["score"]), np.sort(old["score"].head(5)))  # demographics matter
    assert rec.recommend_new_user(None, k=3).attrs["fallback"] is True
    p1 = rec.predict_new_item({"release_year": 1980, "Action": 1}, [1, 2, 3])
    p2 = rec.predict_new_item({"release_year": 2001, "Drama": 1, "popularity": 50}, [1, 2, 3])
    assert p1.shape == (3,) and np.isfinite(p1).all() and not np.allclose(p1, p2)
    dot = rc.Recommender("dot", random_state=0, **FAST).fit(ds)
    assert dot.recommend_new_user({"age": 30}, k=3).attrs["fallback"] is True
    b = dot.baseline_
    assert dot.predict_new_item({}, [1])[0] == pytest.approx(b.mean + b.user_bias[dot.user_index_.index([1])[0]])


@pytest.mark.parametrize("model,extra", [("biased_dot", {}), ("hybrid", {"dropout": 0.0, "hidden_dropout": 0.0})])
def test_fold_in_new_user_without_retraining(model, extra):
    ds = make_dataset(n_users=60, n_items=30, density=0.7, seed=3)
    r = ds.ratings
    counts, spread = r.groupby("user_id").size(), r.groupby("user_id")["rating"].std()
    newcomer = spread[counts >= 18].idxmax()  # a user far from average, so knowing them matters
    mine = r[r["user_id"] == newcomer].sample(frac=1.0, random_state=0)
    known, held_out = mine.iloc[:12], mine.iloc[12:]
    rec = rc.Recommender(model, random_state=0, embedding_dim=4, epochs=30, batch_size=32, verbose=0,
                         learning_rate=0.01, optimizer="adam", **extra).fit(ds.with_ratings(r[r["user_id"] != newcomer]))
    frozen = rec.model_.item_embedding.embeddings.numpy().copy()
    before = rec.predict_details(np.full(len(held_out), newcomer), held_out["item_id"])
    assert before["was_impossible"].all()
    rec.fold_in(newcomer, known[["item_id", "rating"]], epochs=100)
    after = rec.predict_details(np.full(len(held_out), newcomer), held_out["item_id"])
    assert not after["was_impossible"].any()
    truth = held_out["rating"].to_numpy()
    mae_before = np.abs(before["prediction"] - truth).mean()
    mae_after = np.abs(after["prediction"] - truth).mean()
    assert mae_after < mae_before  # the folded-in user is predicted better than by the fallback
    np.testing.assert_array_equal(rec.model_.item_embedding.embeddings.numpy(), frozen)  # the rest is untouched
    top = rec.recommend(newcomer, k=5)
    assert not set(top["item_id"]) & set(known["item_id"])
    with pytest.raises(ValueError, match="already known"):
        rec.fold_in(newcomer, {101: 4})


def test_min_support_filters_lists_but_never_empties_a_small_catalogue():
    ds = make_dataset(n_users=300, n_items=200, density=0.12, seed=3)
    counts = ds.ratings["item_id"].value_counts()
    rec = rc.Recommender("dot", min_support=40, epochs=1, random_state=0, verbose=0).fit(ds)
    floor = rec.candidates.default_support
    kept = (rec.item_popularity >= floor).sum()
    assert 0 < floor <= 40 and kept >= 100  # lowered just enough to keep 100 candidates
    lists = rec.recommend_all(k=10)
    assert (rec.item_popularity[lists["item_id"]].to_numpy() >= floor).all()
    assert (rec.item_popularity[rec.recommend(1, k=10, min_ratings=0)["item_id"]] >= 0).all()
    unfiltered = rec.recommend_all(k=10, min_ratings=0)
    assert (rec.item_popularity[unfiltered["item_id"]].to_numpy() < floor).any()  # min_ratings=0 lifts it
    tiny = make_dataset(n_users=30, n_items=24, density=0.5)
    small = rc.Recommender("dot", min_support=1000, epochs=1, random_state=0, verbose=0).fit(tiny)
    assert len(small.recommend(1, k=5)) == 5  # 24 items, all below 1000 ratings: nothing is filtered away
    assert int(counts.max()) >= 40


def test_recommend_all_lists_users_in_order_of_their_ids(ds):
    shuffled = rc.Dataset(ds.ratings.sample(frac=1.0, random_state=0).reset_index(drop=True),
                          rating_scale=ds.rating_scale)
    rec = rc.Recommender("baseline", random_state=0, epochs=1, verbose=0).fit(shuffled)
    assert not np.all(np.diff(rec.state_.user_index.ids) > 0)  # the training order is not the ids' order
    users = rec.recommend_all(k=2)["user_id"]
    assert users.is_monotonic_increasing and users.nunique() == len(rec.state_.user_index)


def test_the_public_pipeline_pieces_give_recommend_and_top_n_metrics(ds):
    """candidates -> scorer -> item_frame is recommend, and list_metrics over the recommender's own top positions is
    top_n_metrics: what Blend and tuning build on gives the library's own answers."""
    rec = rc.Recommender("dot", random_state=0, **FAST).fit(ds)
    users = rec.user_index_.index(np.array([1, 7]))
    pos, score = rec.scorer.top_k(users, rec.candidates.mask(users, exclude=[ds.ratings["item_id"].iloc[0]]), 5)
    for row, user in enumerate((1, 7)):
        pd.testing.assert_frame_equal(rec.item_frame(pos[row], score[row]),
                                      rec.recommend(user, k=5, exclude=[ds.ratings["item_id"].iloc[0]]))
    test = rc.Dataset(ds.ratings.sample(frac=0.3, random_state=1), rating_scale=ds.rating_scale)
    own = rec.list_metrics(test, threshold=4.0, ks=[3, 5],
                           top_positions=lambda u, depth: rec.top_positions(u, depth)[0])
    assert own == rec.top_n_metrics(test, ks=[3, 5], threshold=4.0)
    assert own != rec.list_metrics(test, threshold=4.0, ks=[3, 5],
                                   top_positions=lambda u, depth: np.full((len(u), depth), -1))  # lists matter
    with pytest.raises(ValueError, match="k must be a positive integer, got 0"):
        rec.check_k(0)


def test_lists_are_the_same_whatever_the_batch_and_the_form_of_the_candidates(rec, ds):
    """The compact candidates (items for all, positions per user) rank exactly as the dense mask they stand for, in
    batches of any size: same items, same order, same scores."""
    from ratecast.ranking import Allowed

    users = np.arange(1, len(rec.user_index_) + 1)
    exclude = ds.ratings["item_id"].iloc[:3].tolist()
    allowed = rec.candidates.allowed(users, exclude=exclude, min_ratings=2)
    dense = np.ones((len(users), len(rec.item_index_)), bool)
    s = rec.state_
    for row, u in enumerate(users):
        dense[row, s.seen_positions(u)] = False
    dense[:, rec.item_index_.index(exclude) - 1] = False
    dense &= s.popularity[1:][None, :] >= 2
    np.testing.assert_array_equal(allowed.mask(), dense)
    np.testing.assert_array_equal(Allowed.from_mask(dense).mask(), dense)
    np.testing.assert_array_equal(Allowed.from_mask(dense[:0]).mask(), dense[:0])
    one_by_one = [rec.scorer.top_k(users[r:r + 1], dense[r:r + 1], 4, batch_size=1) for r in range(len(users))]
    for batch in (None, 3, 1000):
        pos, score = rec.scorer.top_k(users, allowed, 4, batch_size=batch)
        np.testing.assert_array_equal(pos, np.concatenate([p for p, _ in one_by_one]))
        np.testing.assert_array_equal(score, np.concatenate([v for _, v in one_by_one]))
    pd.testing.assert_frame_equal(rec.recommend_all(k=4, batch_size=7), rec.recommend_all(k=4))


def test_excluded_positions_are_dropped_alike_on_every_backend():
    import keras

    from ratecast import ranking

    key = np.arange(12, dtype="float32").reshape(3, 4)
    excluded = np.array([[0, 0, 3, 2, 3], [1, 3, 0, 0, 2]])  # (row, position) pairs; row 3: padding past the last row
    expected = key.copy()
    expected[[0, 0, 2], [1, 3, 0]] = -np.inf
    on_device = keras.ops.convert_to_tensor(key)
    np.testing.assert_array_equal(np.asarray(ranking.without_excluded(on_device, excluded)), expected)
    np.testing.assert_array_equal(np.asarray(ranking.without_any_backend(key, excluded)), expected)


def test_recommend_all_parts_stream_the_same_table_in_batches(rec, tmp_path):
    whole = rec.recommend_all(k=3)
    seen = []
    parts = list(rec.recommend_all_parts(k=3, batch_size=100, on_progress=lambda d, t: seen.append((d, t))))
    n = len(rec.user_index_)
    assert len(parts) == -(-n // 100) and seen[-1] == (n, n) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    pd.testing.assert_frame_equal(pd.concat(parts, ignore_index=True), whole)
    for name in ("recs.parquet", "recs.csv", "recs.tsv"):
        rows = rc.io.write_table_parts(rec.recommend_all_parts(k=3, batch_size=100), tmp_path / name)
        assert rows == len(whole)
        back = (pd.read_parquet(tmp_path / name) if name.endswith("parquet")
                else pd.read_csv(tmp_path / name, sep="\t" if name.endswith("tsv") else ","))
        assert back["item_id"].tolist() == whole["item_id"].tolist()
        assert back["user_id"].tolist() == whole["user_id"].tolist()
    assert rc.io.is_ratecast_file(tmp_path / "recs.parquet")
    nobody = list(rec.recommend_all_parts(user_ids=[], k=3))
    assert len(nobody) == 1 and nobody[0].empty


def test_a_streamed_table_appears_whole_or_not_at_all(tmp_path):
    def parts():
        yield pd.DataFrame({"user_id": [1], "title": [None]})
        yield pd.DataFrame({"user_id": [2], "title": ["Heat (1995)"]})  # a text column with no value in part one
        raise RuntimeError("stopped midway")

    target = tmp_path / "out.parquet"
    with pytest.raises(RuntimeError, match="stopped midway"):
        rc.io.write_table_parts(parts(), target)
    assert not target.exists() and list(tmp_path.iterdir()) == []
    rows = rc.io.write_table_parts(iter([pd.DataFrame({"user_id": [1], "title": [None]}),
                                         pd.DataFrame({"user_id": [2], "title": ["Heat (1995)"]})]), target)
    back = pd.read_parquet(target)["title"]
    assert rows == 2 and back.isna().tolist() == [True, False] and back.iloc[1] == "Heat (1995)"
    with pytest.raises(ValueError, match="at least one table"):
        rc.io.write_table_parts(iter([]), tmp_path / "empty.csv")
    assert not (tmp_path / "empty.csv").exists()


def test_top_k_in_blocks_ranks_as_one_top_k_of_the_whole_row():
    """Same values and positions as one top-k, ties (the lower position first) and rows short of finite values
    included."""
    import keras

    from ratecast import ranking

    rng = np.random.default_rng(0)
    k, n = 3, 8 * 3 * ranking.TOP_K_BLOCK + 77  # long enough for blocks, with a partial last block
    rows = [rng.standard_normal(n), rng.integers(0, 3, n), np.full(n, -np.inf), np.full(n, 2.0)]
    sparse = np.full(n, -np.inf)
    sparse[[5, n - 1]] = 1.0  # two finite values, one in the last block
    key = keras.ops.convert_to_tensor(np.stack([*rows, sparse]).astype("float32"))
    for width in (n, 40):  # a short row takes one top-k
        want, got = keras.ops.top_k(key[:, :width], k), ranking.top_k_in_blocks(key[:, :width], k)
        np.testing.assert_array_equal(np.asarray(got[1]), np.asarray(want[1]))
        np.testing.assert_array_equal(np.asarray(got[0]), np.asarray(want[0]))


def test_a_key_padded_to_whole_blocks_then_masked_ranks_as_the_masked_key():
    """The scorer pads the key before it masks the excluded (row, position) pairs (the padding pairs land past the
    last row): the same values and positions as one top-k of the masked, unpadded key."""
    import keras

    from ratecast import ranking

    rng = np.random.default_rng(1)
    k, n = 4, 8 * 4 * ranking.TOP_K_BLOCK + 5
    key = rng.integers(0, 4, (3, n)).astype("float32")
    mask = np.ones((3, n), bool)
    mask[0, [0, 7, n - 1]] = False
    mask[2, rng.integers(0, n, 64)] = False
    excluded = ranking.Allowed.from_mask(mask).excluded_pairs(0, 3, 3)
    assert excluded.shape[1] % 1024 == 0 and (excluded[0, mask.size - mask.sum():] == 3).all()
    padded = ranking.whole_blocks(keras.ops.convert_to_tensor(key), k)
    assert padded.shape[1] % ranking.TOP_K_BLOCK == 0 and padded.shape[1] > n
    got = ranking.top_k_in_blocks(ranking.without_excluded(padded, excluded), k)
    other = ranking.top_k_in_blocks(ranking.without_any_backend(padded, excluded), k)
    want = keras.ops.top_k(keras.ops.convert_to_tensor(np.where(mask, key, -np.inf)), k)
    for result in (got, other):
        np.testing.assert_array_equal(np.asarray(result[1]), np.asarray(want[1]))
        np.testing.assert_array_equal(np.asarray(result[0]), np.asarray(want[0]))


def _ranking_of_every_user(ds, model):
    """A fitted ``model``, its scorer and network, every user, their allowed items, the variables a ranking reads
    and the known rows of its item tables."""
    rec = rc.Recommender(model, random_state=0, **FAST).fit(ds)
    scorer, users = rec._scorer, np.arange(1, len(rec.user_index_) + 1)
    variables = scorer._variables("all")
    return (rec, scorer, rec.state_.model, users, rec._candidates.allowed(users), variables,
            scorer.known_rows(variables))


@pytest.mark.parametrize("model", ["dot", "biased_dot"])
def test_ranking_scores_a_product_model_against_its_item_side_made_once(ds, model):
    """A product model's ranking makes its item side once (biases included, the items that are not allowed masked
    by a last column, padded to whole blocks); the top-k program copies no table per batch, and ranks as the scores
    computed from the tables on the host do."""
    import jax

    from ratecast import ranking

    rec, scorer, m, users, allowed, variables, known = _ranking_of_every_user(ds, model)
    allowed.items[[0, 3]] = False  # two items no user may get
    table = scorer._product_table(variables, known, allowed.items)
    n = m.n_items - 1
    assert table.shape[0] % ranking.TOP_K_BLOCK == 0 and table.shape[0] > n
    mask = np.asarray(table)[:, -1]
    np.testing.assert_array_equal(mask, np.where(np.arange(table.shape[0]) < n, 0, -np.inf)
                                  + np.where(np.isin(np.arange(table.shape[0]), [0, 3]), -np.inf, 0))
    np.testing.assert_array_equal(np.asarray(table)[n:, :-1], 0)
    ex = allowed.excluded_pairs(0, len(users), len(users))
    args = (users.astype("int32"), allowed.items, ex, None)
    lowered = scorer._top_k.lower(variables, known, table, *args, k=8).as_text()
    rows = "x".join(str(d) for d in table.shape)
    assert not [line for line in lowered.splitlines()
                if ("slice" in line or "concatenate" in line) and f"tensor<{rows}xf32>" in line]
    values, idx, ratings = jax.device_get(scorer._top_k(variables, known, table, *args, k=8))
    tables = m.linear_tables()
    scores = (np.float64(tables["offset"]) + tables["user_bias"][users - 1, None] + tables["item_bias"][None, :]
              + tables["user_factors"][users - 1].astype("float64") @ tables["item_factors"].T.astype("float64"))
    scores[~allowed.mask()] = -np.inf
    want = np.argsort(-scores, axis=1, kind="stable")[:, :8]
    np.testing.assert_array_equal(idx, want)
    np.testing.assert_allclose(values, np.take_along_axis(scores, want, axis=1), rtol=1e-5)
    np.testing.assert_allclose(ratings, rec.state_.rating_scale.clip(values), rtol=1e-5)


@pytest.mark.parametrize("model", ["deep"])  # (implicit contracts its whole tables: layers.item_dots)
def test_ranking_gives_other_models_their_item_tables_sliced_once(ds, model):
    """The top-k program of a model scored otherwise than by a product is given its item tables' known rows
    (sliced once per ranking) and slices none of them itself; the same lists and ratings as when it slices them."""
    import jax

    rec, scorer, m, users, allowed, variables, known = _ranking_of_every_user(ds, model)
    assert sorted(known) == sorted(v.path for v in m.known_row_variables()) and known
    for v in m.known_row_variables():
        np.testing.assert_array_equal(np.asarray(known[v.path]), np.asarray(v.value)[1:])
    assert scorer._product_table(variables, known, allowed.items) is None
    args = (None, users.astype("int32"), allowed.items, allowed.excluded_pairs(0, len(users), len(users)), None)
    lowered = scorer._top_k.lower(variables, known, *args, k=8).as_text()
    for rows in {"x".join(str(d) for d in np.shape(value)) for value in known.values()}:
        assert not [line for line in lowered.splitlines() if "slice" in line and f"tensor<{rows}xf32>" in line]
    given, sliced = scorer._top_k(variables, known, *args, k=8), scorer._top_k(variables, {}, *args, k=8)
    for a, b in zip(jax.device_get(given), jax.device_get(sliced)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("model", ["dot", "biased_dot", "deep"])
def test_lists_of_all_users_are_the_single_users_lists(ds, model):
    """recommend_all and recommend run the same ranking: the same items, in the same order, with the same
    scores, for every sampled user."""
    rec = rc.Recommender(model, random_state=0, **FAST).fit(ds)
    lists = rec.recommend_all(k=6)
    for user in np.random.default_rng(0).choice(rec.user_index_.ids, 12, replace=False):
        one = lists[lists["user_id"] == user]
        single = rec.recommend(user, k=6)
        assert one["item_id"].tolist() == single["item_id"].tolist()
        np.testing.assert_array_equal(one["score"].to_numpy(), single["score"].to_numpy())


def test_a_product_models_item_table_is_made_once_for_many_lists_and_again_when_weights_change(ds):
    rec = rc.Recommender("biased_dot", embedding_dim=4, epochs=2, random_state=0, verbose=0).fit(ds)
    scorer = rec.scorer
    made = []
    program = scorer._product_table
    scorer._product_table = lambda *a: made.append(1) or program(*a)
    users = ds.ratings["user_id"].unique()[:3]
    first = [rec.recommend(u, k=5) for u in users]
    assert len(made) == 1  # one table for three users' lists
    rec.recommend(users[0], k=5, exclude=[first[1]["item_id"].iloc[0]])  # other items allowed: another table
    assert len(made) == 2
    last = first[0]["item_id"].iloc[-1]
    bias = rec.model_.item_bias.embeddings
    value = np.asarray(bias).copy()
    value[rec.item_index_.index([last])[0]] += 100.0
    bias.assign(value)  # new weights: the table follows them
    again = rec.recommend(users[0], k=5)
    assert len(made) == 3 and again["item_id"].iloc[0] == last

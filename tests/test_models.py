"""The contract every model passes (shapes, persistence, config round trip, hand-computed values, a naive numpy
implementation, unknown ids, empty input, reproducibility), plus bad-argument checks."""

import numpy as np
import pandas as pd
import pytest

import ratecast as rc
from ratecast.models import MODELS
from synthetic import make_dataset

FAST = dict(embedding_dim=4, epochs=2, batch_size=32, verbose=0)


def fast(model: str, params: dict) -> dict:
    """FAST and ``params``, without the training options a model that is not trained by gradient refuses."""
    from ratecast.models.config import TrainingConfig

    options = {**FAST, **params}
    if not MODELS[model].trained_by_gradient:
        options = {k: v for k, v in options.items() if k not in TrainingConfig.field_names()}
    return options


def numpy_forward(rec, u_idx, i_idx):
    """A naive numpy implementation of each architecture, from the model's weights."""
    m = rec.model_
    U = np.asarray(m.user_embedding.embeddings)
    V = np.asarray(m.item_embedding.embeddings)
    if rec.model == "implicit":
        sets, w = np.asarray(m.sets.items)[u_idx], np.asarray(m.sets.values)[u_idx]
        Y = np.asarray(m.implicit_factors.embeddings)
        count = np.maximum((sets > 0).sum(1, keepdims=True), 1)
        rep = U[u_idx] + (Y[sets] * w[..., None]).sum(1) / np.sqrt(count)
        bu = np.asarray(m.user_bias.embeddings)[:, 0]
        bi = np.asarray(m.item_bias.embeddings)[:, 0]
        rating = m.global_mean + bu[u_idx] + bi[i_idx] + (rep * V[i_idx]).sum(1)
        logits = rep @ np.asarray(m.pick.factors)[1:].T + np.asarray(m.pick.bias)[1:, 0]
        rows = np.arange(len(i_idx))
        picked = logits[rows, i_idx - 1]
        logp = picked - np.log(np.exp(logits).sum(1))
        z = (picked - logits.mean(1)) / np.maximum(logits.std(1), 1e-3)
        if m.uses_item_item and m.item_item_low_rank:  # x - (x P) / diag(P), with P = diag(1/D) - U U^T
            U, inv_d = np.asarray(m.item_item.weights_table), np.asarray(m.item_item.inv_d)
            x = np.zeros((len(rows), m.n_items))
            np.add.at(x, (np.repeat(rows, sets.shape[1]), sets.ravel()), w.ravel())
            x[:, 0] = 0.0
            p_diag = inv_d - (U * U).sum(1)
            ii = (x - (x * inv_d - x @ U @ U.T) / p_diag)[rows, i_idx]
        elif m.uses_item_item:
            B = np.asarray(m.item_item.weights_table)
            ii = np.array([(w[r] * B[sets[r], i_idx[r]]).sum() for r in rows])
        if m.uses_item_item:
            stats = np.asarray(m.item_item.stats)[u_idx]
            a = m.cfg.item_item_weight
            z = (1 - a) * z + a * (ii - stats[:, 0]) / np.maximum(stats[:, 1], 1e-3)
        if m.uses_set_model:  # the set head (Mult-DAE), on the user's whole weighted set
            h = m.set_head
            W1, b1, W2, b2, fitted = (np.asarray(v) for v in (h.w1, h.b1, h.w2, h.b2, h.fitted))
            x = np.zeros((len(rows), m.n_items))
            np.add.at(x, (np.repeat(rows, sets.shape[1]), sets.ravel()), w.ravel())
            x[:, 0] = 0.0
            x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-6)
            head = (np.tanh(x @ W1 + b1) @ W2 + b2)[:, 1:]
            c = m.cfg.set_model_weight * fitted
            z = z - c * (picked - logits.mean(1)) / np.maximum(logits.std(1), 1e-3) + c * (
                head[rows, i_idx - 1] - head.mean(1)) / np.maximum(head.std(1), 1e-3)
        s = m.scale
        key = z + m.cfg.rating_weight * (np.clip(rating, s.minimum, s.maximum) - m.liked_rating) * 4 / (
            s.maximum - s.minimum)
        return np.stack([rating, logp, key], axis=1)
    if rec.model in ("baseline", "popularity"):
        out = m.global_mean + U[u_idx, 0] + V[i_idx, 0]
        if rec.model == "popularity":
            out = np.stack([out, np.asarray(m.item_count)[i_idx]], axis=1)
        return out
    if rec.model == "bayesian":  # posterior-mean biases plus one dot product over the samples' factors
        bu = np.asarray(m.user_bias.embeddings)[:, 0]
        bi = np.asarray(m.item_bias.embeddings)[:, 0]
        return float(np.asarray(m.global_bias)) + bu[u_idx] + bi[i_idx] + (U[u_idx] * V[i_idx]).sum(1)
    if rec.model in ("dot", "biased_dot"):
        out = np.array([U[a] @ V[b] for a, b in zip(u_idx, i_idx)])
        if rec.model == "biased_dot":
            bu = np.asarray(m.user_bias.embeddings)[:, 0]
            bi = np.asarray(m.item_bias.embeddings)[:, 0]
            out = out + m.global_mean + bu[u_idx] + bi[i_idx]
        elif m.cfg.use_global_mean:
            out = out + m.global_mean
        return out
    parts = [U[u_idx]]
    if m.user_feature_dim:
        parts.append(np.asarray(m.user_feature_table)[u_idx])
    parts.append(V[i_idx])
    if m.item_feature_dim:
        parts.append(np.asarray(m.item_feature_table)[i_idx])
    h = np.concatenate(parts, axis=1)
    for block in m.tower.blocks:
        dense = block[0]
        h = np.maximum(h @ np.asarray(dense.kernel) + np.asarray(dense.bias), 0)
    if rec.model == "classification" and m.cfg.head == "ordinal":  # cumulative link: P(y <= k) = sigmoid(c_k - s)
        score = h @ np.asarray(m.head.score.kernel) + np.asarray(m.head.score.bias)
        gaps = np.log1p(np.exp(np.asarray(m.head.gaps)))
        cuts = float(np.asarray(m.head.first_cut)) + np.concatenate([[0.0], np.cumsum(gaps)])
        cdf = 1 / (1 + np.exp(-(cuts[None, :] - score)))
        cdf = np.concatenate([np.zeros((len(h), 1)), cdf, np.ones((len(h), 1))], axis=1)
        return np.diff(cdf, axis=1)
    z = h @ np.asarray(m.head.kernel) + np.asarray(m.head.bias)
    if rec.model == "classification":
        p = np.exp(z - z.max(1, keepdims=True))
        return p / p.sum(1, keepdims=True)
    return z[:, 0]


def pairs(u, i):
    return {"user": np.asarray(u, "int32"), "item": np.asarray(i, "int32")}


@pytest.fixture(scope="module")
def data():
    return rc.split.holdout(make_dataset(), test_size=0.2, random_state=0)


@pytest.fixture(scope="class")
def fitted(request, data):
    cls = request.cls
    return rc.Recommender(cls.model, random_state=0, **fast(cls.model, cls.params)).fit(data.train)


class ModelContract:
    model = "dot"
    params: dict = {}

    def test_shapes_and_dtypes(self, fitted, data):
        r = data.test.ratings
        pred = fitted.predict(r["user_id"], r["item_id"])
        assert pred.shape == (len(r),) and pred.dtype == np.float64
        s = fitted.rating_scale_
        assert np.all(np.isfinite(pred)) and pred.min() >= s.minimum and pred.max() <= s.maximum
        # a model the engine trains records validation losses; a sampled one its per-sweep training loss
        expected = {"loss", "val_loss"} if fitted.model_.trained_by_gradient else {"loss"}
        assert set(fitted.history_) >= expected and len(fitted.history_["loss"]) >= 1

    def test_save_load_identical(self, fitted, data, tmp_path):
        r = data.test.ratings
        before = fitted.predict(r["user_id"], r["item_id"])
        fitted.save(tmp_path / "m")
        fitted.save(tmp_path / "m", overwrite=True)  # replacing a saved model, when asked, works
        loaded = rc.Recommender.load(tmp_path / "m")
        assert np.array_equal(loaded.predict(r["user_id"], r["item_id"]), before)
        assert loaded.history_ == fitted.history_
        assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no temp folders left behind

    def test_config_round_trip(self, fitted, data):
        m = fitted.model_
        clone = type(m).from_config(m.get_config())
        x = pairs([1, 2], [1, 3])
        clone(x)
        clone.set_weights(m.get_weights())
        assert clone.get_config() == m.get_config()
        np.testing.assert_allclose(np.asarray(clone(x)), np.asarray(m(x)), rtol=1e-6)

    def test_matches_naive_numpy(self, fitted):
        u = np.arange(1, len(fitted.user_index_) + 1, dtype="int32")
        i = (np.arange(len(u)) % len(fitted.item_index_) + 1).astype("int32")
        got = fitted._scorer.pairs(u, i)[0]
        np.testing.assert_allclose(got, numpy_forward(fitted, u, i), rtol=1e-4, atol=1e-5)

    def test_hand_computed_with_constant_weights(self, fitted):
        m = type(fitted.model_).from_config(fitted.model_.get_config())
        x = pairs([1], [2])
        m(x)
        x = {**x, "item_features": np.asarray(m.item_feature_table)[[2]] if m.item_feature_dim else np.zeros((1, 0)),
             "user_features": np.asarray(m.user_feature_table)[[1]] if m.user_feature_dim else np.zeros((1, 0))}
        for w in m.weights:
            w.assign(np.full(w.shape, 0.1, dtype=w.dtype) if "embedding" in w.path or "kernel" in w.path
                     else np.zeros(w.shape, dtype=w.dtype))
        out = np.asarray(m(x))
        d = fitted.model_config_.embedding_dim
        if self.model == "implicit":  # no items in the set: the user vector alone; equal logits for every item
            rating = m.global_mean + 0.2 + d * 0.01
            # both standardised parts are 0: the rating term alone, in quarters of the scale
            key = m.cfg.rating_weight * (rating - m.liked_rating) * 4 / (m.scale.maximum - m.scale.minimum)
            np.testing.assert_allclose(out[0], [rating, -np.log(m.n_items - 1), key], rtol=1e-5, atol=1e-3)
        elif self.model == "baseline":
            assert out[0] == pytest.approx(m.global_mean + 0.2, rel=1e-5)
        elif self.model == "popularity":
            np.testing.assert_allclose(out[0], [m.global_mean + 0.2, 0.0], rtol=1e-5)
        elif self.model == "dot":
            expected = d * 0.01 + (m.global_mean if m.cfg.use_global_mean else 0)
            assert out[0] == pytest.approx(expected, rel=1e-5)
        elif self.model == "biased_dot":
            assert out[0] == pytest.approx(m.global_mean + 0.1 + 0.1 + d * 0.01, rel=1e-5)  # + both biases
        elif self.model == "bayesian":  # offset 0, both biases, a dot product over every sample's factors
            assert out[0] == pytest.approx(0.1 + 0.1 + m.table_width() * 0.01, rel=1e-5)
        elif self.model == "classification" and m.cfg.head == "softmax":
            np.testing.assert_allclose(out[0], np.full(m.n_classes, 1 / m.n_classes), rtol=1e-5)
        elif self.model == "classification":  # ordinal: score 0.1 * sum(h), cut points 0, ln 2, 2 ln 2, ...
            h = np.full(2 * d, 0.1)
            for width in m.cfg.hidden:
                h = np.maximum(np.full(width, 0.1 * h.sum()), 0)
            cuts = np.concatenate([[0.0], np.cumsum(np.full(m.n_classes - 2, np.log(2.0)))])
            cdf = np.concatenate([[0.0], 1 / (1 + np.exp(-(cuts - 0.1 * h.sum()))), [1.0]])
            np.testing.assert_allclose(out[0], np.diff(cdf), rtol=1e-4, atol=1e-6)
        else:
            h = np.concatenate([np.full(2 * d, 0.1), x["item_features"][0], x["user_features"][0]])
            for width in m.cfg.hidden:
                h = np.maximum(np.full(width, 0.1 * h.sum()), 0)
            assert out[0] == pytest.approx(0.1 * h.sum(), rel=1e-4)

    def test_unknown_ids_fall_back_and_are_flagged(self, fitted, data):
        known_user, known_item = data.train.ratings.iloc[0][["user_id", "item_id"]]
        d = fitted.predict_details([known_user, 9999, known_user, 9999], [known_item, known_item, 8888, 8888])
        assert d["was_impossible"].tolist() == [False, True, True, True]
        assert d["known_user"].tolist() == [True, False, True, False]
        b = fitted.baseline_
        ii = fitted.item_index_.index([known_item])[0]
        assert d["prediction"].iloc[3] == pytest.approx(fitted.rating_scale_.clip(b.mean))
        assert d["prediction"].iloc[1] == pytest.approx(fitted.rating_scale_.clip(b.mean + b.item_bias[ii]))
        assert np.isfinite(d["prediction"]).all()

    def test_empty_input(self, fitted):
        out = fitted.predict(np.array([], dtype=int), np.array([], dtype=int))
        assert out.shape == (0,)

    def test_wrong_lengths(self, fitted):
        with pytest.raises(ValueError, match=r"same length, got shapes \(2,\) and \(3,\)"):
            fitted.predict([1, 2], [101, 102, 103])

    def test_reproducible(self, fitted, data):
        again = rc.Recommender(self.model, random_state=0, **fast(self.model, self.params)).fit(data.train)
        r = data.test.ratings
        assert np.array_equal(again.predict(r["user_id"], r["item_id"]), fitted.predict(r["user_id"], r["item_id"]))

    def test_summary_counts_parameters(self, fitted):
        s = fitted.summary()
        d = fitted.model_.table_width()
        emb = (len(fitted.user_index_) + 1 + len(fitted.item_index_) + 1) * d
        assert s["total_params"] >= emb and s["weights"]["user_embedding/embeddings"] == (len(fitted.user_index_) + 1) * d


    def test_all_items_scoring_equals_pair_scoring(self, fitted):
        m = fitted.model_
        users = np.arange(1, min(6, len(fitted.user_index_)) + 1, dtype="int32")
        n = len(fitted.item_index_)
        all_items = np.asarray(m.score_items(users))
        u, i = np.repeat(users, n), np.tile(np.arange(1, n + 1, dtype="int32"), len(users))
        by_pair = fitted._scorer.pairs(u, i)[0].reshape(len(users), n, *m.output_rule.shape)
        np.testing.assert_allclose(all_items, by_pair, rtol=1e-4, atol=1e-5)

    def test_ratings_alone_equal_the_pair_outputs_ratings(self, fitted, data):
        from ratecast.ranking import Scorer

        m = fitted.model_
        u = fitted.state_.user_index.index(data.test.ratings["user_id"])
        i = fitted.state_.item_index.index(data.test.ratings["item_id"])
        known = (u > 0) & (i > 0)
        scorer = Scorer(m)
        _, expected = scorer.pairs(u[known], i[known])
        np.testing.assert_allclose(scorer.ratings(u[known], i[known]), expected, rtol=1e-5, atol=1e-5)

    def test_top_k_equals_numpy_reference(self, fitted):
        from ratecast.similarity import top_k

        n, k = len(fitted.item_index_), 5
        users = fitted.user_index_.ids
        got = fitted.recommend_all(k=k)
        for user in users[:8]:
            u = int(fitted.user_index_.index([user])[0])
            out = fitted._scorer.pairs(np.full(n, u, "int32"), np.arange(1, n + 1, dtype="int32"))[0]
            key = np.asarray(fitted.model_.output_rule.ranking_key(out), dtype="float64")
            allowed = ~np.isin(fitted.item_index_.ids, fitted.seen_items(user))
            ref = top_k(key, k, allowed)
            mine = got.loc[got["user_id"] == user]
            assert mine["rank"].tolist() == list(range(1, len(ref) + 1))
            mine_key = key[fitted.item_index_.index(mine["item_id"].to_numpy()) - 1]
            # the same items up to float ties: every pick is as good as the reference's pick at that rank
            np.testing.assert_allclose(mine_key, key[ref], rtol=1e-5, atol=1e-5)
            assert not set(mine["item_id"]) & set(fitted.seen_items(user))
            np.testing.assert_allclose(mine["score"], fitted.predict(np.full(len(mine), user), mine["item_id"]),
                                       rtol=1e-5, atol=1e-5)

    def test_scorer_follows_weight_changes(self, fitted, data):
        user = fitted.user_index_.ids[0]
        m = fitted.model_
        saved = [np.array(v) for v in m.get_weights()]
        try:
            before = fitted.recommend(user, k=3)
            emb = m.item_embedding.embeddings
            emb.assign(np.asarray(emb)[::-1].copy())  # different weights, same compiled scorer
            after = fitted.recommend(user, k=3)
            items = after["item_id"].to_numpy()
            np.testing.assert_allclose(after["score"], fitted.predict(np.full(3, user), items), rtol=1e-5, atol=1e-5)
            assert not before.equals(after) or np.allclose(np.asarray(emb), np.asarray(emb)[::-1])
        finally:
            m.set_weights(saved)

    def test_cold_start_contract(self, fitted):
        demo = {"age": 30, "gender": "F", "occupation": "writer"}
        new_user = fitted.recommend_new_user(demo, k=4)
        assert len(new_user) == 4 and new_user["score"].between(1, 5).all()
        new_item = fitted.predict_new_item({"release_year": 1990, "Action": 1}, fitted.user_index_.ids[:3])
        assert new_item.shape == (3,) and np.isfinite(new_item).all()
        if fitted.model_.cold_start.supports(fitted.model_, "user"):
            assert not new_user.attrs.get("fallback")
            other = fitted.recommend_new_user({"age": 70, "gender": "M", "occupation": "doctor"},
                                              k=len(fitted.item_index_))
            assert not np.allclose(other.set_index("item_id").loc[new_user["item_id"], "score"], new_user["score"])
        else:
            assert new_user.attrs["fallback"] is True
            b = fitted.baseline_
            u = fitted.user_index_.index(fitted.user_index_.ids[:3])
            np.testing.assert_allclose(new_item, fitted.rating_scale_.clip(b.mean + b.user_bias[u]))

    def test_fold_in_leaves_other_users_alone(self, fitted, data):
        r = data.test.ratings
        rec = rc.Recommender.__new__(rc.Recommender)
        rec.__dict__.update({k: v for k, v in fitted.__dict__.items() if not k.startswith("_scorer")})
        before = fitted.predict(r["user_id"], r["item_id"])
        items = fitted.item_index_.ids[:3]
        rec.fold_in("newcomer", {items[0]: 5, items[1]: 1, items[2]: 4}, epochs=5)
        assert "newcomer" in rec.user_index_ and "newcomer" not in fitted.user_index_
        np.testing.assert_array_equal(rec.predict(r["user_id"], r["item_id"]), before)
        np.testing.assert_array_equal(fitted.predict(r["user_id"], r["item_id"]), before)
        top = rec.recommend("newcomer", k=len(fitted.item_index_))
        assert not set(top["item_id"]) & set(items)


class TestBaseline(ModelContract):
    model = "baseline"
    params = {"embedding_dim": 1}

    def test_has_no_vectors_to_compare(self, fitted):
        with pytest.raises(ValueError, match="learns no item vectors"):
            fitted.similar_items(fitted.item_index_.ids[0])

    def test_biases_are_damped_toward_the_mean(self, data):
        # a larger per-row L2 pulls the biases toward zero: predictions spread less around the global mean
        r = data.train.ratings
        spread = []
        for l2 in (0.0, 5.0):
            rec = rc.Recommender("baseline", random_state=0, **{**FAST, "embedding_dim": 1, "l2": l2,
                                                                  "epochs": 10}).fit(data.train)
            spread.append(np.abs(rec.predict(r["user_id"], r["item_id"]) - rec.model_.global_mean).mean())
        assert spread[1] < spread[0] / 2


class TestPopularity(ModelContract):
    model = "popularity"
    params = {"embedding_dim": 1}

    def test_lists_follow_training_counts(self, fitted, data):
        count = np.asarray(fitted.model_.item_count)
        # counted on the ratings the model was fitted on (train less its validation split), all of them
        assert count.sum() == fitted.state_.n_train and count[0] == 0
        assert np.all(count[1:] <= fitted.state_.popularity[1:])
        user = fitted.user_index_.ids[0]
        top = fitted.recommend(user, k=5)
        unseen = np.setdiff1d(np.arange(1, len(count)), fitted.item_index_.index(fitted.seen_items(user)))
        got = count[fitted.item_index_.index(top["item_id"].to_numpy())]
        assert list(got) == sorted(count[unseen], reverse=True)[:5]


class TestImplicit(ModelContract):
    model = "implicit"

    def test_sets_hold_the_training_items_and_leave_the_pair_out(self, fitted):
        from ratecast.models.user_sets import padded_sets

        table, value = padded_sets(np.array([1, 1, 2, 1]), np.array([3, 5, 3, 3]), np.array([1.0, 0.5, 1.0, 0.25]),
                                   3, 4, seed=0)
        assert sorted(table[1][table[1] > 0]) == [3, 5] and list(table[2][table[2] > 0]) == [3]
        assert dict(zip(table[1], value[1]))[3] == 0.25  # a repeated pair keeps its last value
        assert not table[0].any() and not value[0].any()
        capped, _ = padded_sets(np.zeros(10, int) + 1, np.arange(1, 11), np.ones(10), 2, 4, seed=0)
        assert (capped[1] > 0).sum() == 4 and len(set(capped[1])) == 4
        m = fitted.model_
        u = 1
        own = np.asarray(m.sets.items)[u]
        item = int(own[own > 0][0])
        users, items = np.array([u], "int32"), np.array([item], "int32")
        full = np.asarray(m.representation(users))
        clone = type(m).from_config({**m.get_config(), "config": {**m.cfg.to_dict(), "set_dropout": 0.0}})
        clone.build_now()
        clone.set_weights(m.get_weights())
        left_out = np.asarray(clone.representation(users, items, training=True))
        Y, P = np.asarray(m.implicit_factors.embeddings), np.asarray(m.user_embedding.embeddings)
        w = np.asarray(m.sets.values)[u]
        rest = (own > 0) & (own != item)
        expected = P[u] + (Y[own[rest]] * w[rest][:, None]).sum(0) / np.sqrt(max(rest.sum(), 1))
        np.testing.assert_allclose(left_out[0], expected, rtol=1e-4, atol=1e-5)
        assert not np.allclose(left_out, full)


    def test_fold_in_gives_the_newcomer_their_implicit_set(self, fitted):
        rec = rc.Recommender.__new__(rc.Recommender)
        rec.__dict__.update({k: v for k, v in fitted.__dict__.items() if not k.startswith("_scorer")})
        items = fitted.item_index_.ids[:4]
        rec.fold_in("newcomer", {items[0]: 5, items[1]: 1, items[2]: 4, items[3]: 2}, epochs=2)
        m = rec.model_
        u = rec.user_index_.index(["newcomer"])[0]
        value = rec.state_.value  # the per-user arrays of the state a fold-in derived
        row, weight = np.asarray(value(m.sets.items))[u], np.asarray(value(m.sets.values))[u]
        got = dict(zip(row[row > 0], weight[row > 0]))
        idx = fitted.item_index_.index(items)
        assert got == {idx[0]: 1.0, idx[1]: m.cfg.low_weight, idx[2]: 1.0, idx[3]: m.cfg.low_weight}
        if m.uses_item_item:
            assert np.asarray(value(m.item_item.stats))[u, 1] > 0


class TestImplicitLargeCatalogue(TestImplicit):
    """Every head on its large-catalogue variant (thresholds below the synthetic catalogue)."""

    params = {"softmax_max_items": 5, "item_item_max_items": 5, "set_model_max_items": 5, "item_item_rank": 4,
              "sampled_negatives": 16, "sampled_epochs": 2, "set_model_sampled_hidden": 8}


class TestBayesian(ModelContract):
    model = "bayesian"
    params = {"samples": 3, "burn_in": 2, "chains": 1}

    def test_tables_hold_every_sample(self, fitted):
        assert fitted.model_.table_width() == 4 * 3
        assert np.asarray(fitted.model_.user_embedding.embeddings).shape[1] == 12
        assert len(fitted.history_["loss"]) == 3 + 2  # one training loss per sweep


class TestDot(ModelContract):
    model = "dot"


class TestBiasedDot(ModelContract):
    model = "biased_dot"


class TestDeep(ModelContract):
    model = "deep"


class TestHybrid(ModelContract):
    model = "hybrid"

    def test_features_fitted_on_train_only(self, fitted, data):
        names = fitted.encoder_.item_feature_names()
        assert names[:2] == ["popularity", "release_year"] and "genre:Action" in names
        assert fitted.encoder_.user_feature_names()[0] == "age"
        assert tuple(fitted.model_.item_feature_table.shape) == (len(fitted.item_index_) + 1, len(names))


class TestClassification(ModelContract):
    model = "classification"

    def test_probabilities_and_rules(self, fitted, data):
        r = data.test.ratings.head(10)
        p = fitted.predict_proba(r["user_id"], r["item_id"])
        assert p.shape == (10, 5) and np.allclose(p.sum(1), 1, atol=1e-5)
        values = fitted.rating_scale_.values
        median = values[np.argmax(np.cumsum(p, 1) >= 0.5, 1)]
        assert np.array_equal(fitted.predict(r["user_id"], r["item_id"]), median)

    def test_half_star_scale_gives_ten_classes(self):
        ds = make_dataset(half_stars=True)
        rec = rc.Recommender("classification", random_state=0, prediction="expected", **FAST).fit(ds)
        assert rec.model_.n_classes == 10
        p = rec.predict_proba([1], [101])
        assert rec.predict([1], [101])[0] == pytest.approx(float(p[0] @ rec.rating_scale_.values))


@pytest.mark.parametrize(
    "model,params,match",
    [
        ("svd", {}, r"model must be one of .*got 'svd'"),
        ("dot", {"embedding_dim": -3}, r"embedding_dim must be a positive integer, got -3"),
        ("deep", {"dropout": 1.0}, r"dropout must be in \[0, 1\), got 1.0"),
        ("deep", {"hidden": [64, 0]}, r"hidden\[1\] must be a positive integer, got 0"),
        ("dot", {"epochs": 0}, r"epochs must be a positive integer, got 0"),
        ("dot", {"colour": "red"}, r"unknown option\(s\) \['colour'\] for model 'dot'"),
        ("dot", {"loss": "crossentropy"}, r"loss for model 'dot' must be one of \['mae', 'mse', 'huber'\], got 'cross"),
        ("classification", {"loss": "mse"}, r"loss for model 'classification' must be one of \['crossentropy'\]"),
        ("deep", {"loss": "hinge"}, r"loss must be one of \['mae', 'mse', 'huber', 'crossentropy'\], got 'hinge'"),
    ],
)
def test_bad_arguments(model, params, match):
    with pytest.raises(ValueError, match=match):
        rc.Recommender(model, **params)


def test_not_fitted():
    with pytest.raises(rc.NotFittedError, match="not fitted yet"):
        rc.Recommender("dot").predict([1], [2])


def test_ranking_metric_k_must_be_positive():
    import pandas as pd

    frame = pd.DataFrame({"user_id": [1], "rating": [5.0], "score": [4.0]})
    with pytest.raises(ValueError, match="k must be a positive integer, got 0"):
        rc.metrics.ranking_metrics(frame, k=0)


def test_every_registered_model_has_a_contract_class():
    covered = {c.model for c in ModelContract.__subclasses__()}
    assert covered == set(MODELS)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["dot", "biased_dot", "deep", "hybrid", "classification"])
def test_rmse_band_on_ml100k(model, lab_split):
    rec = rc.Recommender(model, random_state=0, epochs=3, batch_size=128, learning_rate=3e-3, verbose=0,
                         embedding_dim=16 if model == "classification" else 32)
    rec.fit(lab_split.train)
    ev = rec.evaluate(lab_split.test, ci=False)
    assert 0.85 < ev["rmse"] < 1.10, ev
    assert 0.65 < ev["mae"] < 0.90, ev


def test_ordinal_head_gives_ordered_distributions():
    import keras

    from ratecast.models.classification import CumulativeLink

    head = CumulativeLink(5, kernel_initializer="glorot_uniform")
    x = np.random.default_rng(0).normal(size=(64, 8)).astype("float32")
    p = np.asarray(head(x))
    assert p.shape == (64, 5) and (p >= 0).all() and np.allclose(p.sum(axis=1), 1, atol=1e-6)
    assert (np.diff(np.asarray(head.cut_points())) > 0).all()  # cut points stay increasing
    scores = np.asarray(head.score(x))[:, 0]
    cdf = np.cumsum(p, axis=1)[:, :-1]
    order = np.argsort(scores)
    assert (np.diff(cdf[order], axis=0) <= 1e-6).all()  # a higher score moves mass to higher ratings
    head.gaps.assign(-50 * np.ones(3, "float32"))  # whatever the weights, the cut points never cross
    assert (np.diff(np.asarray(head.cut_points())) >= 0).all() and keras.ops.all(head(x) >= 0)


def test_classification_heads_are_an_option_and_lab_keeps_the_softmax():
    from ratecast import presets

    ds = make_dataset()
    for head in ("softmax", "ordinal"):
        rec = rc.Recommender("classification", head=head, epochs=2, random_state=0, verbose=0).fit(ds)
        proba = rec.predict_proba([1, 2], [101, 102])
        assert proba.shape == (2, 5) and np.allclose(proba.sum(axis=1), 1, atol=1e-5)
        assert type(rec.model_.head).__name__ == ("Dense" if head == "softmax" else "CumulativeLink")
    assert rc.Recommender("classification").params.get("head") is None
    assert rc.models.ClassificationConfig().head == "ordinal"
    assert presets.resolve("lab", "classification")[1]["head"] == "softmax"


def test_the_lab_preset_keeps_the_labs_hybrid_tower():
    """The hybrid's defaults narrow the tower; the lab preset builds the lab's (64, 64) tower with dropout 0.3."""
    from ratecast import presets

    ds = make_dataset()
    model, options = presets.resolve("lab", "hybrid")
    lab = rc.Recommender(model, **{**options, "epochs": 1}, random_state=0, verbose=0).fit(ds)
    tower = lab.model_.tower
    assert tower.hidden == (64, 64) and tower.dropout_rate == 0.3 and tower.hidden_dropout == 0.3
    default = rc.models.HybridConfig()
    assert default.hidden != (64, 64) and default.dropout != 0.3


def test_fast_dropout_masks_are_uniform_fresh_each_step_and_seeded():
    """The counter-hash masks: about the asked share dropped, the rest scaled up, a new mask every call, the same
    masks for the same seed, and nothing dropped outside training."""
    import keras

    from ratecast.models.layers import FastDropout, fast_uniform

    u = np.asarray(fast_uniform((400, 250), keras.random.SeedGenerator(3)))
    assert u.min() >= 0 and u.max() < 1
    assert abs(u.mean() - 0.5) < 0.005 and abs(u.std() - 12 ** -0.5) < 0.005
    assert abs(np.corrcoef(u[:, :-1].ravel(), u[:, 1:].ravel())[0, 1]) < 0.01  # neighbours independent
    x = np.ones((300, 64), "float32")
    first, second = FastDropout(0.3, seed=1), FastDropout(0.3, seed=1)
    a, b = np.asarray(first(x, training=True)), np.asarray(first(x, training=True))
    assert abs((a == 0).mean() - 0.3) < 0.01 and np.allclose(a[a != 0], 1 / 0.7)
    assert (a != b).any()  # a fresh mask each step
    np.testing.assert_array_equal(a, np.asarray(second(x, training=True)))  # same seed, same masks
    np.testing.assert_array_equal(np.asarray(first(x, training=False)), x)
    with pytest.raises(ValueError, match="rate must be in"):
        FastDropout(1.0)


def test_implicit_runs_every_head_at_any_catalogue_size():
    from ratecast.models import ImplicitModel

    scale = {"minimum": 1.0, "maximum": 5.0, "step": 1.0}
    large = ImplicitModel({"item_item_max_items": 10, "set_model_max_items": 10, "softmax_max_items": 10}, 21, 31,
                          rating_scale=scale, seed=0)
    assert large.uses_item_item and large.uses_set_model  # on: their large-catalogue variants
    assert large.item_item_low_rank and large.set_model_sampled and large.sampled_training
    assert not large.trained_by_gradient
    small = ImplicitModel({}, 21, 31, rating_scale=scale, seed=0)
    assert not (small.item_item_low_rank or small.set_model_sampled or small.sampled_training)
    assert small.trained_by_gradient

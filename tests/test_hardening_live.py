"""Live fold-ins stay cheap as the model grows: new users' rows are appended to arrays shared with the state they
come from (never copied whole, never changing that state), and an id index grown one id at a time looks ids up as
a full one without rebuilding a table of every id."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import ratecast as rc
from ratecast.datasets.dataset import IdIndex, id_from_text
from tests.synthetic import make_dataset


@pytest.fixture(scope="module")
def rec():
    return rc.Recommender("biased_dot", random_state=0, verbose=0, epochs=2, embedding_dim=3,
                          batch_size=64).fit(make_dataset())


def rated(user, pairs) -> pd.DataFrame:
    return pd.DataFrame({"user_id": pd.Series([user] * len(pairs), dtype=object),
                         "item_id": [i for i, _ in pairs], "rating": [float(r) for _, r in pairs]})


def snapshot(r: rc.Recommender, users: list) -> dict:
    s = r.state_
    return {"seen": s.seen.toarray(), "ratings": s.seen_ratings.ratings.copy(),
            "trained": s.seen_ratings.trained.copy(),
            "vectors": r.user_embeddings().to_numpy().copy(), "n_train": s.n_train,
            "lists": {u: r.recommend(u, k=5)["item_id"].tolist() for u in users}}


def same(a: dict, b: dict) -> bool:
    return all(np.array_equal(a[k], b[k]) for k in ("seen", "ratings", "trained", "vectors")) and \
        a["n_train"] == b["n_train"] and a["lists"] == b["lists"]


def test_new_users_are_appended_in_place_and_every_parent_is_left_as_it_was(rec):
    r1 = rec.update(rated("a", [(101, 5), (105, 1), (110, 4)]))
    before1 = snapshot(r1, ["a", 3])
    r2 = r1.update(rated("b", [(102, 2), (103, 5)]))
    before2 = snapshot(r2, ["a", "b", 3])
    r3 = r2.update(rated("c", [(104, 4)]))
    assert np.shares_memory(r2.state_.seen.indices, r3.state_.seen.indices)  # appended, not copied
    assert np.shares_memory(r2.state_.seen_ratings.ratings, r3.state_.seen_ratings.ratings)
    branch = r1.update(rated("d", [(106, 3)]))  # r1 is no longer the newest: its branch gets arrays of its own
    known = r3.update(rated("a", [(111, 5)]))  # a known user: rows rebuilt in new arrays
    assert same(snapshot(r1, ["a", 3]), before1) and same(snapshot(r2, ["a", "b", 3]), before2)
    assert "b" not in branch.user_index_ and "d" in branch.user_index_ and "d" not in r3.user_index_
    assert set(branch.seen_items("d")) == {106} and set(r3.seen_items("c")) == {104}
    assert set(known.seen_items("a")) == {101, 105, 110, 111} and set(r3.seen_items("a")) == {101, 105, 110}
    for r in (r1, r2, r3, branch, known):  # the carried counts are the counts
        assert np.array_equal(r.state_.popularity, np.asarray(r.state_.seen.sum(axis=0)).ravel())
        assert r.state_.n_train - rec.state_.n_train == \
            int(r.state_.seen_ratings.trained.sum()) - int(rec.state_.seen_ratings.trained.sum())
    for r, users in ((r3, ["a", "b", "c"]), (branch, ["a", "d"]), (known, ["a", "b", "c"])):
        fresh = rec.update(pd.concat([rated(u, list(zip(r.seen_items(u), r.state_.user_ratings(
            int(r.user_index_.index([u])[0]))[1]))) for u in users]))
        for u in users:  # the same answers as one fold-in of every user from the trained model
            assert r.recommend(u, k=5)["item_id"].tolist() == fresh.recommend(u, k=5)["item_id"].tolist()


def test_an_extended_id_index_looks_ids_up_as_a_full_one():
    base = IdIndex(np.arange(1, 6))
    grown = base.extended(["a"]).extended([7]).extended(["b", 9])
    full = IdIndex(np.array([1, 2, 3, 4, 5, "a", 7, "b", 9], dtype=object))
    probes = np.array([1, "1", 7, "7", "a", "b", True, 3.0, "zz", 9, 10, np.int64(4)], dtype=object)
    assert grown.index(probes).tolist() == full.index(probes).tolist()
    assert grown.index(np.arange(12)).tolist() == full.index(np.arange(12)).tolist()
    assert len(grown) == 9 and grown.size == 10 and grown.kind is None
    assert grown.raw([1, 6, 7, 9]).tolist() == [1, "a", 7, 9] and type(grown.raw([1])[0]) is int
    assert id_from_text(grown, "7") == 7 and id_from_text(grown, "a") == "a" and id_from_text(grown, "8") == "8"
    assert grown.value_kinds == {"i", "O"}
    assert "_ids" not in vars(grown)  # looked up without joining every id
    assert grown.ids.tolist() == full.ids.tolist() and grown.to_list() == full.to_list()
    assert base.extended([6]).extended([7]).kind == "integer"
    with pytest.raises(ValueError, match="not known already"):
        grown.extended(["a"])


def test_known_users_new_ratings_reuse_the_lineage_and_leave_living_parents_as_they_were(rec):
    import gc

    r1 = rec.update(rated("a", [(101, 5), (105, 1)]))
    r2 = r1.update(rated("b", [(102, 2), (103, 5)]))
    held = r2.state_.seen.indices[:5]  # a view of the lineage's first side, kept past its state
    del r1
    before_r2 = snapshot(r2, ["a", "b", 3])
    k1 = r2.update(rated("b", [(104, 1)]))  # r2 still reads its side: k1 writes the other one
    before_k1 = snapshot(k1, ["a", "b", 3])
    assert not np.shares_memory(k1.state_.seen.indices, r2.state_.seen.indices)
    assert same(snapshot(r2, ["a", "b", 3]), before_r2)
    del r2
    gc.collect()
    k2 = k1.update(rated("b", [(106, 3)]))  # nothing reads the first side any more: written again, not copied
    assert np.shares_memory(k2.state_.seen.indices, held)
    k3 = k2.update(rated(5, [(107, 4)]))  # a trained user's row: k2 still reads its side, k1 the other
    assert same(snapshot(k1, ["a", "b", 3]), before_k1)
    assert set(k3.seen_items("b")) == {102, 103, 104, 106} and set(k1.seen_items("b")) == {102, 103, 104}
    for r, users in ((k1, ["a", "b"]), (k2, ["a", "b"]), (k3, ["a", "b", 5])):
        frame = pd.concat([rated(u, list(zip(r.seen_items(u), r.state_.user_ratings(
            int(r.user_index_.index([u])[0]))[1]))) for u in users])
        fresh = rec.update(frame)
        assert np.array_equal(r.state_.popularity, np.asarray(r.state_.seen.sum(axis=0)).ravel())
        for u in users:
            assert r.recommend(u, k=5)["item_id"].tolist() == fresh.recommend(u, k=5)["item_id"].tolist()
            assert dict(zip(r.seen_items(u), r.state_.user_ratings(int(r.user_index_.index([u])[0]))[1])) == \
                dict(zip(fresh.seen_items(u), fresh.state_.user_ratings(int(fresh.user_index_.index([u])[0]))[1]))


def test_a_new_users_id_written_as_text_is_typed_without_joining_every_id():
    from ratecast.serve.service import id_as_stored

    for base, new, text, expected in ((np.arange(1, 6), [6], "8", 8), (["a", "b"], ["c"], "8", "8"),
                                      ([1.5, 2.5], [3.5], "8.5", 8.5), ([1, 2], ["x"], "8", "8")):
        grown = IdIndex(base).extended(new)
        assert id_as_stored(grown, text) == expected
        assert "_ids" not in vars(grown)  # typed without a pass over every id
        assert grown.dtype.kind == grown.ids.dtype.kind  # the kind the joined ids have

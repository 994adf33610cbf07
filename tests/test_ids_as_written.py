"""Ids in a user's own ratings file are kept exactly as written: ``7`` and ``007`` are two users."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from ratecast.cli import app
from ratecast.datasets import IdIndex, load_ratings
from ratecast.datasets.dataset import id_from_text
from ratecast.errors import DataError


def write(tmp_path, text, name="r.csv"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


@pytest.mark.parametrize("other", ["007", "+7", " 7"])
def test_ids_not_written_as_plain_integers_stay_text(tmp_path, other):
    p = write(tmp_path, f"user_id,item_id,rating\n7,1,4\n{other},1,3\n8,2,5\n")
    r = load_ratings(p).ratings
    assert r["user_id"].tolist() == ["7", other, "8"]
    assert r["user_id"].nunique() == 3
    assert r["item_id"].dtype == "int64" and r["item_id"].tolist() == [1, 1, 2]


def test_decimal_ids_are_labels_and_do_not_pass_for_integers(tmp_path):
    r = load_ratings(write(tmp_path, "user_id,item_id,rating\n7.0,1,4\n8.0,1,3\n")).ratings
    assert r["user_id"].tolist() == ["7.0", "8.0"]
    with pytest.raises(DataError, match=r"r.csv, line 3: user_id mixes integers and text, got '7.0'"):
        load_ratings(write(tmp_path, "user_id,item_id,rating\n7,1,4\n7.0,1,3\n8,2,5\n"))


def test_plain_integer_ids_are_integers(tmp_path):
    r = load_ratings(write(tmp_path, "user_id,item_id,rating\n7,-1,4\n0,2,3\n")).ratings
    assert r["user_id"].dtype == "int64" and r["user_id"].tolist() == [7, 0]
    assert r["item_id"].tolist() == [-1, 2]


def test_ids_beyond_int64_stay_text(tmp_path):
    big = "99999999999999999999999"
    r = load_ratings(write(tmp_path, f"user_id,item_id,rating\n{big},1,4\n9223372036854775808,1,3\n")).ratings
    assert r["user_id"].tolist() == [big, "9223372036854775808"]


def test_duplicate_pairs_are_judged_on_the_ids_as_written(tmp_path):
    load_ratings(write(tmp_path, "user_id,item_id,rating\n7,1,4\n007,1,3\n"))  # two users, no duplicate
    with pytest.raises(DataError, match=r"line 2: duplicate rating for \(user_id='007', item_id=1\) on lines 2, 3"):
        load_ratings(write(tmp_path, "user_id,item_id,rating\n007,1,4\n007,1,3\n7,2,1\n"))


def test_metadata_keys_match_the_ids_as_written(tmp_path):
    ratings = write(tmp_path, "user_id,item_id,rating\n1,007,4\n2,7,3\n")
    items = write(tmp_path, "item_id,title\n007,Bond (1962)\n7,Seven (1995)\n", "items.csv")
    ds = load_ratings(ratings, items=items)
    assert ds.items.loc["007", "title"] == "Bond (1962)" and ds.items.loc["7", "title"] == "Seven (1995)"
    ratings = write(tmp_path, "user_id,item_id,rating\n1,5,4\n2,7,3\n")
    ds = load_ratings(ratings, items=write(tmp_path, "item_id,title\n5,Five (1995)\n7,Seven (1995)\n", "i2.csv"))
    assert ds.items.index.dtype == "int64" and ds.items.loc[7, "title"] == "Seven (1995)"


# --- the command line finds ids as they were stored -------------------------------------------------------------------
BIG = "99999999999999999999999"  # does not fit int64


@pytest.mark.parametrize("ids,typed,found", [
    ([1, 2, 3], "2", 2),
    ([1, 2, 3], "002", "002"),  # not written as the model's id 2: unknown
    (["7", "007"], "007", "007"),
    (["1", BIG], BIG, BIG),
    (np.array([1, 2, int(BIG)], dtype=object), BIG, int(BIG)),  # a Python int beyond int64
    (np.array([1, "7"], dtype=object), "7", "7"),
    (np.array([7, "7"], dtype=object), "7", "7"),  # the text as typed wins
    ([1.5, 2.0], "2", 2.0),
    ([1, 2, 3], "2.0", "2.0"),  # integer ids are not looked up as numbers
])
def test_command_line_ids_are_found_as_stored(ids, typed, found):
    got = id_from_text(IdIndex(ids), typed)
    assert got == found and type(got) is type(found)


def test_recommend_and_similar_find_ids_beyond_int64(tmp_path):
    rng = np.random.default_rng(0)
    users = [str(u) for u in range(1, 16)] + [BIG, "007"]
    rows = [f"{u},{i + 1},{rng.integers(1, 6)}" for u in users for i in rng.choice(20, 8, replace=False)]
    rows += [f"7,{BIG},4", f"8,{BIG},2"]
    data = write(tmp_path, "\n".join(["user_id,item_id,rating", *rows]) + "\n")
    run = tmp_path / "run"
    res = CliRunner().invoke(app, ["train", "--data", str(data), "--model", "dot", "--epochs", "1", "--embedding-dim",
                                   "4", "-q", "--out", str(run)])
    assert res.exit_code == 0, (res.stdout, res.stderr)
    for user in (BIG, "007", "7"):
        res = CliRunner().invoke(app, ["recommend", str(run), "--user", user, "-k", "2", "--json"])
        assert res.exit_code == 0, (user, res.stdout)
        assert len(json.loads(res.stdout)) == 2
    res = CliRunner().invoke(app, ["recommend", str(run), "--user", "0007", "--json"])
    assert res.exit_code == 3 and "unknown user id '0007'" in json.loads(res.stdout)["error"]
    res = CliRunner().invoke(app, ["similar", str(run), "--item", BIG, "-k", "2", "--json"])
    assert res.exit_code == 0, res.stdout


def test_an_unknown_id_of_the_other_kind_warns_that_ids_keep_their_type():
    import warnings

    import pandas as pd

    import ratecast as rc
    from ratecast.datasets.dataset import Dataset

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"user_id": rng.integers(1, 20, 400), "item_id": rng.integers(1, 30, 400),
                          "rating": rng.integers(1, 6, 400).astype(float)}).drop_duplicates(["user_id", "item_id"])
    numeric = rc.Recommender("baseline", random_state=0, epochs=1, verbose=0).fit(Dataset(frame))
    with pytest.warns(UserWarning, match=r"user_ids: '1' is unknown, but 1 is a known id \(ids keep their type: 5 "
                                         r"and '5' differ\); convert the ids to the model's"):
        numeric.predict(["1"], [1])
    with pytest.warns(UserWarning, match=r"user_id: '5' is unknown, but 5 is a known id"):
        assert numeric.recommend("5", k=3).attrs["fallback"] is True
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # ids that name no known id in either kind say nothing
        numeric.predict([1, 999, "999", "nobody"], [1, 1, 1, 1])
    text = frame.assign(item_id=frame["item_id"].map(lambda v: f"m{v}" if v % 2 else str(v)))
    labelled = rc.Recommender("baseline", random_state=0, epochs=1, verbose=0).fit(Dataset(text))
    with pytest.warns(UserWarning, match=r"item_ids: 4 is unknown, but '4' is a known id"):
        labelled.predict([1], [4])


def test_an_id_of_another_kind_is_looked_up_without_converting_every_id(monkeypatch):
    """Text looked up among integer ids (an id from a URL or the command line) costs a hash lookup, not a copy of
    the whole vocabulary converted to objects (30 ms a request at ML-25M's 162,541 users)."""
    import numpy as np
    import pandas as pd

    from ratecast.datasets.dataset import IdIndex

    index = IdIndex(np.arange(1, 1001))
    monkeypatch.setattr(pd.Index, "astype", lambda *a, **k: (_ for _ in ()).throw(AssertionError("converted")))
    asked = np.empty(4, dtype=object)
    asked[:] = ["5", 5, "seven", True]
    assert index.index(asked).tolist() == [0, 5, 0, 0]
    assert "12" not in index and 12 in index

"""Ids in a user's own ratings file are kept exactly as written: ``7`` and ``007`` are two users."""

import pytest

from ratecast.datasets import load_ratings
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

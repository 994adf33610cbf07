import numpy as np
import pandas as pd
import pytest

import ratecast as rc
from ratecast.datasets import RatingScale, load_ratings
from ratecast.errors import DataError


def write(tmp_path, text, name="r.csv", encoding="utf-8"):
    p = tmp_path / name
    p.write_bytes(text.encode(encoding))
    return p


def test_csv_with_half_stars_infers_scale(tmp_path):
    p = write(tmp_path, "userId,movieId,rating\n1,10,4.5\n1,11,0.5\n2,10,3\n")
    ds = load_ratings(p, user_col="userId", item_col="movieId", rating_col="rating")
    assert ds.rating_scale == RatingScale(0.5, 4.5, 0.5)
    assert ds.ratings["rating"].tolist() == [4.5, 0.5, 3.0]
    assert list(ds.ratings.columns) == ["user_id", "item_id", "rating", "timestamp"]


def test_tsv_and_string_ids_and_timestamps(tmp_path):
    p = write(tmp_path, "u\ti\tr\tt\nalice\tm1\t5\t2020-01-01\nbob\tm1\t3\t2020-01-02\n", "r.tsv")
    ds = load_ratings(p, user_col="u", item_col="i", rating_col="r", timestamp_col="t", rating_scale=(1, 5))
    assert ds.ratings["user_id"].tolist() == ["alice", "bob"]
    assert ds.ratings["timestamp"].tolist() == [1577836800, 1577923200]


def test_parquet_with_metadata(tmp_path):
    p = tmp_path / "r.parquet"
    pd.DataFrame({"user": [1, 2], "item": [7, 8], "stars": [1.0, 10.0]}).to_parquet(p)
    items = pd.DataFrame({"item": [7, 8], "title": ["Heat (1995)", "Up (2009)"], "genres": ["Crime|Drama", "Animation"]})
    users = write(tmp_path, "user,age\n1,30\n2,40\n", "users.csv")
    ds = load_ratings(p, user_col="user", item_col="item", rating_col="stars", items=items, users=users)
    assert ds.rating_scale == RatingScale(1, 10, 1)
    assert ds.items.loc[8, "release_year"] == 2009 and ds.items.loc[7, "Crime"] == 1
    assert ds.genres == ["Animation", "Crime", "Drama"] and ds.users.loc[2, "age"] == 40


BAD = [
    ("user_id,item_id,rating\n1,2,3\n1,3\n", r"r.csv, line 3: missing value in column 'rating'"),
    ("user_id,item_id,rating\n1,2,3\n1,3,4,5\n", r"r.csv, line 3: malformed row: expected 3 fields, found 4"),
    ("user_id,item_id,rating\n1,2,3\n1,3,good\n", r"r.csv, line 3: rating must be a number, got 'good'"),
    ("user_id,item_id,rating\n1,2,3\n1,3,\n", r"r.csv, line 3: missing value in column 'rating'"),
    ("user_id,item_id,rating\n1,2,3\n1,3,NaN\n", r"r.csv, line 3: missing value in column 'rating'"),
    ("user_id,item_id,rating\n1,2,3\n2,2,4\n1,2,5\n", r"line 2: duplicate rating for \(user_id=1, item_id=2\) on lines 2, 4"),
    ("", r"r.csv: file is empty"),
    ("user_id,item_id,rating\n", r"r.csv: file has no data rows"),
    ("user,item_id,rating\n1,2,3\n", r"r.csv: missing column 'user_id' \(argument user_col\)"),
    ("user_id,item_id,rating\n1,2,3\n1,3,inf\n", r"r.csv, line 3: rating must be finite"),
]


@pytest.mark.parametrize("text,match", BAD)
def test_bad_rating_files(tmp_path, text, match):
    p = write(tmp_path, text)
    with pytest.raises(DataError, match=match):
        load_ratings(p)


def test_rating_outside_declared_scale(tmp_path):
    p = write(tmp_path, "user_id,item_id,rating\n1,2,3\n1,3,6\n")
    with pytest.raises(DataError, match=r"line 3: rating outside the declared scale 1..5 \(step 1\), got 6"):
        load_ratings(p, rating_scale=(1, 5))
    p = write(tmp_path, "user_id,item_id,rating\n1,2,3\n1,3,2.5\n")
    with pytest.raises(DataError, match=r"line 3: rating outside.*2.5"):
        load_ratings(p, rating_scale=(1, 5, 1))


def test_wrong_encoding(tmp_path):
    p = write(tmp_path, "user_id,item_id,rating\n1,2,3\nJosé,3,4\n", encoding="latin-1")
    with pytest.raises(DataError, match=r"r.csv, line 3: cannot be decoded as utf-8.*latin-1"):
        load_ratings(p)
    assert load_ratings(p, encoding="latin-1").ratings["user_id"].iloc[1] == "José"


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="nope.csv: file not found"):
        load_ratings(tmp_path / "nope.csv")


def test_bad_rating_scale_argument(tmp_path):
    p = write(tmp_path, "user_id,item_id,rating\n1,2,3\n")
    with pytest.raises(ValueError, match="rating_scale must be"):
        load_ratings(p, rating_scale="five")


def test_rating_scale_round_trip():
    s = RatingScale(0.5, 5, 0.5)
    values = s.values
    assert s.n_classes == 10 and values[0] == 0.5 and values[-1] == 5.0
    assert np.array_equal(s.from_class(s.to_class(values)), values)
    assert s.to_class([0.5, 5.0]).tolist() == [0, 9]
    with pytest.raises(ValueError, match="step must be > 0"):
        RatingScale(1, 5, 0)


def test_ml100k_format_errors(tmp_path, data_home):
    import shutil

    f = tmp_path / "ml-100k"
    shutil.copytree(data_home / "ml-100k", f, ignore=shutil.ignore_patterns("u[1-5a-b].*", "*.pl", "*.sh"))
    lines = (f / "u.data").read_text().splitlines()
    lines[41] = "1\t2\tfive\t881250949"
    (f / "u.data").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"u.data, line 42: rating must be a number, got 'five'"):
        rc.datasets.load_movielens("ml-100k", data_home=tmp_path, download=False)
    lines[41] = "1\t2"
    (f / "u.data").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"u.data, line 42: missing value in column 'rating'"):
        rc.datasets.load_movielens("ml-100k", data_home=tmp_path, download=False)

import numpy as np
import pandas as pd
import pytest

import ratecast as rc
from ratecast.datasets import IdIndex, RatingScale, load_ratings
from ratecast.errors import DataError, MissingFileError


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
    ("who,item_id,rating\n1,2,3\n", r"r.csv: missing column 'user_id' \(argument user_col\)"),
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


# --- robustness against bad input ---------------------------------------------------------------------------------


def write_parquet(tmp_path, frame, name="r.parquet"):
    p = tmp_path / name
    frame.to_parquet(p)
    return p


def test_boolean_ratings_are_rejected(tmp_path):
    p = write(tmp_path, "user_id,item_id,rating\n1,2,True\n1,3,False\n")
    with pytest.raises(DataError, match=r"r.csv, line 2: rating must be a number, got True"):
        load_ratings(p)
    p = write_parquet(tmp_path, pd.DataFrame({"user_id": [1, 2], "item_id": [1, 2], "rating": [False, True]}))
    with pytest.raises(DataError, match=r"r.parquet, line 1: rating must be a number, got False"):
        load_ratings(p)


def test_id_column_mixing_integers_and_text(tmp_path):
    p = write(tmp_path, "user_id,item_id,rating\n1,2,3\n2,3,4\nTrue,4,5\n3,5,1\n")
    with pytest.raises(DataError, match=r"r.csv, line 4: user_id mixes integers and text, got 'True'"):
        load_ratings(p)
    p = write(tmp_path, "user_id,item_id,rating\n1,2,3\n2,x9,4\n3,5,1\n")
    with pytest.raises(DataError, match=r"r.csv, line 3: item_id mixes integers and text, got 'x9'"):
        load_ratings(p)


def test_text_id_labels_stay_allowed(tmp_path):
    p = write(tmp_path, "user_id,item_id,rating\nu17,m1,3\nu18,m2,4\nu19,7,5\n")
    ds = load_ratings(p)
    assert ds.ratings["user_id"].tolist() == ["u17", "u18", "u19"]
    assert ds.ratings["item_id"].tolist() == ["m1", "m2", "7"]


@pytest.mark.parametrize(
    "column,values,match",
    [
        ("user_id", [True, False], r"line 1: user_id must be an integer or a label, got True"),
        ("item_id", [1.0, float("inf")], r"line 2: item_id must be an integer or a label, got inf"),
        ("item_id", [1.0, 2.5], r"line 2: item_id must be an integer or a label, got 2.5"),
    ],
)
def test_bad_id_dtypes_in_parquet(tmp_path, column, values, match):
    frame = pd.DataFrame({"user_id": [1, 2], "item_id": [1, 2], "rating": [3.0, 4.0]}).assign(**{column: values})
    with pytest.raises(DataError, match=match):
        load_ratings(write_parquet(tmp_path, frame))


def test_whole_float_ids_become_integers(tmp_path):
    frame = pd.DataFrame({"user_id": [1.0, 2.0], "item_id": [7, 8], "rating": [3.0, 4.0]})
    ds = load_ratings(write_parquet(tmp_path, frame))
    assert ds.ratings["user_id"].dtype == "int64" and ds.ratings["user_id"].tolist() == [1, 2]


@pytest.mark.parametrize(
    "text,match",
    [
        ("user_id,item_id,rating,ts\n1,2,3,100\n1,3,4,200\n1,4,4,oops\n", r"r.csv, line 4: timestamp must be .*, got 'oops'"),
        ("user_id,item_id,rating,ts\n1,2,3,2020-01-01\n1,3,4,oops\n1,4,4,2020-01-03\n", r"line 3: timestamp .*got 'oops'"),
        ("user_id,item_id,rating,ts\n1,2,3,100\n1,3,4,2020-01-02\n1,4,4,300\n", r"line 3: timestamp .*got '2020-01-02'"),
        ("user_id,item_id,rating,ts\n1,2,3,100\n1,3,4,\n", r"line 3: missing value in column 'ts'"),
        ("user_id,item_id,rating,ts\n1,2,3,100\n1,3,4,inf\n", r"line 3: timestamp must be finite, got inf"),
        ("user_id,item_id,rating,ts\n1,2,3,True\n1,3,4,False\n", r"line 2: timestamp must be .*, got True"),
    ],
)
def test_bad_timestamps_name_their_line_and_value(tmp_path, text, match):
    with pytest.raises(DataError, match=match):
        load_ratings(write(tmp_path, text), timestamp_col="ts")


def test_dates_in_several_formats_and_parquet_datetimes(tmp_path):
    p = write(tmp_path, "user_id,item_id,rating,ts\n1,2,3,2020-01-01\n1,3,4,01/02/2020\n")
    assert load_ratings(p, timestamp_col="ts").ratings["timestamp"].tolist() == [1577836800, 1577923200]
    frame = pd.DataFrame({"user_id": [1, 1], "item_id": [2, 3], "rating": [3.0, 4.0],
                          "ts": pd.to_datetime(["2020-01-01", "2020-01-02"])})
    ds = load_ratings(write_parquet(tmp_path, frame), timestamp_col="ts")
    assert ds.ratings["timestamp"].tolist() == [1577836800, 1577923200]


def test_directory_instead_of_ratings_file(tmp_path):
    with pytest.raises(DataError, match=r"is a directory, expected a ratings file \(CSV, TSV or Parquet\)"):
        load_ratings(tmp_path)
    (tmp_path / "r.parquet").mkdir()
    with pytest.raises(DataError, match=r"r.parquet: is a directory"):
        load_ratings(tmp_path / "r.parquet")


def test_missing_file_is_a_missing_file_error(tmp_path):
    with pytest.raises(MissingFileError, match="nope.parquet: file not found"):
        load_ratings(tmp_path / "nope.parquet")
    with pytest.raises(FileNotFoundError):
        load_ratings(tmp_path / "nope.csv")


def test_unreadable_file(tmp_path, monkeypatch):
    p = write(tmp_path, "user_id,item_id,rating\n1,2,3\n")

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(pd, "read_csv", denied)
    with pytest.raises(DataError, match=r"r.csv: cannot be read: Permission denied"):
        load_ratings(p)


@pytest.mark.parametrize(
    "encoding,match",
    [
        ("utf-16", r"r.csv(, line \d+)?: cannot be decoded as utf-16"),
        ("utf-99", r"r.csv: unknown encoding: argument encoding='utf-99'"),
        ("ascii", r"r.csv, line 3: cannot be decoded as ascii: byte b'\\xc3'"),
    ],
)
def test_wrong_or_unknown_encoding(tmp_path, encoding, match):
    p = write(tmp_path, "user_id,item_id,rating\n1,2,3\nJosé,3,4\n")
    with pytest.raises(DataError, match=match) as err:
        load_ratings(p, encoding=encoding)
    assert "\n" not in str(err.value)


def test_wrong_encoding_for_dat_files(tmp_path):
    p = write(tmp_path, "1::2::3::4\n", name="r.dat")
    with pytest.raises(DataError, match=r"r.dat: unknown encoding: argument encoding='nope'"):
        rc.datasets.readers.read_delimited(p, sep="::", names=["a", "b", "c", "d"], encoding="nope")


def _parquet_bytes():
    import io

    buf = io.BytesIO()
    pd.DataFrame({"user_id": [1, 2], "item_id": [1, 2], "rating": [3.0, 4.0]}).to_parquet(buf)
    return buf.getvalue()


@pytest.mark.parametrize(
    "name,content,match",
    [
        ("r.parquet", b"", r"r.parquet: cannot be read as Parquet"),
        ("r.parquet", b"PAR1 garbage", r"r.parquet: cannot be read as Parquet"),
        ("r.parquet", "truncated", r"r.parquet: cannot be read as Parquet"),
        ("r.csv", b"   \n  \n", r"r.csv: file holds only blank lines"),
        ("r.csv", b"\n\n\n", r"r.csv: file is empty"),
        ("r.csv", b"user_id,item_id,rating\n\n\n", r"r.csv: file has no data rows"),
        ("r.csv", b"user_id,item_id,rating\n1,2,3,4\n1,3,4\n", r"r.csv, line 2: malformed row: expected 3 fields, found 4"),
        ("r.csv", b"user_id,item_id,rating\n1,2,3\n\n1,3,4\n", r"r.csv, line 3: blank line"),
    ],
)
def test_empty_truncated_and_garbage_files(tmp_path, name, content, match):
    if content == "truncated":
        content = _parquet_bytes()[:40]
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(DataError, match=match) as err:
        load_ratings(p)
    assert "\n" not in str(err.value)


def test_empty_parquet_table(tmp_path):
    frame = pd.DataFrame({"user_id": pd.Series([], dtype="int64"), "item_id": pd.Series([], dtype="int64"),
                          "rating": pd.Series([], dtype="float64")})
    with pytest.raises(DataError, match=r"r.parquet: file has no data rows"):
        load_ratings(write_parquet(tmp_path, frame))


def test_trailing_blank_lines_are_ignored(tmp_path):
    p = write(tmp_path, "user_id,item_id,rating\n1,2,3\n1,3,4\n\n\n")
    assert load_ratings(p).n_ratings == 2


@pytest.mark.parametrize(
    "scale,match",
    [
        ((5, 1), r"rating_scale=\(5, 1\).*maximum must be > minimum"),
        ((1, 5, 0), r"rating_scale=\(1, 5, 0\).*step must be > 0"),
        (("a", 5), r"rating_scale values must be numbers, got \('a', 5\)"),
        ((True, 5), r"rating_scale values must be numbers, got \(True, 5\)"),
        ((float("nan"), 5), r"rating_scale=\(nan, 5\).*must be finite"),
        ((1,), r"rating_scale must be \(minimum, maximum\[, step\]\).*got \(1,\)"),
        ((1, 5, 1, 2), r"rating_scale must be \(minimum, maximum\[, step\]\).*got \(1, 5, 1, 2\)"),
        (5, r"rating_scale must be \(minimum, maximum\[, step\]\).*got 5"),
        ((1, 5, 0.3), r"rating_scale=\(1, 5, 0.3\).*multiple of step"),
    ],
)
def test_rating_scale_argument_is_validated(tmp_path, scale, match):
    p = write(tmp_path, "user_id,item_id,rating\n1,2,3\n")
    with pytest.raises(DataError, match=match) as err:
        load_ratings(p, rating_scale=scale)
    assert "\n" not in str(err.value)


def test_rating_scale_rejects_non_numbers():
    with pytest.raises(ValueError, match=r"rating scale minimum must be a number, got '1'"):
        RatingScale("1", 5)


# --- IdIndex --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ids", [[1, None, 2], ["a", np.nan], np.array([1.0, np.nan]), ["a", pd.NA]])
def test_id_index_rejects_missing_values(ids):
    with pytest.raises(DataError, match=r"ids must not contain missing values \(None or NaN\), got .* at position 1"):
        IdIndex(ids)


def test_id_index_rejects_booleans():
    with pytest.raises(DataError, match=r"ids must be integers or labels, got True at position 0"):
        IdIndex([True, False])
    with pytest.raises(DataError, match=r"ids must be integers or labels, got True at position 1"):
        IdIndex([1, True])


def test_id_index_keeps_mixed_ids_apart():
    idx = IdIndex([1, "a", 2, "1"])
    assert idx.to_list() == [1, "a", 2, "1"]
    assert idx.index([1, "a", 2, "1", "2", 3]).tolist() == [1, 2, 3, 4, 0, 0]
    again = IdIndex(idx.to_list())  # e.g. after a save and load
    assert again.index([2, "1"]).tolist() == [3, 4]


def test_id_index_lookups_of_another_type_are_unknown():
    ints, labels = IdIndex(np.array([1, 5, 7])), IdIndex(["a", "5"])
    assert ints.index(["5", None, 5.5, True, b"5"]).tolist() == [0, 0, 0, 0, 0]
    assert labels.index([5, None, "a"]).tolist() == [0, 0, 1]
    assert ints.index([{"a": 1}, 5]).tolist() == [0, 2]
    assert ints.index(np.array([[1, 7], [9, 5]])).tolist() == [[1, 3], [0, 2]]
    assert "5" not in ints and 5 in ints and [1] not in ints


def test_outlier_rating_does_not_make_a_huge_scale(tmp_path):
    from ratecast.datasets.scale import RatingScale

    with pytest.raises(ValueError, match=r"has 1000000000 values; at most 10000 are supported"):
        RatingScale.infer([1, 2, 3, 1e9])
    path = tmp_path / "r.csv"
    path.write_text("user_id,item_id,rating\n1,1,4\n2,1,3\n3,2,1000000000\n")
    with pytest.raises(rc.DataError, match=r"r.csv.*at most 10000 are supported"):
        rc.datasets.load_ratings(path)


@pytest.mark.parametrize("suffix", [".json", ".xlsx"])
def test_a_file_of_another_format_is_named_not_read_as_text(tmp_path, suffix):
    p = tmp_path / f"ratings{suffix}"
    p.write_text('[{"user_id": 1, "item_id": 2, "rating": 4}]')
    with pytest.raises(DataError, match=rf"ratings{suffix}: ratings files must be CSV/TSV with a header row, or "
                                        rf"Parquet; got a \{suffix} file"):
        load_ratings(p)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_movielens_headers_are_found_without_column_options(tmp_path, suffix):
    frame = pd.DataFrame({"userId": [1, 1, 2], "movieId": [10, 11, 10], "rating": [4.0, 3.0, 5.0]})
    path = tmp_path / f"ratings{suffix}"
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path)
    ds = load_ratings(path)
    assert ds.ratings[["user_id", "item_id", "rating"]].values.tolist() == frame.values.tolist()


def test_given_id_columns_win_over_the_detected_ones(tmp_path):
    path = tmp_path / "r.csv"
    pd.DataFrame({"userId": [1, 2], "uid": [7, 8], "movieId": [10, 11], "rating": [4, 5]}).to_csv(path, index=False)
    assert load_ratings(path, user_col="uid").ratings["user_id"].tolist() == [7, 8]
    with pytest.raises(DataError, match="missing column 'user_id'"):
        pd.DataFrame({"who": [1], "movieId": [10], "rating": [4]}).to_csv(path, index=False)
        load_ratings(path)

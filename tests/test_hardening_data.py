"""Hardening of the data layer: each test is named after the defect it guards against."""

import pytest

from cli_helpers import cli, one_line_error
from ratecast.datasets import RatingScale, load_ratings
from ratecast.errors import DataError


def write(tmp_path, text, name="r.csv", encoding="utf-8"):
    p = tmp_path / name
    p.write_bytes(text.encode(encoding))
    return p


# --- case: a rating scale with too many levels overflowed ----------------------------------------------------------
@pytest.mark.parametrize("scale", ["0.5,1e308,0.5", "0.5,5,1e-320", "1,20001,1"])
def test_rating_scale_with_overflowing_or_too_many_levels_is_one_line_error(tmp_path, scale):
    p = write(tmp_path, "user_id,item_id,rating\n1,1,4\n2,1,3\n")
    one_line_error(cli("data", "info", p, "--rating-scale", scale), 1, "--rating-scale", scale, "at most 10000")
    with pytest.raises(DataError, match=r"rating_scale=.*at most 10000"):
        load_ratings(p, rating_scale=tuple(float(v) for v in scale.split(",")))
    with pytest.raises(ValueError, match="at most 10000"):
        RatingScale(*(float(v) for v in scale.split(",")))


# --- case: a duplicate key in a metadata file showed np.int64(356) and no line numbers -----------------------------
def test_duplicate_metadata_key_names_the_id_as_written_and_its_lines(tmp_path):
    ratings = write(tmp_path, "user_id,item_id,rating\n1,356,4\n2,7,3\n")
    items = write(tmp_path, "item_id,title\n7,A (1990)\n356,B (1991)\n8,C\n356,D (1992)\n", "items.csv")
    with pytest.raises(DataError, match=r"items.csv, line 5: duplicate item_id 356 in key column 'item_id' on "
                                        r"lines 3, 5$") as err:
        load_ratings(ratings, items=items)
    assert "np." not in str(err.value)
    res = cli("data", "info", ratings, "--items", items)
    one_line_error(res, 1, "duplicate item_id 356", "lines 3, 5")
    users = tmp_path / "users.parquet"
    import pandas as pd

    pd.DataFrame({"user_id": [1, 2, 2], "age": [20, 30, 40]}).to_parquet(users)
    with pytest.raises(DataError, match=r"users.parquet: duplicate user_id 2 in key column 'user_id' on rows 2, 3$"):
        load_ratings(ratings, users=users)


# --- case: a file with a byte-order mark (UTF-16, ...) was met with a hint to try latin-1 --------------------------
@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32", "utf-8-sig"])
def test_byte_order_mark_selects_the_encoding(tmp_path, encoding):
    bom = {"utf-16-be": "\ufeff"}.get(encoding, "")  # the codecs without a byte order write no mark themselves
    ratings = write(tmp_path, bom + "user_id;item_id;rating\nZoë;7;4\nbob;7;3\n", encoding=encoding)
    items = write(tmp_path, bom + "item_id\ttitle\n7\tAmélie (2001)\n", "items.tsv", encoding=encoding)
    ds = load_ratings(ratings, items=items)
    assert ds.ratings["user_id"].tolist() == ["Zoë", "bob"] and ds.ratings["item_id"].tolist() == [7, 7]
    assert ds.items.loc[7, "title"] == "Amélie (2001)" and ds.items.loc[7, "release_year"] == 2001
    res = cli("data", "info", ratings, "--items", items, "--json")
    assert res.code == 0, res.stderr


# --- case: a Parquet column of lists gave "unhashable type: 'numpy.ndarray'", naming neither file nor column -------
@pytest.mark.parametrize("values,type_name", [
    ([[1], [2]], "list<"), ([{"a": 1}, {"a": 2}], "struct<"), ([b"\x00", b"\x01"], "binary"),
])
def test_parquet_column_of_unsupported_type_names_file_column_and_type(tmp_path, values, type_name):
    import pyarrow as pa
    import pyarrow.parquet as pq

    good = write(tmp_path, "user_id,item_id,rating\n1,1,4\n2,1,3\n")
    p = tmp_path / "r.parquet"
    pq.write_table(pa.table({"user_id": values, "item_id": [1, 2], "rating": [4.0, 3.0]}), p)
    with pytest.raises(DataError, match=rf"r.parquet: column 'user_id' is of the Parquet type {type_name}"):
        load_ratings(p)
    one_line_error(cli("data", "info", p), 1, "r.parquet", "'user_id'", type_name)
    items = tmp_path / "items.parquet"
    pq.write_table(pa.table({"item_id": [1, 2], "tags": values}), items)
    with pytest.raises(DataError, match=rf"items.parquet: column 'tags' is of the Parquet type {type_name}"):
        load_ratings(good, items=items)
    m = pa.array([[("k", 1)], [("k", 2)]], type=pa.map_(pa.string(), pa.int64()))
    pq.write_table(pa.table({"user_id": [1, 2], "item_id": [1, 2], "rating": m}), p)
    with pytest.raises(DataError, match=r"r.parquet: column 'rating' is of the Parquet type map<"):
        load_ratings(p)

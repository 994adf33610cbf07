"""Hardening of the data layer: each test is named after the defect it guards against."""

import json

import pandas as pd
import pytest

from cli_helpers import cli, one_line_error
from ratecast.datasets import Dataset, RatingScale, load_movielens, load_ratings
from ratecast.errors import DataError, MissingFileError


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


# --- case: a repeated (user, item) pair was refused with no way forward ---------------------------------------------
RERATED = ("user_id,item_id,rating,timestamp\n"
           "1,10,2,300\n"   # line 2: (1, 10) first rating, latest time
           "2,10,4,100\n"
           "1,10,4,100\n"   # line 4: (1, 10) again, earlier
           "2,20,1,50\n"
           "2,20,3,50\n"    # line 6: (2, 20) again, same time: file order breaks the tie
           "1,20,5,10\n")


def test_duplicate_ratings_error_names_the_option(tmp_path):
    p = write(tmp_path, RERATED)
    with pytest.raises(DataError, match=r"line 2: duplicate rating for \(user_id=1, item_id=10\) on lines 2, 4: .*"
                                        r"set argument duplicates to 'last' .* or 'mean'"):
        load_ratings(p, timestamp_col="timestamp")
    one_line_error(cli("data", "info", p, "--timestamp-col", "timestamp"), 1, "--duplicates", "'last'", "'mean'")
    one_line_error(cli("data", "info", p, "--duplicates", "newest"), 1, "--duplicates must be one of 'error', "
                                                                           "'last', 'mean', got 'newest'")


def test_duplicate_ratings_last_follows_timestamps_then_file_order(tmp_path):
    p = write(tmp_path, RERATED)
    ds = load_ratings(p, timestamp_col="timestamp", duplicates="last")
    got = {(u, i): (r, t) for u, i, r, t in ds.ratings.itertuples(index=False)}
    assert got == {(1, 10): (2, 300), (2, 10): (4, 100), (2, 20): (3, 50), (1, 20): (5, 10)}
    assert ds.ratings["item_id"].tolist() == [10, 10, 20, 20]  # kept rows stay in file order
    no_time = load_ratings(p, duplicates="last")  # without timestamps: the last row in the file
    assert {(u, i): r for u, i, r, _ in no_time.ratings.itertuples(index=False)}[(1, 10)] == 4
    frame = Dataset(pd.read_csv(p), duplicates="last")  # a Dataset built from a frame resolves them the same way
    assert frame.ratings.sort_values(["user_id", "item_id"]).to_numpy().tolist() == \
        ds.ratings.sort_values(["user_id", "item_id"]).to_numpy().tolist()


def test_duplicate_ratings_mean_is_kept_between_scale_steps(tmp_path):
    p = write(tmp_path, RERATED)
    ds = load_ratings(p, timestamp_col="timestamp", duplicates="mean", rating_scale=(1, 5))
    got = {(u, i): r for u, i, r, _ in ds.ratings.itertuples(index=False)}
    assert got == {(1, 10): 3.0, (2, 10): 4.0, (2, 20): 2.0, (1, 20): 5.0}
    odd = write(tmp_path, "user_id,item_id,rating\n1,1,4\n1,1,5\n2,1,3\n2,2,1\n", "odd.csv")
    mean = load_ratings(odd, duplicates="mean")
    assert mean.ratings["rating"].tolist() == [4.5, 3.0, 1.0] and mean.rating_scale == RatingScale(1, 5, 1)
    mean.check_ratings("train")  # 4.5 lies between steps of the 1..5 scale: accepted as a mean
    frame = Dataset(pd.read_csv(odd), duplicates="mean")  # the scale is inferred from the ratings, not their means
    assert frame.rating_scale == RatingScale(1, 5, 1) and frame.ratings["rating"].tolist() == [4.5, 3.0, 1.0]
    with pytest.raises(DataError, match="pair is rated twice.*duplicates='last' or 'mean'"):
        Dataset(pd.read_csv(odd), rating_scale=(1, 5)).check_ratings("train")
    res = cli("data", "stats", odd, "--duplicates", "mean", "--json")
    assert res.code == 0, res.stderr
    assert json.loads(res.stdout)["rating_distribution"] == {"1": 1, "3": 1, "4.5": 1}


def test_duplicates_option_reaches_training_runs(tmp_path):
    odd = write(tmp_path, "user_id,item_id,rating\n1,1,4\n1,1,5\n2,1,3\n2,2,1\n3,1,2\n3,2,5\n", "odd.csv")
    res = cli("train", "--data", odd, "--model", "baseline", "--duplicates", "mean", "--out", tmp_path / "run",
              "-q", "--json")
    assert res.code == 0, (res.stdout, res.stderr)
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["spec"]["data_options"]["duplicates"] == "mean"
    one_line_error(cli("train", "--data", odd, "--model", "baseline", "--out", tmp_path / "run2", "-q"), 1,
                   "duplicate rating", "--duplicates")


# --- case: one typo rating of 40 silently stretched the inferred scale to 0.5..40 -----------------------------------
def test_outlier_rating_does_not_stretch_the_inferred_scale(tmp_path):
    rows = [f"{u},{i},{(u * 7 + i) % 10 / 2 + 0.5:g}" for u in range(1, 21) for i in range(1, 11)]
    rows[56] = "6,7,40"  # line 58 (the header is line 1)
    p = write(tmp_path, "user_id,item_id,rating\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"r.csv, line 58: rating 40 \(line 58\) far outside the other ratings "
                                        r"\(0.5..5\) would stretch the inferred rating scale to 0.5..40: .*"
                                        r"declare the scale with argument rating_scale"):
        load_ratings(p)
    one_line_error(cli("data", "info", p), 1, "rating 40 (line 58)", "--rating-scale")
    ds = load_ratings(p, rating_scale=(0.5, 40, 0.5))  # declared: the user says 40 is on the scale
    assert ds.ratings["rating"].max() == 40
    rows[56] = "6,7,0"  # a zero among 0.5..5 is a plausible scale (0..5 in half stars): inferred as before
    assert load_ratings(write(tmp_path, "user_id,item_id,rating\n" + "\n".join(rows) + "\n", "z.csv")).rating_scale \
        == RatingScale(0, 5, 0.5)


# --- case: half of u.data, cut at a line boundary, loaded as a valid ml-100k -----------------------------------------
def test_truncated_movielens_release_is_refused_with_the_expected_count(tmp_path, data_home):
    import shutil

    if not (data_home / "ml-100k" / "u.data").exists():
        pytest.skip(f"no ML-100k copy under {data_home}")
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    for name in ("u.data", "u.item", "u.genre", "u.user"):
        shutil.copy(data_home / "ml-100k" / name, folder / name)
    lines = (folder / "u.data").read_bytes().splitlines(keepends=True)
    (folder / "u.data").write_bytes(b"".join(lines[: len(lines) // 2]))
    with pytest.raises(DataError, match=r"ml-100k/u.data: holds 50,000 ratings, but ml-100k has 100,000"):
        load_movielens("ml-100k", data_home=tmp_path, download=False)
    one_line_error(cli("data", "info", "ml-100k", "--data-home", tmp_path), 1, "u.data", "50,000", "100,000")
    (folder / "u.data").write_bytes(b"".join(lines))
    user_lines = (folder / "u.user").read_bytes().splitlines(keepends=True)
    (folder / "u.user").write_bytes(b"".join(user_lines[:-1]))
    with pytest.raises(DataError, match=r"ml-100k/u.user: holds 942 users, but ml-100k has 943"):
        load_movielens("ml-100k", data_home=tmp_path, download=False)


# --- case: an empty data folder without network said "could not fetch checksum" ------------------------------------
def test_missing_release_without_network_says_where_it_was_looked_for(tmp_path, monkeypatch):
    unreachable = "http://127.0.0.1:9/"  # nothing listens there: the connection is refused at once
    with pytest.raises(MissingFileError, match=rf"no local copy of ml-100k in {tmp_path} \(expected the folder "
                                               rf"{tmp_path}/ml-100k or the archive {tmp_path}/ml-100k.zip\), .*"
                                               r"point RATECAST_DATA or data_home at a folder holding ml-100k/"):
        load_movielens("ml-100k", data_home=tmp_path, base_url=unreachable, progress=False)
    res = cli("data", "fetch", "ml-100k", "--data-home", tmp_path, env={"RATECAST_MIRROR": unreachable})
    message = one_line_error(res, 4, f"no local copy of ml-100k in {tmp_path}", "--data-home", "RATECAST_DATA")
    assert "checksum" not in message
    assert list(tmp_path.iterdir()) == []


# --- case: the download was checked against an md5 fetched from the same mirror -------------------------------------
# (a substituted archive is refused: test_download.py::test_a_mirror_cannot_substitute_an_archive_of_a_pinned_release)
def test_published_checksums_are_pinned_for_fixed_releases():
    from ratecast.datasets.movielens import DATASETS, PUBLISHED_MD5

    assert PUBLISHED_MD5 == {"ml-100k": "0e33842e24a9c977be4e0107933c0723", "ml-1m": "c4d9eecfca2ab87c1945afe126590906",
                             "ml-10m": "ce571fd55effeba0271552578f2648bd", "ml-20m": "cd245b17a1ae2cc31bb14903e1204af3",
                             "ml-25m": "6b51fb2759a8657d3bfcbfc42b592ada"}
    assert set(PUBLISHED_MD5) < set(DATASETS) and "ml-latest-small" not in PUBLISHED_MD5


def test_duplicate_metadata_id_in_a_dataset_built_from_frames_is_named():
    ratings = pd.DataFrame({"user_id": [1, 2], "item_id": [356, 7], "rating": [4.0, 3.0]})
    items = pd.DataFrame({"title": ["A", "B", "C"]}, index=pd.Index([7, 356, 356], name="item_id"))
    with pytest.raises(DataError, match=r"^duplicate item_id 356 in the index of Dataset.items on rows 2, 3$"):
        Dataset(ratings, items=items)

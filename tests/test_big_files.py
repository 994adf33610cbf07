"""Big ratings files are read by pyarrow: the same Dataset as pandas' reading, ids as written, errors with their line.

Files of ``readers.ARROW_MIN_BYTES`` or more go to pyarrow; the tests compare with the pandas reading (the threshold
raised above every file) and, for small edge cases, run pyarrow on every file (the threshold at 0).
"""

import importlib.util
import string
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ratecast as rc
from ratecast.datasets import load_ratings, readers
from ratecast.errors import DataError

N = 200_000
COLUMNS = {"user_col": "userId", "item_col": "movieId", "timestamp_col": "timestamp"}
ROLES = {"user_id": "userId", "item_id": "movieId", "rating": "rating", "timestamp": "timestamp"}


def _benchmark():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "load_big.py"
    spec = importlib.util.spec_from_file_location("load_big", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A data home with an ML-25M-format folder of N ratings (ratings.csv, movies.csv, ratings.parquet)."""
    root = tmp_path_factory.mktemp("big")
    _benchmark().write_movielens_folder(root / "ml-25m", N, seed=0)
    return root


@pytest.fixture(autouse=True)
def uncounted(monkeypatch):
    """The ml-25m folder of these tests is written small: its row count is not GroupLens's."""
    monkeypatch.setattr(rc.datasets.movielens, "KNOWN_COUNTS", {})


@pytest.fixture(scope="module")
def lines(home):
    return (home / "ml-25m" / "ratings.csv").read_text(encoding="utf-8").splitlines()


def by_pandas(monkeypatch, load, *args, **kwargs):
    """``load(*args, **kwargs)`` with every file read by pandas."""
    with monkeypatch.context() as m:
        m.setattr(readers, "ARROW_MIN_BYTES", 2**62)
        return load(*args, **kwargs)


def outcome(load, *args, **kwargs):
    """The Dataset ``load`` gives, or the message of its DataError."""
    try:
        return load(*args, **kwargs)
    except DataError as exc:
        return str(exc)


def assert_same(a, b):
    if isinstance(a, str) or isinstance(b, str):
        assert a == b
        return
    pd.testing.assert_frame_equal(a.ratings, b.ratings)
    for side in ("items", "users"):
        if getattr(a, side) is None:
            assert getattr(b, side) is None
        else:
            pd.testing.assert_frame_equal(getattr(a, side), getattr(b, side))
    assert (a.rating_scale, a.genres, a.name) == (b.rating_scale, b.genres, b.name)


def test_the_big_files_are_read_by_pyarrow(home):
    folder = home / "ml-25m"
    assert (folder / "ratings.csv").stat().st_size >= readers.ARROW_MIN_BYTES
    assert (folder / "ratings.parquet").stat().st_size >= readers.ARROW_MIN_BYTES
    csv = readers.arrow_ratings(folder / "ratings.csv", sep=",", encoding="utf-8", columns=ROLES, written_ids=False,
                                header=list(ROLES.values()))
    parquet = readers.arrow_parquet(folder / "ratings.parquet", ROLES)
    assert csv is not None and parquet is not None
    assert len(csv[0]) == len(parquet[0]) == N


def test_csv_parquet_and_pandas_give_the_same_dataset(home, monkeypatch):
    folder = home / "ml-25m"
    arrow = rc.datasets.load_movielens("ml-25m", data_home=home, download=False)
    pandas = by_pandas(monkeypatch, rc.datasets.load_movielens, "ml-25m", data_home=home, download=False)
    assert_same(arrow, pandas)
    r = arrow.ratings
    assert len(r) == N and not r.duplicated(["user_id", "item_id"]).any()
    assert {c: str(r[c].dtype) for c in r.columns} == {"user_id": "int64", "item_id": "int64", "rating": "float32",
                                                      "timestamp": "int64"}
    assert arrow.rating_scale == rc.datasets.RatingScale(0.5, 5, 0.5) and len(arrow.items) == 59_047
    written = pd.read_csv(folder / "ratings.csv")
    assert (r["user_id"].to_numpy() == written["userId"].to_numpy()).all()
    assert (r["rating"].to_numpy() == written["rating"].to_numpy()).all()
    assert (r["timestamp"].to_numpy() == written["timestamp"].to_numpy()).all()

    options = dict(COLUMNS, rating_scale=(0.5, 5, 0.5), items=folder / "movies.csv", item_key="movieId")
    parquet = load_ratings(folder / "ratings.parquet", **options)
    csv = load_ratings(folder / "ratings.csv", **options)
    assert_same(parquet, csv)
    assert_same(parquet, by_pandas(monkeypatch, load_ratings, folder / "ratings.parquet", **options))
    assert_same(csv, by_pandas(monkeypatch, load_ratings, folder / "ratings.csv", **options))
    pd.testing.assert_frame_equal(csv.ratings, arrow.ratings)
    assert parquet.item_index.to_list() == arrow.item_index.to_list()
    assert (parquet.items["title"] == arrow.items["title"]).all()


def write(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_ids_stay_as_written_in_a_big_file(home, lines, tmp_path, monkeypatch):
    rows = list(lines)
    rows[1] = "007," + rows[1].split(",", 1)[1]
    rows[2] = "+7," + rows[2].split(",", 1)[1]
    rows[3] = "7," + rows[3].split(",", 1)[1]
    path = write(tmp_path / "ratings.csv", rows)
    ds = load_ratings(path, **COLUMNS)
    users = ds.ratings["user_id"]
    assert isinstance(users.dtype, pd.StringDtype) and users[:3].tolist() == ["007", "+7", "7"]
    assert users.nunique() == pd.Series([r.split(",")[0] for r in rows[1:]]).nunique()
    assert ds.ratings["item_id"].dtype == "int64"
    assert_same(ds, by_pandas(monkeypatch, load_ratings, path, **COLUMNS))
    # the same ids in a MovieLens folder are typed by pandas' rules: all integers, 007 is 7
    folder = tmp_path / "ml-25m"
    folder.mkdir()
    write(folder / "ratings.csv", rows)
    (folder / "movies.csv").write_bytes((home / "ml-25m" / "movies.csv").read_bytes())
    ml = rc.datasets.load_movielens("ml-25m", data_home=tmp_path, download=False)
    assert ml.ratings["user_id"].dtype == "int64" and ml.ratings["user_id"][:3].tolist() == [7, 7, 7]
    assert_same(ml, by_pandas(monkeypatch, rc.datasets.load_movielens, "ml-25m", data_home=tmp_path, download=False))


def test_text_ids_in_a_big_file(lines, tmp_path, monkeypatch):
    rows = [lines[0]] + [f"u{r.split(',', 1)[0]},m{r.split(',', 1)[1]}" for r in lines[1:]]
    rows[LINE - 1] = '"u, a\nquoted ""name""",' + rows[LINE - 1].split(",", 1)[1]  # one row on two lines
    path = write(tmp_path / "ratings.csv", rows)
    ds = load_ratings(path, **COLUMNS)
    assert ds.ratings["user_id"][:2].tolist() == [f"u{lines[1].split(',')[0]}", f"u{lines[2].split(',')[0]}"]
    assert ds.ratings["item_id"][0] == "m" + lines[1].split(",")[1]
    assert ds.ratings["user_id"][LINE - 2] == 'u, a\nquoted "name"' and ds.n_ratings == N
    assert_same(ds, by_pandas(monkeypatch, load_ratings, path, **COLUMNS))
    codes = readers.arrow_ratings(path, sep=",", encoding="utf-8", columns=ROLES, written_ids=True)[1]
    assert set(codes) == {"user_id", "item_id"} and codes["user_id"].codes.dtype == "int32"


LINE = 150_001  # a line far into the file (past pyarrow's first blocks)


@pytest.mark.parametrize("edit,match", [
    (lambda r: r + ",5", rf"ratings.csv, line {LINE}: malformed row: expected 4 fields, found 5"),
    (lambda r: r.rsplit(",", 1)[0], rf"ratings.csv, line {LINE}: missing value in column 'timestamp'"),
    (lambda r: ",".join(r.split(",")[:2] + ["good"] + r.split(",")[3:]),
     rf"ratings.csv, line {LINE}: rating must be a number, got 'good'"),
    (lambda r: ",".join(r.split(",")[:2] + ["7.0"] + r.split(",")[3:]),
     rf"ratings.csv, line {LINE}: rating outside the declared scale 0.5..5 \(step 0.5\), got 7.0"),
    (lambda r: ",".join(r.split(",")[:2] + ["inf"] + r.split(",")[3:]), rf"ratings.csv, line {LINE}: rating must be"),
    (lambda r: "", rf"ratings.csv, line {LINE}: blank line where a rating row was expected"),
    (lambda r: "x1," + r.split(",", 1)[1], rf"ratings.csv, line {LINE}: user_id mixes integers and text, got 'x1'"),
    (lambda r: ",".join(r.split(",")[:3] + ["yesterday"]), rf"ratings.csv, line {LINE}: timestamp must be"),
    (lambda r: "NA," + r.split(",", 1)[1], rf"ratings.csv, line {LINE}: missing value in column 'userId'"),
    (lambda r: r + ",,,", rf"ratings.csv, line {LINE}: malformed row: expected 4 fields, found 7"),
    (lambda r: r.rsplit(",", 1)[0] + ',"12\n34"', rf"ratings.csv, line {LINE}: timestamp must be"),
    (lambda r: "Jos\udce9," + r.split(",", 1)[1], rf"ratings.csv, line {LINE}: cannot be decoded as utf-8"),
])
def test_a_bad_row_in_a_big_file_is_reported_with_its_line(lines, tmp_path, monkeypatch, edit, match):
    rows = list(lines)
    rows[LINE - 1] = edit(rows[LINE - 1])
    folder = tmp_path / "ml-25m"
    folder.mkdir()
    path = folder / "ratings.csv"
    path.write_bytes(("\n".join(rows) + "\n").encode("utf-8", "surrogateescape"))
    write(folder / "movies.csv", ["movieId,title,genres", "1,A (1990),Drama"])
    with pytest.raises(DataError, match=match) as err:
        rc.datasets.load_movielens("ml-25m", data_home=tmp_path, download=False)
    expected = outcome(by_pandas, monkeypatch, rc.datasets.load_movielens, "ml-25m", data_home=tmp_path,
                       download=False)
    assert str(err.value) == expected
    assert str(err.value) == outcome(load_ratings, path, rating_scale=(0.5, 5, 0.5), **COLUMNS)


def test_a_duplicate_pair_in_a_big_file_names_its_lines(lines, tmp_path, monkeypatch):
    rows = list(lines)
    rows[LINE - 1] = rows[LINE - 2].rsplit(",", 2)[0] + ",1.0,1"
    path = write(tmp_path / "ratings.csv", rows)
    u, i = rows[LINE - 2].split(",")[:2]
    with pytest.raises(DataError, match=rf"ratings.csv, line {LINE - 1}: duplicate rating for \(user_id={u}, "
                                        rf"item_id={i}\) on lines {LINE - 1}, {LINE}"):
        load_ratings(path, **COLUMNS)
    assert outcome(load_ratings, path, **COLUMNS) == outcome(by_pandas, monkeypatch, load_ratings, path, **COLUMNS)


def test_blank_lines_at_the_end_of_a_big_file_are_ignored(lines, tmp_path, monkeypatch):
    path = write(tmp_path / "ratings.csv", list(lines) + ["", ""])
    ds = load_ratings(path, **COLUMNS)
    assert ds.n_ratings == N
    assert_same(ds, by_pandas(monkeypatch, load_ratings, path, **COLUMNS))


def test_a_big_parquet_file_with_missing_values_or_text_ids(home, tmp_path, monkeypatch):
    frame = pd.read_parquet(home / "ml-25m" / "ratings.parquet")
    text = frame.assign(userId="u" + frame["userId"].astype(str), movieId=frame["movieId"].astype("int32"))
    path = tmp_path / "text.parquet"
    text.to_parquet(path, row_group_size=30_000)  # each row group has its own dictionary of user ids
    assert readers.arrow_parquet(path, ROLES) is not None
    ds = load_ratings(path, **COLUMNS)
    assert isinstance(ds.ratings["user_id"].dtype, pd.StringDtype) and ds.ratings["user_id"][0].startswith("u")
    assert ds.ratings["item_id"].dtype == "int64" and ds.ratings["rating"].dtype == "float32"
    assert (ds.ratings["user_id"].to_numpy() == text["userId"].to_numpy()).all()
    assert_same(ds, by_pandas(monkeypatch, load_ratings, path, **COLUMNS))
    holes = frame.astype({"rating": "float64"})
    holes.loc[LINE, "rating"] = np.nan
    holes.to_parquet(path)
    with pytest.raises(DataError, match=rf"text.parquet, line {LINE + 1}: missing value in column 'rating'"):
        load_ratings(path, **COLUMNS)


# --- pyarrow and pandas agree on small files too (pyarrow made to read every file) --------------------------------

SMALL = [
    "user_id,item_id,rating\n1,10,4.5\n1,11,0.5\n2,10,3\n",
    "user_id,item_id,rating\n7,1,4\n007,1,3\n8,2,5\n",
    "user_id,item_id,rating\n7,1,4\n+7,1,3\n 7,2,5\n",
    "user_id,item_id,rating\n7.0,1,4\n8.0,1,3\n",
    "user_id,item_id,rating\n7,1,4\n7.0,1,3\n8,2,5\n",
    "user_id,item_id,rating\n99999999999999999999999,1,4\n9223372036854775808,1,3\n",
    "user_id,item_id,rating\n-9223372036854775808,1,4\n9223372036854775807,1,3\n",
    "user_id,item_id,rating\n1,2,3\n1,3\n",
    "user_id,item_id,rating\n1,2,3\n1,3,4,5\n",
    "user_id,item_id,rating\n1,2,3\n1,3,good\n",
    "user_id,item_id,rating\n1,2,3\n1,3,\n",
    "user_id,item_id,rating\n1,2,3\n1,3,NaN\n",
    "user_id,item_id,rating\n1,2,3\n2,2,4\n1,2,5\n",
    "user_id,item_id,rating\n",
    "user,item_id,rating\n1,2,3\n",
    "user_id,item_id,rating\n1,2,3\n1,3,inf\n",
    "user_id,item_id,rating\n1,2,True\n1,3,False\n",
    "user_id,item_id,rating\n1,2,3\n2,3,4\nTrue,4,5\n3,5,1\n",
    "user_id,item_id,rating\nu17,m1,3\nu18,m2,4\nu19,7,5\n",
    "user_id,item_id,rating\n1,2,3\n\n1,3,4\n",
    "user_id,item_id,rating\n1,2,3\n1,3,4\n\n\n",
    "user_id,item_id,rating\n1,2,3\n1,3,4\n,,\n",
    "user_id,item_id,rating,note\n1,2,3,\n1,3,4,x\n,,,y\n",
    "user_id,item_id,rating\r\n1,2,3\r\n1,3,4\r\n",
    "\ufeffuser_id,item_id,rating\n1,2,3\n",
    '"user_id","item_id","rating"\n"1","2","3"\n"1",3,"4.5"\n',
    'user_id,item_id,rating\n"a,b",2,3\n"c""d",3,4\n',
    'user_id,item_id,rating\n"a\nb",2,3\nc,3,4\n',
    "user_id,item_id,rating\nNA,2,3\nb,3,4\n",
    "user_id,item_id,rating\n ,2,3\nb,3,4\n",
    "user_id,item_id,rating\nnull,2,3\nNone,3,4\n",
    "user_id,item_id,rating\na,2, 3\nb,3,4 \n",
    "user_id,item_id,rating\na,2,+3\nb,3,4e0\n",
    "user_id,item_id,rating\na,2,3\nb,3,1e400\n",
    "user_id,item_id,rating,extra\na,2,3,x\nb,3,4\n",
    "user_id,user_id,rating\na,2,3\nb,3,4\n",
    "user_id,,rating\na,2,3\nb,3,4\n",
    "user_id,item_id,rating\n1,2,3,\n",
    "user_id;item_id;rating\n1;2;3\n2;2;4\n",
    "user_id,item_id,rating\n1,2,3\n2,2,1000000000\n",
]
WITH_TS = [
    "user_id,item_id,rating,ts\n1,2,3,100\n1,3,4,200\n1,4,4,oops\n",
    "user_id,item_id,rating,ts\n1,2,3,2020-01-01\n1,3,4,01/02/2020\n",
    "user_id,item_id,rating,ts\n1,2,3,100\n1,3,4,\n",
    "user_id,item_id,rating,ts\n1,2,3,100\n1,3,4,7.5\n",
    "user_id,item_id,rating,ts\n1,2,3,007\n1,3,4, 8\n",
    "user_id,item_id,rating,ts\n1,2,3,+7\n1,3,4,99999999999999999999\n",
]


def both(monkeypatch, path, **kwargs):
    with monkeypatch.context() as m:
        m.setattr(readers, "ARROW_MIN_BYTES", 0)
        arrow = outcome(load_ratings, path, **kwargs)
    return arrow, outcome(by_pandas, monkeypatch, load_ratings, path, **kwargs)


@pytest.mark.parametrize("text", SMALL + WITH_TS)
def test_pyarrow_and_pandas_agree_on_edge_cases(tmp_path, monkeypatch, text):
    path = tmp_path / "r.csv"
    path.write_text(text, encoding="utf-8")
    kwargs = {"timestamp_col": "ts"} if text in WITH_TS else {}
    assert_same(*both(monkeypatch, path, **kwargs))
    for sep, name in (("\t", "r.tsv"), ("|", "r.txt")):
        other = tmp_path / name
        other.write_text(text.replace(",", sep), encoding="utf-8")
        assert_same(*both(monkeypatch, other, **kwargs))


def test_pyarrow_and_pandas_agree_on_encodings(tmp_path, monkeypatch):
    path = tmp_path / "r.csv"
    path.write_bytes("user_id,item_id,rating\n1,2,3\nJosé,3,4\n".encode("latin-1"))
    for encoding in ("utf-8", "latin-1", "ascii", "utf-16"):
        assert_same(*both(monkeypatch, path, encoding=encoding))
    path.write_bytes("user_id,item_id,rating,note\n1,2,3,ok\n2,3,4,Jos\xe9\n".encode("latin-1"))
    assert_same(*both(monkeypatch, path))


CSV_ALPHABET = st.sampled_from(list("0123456789,.;\t\n\r :-+\"'|eEx")
                               + ["True", "nan", "inf", "NA", "::", "é", "\n\n"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(
    header=st.sampled_from(["user_id,item_id,rating\n", "user_id,item_id,rating,ts\n", "user_id\titem_id\trating\n"]),
    body=st.lists(CSV_ALPHABET, max_size=60).map("".join) | st.text(alphabet=string.printable, max_size=60),
    suffix=st.sampled_from([".csv", ".tsv"]),
)
def test_pyarrow_and_pandas_agree_on_any_content(monkeypatch, header, body, suffix):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"ratings{suffix}"
        path.write_bytes((header + body).encode("utf-8"))
        kwargs = {"timestamp_col": "ts"} if "ts" in header else {}
        assert_same(*both(monkeypatch, path, **kwargs))

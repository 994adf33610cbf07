import time

import numpy as np
import pytest

import ratecast as rc
from ratecast.errors import DataError, MissingFileError, UnknownDatasetError


def test_ml100k_shape(ml100k):
    ds = ml100k
    assert ds.n_ratings == 100_000 and ds.n_users == 943 and ds.n_items == 1682
    assert list(ds.ratings.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert len(ds.genres) == 19 and ds.genres[0] == "unknown" and ds.genres[-1] == "Western"
    assert set(ds.genres) <= set(ds.items.columns)
    assert ds.items.loc[1, "title"] == "Toy Story (1995)"
    assert ds.items.loc[1, "Animation"] == 1 and ds.items.loc[1, "Action"] == 0
    assert ds.items.loc[181, "title"] == "Return of the Jedi (1983)"
    assert ds.users.loc[1, "age"] == 24 and ds.users.loc[1, "occupation"] == "technician"
    assert ds.users.loc[2, "gender"] == "F"
    assert set(ds.users.columns) >= {"age", "gender", "occupation", "zip_code"}
    assert ds.rating_scale == rc.datasets.RatingScale(1, 5, 1)


def test_ml100k_latin1_titles_and_missing_dates(ml100k):
    titles = ml100k.items["title"]
    assert titles.str.contains("é").any()  # latin-1 decoded, not mojibake
    missing = ml100k.items["release_date"].isna()
    assert missing.sum() == 1  # item 267 has no release date; it stays missing (no 1920 marker)
    assert ml100k.items.loc[missing, "release_year"].isna().all()
    assert ml100k.items["release_year"].min() >= 1922


def test_vocabularies_round_trip(ml100k):
    idx = ml100k.item_index
    assert len(idx) == 1682 and idx.size == 1683
    raw = np.array([1, 181, 1682])
    assert (idx.raw(idx.index(raw)) == raw).all()
    assert idx.index([99999])[0] == rc.datasets.IdIndex.UNKNOWN


def test_loading_is_fast(data_home):
    t = time.perf_counter()
    rc.datasets.load_movielens("ml-100k", data_home=data_home, download=False)
    assert time.perf_counter() - t < 3.0  # the benchmark reports the real figure; this only catches regressions


def test_unknown_dataset_name():
    with pytest.raises(UnknownDatasetError, match=r"unknown dataset name 'ml-7m'.*ml-100k"):
        rc.datasets.load_movielens("ml-7m")


def test_summary_and_statistics(ml100k, lab_split):
    s = ml100k.summary()
    assert s["n_ratings"] == 100_000 and s["n_genres"] == 19 and 0.06 < s["density"] < 0.07
    dist = rc.datasets.rating_distribution(ml100k.ratings)
    assert list(dist.index) == [1, 2, 3, 4, 5] and dist.sum() == 100_000
    train, test = lab_split
    pop_train = rc.datasets.popularity(train.ratings, ml100k.items.index)
    pop_all = rc.datasets.popularity(ml100k.ratings, ml100k.items.index)
    assert pop_train.sum() == 80_000 and pop_all.sum() == 100_000
    assert (pop_train <= pop_all).all() and pop_all.loc[50] == 583
    hist = rc.datasets.release_year_histogram(ml100k.items, bins=10)
    assert hist["count"].sum() == 1681


# --- other MovieLens formats, written small by the tests -------------------------------------------------------


@pytest.fixture
def uncounted(monkeypatch):
    """Releases written small by a test: their row counts are not GroupLens's."""
    monkeypatch.setattr(rc.datasets.movielens, "KNOWN_COUNTS", {})


def _write_ml1m(folder):
    folder.mkdir()
    (folder / "ratings.dat").write_text("1::10::5::978300760\n1::20::3::978302109\n2::10::4::978301968\n")
    (folder / "movies.dat").write_bytes(
        "10::GoldenEye (1995)::Action|Adventure|Thriller\n20::Amélie (2001)::Comedy|Romance\n".encode("latin-1")
    )
    (folder / "users.dat").write_text("1::F::1::10::48067\n2::M::56::16::70072\n")


def test_ml1m_format(uncounted, tmp_path):
    _write_ml1m(tmp_path / "ml-1m")
    ds = rc.datasets.load_movielens("ml-1m", data_home=tmp_path, download=False)
    assert ds.n_ratings == 3 and ds.rating_scale.step == 1
    assert ds.items.loc[20, "title"] == "Amélie (2001)" and ds.items.loc[20, "release_year"] == 2001
    assert ds.items.loc[10, "Action"] == 1 and ds.items.loc[20, "Action"] == 0
    assert ds.users.loc[1, "occupation"] == "K-12 student" and ds.users.loc[2, "age_group"] == "56+"


def test_ml10m_format(uncounted, tmp_path):
    f = tmp_path / "ml-10M100K"
    f.mkdir()
    (f / "ratings.dat").write_text("1::122::5::838985046\n1::185::4.5::838983525\n")
    (f / "movies.dat").write_text("122::Boomerang (1992)::Comedy|Romance\n185::Net, The (1995)::Action|Crime\n")
    ds = rc.datasets.load_movielens("ml-10m", data_home=tmp_path, download=False)
    assert ds.rating_scale == rc.datasets.RatingScale(0.5, 5, 0.5)
    assert ds.ratings["rating"].tolist() == [5.0, 4.5] and ds.users is None


@pytest.mark.parametrize("name", ["ml-20m", "ml-25m", "ml-32m", "ml-latest-small"])
def test_csv_formats(uncounted, tmp_path, name):
    f = tmp_path / name
    f.mkdir()
    (f / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,3.5,964981247\n2,1,0.5,1\n")
    (f / "movies.csv").write_text(
        'movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n3,"Grumpier Old Men, The (1995)",Comedy\n'
    )
    (f / "links.csv").write_text("movieId,imdbId,tmdbId\n1,0114709,862\n3,0113228,15602\n")
    ds = rc.datasets.load_movielens(name, data_home=tmp_path, download=False)
    assert ds.n_ratings == 3 and ds.items.loc[3, "title"] == "Grumpier Old Men, The (1995)"
    assert ds.items.loc[1, "Animation"] == 1 and ds.items.loc[3, "release_year"] == 1995
    assert ds.items.loc[1, "imdb_id"] == "0114709"


def test_csv_bad_rating_names_line(tmp_path):
    f = tmp_path / "ml-25m"
    f.mkdir()
    (f / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4.0,1\n1,2,7.0,2\n")
    (f / "movies.csv").write_text("movieId,title,genres\n1,A (1990),Drama\n")
    with pytest.raises(DataError, match=r"ratings.csv, line 3: rating outside the declared scale 0.5..5.*7"):
        rc.datasets.load_movielens("ml-25m", data_home=tmp_path, download=False)


# --- broken MovieLens files -----------------------------------------------------------------------------------------


@pytest.fixture
def ml100k_copy(tmp_path, data_home):
    import shutil

    if not (data_home / "ml-100k" / "u.data").exists():
        pytest.skip(f"no ML-100k copy under {data_home}")
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    for name in ("u.data", "u.item", "u.genre", "u.user"):
        shutil.copy(data_home / "ml-100k" / name, folder / name)
    return folder


def _edit_line(path, number, text, encoding="latin-1"):
    lines = path.read_text(encoding=encoding).splitlines()
    lines[number - 1] = text
    path.write_text("\n".join(lines) + "\n", encoding=encoding)


@pytest.mark.parametrize(
    "text,match",
    [
        ("1\t2\t3\tyesterday", r"u.data, line 7: timestamp must be .*, got 'yesterday'"),
        ("1\t2\t3", r"u.data, line 7: missing value in column 'timestamp'"),
        ("1\t2\t3\t881250949\t5", r"u.data, line 7: malformed row: expected 4 fields, found 5"),
        ("1\t2\tTrue\t881250949", r"u.data, line 7: rating must be a number, got 'True'"),
    ],
)
def test_ml100k_bad_u_data_line(ml100k_copy, text, match):
    _edit_line(ml100k_copy / "u.data", 7, text)
    with pytest.raises(DataError, match=match):
        rc.datasets.load_movielens("ml-100k", data_home=ml100k_copy.parent, download=False)


def test_ml100k_bad_first_u_data_line(ml100k_copy):
    _edit_line(ml100k_copy / "u.data", 1, "196\t242\t3\t881250949\t7")
    with pytest.raises(DataError, match=r"u.data, line 1: malformed row: expected 4 fields, found 5"):
        rc.datasets.load_movielens("ml-100k", data_home=ml100k_copy.parent, download=False)


GOOD_ITEM = "5|Copycat (1995)|01-Jan-1995||http://x|0|0|0|0|0|0|1|0|1|0|0|0|0|0|0|0|0|1|0"


@pytest.mark.parametrize(
    "text,match",
    [
        (GOOD_ITEM + "|1", r"u.item, line 5: malformed row: expected 24 fields, found 25"),
        (GOOD_ITEM.rsplit("|", 2)[0], r"u.item, line 5: short row: expected 24 fields, column 'War' is empty"),
        ("five" + GOOD_ITEM[1:], r"u.item, line 5: item_id must be an integer, got 'five'"),
        ("4" + GOOD_ITEM[1:], r"u.item, line 5: duplicate item_id 4 on lines 4, 5"),
        (GOOD_ITEM[:-1] + "7", r"u.item, line 5: genre flag 'Western' must be 0 or 1, got 7"),
        (GOOD_ITEM.replace("01-Jan-1995", "1995-01-01"), r"u.item, line 5: release_date must be a date like "
                                                          r"01-Jan-1995, got '1995-01-01'"),
    ],
)
def test_ml100k_broken_u_item_line(ml100k_copy, text, match):
    _edit_line(ml100k_copy / "u.item", 5, text)
    with pytest.raises(DataError, match=match) as err:
        rc.datasets.load_movielens("ml-100k", data_home=ml100k_copy.parent, download=False)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "text,match",
    [
        ("3|23|M|writer", r"u.user, line 3: short row: expected 5 fields, column 'zip_code' is empty"),
        ("x|23|M|writer|32067", r"u.user, line 3: user_id must be an integer, got 'x'"),
        ("3|old|M|writer|32067", r"u.user, line 3: age must be an integer, got 'old'"),
    ],
)
def test_ml100k_broken_u_user_line(ml100k_copy, text, match):
    _edit_line(ml100k_copy / "u.user", 3, text)
    with pytest.raises(DataError, match=match):
        rc.datasets.load_movielens("ml-100k", data_home=ml100k_copy.parent, download=False)


def test_ml100k_required_file_is_a_directory(ml100k_copy):
    (ml100k_copy / "u.user").unlink()
    (ml100k_copy / "u.user").mkdir()
    with pytest.raises(DataError, match=r"u.user: is a directory, expected a file"):
        rc.datasets.load_movielens("ml-100k", data_home=ml100k_copy.parent, download=False)


def test_no_local_copy_without_download(tmp_path):
    with pytest.raises(MissingFileError, match=r"no local copy of ml-100k \(looked for .*ml-100k and .*ml-100k.zip\)"):
        rc.datasets.load_movielens("ml-100k", data_home=tmp_path, download=False)


def test_ml1m_unknown_age_code_and_bad_movie_id(tmp_path):
    _write_ml1m(tmp_path / "ml-1m")
    (tmp_path / "ml-1m" / "users.dat").write_text("1::F::1::10::48067\n2::M::57::16::70072\n")
    with pytest.raises(DataError, match=r"users.dat, line 2: age must be one of the codes .*, got 57"):
        rc.datasets.load_movielens("ml-1m", data_home=tmp_path, download=False)
    _write_ml1m(tmp_path / "ml-1m-b")
    (tmp_path / "ml-1m-b" / "movies.dat").write_text("10::GoldenEye (1995)::Action\nx20::Amelie (2001)::Comedy\n")
    (tmp_path / "ml-1m").rename(tmp_path / "ml-1m-a")
    (tmp_path / "ml-1m-b").rename(tmp_path / "ml-1m")
    with pytest.raises(DataError, match=r"movies.dat, line 2: item_id must be an integer, got 'x20'"):
        rc.datasets.load_movielens("ml-1m", data_home=tmp_path, download=False)

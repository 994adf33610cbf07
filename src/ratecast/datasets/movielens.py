"""MovieLens loaders: every GroupLens release ratecast knows, parsed into one :class:`Dataset` shape."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from ..errors import DataError, MissingFileError, UnknownDatasetError
from .dataset import Dataset
from .download import default_data_home, fetch_archive
from .readers import arrow_ratings, check_file, normalise_items, read_delimited
from .scale import RatingScale
from .validate import check_duplicates_option, check_table, validate_ratings

# ML-1M codes (from its README)
ML1M_AGES = {1: "Under 18", 18: "18-24", 25: "25-34", 35: "35-44", 45: "45-49", 50: "50-55", 56: "56+"}
ML1M_OCCUPATIONS = [
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student", "customer service",
    "doctor/health care", "executive/managerial", "farmer", "homemaker", "K-12 student", "lawyer", "programmer",
    "retired", "sales/marketing", "scientist", "self-employed", "technician/engineer", "tradesman/craftsman",
    "unemployed", "writer",
]  # fmt: skip


@dataclass(frozen=True)
class _Spec:
    folder: str
    required: tuple[str, ...]
    parse: Callable[[Path, str], Dataset]  # (folder, duplicates)


def _parse_100k(folder: Path, duplicates: str = "error") -> Dataset:
    data = folder / "u.data"
    raw = read_delimited(data, sep="\t", names=["user_id", "item_id", "rating", "timestamp"])
    scale = RatingScale(1, 5, 1)
    ratings, _ = validate_ratings(raw, path=str(data), rating_scale=scale, require_timestamp=True,
                                  duplicates=duplicates)
    genres = _read_genres(folder / "u.genre")
    items = _read_100k_items(folder / "u.item", genres)
    path = folder / "u.user"
    user_cols = ["user_id", "age", "gender", "occupation", "zip_code"]
    users = read_delimited(path, sep="|", names=user_cols, dtype={"zip_code": str})
    check_table(users, path=str(path), key="user_id", required=tuple(user_cols[1:]), integers=("age",))
    users = users.set_index("user_id")
    return Dataset(ratings, items, users, name="ml-100k", rating_scale=scale, genres=genres, source=str(folder),
                   duplicates=duplicates)


def _read_100k_items(path: Path, genres: list[str]) -> pd.DataFrame:
    """``u.item``: id, title, dates, IMDb URL and one 0/1 flag per genre, ``|``-separated, latin-1."""
    item_cols = ["item_id", "title", "release_date", "video_release_date", "imdb_url"] + genres
    items = read_delimited(path, sep="|", names=item_cols, encoding="latin-1")
    check_table(items, path=str(path), key="item_id", required=tuple(genres), genre_flags=tuple(genres))
    dates = pd.to_datetime(items["release_date"], format="%d-%b-%Y", errors="coerce")
    bad = (dates.isna() & items["release_date"].notna()).to_numpy()
    if bad.any():
        row = int(bad.argmax())
        raise DataError(f"release_date must be a date like 01-Jan-1995, got {items['release_date'].iloc[row]!r}",
                        path=str(path), line=row + 1)
    items = items.assign(release_date=dates).set_index("item_id")
    items["release_year"] = items["release_date"].dt.year.astype("Int64")
    items[genres] = items[genres].astype("int8")
    return items


def _read_genres(path: Path) -> list[str]:
    check_file(path)
    try:
        text = path.read_text(encoding="latin-1")
    except OSError as exc:
        raise DataError(f"cannot be read: {exc.strerror or exc}", path=str(path)) from None
    genres = []
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, _, idx = line.partition("|")
        if not idx.strip().isdigit():
            raise DataError(f"expected 'genre|index', got {line!r}", path=str(path), line=i)
        genres.append(name)
    return genres


def _parse_dat(folder: Path, name: str, duplicates: str = "error") -> Dataset:
    """ML-1M and ML-10M: ``::``-separated ratings.dat / movies.dat (/ users.dat for 1M)."""
    data = folder / "ratings.dat"
    raw = read_delimited(data, sep="::", names=["user_id", "item_id", "rating", "timestamp"])
    scale = RatingScale(1, 5, 1) if name == "ml-1m" else RatingScale(0.5, 5, 0.5)
    ratings, _ = validate_ratings(raw, path=str(data), rating_scale=scale, require_timestamp=True,
                                  duplicates=duplicates)
    movies = _read_text_table(folder / "movies.dat", sep="::", names=["item_id", "title", "genres"])
    check_table(movies, path=str(folder / "movies.dat"), key="item_id", required=("title",))
    items, genres = normalise_items(movies.set_index("item_id"))
    users = None
    if (folder / "users.dat").exists():
        path = folder / "users.dat"
        user_cols = ["user_id", "gender", "age", "occupation", "zip_code"]
        users = read_delimited(path, sep="::", names=user_cols, dtype={"zip_code": str})
        check_table(users, path=str(path), key="user_id", required=tuple(user_cols[1:]), integers=("age", "occupation"))
        unknown = ~users["age"].astype("int64").isin(list(ML1M_AGES)).to_numpy()
        if unknown.any():
            row = int(unknown.argmax())
            raise DataError(f"age must be one of the codes {list(ML1M_AGES)}, got {int(users['age'].iloc[row])}",
                            path=str(path), line=row + 1)
        users = users.astype({"age": "int64", "occupation": "int64"}).set_index("user_id")
        users["age_group"] = users["age"].map(ML1M_AGES)
        users["occupation"] = users["occupation"].map(dict(enumerate(ML1M_OCCUPATIONS))).fillna("other")
        users = users[["age", "age_group", "gender", "occupation", "zip_code"]]
    return Dataset(ratings, items, users, name=name, rating_scale=scale, genres=genres, source=str(folder),
                   duplicates=duplicates)


def _read_text_table(path: Path, **kw) -> pd.DataFrame:
    try:
        return read_delimited(path, encoding="utf-8", **kw)
    except DataError as exc:
        if "decoded" not in str(exc):
            raise
        return read_delimited(path, encoding="latin-1", **kw)


def _parse_csv(folder: Path, name: str, duplicates: str = "error") -> Dataset:
    """ML-20M/25M/32M and ml-latest(-small): ratings.csv, movies.csv, links.csv with headers."""
    data = folder / "ratings.csv"
    expected = ["userId", "movieId", "rating", "timestamp"]
    roles = ["user_id", "item_id", "rating", "timestamp"]
    fast = arrow_ratings(data, sep=",", encoding="utf-8", columns=dict(zip(roles, expected)), written_ids=False,
                         header=expected)  # big files; small ones, and any pyarrow reads otherwise, with pandas
    if fast is not None:
        raw, codes = fast
    else:
        raw, codes = read_delimited(data, sep=",", header=0), None
        if list(raw.columns[:4]) != expected:
            raise DataError(f"expected header {','.join(expected)}, got {','.join(map(str, raw.columns))}",
                            path=str(data))
        raw.columns = roles + list(raw.columns[4:])
    scale = RatingScale(0.5, 5, 0.5)
    ratings, _ = validate_ratings(raw, path=str(data), rating_scale=scale, first_line=2, require_timestamp=True,
                                  id_codes=codes, columns=dict(zip(roles, expected)), duplicates=duplicates)
    movies = read_delimited(folder / "movies.csv", sep=",", header=0).rename(columns={"movieId": "item_id"})
    if "item_id" not in movies.columns:
        raise DataError(f"missing column 'movieId'; the file has columns {list(map(str, movies.columns))}",
                        path=str(folder / "movies.csv"))
    check_table(movies, path=str(folder / "movies.csv"), key="item_id", first_line=2)
    items, genres = normalise_items(movies.set_index("item_id"))
    if (folder / "links.csv").exists():
        links = read_delimited(folder / "links.csv", sep=",", header=0, dtype={"imdbId": str})
        links = links.rename(columns={"movieId": "item_id", "imdbId": "imdb_id", "tmdbId": "tmdb_id"})
        items = items.join(links.set_index("item_id"), how="left")
    return Dataset(ratings, items, None, name=name, rating_scale=scale, genres=genres, source=str(folder),
                   duplicates=duplicates)


DATASETS: dict[str, _Spec] = {
    "ml-100k": _Spec("ml-100k", ("u.data", "u.item", "u.genre", "u.user"), _parse_100k),
    "ml-1m": _Spec("ml-1m", ("ratings.dat", "movies.dat", "users.dat"), lambda f, d: _parse_dat(f, "ml-1m", d)),
    "ml-10m": _Spec("ml-10M100K", ("ratings.dat", "movies.dat"), lambda f, d: _parse_dat(f, "ml-10m", d)),
    "ml-20m": _Spec("ml-20m", ("ratings.csv", "movies.csv"), lambda f, d: _parse_csv(f, "ml-20m", d)),
    "ml-25m": _Spec("ml-25m", ("ratings.csv", "movies.csv"), lambda f, d: _parse_csv(f, "ml-25m", d)),
    "ml-32m": _Spec("ml-32m", ("ratings.csv", "movies.csv"), lambda f, d: _parse_csv(f, "ml-32m", d)),
    "ml-latest-small": _Spec("ml-latest-small", ("ratings.csv", "movies.csv"),
                             lambda f, d: _parse_csv(f, "ml-latest-small", d)),
}


#: md5 of each release's zip as GroupLens publishes it (``<release>.zip.md5``), pinned here so that a mirror cannot
#: substitute another archive. Releases missing here change over time (ml-latest-small) or have no pinned value yet
#: (ml-32m): their md5 is fetched from beside the archive.
PUBLISHED_MD5: dict[str, str] = {
    "ml-100k": "0e33842e24a9c977be4e0107933c0723",
    "ml-1m": "c4d9eecfca2ab87c1945afe126590906",
    "ml-10m": "ce571fd55effeba0271552578f2648bd",
    "ml-20m": "cd245b17a1ae2cc31bb14903e1204af3",
    "ml-25m": "6b51fb2759a8657d3bfcbfc42b592ada",
}

#: rows of each release's files as GroupLens published it ({file: (what, rows)}); a local copy that holds another
#: number was cut short or edited. ml-latest-small changes over time and is not counted.
KNOWN_COUNTS: dict[str, dict[str, tuple[str, int]]] = {
    "ml-100k": {"u.data": ("ratings", 100_000), "u.user": ("users", 943), "u.item": ("items", 1_682)},
    "ml-1m": {"ratings.dat": ("ratings", 1_000_209)},
    "ml-10m": {"ratings.dat": ("ratings", 10_000_054)},
    "ml-20m": {"ratings.csv": ("ratings", 20_000_263)},
    "ml-25m": {"ratings.csv": ("ratings", 25_000_095)},
    "ml-32m": {"ratings.csv": ("ratings", 32_000_204)},
}


def check_counts(ds: Dataset, name: str, folder: Path) -> None:
    """Raise :class:`DataError` naming the file, the expected and the found count if a release's file holds another
    number of rows than GroupLens published (:data:`KNOWN_COUNTS`)."""
    tables = {"ratings": ds.ratings, "users": ds.users, "items": ds.items}
    for file, (what, expected) in KNOWN_COUNTS.get(name, {}).items():
        table = tables[what]
        found = 0 if table is None else len(table)
        if found != expected:
            raise DataError(f"holds {found:,} {what}, but {name} has {expected:,}: the copy was cut short or edited "
                            f"(replace it with the release as GroupLens publishes it)", path=str(folder / file))


def movielens_folder(name: str, data_home: str | os.PathLike | None = None, *, download: bool = True,
                     base_url: str | None = None, progress: bool = True) -> Path:
    """The extracted folder of MovieLens release ``name``, fetched (and checksummed) if it is not cached."""
    spec = _spec(name)
    home = default_data_home(data_home)
    target, archive = home / spec.folder, home / f"{name}.zip"
    if not download and not target.exists() and not archive.exists():
        raise MissingFileError(f"no local copy of {name} (looked for {target} and {archive})")
    return fetch_archive(name, spec.folder, home, base_url=base_url, required=spec.required, progress=progress,
                         md5=PUBLISHED_MD5.get(name))


def _spec(name: str) -> _Spec:
    if name not in DATASETS:
        raise UnknownDatasetError(f"unknown dataset name {name!r}: expected one of {sorted(DATASETS)}")
    return DATASETS[name]


def load_movielens(name: str = "ml-100k", data_home: str | os.PathLike | None = None, *,
                   download: bool = True, base_url: str | None = None, progress: bool = True,
                   duplicates: str = "error") -> Dataset:
    """Load a MovieLens release (``ml-100k``, ``ml-1m``, ``ml-10m``, ``ml-20m``, ``ml-25m``, ``ml-32m``,
    ``ml-latest-small``) as a :class:`Dataset`.

    A local extracted folder or zip under ``data_home`` (argument, else ``$RATECAST_DATA``, else the per-user cache)
    is used without network; otherwise the official zip is downloaded and checked against the md5 GroupLens publishes
    (pinned in :data:`PUBLISHED_MD5`). A release whose files hold another number of rows than published
    (:data:`KNOWN_COUNTS`) is refused.
    A big ``ratings.csv`` (ML-20M, ML-25M, ML-32M) is read by pyarrow on several threads, into the same Dataset.
    ``duplicates`` (``"error"``, ``"last"``, ``"mean"``): what to do with a (user, item) pair rated twice, as in
    :func:`~ratecast.datasets.load_ratings` (the GroupLens releases have none).
    """
    spec = _spec(name)
    check_duplicates_option(duplicates)
    folder = movielens_folder(name, data_home, download=download, base_url=base_url, progress=progress)
    missing = [f for f in spec.required if not (folder / f).exists()]
    if missing:
        raise MissingFileError(f"incomplete local copy of {name} at {folder}: missing {missing}")
    ds = spec.parse(folder, duplicates)
    check_counts(ds, name, folder)
    return ds


def available_datasets() -> list[str]:
    return list(DATASETS)


__all__ = ["load_movielens", "available_datasets", "movielens_folder", "DATASETS", "KNOWN_COUNTS", "PUBLISHED_MD5"]

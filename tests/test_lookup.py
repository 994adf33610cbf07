"""Lookups from a saved model's stored tables (ratecast.lookup): the same answers as the loaded Recommender for every
model, None where the tables do not hold the answer, no Keras or JAX loaded, corrupted files refused."""

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import ratecast as rc
from ratecast import lookup as L
from ratecast.errors import IntegrityError, UnknownIdError
from ratecast.models import MODELS
from ratecast.state import FittedState
from synthetic import make_dataset

FAST = dict(embedding_dim=4, epochs=2, batch_size=32, verbose=0)
OPTIONS = {"bayesian": dict(samples=3, burn_in=1, chains=1, embedding_dim=3, verbose=0),
           "baseline": dict(epochs=2, batch_size=32, verbose=0), "popularity": dict(epochs=2, batch_size=32, verbose=0)}
LINEAR = {"dot", "biased_dot", "baseline", "popularity", "bayesian"}


def options(model: str) -> dict:
    return OPTIONS.get(model, FAST)


@pytest.fixture(scope="module")
def data():
    # more items than the stored lists hold, so that both full and short lists are exercised
    return make_dataset(n_users=40, n_items=80, density=0.3, seed=3)


@pytest.fixture(scope="module", params=sorted(MODELS))
def saved(request, data, tmp_path_factory):
    """(model name, Recommender loaded back, its lookup, folder) for every model."""
    name = request.param
    folder = tmp_path_factory.mktemp(name) / "model"
    rc.Recommender(name, random_state=0, **options(name)).fit(data).save(folder)
    return name, rc.Recommender.load(folder), L.SavedLookup.open(folder), folder


def assert_frames(got: pd.DataFrame | None, want: pd.DataFrame, ties: bool = False) -> None:
    """Same columns, ids, titles and values (to 1e-5); with ``ties``, two items may trade places where their values
    are equal (a ranking key tied up to float rounding)."""
    assert got is not None
    assert list(got.columns) == list(want.columns)
    value = got.columns[-1]
    np.testing.assert_allclose(got[value].to_numpy(), want[value].to_numpy(), rtol=0, atol=1e-5)
    same = got["item_id"].to_numpy() == want["item_id"].to_numpy()
    if ties:
        assert sorted(got["item_id"][~same]) == sorted(want["item_id"][~same])
    else:
        assert same.all(), (got, want)
    assert got["title"][same].tolist() == want["title"][same].tolist()
    assert got.attrs == want.attrs


def test_recommend_matches_recommender(saved):
    """The stored lists are the lists Recommender.top_positions makes for every user (those a server answers from),
    exactly; a single user's Recommender.recommend agrees with them up to items whose keys tie to float rounding."""
    name, rec, lookup, _ = saved
    support = lookup.default_support
    users = np.arange(1, len(rec.user_index) + 1)
    for min_ratings in sorted({support, support + 3}):
        pos, score = rec.top_positions(users, L.DEPTH, min_ratings=None if min_ratings == support else min_ratings)
        for u in users[::3]:
            for k in (1, 10, L.DEPTH):
                got = lookup.recommend(rec.user_index.ids[u - 1], k=k,
                                       min_ratings=None if min_ratings == support else min_ratings)
                if got is None:  # a stricter minimum may need more than the stored list holds
                    assert min_ratings != support
                    continue
                keep = pos[u - 1][:k] >= 0
                ids = rec.item_index.ids[pos[u - 1][:k][keep]]
                want = pd.DataFrame({"item_id": ids, "title": pd.Series(rec.titles(ids), dtype=object),
                                     "score": score[u - 1][:k][keep]})
                assert_frames(got, want)
                assert_frames(got, rec.recommend(rec.user_index.ids[u - 1], k=k,
                                                 min_ratings=None if min_ratings == support else min_ratings),
                              ties=True)


def test_unknown_user_gets_the_fallback(saved):
    _, rec, lookup, _ = saved
    for k in (1, 7, 100):
        for min_ratings in (None, 0, 4, 1000):
            assert_frames(lookup.recommend("nobody", k=k, min_ratings=min_ratings),
                          rec.recommend("nobody", k=k, min_ratings=min_ratings))


def test_similar_matches_recommender(saved):
    name, rec, lookup, _ = saved
    if not rec.model_.capabilities.has_vectors:
        assert lookup.similar(rec.item_index.ids[0]) is None  # the Recommender says why there are none
        return
    for item in rec.item_index.ids[::7]:
        for k in (1, 10, 200):
            for min_ratings in (None, 0, 5):
                assert_frames(lookup.similar(item, k=k, min_ratings=min_ratings),
                              rec.similar_items(item, k=k, min_ratings=min_ratings))
    with pytest.raises(UnknownIdError, match="unknown item_id 'nope'"):
        lookup.similar("nope")


def test_predict_matches_recommender_for_linear_models(saved, data):
    name, rec, lookup, _ = saved
    r = data.ratings
    users = np.concatenate([r["user_id"].to_numpy()[:50], [999, 1]]).astype(object)
    items = np.concatenate([r["item_id"].to_numpy()[:50], [101, 9999]]).astype(object)
    got = lookup.predict_details(users, items)
    if name not in LINEAR:
        assert got is None
        return
    want = rec.predict_details(users, items)
    assert got is not None and list(got.columns) == list(want.columns)
    np.testing.assert_allclose(got["prediction"], want["prediction"], rtol=0, atol=1e-5)
    for column in ("user_id", "item_id", "known_user", "known_item", "was_impossible"):
        assert got[column].tolist() == want[column].tolist(), column


def test_declines_what_the_lists_do_not_hold(saved):
    name, rec, lookup, _ = saved
    user = rec.user_index.ids[0]
    assert lookup.recommend(user, k=L.DEPTH + 1) is None or len(
        lookup.recommend(user, k=L.DEPTH + 1)) < L.DEPTH  # only a list that is the whole catalogue answers
    assert lookup.recommend(user, exclude_seen=False) is None
    support = lookup.default_support
    if support:
        assert lookup.recommend(user, min_ratings=support - 1) is None
    for bad in (0, -1, True, 2.5):
        assert lookup.recommend(user, k=bad) is None  # the Recommender raises its error
    assert lookup.recommend(user, min_ratings=-1) is None
    assert lookup.recommend([user]) is None
    assert lookup.predict_details([user], [rec.item_index.ids[0]], timestamps=[0]) is None


def test_a_folder_saved_without_lookup_is_declined(saved, tmp_path):
    _, _, _, folder = saved
    copy = tmp_path / "old"
    copy.mkdir()
    for f in folder.iterdir():
        if f.name not in (L.FILE, "MANIFEST.json"):
            (copy / f.name).write_bytes(f.read_bytes())
    from ratecast import manifest

    manifest.write(copy)
    assert L.SavedLookup.open(copy) is None
    FittedState.load(copy)  # and the model still loads


def test_lookup_imports_neither_keras_nor_jax(tmp_path):
    ds = make_dataset(n_users=12, n_items=10, seed=1)
    folder = tmp_path / "model"
    rc.Recommender("dot", random_state=0, **FAST).fit(ds).save(folder)
    code = (
        "import sys\n"
        "from ratecast.lookup import SavedLookup\n"
        f"lk = SavedLookup.open({str(folder)!r})\n"
        "assert lk.recommend(1, k=3) is not None and lk.recommend('x', k=3) is not None\n"
        "assert lk.similar(101, k=3) is not None\n"
        "assert lk.predict_details(__import__('numpy').array([1, 2]), __import__('numpy').array([101, 102])) "
        "is not None\n"
        "print(sorted(m for m in ('keras', 'jax', 'tensorflow') if m in sys.modules))\n")
    env = {**os.environ, "PYTHONPATH": str(Path(rc.__file__).parents[1])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def corrupt(folder: Path, arrays: dict[str, np.ndarray]) -> None:
    """Replace lookup.npz by ``arrays`` and write the manifest again (a file that passes its checksum)."""
    from ratecast import manifest

    np.savez(folder / L.FILE, **arrays)
    manifest.write(folder)


@pytest.fixture()
def dot_folder(tmp_path):
    folder = tmp_path / "model"
    rc.Recommender("dot", random_state=0, **FAST).fit(make_dataset(n_users=12, n_items=10, seed=1)).save(folder)
    return folder


def test_edited_lookup_is_refused_by_its_checksum(dot_folder):
    data = bytearray((dot_folder / L.FILE).read_bytes())
    data[-5] ^= 0xFF
    (dot_folder / L.FILE).write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="sha256"):
        L.SavedLookup.open(dot_folder)
    with pytest.raises(IntegrityError, match="sha256"):
        FittedState.load(dot_folder)


def test_lookup_with_wrong_sizes_is_refused(dot_folder):
    with np.load(dot_folder / L.FILE) as npz:
        arrays = dict(npz)
    arrays["top_items"] = arrays["top_items"][:-1]
    corrupt(dot_folder, arrays)
    for load in (L.SavedLookup.open, FittedState.load):
        with pytest.raises(IntegrityError, match="top_items.*shape"):
            load(dot_folder)


def test_lookup_with_positions_out_of_range_is_refused(dot_folder):
    with np.load(dot_folder / L.FILE) as npz:
        arrays = dict(npz)
    arrays["top_items"][0, 0] = 10_000
    corrupt(dot_folder, arrays)
    lookup = L.SavedLookup.open(dot_folder)
    with pytest.raises(IntegrityError, match="positions of items that do not exist"):
        lookup.recommend(1)


def test_lookup_with_non_finite_scores_is_refused(dot_folder):
    with np.load(dot_folder / L.FILE) as npz:
        arrays = dict(npz)
    arrays["item_vectors"][0, 0] = np.nan
    corrupt(dot_folder, arrays)
    with pytest.raises(IntegrityError, match="item_vectors holds non-finite"):
        L.SavedLookup.open(dot_folder).similar(101)


def test_unlisted_lookup_is_refused(dot_folder):
    listed = json.loads((dot_folder / "MANIFEST.json").read_text())
    del listed["files"][L.FILE]
    (dot_folder / "MANIFEST.json").write_text(json.dumps(listed))
    with pytest.raises(IntegrityError, match="lookup.npz"):
        L.SavedLookup.open(dot_folder)
    with pytest.raises(IntegrityError, match="lookup.npz"):
        FittedState.load(dot_folder)


def test_unknown_id_other_kind_warns_as_the_recommender(dot_folder):
    lookup = L.SavedLookup.open(dot_folder)
    rec = rc.Recommender.load(dot_folder)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert_frames(lookup.recommend("1", k=3), rec.recommend("1", k=3))
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2 and messages[0] == messages[1]


# --- what the command line will call -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory):
    from cli_helpers import FAST as CLI_FAST, cli

    folder = tmp_path_factory.mktemp("run")
    ds = make_dataset(n_users=30, n_items=60, density=0.4, seed=2)
    ds.ratings.to_csv(folder / "ratings.csv", index=False)
    res = cli("train", "--data", folder / "ratings.csv", "--model", "biased_dot", *CLI_FAST, "--out", folder / "run")
    assert res.code == 0, res.stdout + res.stderr
    return folder / "run"


def cli_json(*args):
    from cli_helpers import cli, strict_json

    res = cli(*args, "--json")
    assert res.code == 0, res.stdout + res.stderr
    return pd.DataFrame(strict_json(res.stdout))


def test_answers_are_what_the_command_line_prints(synthetic_run):
    for user in ("1", "7", "30"):
        for k, min_ratings in ((10, None), (3, 12)):
            got = L.answer_recommend(synthetic_run, user, k, min_ratings)
            extra = [] if min_ratings is None else ["--min-ratings", min_ratings]
            assert_frames(got, cli_json("recommend", synthetic_run, "--user", user, "-k", k, *extra), ties=True)
    got, heading = L.answer_similar(synthetic_run, "105", 5)
    assert_frames(got, cli_json("similar", synthetic_run, "--item", "105", "-k", 5))
    assert heading == 105  # no titles in this data: the id heads the list
    pairs = pd.DataFrame({"user_id": ["1", "2", "99"], "item_id": ["101", "999", "102"]})
    pairs.to_csv(synthetic_run.parent / "pairs.csv", index=False)
    from ratecast.datasets.readers import read_pairs

    got = L.answer_predict(synthetic_run, read_pairs(synthetic_run.parent / "pairs.csv"))
    want = cli_json("predict", synthetic_run, "--pairs", synthetic_run.parent / "pairs.csv")
    np.testing.assert_allclose(got["prediction"], want["prediction"], rtol=0, atol=1e-5)
    assert got.drop(columns="prediction").to_dict("list") == want.drop(columns="prediction").to_dict("list")


def test_answers_raise_the_command_line_errors(synthetic_run, tmp_path):
    from cli_helpers import cli, one_line_error

    for call, args in ((L.answer_recommend, ("recommend", "--user")), (L.answer_similar, ("similar", "--item"))):
        with pytest.raises(UnknownIdError) as caught:
            call(synthetic_run, "nobody")
        line = one_line_error(cli(args[0], synthetic_run, args[1], "nobody"), 3)
        assert line == f"error: {caught.value}"
    from ratecast.errors import MissingFileError

    with pytest.raises(MissingFileError) as caught:
        L.answer_recommend(tmp_path / "none", "1")
    assert one_line_error(cli("recommend", tmp_path / "none", "--user", "1"), 4) == f"error: {caught.value}"


def test_answering_a_run_imports_neither_keras_nor_jax(synthetic_run):
    code = (
        "import sys\n"
        "from ratecast import lookup\n"
        f"assert lookup.answer_recommend({str(synthetic_run)!r}, '1') is not None\n"
        f"assert lookup.answer_similar({str(synthetic_run)!r}, '105') is not None\n"
        "print(sorted(m for m in ('keras', 'jax', 'tensorflow') if m in sys.modules))\n")
    env = {**os.environ, "PYTHONPATH": str(Path(rc.__file__).parents[1])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_command_line_lookups_import_neither_keras_nor_jax(synthetic_run):
    pairs = synthetic_run.parent / "cli-pairs.csv"
    pd.DataFrame({"user_id": ["1", "2", "99"], "item_id": ["101", "999", "102"]}).to_csv(pairs, index=False)
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from ratecast.cli import app\n"
        f"run = {str(synthetic_run)!r}\n"
        "for args in (['recommend', run, '--user', '1'], ['similar', run, '--item', '105', '-k', '3'],\n"
        f"             ['predict', run, '--pairs', {str(pairs)!r}], ['recommend', run, '--user', '7', '--json']):\n"
        "    res = CliRunner().invoke(app, args)\n"
        "    assert res.exit_code == 0 and res.output.strip(), (args, res.output)\n"
        "print(sorted(m for m in ('keras', 'jax', 'tensorflow') if m in sys.modules))\n")
    env = {**os.environ, "PYTHONPATH": str(Path(rc.__file__).parents[1])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_data_info_imports_neither_keras_nor_jax(tmp_path):
    make_dataset().ratings.to_csv(tmp_path / "ratings.csv", index=False)
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from ratecast.cli import app\n"
        f"res = CliRunner().invoke(app, ['data', 'info', {str(tmp_path / 'ratings.csv')!r}, '--json'])\n"
        "assert res.exit_code == 0, res.output\n"
        "print(sorted(m for m in ('keras', 'jax', 'tensorflow') if m in sys.modules))\n")
    env = {**os.environ, "PYTHONPATH": str(Path(rc.__file__).parents[1])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_tables_past_the_size_cap_are_left_to_the_full_model(tmp_path, monkeypatch):
    monkeypatch.setattr(L, "MAX_TABLE_BYTES", 100)
    folder = tmp_path / "model"
    rc.Recommender("dot", random_state=0, **FAST).fit(make_dataset(n_users=12, n_items=10, seed=1)).save(folder)
    lookup = L.SavedLookup.open(folder)
    assert lookup.similar(101) is None
    assert lookup.predict_details(np.array([1]), np.array([101])) is None
    rec = rc.Recommender.load(folder)
    assert_frames(lookup.recommend(1, k=3), rec.recommend(1, k=3))  # the lists are kept


def test_a_catalogue_too_large_to_rank_at_save_time_stores_no_lists(tmp_path, monkeypatch):
    monkeypatch.setattr(L, "MAX_LIST_PAIRS", 100)  # 12 users x 10 items is more
    folder = tmp_path / "model"
    rc.Recommender("dot", random_state=0, **FAST).fit(make_dataset(n_users=12, n_items=10, seed=1)).save(folder)
    lookup = L.SavedLookup.open(folder)
    assert lookup.recommend(1, k=3) is None  # left to the full model
    rec = rc.Recommender.load(folder)
    assert_frames(lookup.similar(101, k=3), rec.similar_items(101, k=3))  # vectors are still kept
    assert lookup.recommend("nobody", k=3) is not None  # the fallback needs no lists

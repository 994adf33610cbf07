"""Saved models and blends: they keep loading across versions and default changes, every field is saved from one
table, a crafted folder is refused before anything it declares is allocated, and blend files are checked like
recommender files."""

import dataclasses
import io
import json
import shutil
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import ratecast as rc
from ratecast import manifest, state
from ratecast.errors import IntegrityError, MissingFileError
from ratecast.integrity import check_fields
from ratecast.models import MODELS, split_params
from ratecast.state import FittedState, STORED, meta_schema, migrate
from synthetic import make_dataset

DATA = Path(__file__).parent / "data"
FORMATS = ["biased_dot_v2", "biased_dot_v3", "implicit_v3", "implicit_large_v3", "implicit_off_v3"]


def copy_of(name, tmp_path):
    return Path(shutil.copytree(DATA / name, tmp_path / name))


def expected(name):
    return json.loads((DATA / f"{name}.json").read_text())


def assert_predicts_as_saved(rec, name):
    """The predictions, and the top-5 lists where they were kept (every part of the model is read for them)."""
    exp = expected(name)
    users, items = zip(*exp["pairs"])
    np.testing.assert_allclose(rec.predict(list(users), list(items)), exp["predictions"], atol=1e-5, rtol=0)
    for user, top in exp.get("lists", {}).items():
        got = rec.recommend(int(user), k=5)
        assert list(got["item_id"]) == top["items"], user
        np.testing.assert_allclose(got["score"], top["scores"], atol=1e-5, rtol=0)


def edit(folder, change, name="recommender.json"):
    """Edit a JSON file of a saved folder and re-seal its manifest, as someone with write access could."""
    path = folder / name
    path.write_text(json.dumps(change(json.loads(path.read_text()))))
    manifest.write(folder)


# --- 1. saved models keep loading ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", FORMATS)
def test_saved_models_keep_loading(name):
    meta = json.loads((DATA / name / "recommender.json").read_text())
    assert meta["format_version"] == expected(name)["format_version"]
    rec = rc.Recommender.load(DATA / name)
    assert_predicts_as_saved(rec, name)
    assert rec.model_config_.embedding_dim == 2 and rec.training_config_.epochs == 2


def test_saved_models_keep_loading_when_an_option_is_renamed(tmp_path):
    folder = copy_of("biased_dot_v3", tmp_path)
    edit(folder, lambda meta: {**meta, "params": {**meta["params"], "an_option_of_an_older_version": 3}})
    rec = rc.Recommender.load(folder)
    assert_predicts_as_saved(rec, "biased_dot_v3")
    assert rec.params["an_option_of_an_older_version"] == 3  # kept as the record of what was given


@pytest.mark.parametrize("name", [f for f in FORMATS if f.startswith("biased_dot")])
def test_saved_models_keep_loading_when_a_default_changes(name, monkeypatch):
    cls = MODELS["biased_dot"].config_class
    saved = cls()

    @dataclasses.dataclass(frozen=True)
    class Changed(cls):  # a later version with other defaults
        training = {**cls.training, "learning_rate": 0.5}
        l2: float = saved.l2 * 3
        min_support: int = saved.min_support + 5

    monkeypatch.setattr(MODELS["biased_dot"], "config_class", Changed)
    rec = rc.Recommender.load(DATA / name)
    assert (rec.model_config_.l2, rec.model_config_.min_support) == (saved.l2, saved.min_support)
    assert_predicts_as_saved(rec, name)
    meta = json.loads((DATA / name / "recommender.json").read_text())
    if name.endswith("v3"):  # the resolved training config was saved
        assert rec.training_config_.learning_rate == meta["training_config"]["learning_rate"] != 0.5
    else:  # format 2 saved none: it is resolved from the saved params with this version's defaults
        assert rec.training_config_ == split_params("biased_dot", meta["params"])[1]


def test_migrate_brings_format_2_to_the_current_format():
    path = DATA / "biased_dot_v2" / "recommender.json"
    old = json.loads(path.read_text())
    new = migrate(old, path)
    check_fields(new, meta_schema(), path)
    assert new["format_version"] == state.FORMAT_VERSION
    assert new["model_config"] == old["keras_config"]["config"]
    assert new["training_config"] == split_params(old["model"], old["params"])[1].to_dict()
    assert set(new["keras_config"]) == {"global_mean", "item_feature_dim", "user_feature_dim", "seed", "name"}
    assert migrate(new, path) is new
    with pytest.raises(IntegrityError, match=r"recommender.json: format_version 1 is not supported \(expected 2, 3 "
                                             r"or 4\); retrain"):
        migrate({**old, "format_version": 1}, path)


@pytest.mark.parametrize("name", ["implicit_v3", "implicit_large_v3", "implicit_off_v3"])
def test_a_model_saved_before_its_parts_were_layers_loads_every_part_and_saves_in_todays_layout(name, tmp_path):
    rec = rc.Recommender.load(DATA / name)  # its heads' weights were kept in the model itself
    assert_predicts_as_saved(rec, name)
    rec.save(tmp_path / "again")
    assert json.loads((tmp_path / "again" / "recommender.json").read_text())["format_version"] == 4
    assert rec.model_.weights_saved_by(4) is None  # today's layout: Keras's own
    assert_predicts_as_saved(rc.Recommender.load(tmp_path / "again"), name)


@pytest.mark.parametrize("change, message", [
    (lambda f: f.pop("vars/3"), r"the saved model's layout has datasets \['vars/3'\] that the file does not hold"),
    (lambda f: f.create_dataset("vars/99", data=np.zeros(2, "float32")), r"the file holds \['vars/99'\]"),
    (lambda f: (f.pop("vars/2"), f.create_dataset("vars/2", data=np.zeros((25, 4), "float32"))),
     r"dataset 'vars/2' holds \(25, 4\) float32 where the saved sizes declare \(25, 3\) float32"),
])
def test_a_weights_file_of_an_older_layout_is_checked_before_it_is_read(change, message, tmp_path):
    import h5py

    folder = copy_of("implicit_large_v3", tmp_path)
    with h5py.File(folder / "model.weights.h5", "a") as f:
        change(f)
    manifest.write(folder)
    with pytest.raises(IntegrityError, match=r"model.weights.h5: " + message):
        rc.Recommender.load(folder)


@pytest.mark.parametrize("name", ["implicit_v3", "implicit_large_v3"])  # (biased_dot_v3 kept no lookup)
def test_the_lookup_of_a_folder_saved_in_format_3_answers_as_the_loaded_model(name):
    from ratecast.lookup import SavedLookup

    lookup, rec = SavedLookup.open(DATA / name), rc.Recommender.load(DATA / name)
    assert lookup is not None  # the ids and scale it reads are the same in formats 3 and 4
    for user in (1, 7, 30):
        got, want = lookup.recommend(user, k=5), rec.recommend(user, k=5)
        assert list(got["item_id"]) == list(want["item_id"]), user
        np.testing.assert_allclose(got["score"], want["score"], atol=1e-5)


@pytest.mark.parametrize("index", [-1, 25])
def test_a_weights_file_whose_item_sets_name_unknown_items_is_refused(index, tmp_path):
    import h5py

    folder = copy_of("implicit_v3", tmp_path)  # 24 items: indices 0 (none) to 24
    with h5py.File(folder / "model.weights.h5", "a") as f:
        sets = f["vars/0"][...]
        sets[3, 0] = index
        f["vars/0"][...] = sets
    manifest.write(folder)
    with pytest.raises(IntegrityError, match=r"model.weights.h5: weights user_sets/items hold item indices in "
                                             r"\[-?\d+, \d+\], outside \[0, 25\)"):
        rc.Recommender.load(folder)


# --- 2. one table says how each field is stored --------------------------------------------------------------------
def test_every_field_is_stored_from_one_table():
    fields_stored = [name for name, stored in STORED.items() if not isinstance(stored, state.DerivedFile)]
    assert fields_stored == [f.name for f in dataclasses.fields(FittedState)]
    assert [name for name in STORED if name not in fields_stored] == ["lookup"]  # files made from the whole state
    # what save writes is exactly the schema load checks
    meta = json.loads((DATA / "biased_dot_v3" / "recommender.json").read_text())
    assert set(meta) == set(meta_schema())


# --- 3. a crafted folder cannot make the loader allocate ------------------------------------------------------------
@pytest.fixture(scope="module")
def bayesian_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bayesian") / "model"
    rc.Recommender("bayesian", random_state=0, samples=4, burn_in=2, embedding_dim=4, chains=1, verbose=0).fit(
        make_dataset()).save(folder)
    return folder


def wide_features(folder):
    def change(meta):
        meta["keras_config"]["item_feature_dim"] = meta["keras_config"]["user_feature_dim"] = 100_000
        return meta
    edit(folder, change)
    return r"recommender.json: the saved sizes \(n_users=31, n_items=25, item_feature_dim=100000, " \
           r"user_feature_dim=100000.*\) declare weights .*\(25, 100000\) float32.* that model.weights.h5 does not hold"


def many_samples_and_ids(folder):
    def change(meta):
        meta["model_config"].update(samples=4096, chains=4)
        meta["user_ids"] = meta["user_ids"] + list(range(10_000, 20_000))
        return meta
    edit(folder, change)
    with np.load(folder / "arrays.npz") as npz:  # the arrays made to agree with the ids
        arrays = dict(npz)
    arrays["baseline_user"] = np.zeros(10_031, "float64")
    np.savez_compressed(folder / "arrays.npz", **arrays)
    (folder / "lookup.npz").unlink()  # as saved before lookup tables were kept (they would not match the ids)
    manifest.write(folder)
    return r"the saved sizes \(n_users=10031, n_items=25, .*embedding_dim=4, .*samples=4096, .*chains=4.*\) declare " \
           r"weights .*\(10031, 65536\) float32"


def unallocated_weights(folder):
    import h5py

    with h5py.File(folder / "model.weights.h5", "a") as f:  # a dataset declared, its storage never written
        name = next(n for n in ("item_embedding/vars/0", "layers/item_embedding/vars/0") if n in f)
        del f[name]
        f.create_dataset(name, shape=(25, 100_000), dtype="float32")
    manifest.write(folder)
    return r"model.weights.h5: dataset '.*item_embedding/vars/0' declares shape \(25, 100000\) \(10000000 bytes\) " \
           r"but holds 0 bytes"


def seen_pairs_bomb(folder):
    with np.load(folder / "arrays.npz") as npz:
        arrays = dict(npz)
    arrays["seen_users"] = arrays["seen_items"] = np.ones(10_000_000, "int32")  # 40 MB each, ~40 kB compressed
    np.savez_compressed(folder / "arrays.npz", **arrays)
    manifest.write(folder)
    return r"arrays.npz: array 'seen_users' has shape \(10000000,\), expected a vector of at most 720 values"


def items_table_bomb(folder):
    pq.write_table(pa.table({"genre": pa.array(np.zeros(20_000_000, "int8"))}), folder / "items.parquet")
    manifest.write(folder)
    return r"items.parquet: declares 20000000 rows of 1 columns, more than a file of \d+ bytes can hold"


@pytest.mark.parametrize("craft", [wide_features, many_samples_and_ids, unallocated_weights, seen_pairs_bomb,
                                   items_table_bomb])
def test_a_crafted_folder_is_refused_before_anything_is_allocated(craft, bayesian_folder, tmp_path, monkeypatch):
    folder = Path(shutil.copytree(bayesian_folder, tmp_path / "crafted")) if craft is many_samples_and_ids \
        else copy_of("biased_dot_v3", tmp_path)
    match = craft(folder)

    def built(*args, **kwargs):
        raise AssertionError("the model was built from a crafted folder")

    monkeypatch.setattr(state, "build_model", built)
    # the refusal names what the files declare, whatever this machine has free (4 GB here)
    monkeypatch.setattr("ratecast.memory.available_memory", lambda: 4 << 30)
    tracemalloc.start()
    try:
        with pytest.raises(IntegrityError, match=match):
            rc.Recommender.load(folder)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20e6, f"{peak / 1e6:.0f} MB allocated before the refusal"


def test_a_crafted_npz_header_is_refused(tmp_path):
    folder = copy_of("biased_dot_v3", tmp_path)
    with zipfile.ZipFile(DATA / "biased_dot_v3" / "arrays.npz") as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    lying = io.BytesIO()  # a header declaring 9999 values before the 31 the member holds
    np.lib.format.write_array_header_1_0(lying, {"descr": "<f8", "fortran_order": False, "shape": (9999,)})
    lying.write(np.zeros(31).tobytes())
    members["baseline_user.npy"] = lying.getvalue()
    with zipfile.ZipFile(folder / "arrays.npz", "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    manifest.write(folder)
    with pytest.raises(IntegrityError, match=r"arrays.npz: array 'baseline_user' declares shape \(9999,\) "
                                             r"\(79992 bytes\) but holds 248 bytes"):
        rc.Recommender.load(folder)


# --- 4. blend files are checked ------------------------------------------------------------------------------------
@pytest.fixture()
def blend_folder(tmp_path):
    members = [rc.Recommender.load(DATA / "biased_dot_v3"), rc.Recommender.load(DATA / "biased_dot_v3")]
    blend = rc.Blend(members, random_state=0)
    blend.weights_, blend.intercept_ = np.array([0.6, 0.3]), 0.2  # as fit sets them
    return blend.save(tmp_path / "blend")


@pytest.mark.parametrize("change,match", [
    (lambda m: {**m, "weights": [float("nan"), 0.3]}, r"field 'weights' must hold finite numbers >= 0, got \[nan, "),
    (lambda m: {**m, "weights": [-1.0, 0.3]}, r"field 'weights' must hold finite numbers >= 0, got \[-1.0, 0.3\]"),
    (lambda m: {**m, "weights": [0.5]}, r"field 'weights' must hold one weight per member \(2\), got 1"),
    (lambda m: {**m, "weights": "0.5,0.5"}, r"field 'weights' must be a list, got str"),
    (lambda m: {**m, "intercept": float("inf")}, r"field 'intercept' must be a finite number, got inf"),
    (lambda m: {k: v for k, v in m.items() if k != "intercept"}, r"field 'intercept' is missing"),
    (lambda m: {**m, "refit": "yes"}, r"field 'refit' must be true or false, got str"),
    (lambda m: {**m, "kind": "recommender"}, r"field 'kind' must be 'blend', got 'recommender'"),
    (lambda m: {**m, "format_version": 9}, r"format_version 9 is not supported"),
    (lambda m: [m], r"expected a JSON object, got a JSON array"),
])
def test_blend_files_are_checked(blend_folder, change, match):
    edit(blend_folder, change, "blend.json")
    with pytest.raises(IntegrityError, match=r"blend/blend.json: " + match):
        rc.Blend.load(blend_folder)


def test_blend_files_are_checked_against_the_manifest(blend_folder):
    path = blend_folder / "blend.json"
    loaded = rc.Blend.load(blend_folder)
    np.testing.assert_allclose(loaded.predict([1], [101]), 0.2 + 0.9 * loaded.members[0].predict([1], [101]))
    path.write_text(path.read_text().replace("0.6", "6.0"))  # edited without re-sealing: every rating 5
    with pytest.raises(IntegrityError, match=r"blend.json: sha256 does not match MANIFEST.json"):
        rc.Blend.load(blend_folder)
    (blend_folder / "MANIFEST.json").unlink()
    with pytest.raises(MissingFileError, match=r"no MANIFEST.json"):
        rc.Blend.load(blend_folder)


def test_a_blend_saved_before_blends_were_checksummed_still_loads(blend_folder):
    meta = json.loads((blend_folder / "blend.json").read_text())
    del meta["format_version"]
    (blend_folder / "blend.json").write_text(json.dumps(meta))
    (blend_folder / "MANIFEST.json").unlink()
    assert rc.Blend.load(blend_folder).weights_.tolist() == [0.6, 0.3]
    meta["weights"] = [float("nan"), 0.3]  # with the same checks of every key
    (blend_folder / "blend.json").write_text(json.dumps(meta))
    with pytest.raises(IntegrityError, match=r"field 'weights' must hold finite numbers >= 0"):
        rc.Blend.load(blend_folder)

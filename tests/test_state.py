"""Saving and loading a fitted recommender: nothing lost, nothing corrupted loads, nothing trusted from disk."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import ratecast as rc
from ratecast.datasets.dataset import IdIndex
from ratecast.errors import IntegrityError, LockedError, MissingFileError, OutputExistsError
from ratecast.features import FeatureEncoder
from ratecast.io import lock_output
from ratecast.models import RatingModel
from ratecast.state import STORED, Baseline, FittedState, Unsaved
from synthetic import make_dataset


@pytest.fixture(scope="module")
def fitted():
    return rc.Recommender("hybrid", random_state=0, embedding_dim=4, epochs=1, batch_size=32, verbose=0).fit(
        make_dataset())


@pytest.fixture()
def saved(fitted, tmp_path):
    return fitted.save(tmp_path / "model")


def assert_same(name, a, b):
    """Field ``name`` of two states holds the same value."""
    if isinstance(a, RatingModel):
        settings = ({k: v for k, v in m.get_config().items() if k != "random_init"} for m in (a, b))
        assert next(settings) == next(settings), name  # random_init: how the saved weights were first initialised
        assert len(a.weights) == len(b.weights), name
        for wa, wb in zip(a.weights, b.weights):
            np.testing.assert_array_equal(np.asarray(wa), np.asarray(wb), err_msg=f"{name}: {wa.path}")
    elif isinstance(a, Baseline):
        assert a.mean == b.mean, name
        np.testing.assert_array_equal(a.user_bias, b.user_bias)
        np.testing.assert_array_equal(a.item_bias, b.item_bias)
    elif isinstance(a, IdIndex):
        assert a.to_list() == b.to_list() and a.ids.dtype == b.ids.dtype, name
    elif isinstance(a, sp.spmatrix):
        assert a.shape == b.shape and (a != b).nnz == 0, name
    elif isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b, obj=name)
    elif isinstance(a, FeatureEncoder):
        assert a.to_dict() == b.to_dict(), name
    else:
        assert type(a) is type(b) and a == b, name


def test_save_load_round_trip_of_every_field(fitted, saved):
    loaded = rc.Recommender.load(saved)
    a, b = fitted.state_, loaded.state_
    for f in dataclasses.fields(FittedState):
        if isinstance(STORED[f.name], Unsaved):  # not saved: folded into the saved fields first
            assert getattr(b, f.name) is None, f.name
            continue
        assert getattr(a, f.name) is not None, f"the fixture should exercise {f.name}"
        assert_same(f.name, getattr(a, f.name), getattr(b, f.name))
    np.testing.assert_array_equal(fitted.recommend(1, k=5)["item_id"], loaded.recommend(1, k=5)["item_id"])


def test_save_refuses_a_folder_it_did_not_write(fitted, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "ratings.csv").write_text("precious")
    with pytest.raises(OutputExistsError, match="not empty and was not written by ratecast"):
        fitted.save(folder)
    assert (folder / "ratings.csv").read_text() == "precious" and len(list(folder.iterdir())) == 1


def test_save_replaces_a_saved_model_only_with_overwrite(fitted, saved, tmp_path):
    with pytest.raises(OutputExistsError, match="already holds a ratecast output; pass overwrite=True to replace"):
        fitted.save(saved)
    fitted.save(saved, overwrite=True)
    assert rc.Recommender.load(saved).predict([1], [101]) == pytest.approx(fitted.predict([1], [101]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temp or lock files left


def test_overwrite_never_deletes_files_ratecast_did_not_write(fitted, saved):
    (saved / "my_notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match=r"path '.*model': also holds files ratecast did not write "
                                                 r"\(my_notes.txt\)"):
        fitted.save(saved, overwrite=True)
    assert (saved / "my_notes.txt").read_text() == "mine"
    rc.Recommender.load(saved)  # the saved model is intact too


def test_unwritable_location_is_named(fitted, tmp_path):
    from ratecast.errors import NotWritableError

    with pytest.raises(NotWritableError, match=r"cannot (create its parent folder|write in)"):
        fitted.save("/proc/ratecast-model")


def test_second_writer_fails_early(fitted, tmp_path):
    with lock_output(tmp_path / "busy"):
        with pytest.raises(LockedError, match="another process is writing it"):
            fitted.save(tmp_path / "busy")
    assert not (tmp_path / "busy").exists()


def _flip_byte(path, offset=-100):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("name", ["model.weights.h5", "arrays.npz", "recommender.json", "items.parquet"])
def test_corrupted_artefacts_are_refused(saved, name):
    _flip_byte(saved / name, -20 if name == "recommender.json" else -100)
    with pytest.raises(IntegrityError, match=rf"{name}: sha256 does not match"):
        rc.Recommender.load(saved)


@pytest.mark.parametrize("name", ["model.weights.h5", "arrays.npz"])
def test_truncated_artefacts_are_refused(saved, name):
    path = saved / name
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(IntegrityError, match=rf"{name}: size 200 bytes, expected \d+ \(truncated"):
        rc.Recommender.load(saved)


def _edit_meta(folder, change):
    """Edit recommender.json and re-seal the manifest, as someone with write access could."""
    from ratecast import manifest

    path = folder / "recommender.json"
    meta = json.loads(path.read_text())
    meta = change(meta)
    path.write_text(json.dumps(meta))
    manifest.write(folder)


def test_sizes_come_from_the_saved_ids_and_arrays(saved):
    def more_users(meta):
        meta["user_ids"] = meta["user_ids"] + [f"extra{k}" for k in range(1000)]
        return meta

    _edit_meta(saved, more_users)
    with pytest.raises(IntegrityError, match=r"arrays.npz: array 'baseline_user' has shape \(31,\), expected "
                                             r"\(1031,\)"):
        rc.Recommender.load(saved)


def test_embedding_size_beyond_the_weights_file_is_refused(saved):
    def wide(meta):
        meta["model_config"]["embedding_dim"] = 4096
        return meta

    _edit_meta(saved, wide)
    with pytest.raises(IntegrityError, match=r"recommender.json: the saved sizes \(n_users=31, n_items=25, .*"
                                             r"embedding_dim=4096.*\) declare weights .*\(25, 4096\) float32.* that "
                                             r"model.weights.h5 does not hold"):
        rc.Recommender.load(saved)


def test_a_model_saved_before_an_option_existed_names_the_option(saved):
    def older(meta):
        meta["model_config"].pop("l2")  # as a version without that option wrote it
        return meta

    _edit_meta(saved, older)
    with pytest.raises(IntegrityError, match=r"recommender.json: model_config lacks the option\(s\) \['l2'\]: the "
                                             r"model was saved by a ratecast version without them; retrain"):
        rc.Recommender.load(saved)


@pytest.mark.parametrize("change,match", [
    (lambda m: [m], r"expected a JSON object, got a JSON array"),
    (lambda m: {**m, "user_ids": "1,2,3"}, r"field 'user_ids' must be a list, got str"),
    (lambda m: {**m, "history": None}, r"field 'history' must be an object, got NoneType"),
    (lambda m: {k: v for k, v in m.items() if k != "item_ids"}, r"field 'item_ids' is missing"),
    (lambda m: {**m, "format_version": 99}, r"format_version 99 is not supported"),
    (lambda m: {**m, "model": "svd"}, r"unknown model 'svd'"),
    (lambda m: {**m, "notes": "mine"}, r"unknown field\(s\) \['notes'\]"),
    (lambda m: {**m, "training_config": {**m["training_config"], "epochs": 0}}, r"invalid training_config "
                                                                                  r"\(epochs must be a positive"),
    (lambda m: {**m, "user_ids": [1, 1] + m["user_ids"][2:]}, r"user_ids holds duplicate ids"),
])
def test_metadata_of_the_wrong_shape_is_refused(saved, change, match):
    _edit_meta(saved, change)
    with pytest.raises(IntegrityError, match=match):
        rc.Recommender.load(saved)


def test_missing_folder_or_files(saved, tmp_path):
    with pytest.raises(MissingFileError, match="no such folder"):
        rc.Recommender.load(tmp_path / "nowhere")
    with pytest.raises(MissingFileError, match="not a saved ratecast model"):
        rc.Recommender.load(tmp_path)
    (saved / "arrays.npz").unlink()
    with pytest.raises(MissingFileError, match="listed in MANIFEST.json but missing"):
        rc.Recommender.load(saved)
    (saved / "MANIFEST.json").unlink()
    with pytest.raises(MissingFileError, match="no MANIFEST.json"):
        rc.Recommender.load(saved)

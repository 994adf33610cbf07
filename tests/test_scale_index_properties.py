"""Property-based tests of RatingScale (classes, membership, inference) and IdIndex (raw id <-> index)."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ratecast.datasets import IdIndex, RatingScale

SETTINGS = settings(max_examples=80, deadline=None)


@st.composite
def scales(draw, steps=(0.1, 0.25, 0.5, 1.0, 2.0)):
    step = draw(st.sampled_from(steps))
    minimum = draw(st.integers(-10, 10)) * draw(st.sampled_from([step, 1.0]))
    n = draw(st.integers(2, 21))
    return RatingScale(minimum, minimum + (n - 1) * step, step)


@SETTINGS
@given(scale=scales())
def test_classes_round_trip(scale):
    values, k = scale.values, np.arange(scale.n_classes)
    assert scale.to_class(values).tolist() == k.tolist()
    assert np.allclose(scale.from_class(k), values)
    assert scale.to_class(scale.from_class(k)).tolist() == k.tolist()
    assert scale.to_class([scale.minimum - 10 * scale.step, scale.maximum + 10 * scale.step]).tolist() == [0, k[-1]]


@SETTINGS
@given(scale=scales())
def test_on_scale(scale):
    values = scale.values
    assert scale.on_scale(values).all()
    assert not scale.on_scale(values[:-1] + scale.step / 2).any()
    assert not scale.on_scale([scale.minimum - scale.step, scale.maximum + scale.step, np.nan, np.inf]).any()
    assert np.array_equal(scale.clip(values), values)


@SETTINGS
@given(scale=scales(steps=(0.5, 1.0)), data=st.data())
def test_infer_recovers_integer_and_half_star_scales(scale, data):
    n = scale.n_classes
    k = data.draw(st.integers(0, n - 2), label="adjacent")
    picks = data.draw(st.lists(st.integers(0, n - 1), max_size=30), label="picks")
    observed = scale.values[[0, n - 1, k, k + 1] + picks]
    inferred = RatingScale.infer(np.random.default_rng(0).permutation(observed))
    assert inferred == scale
    sparse = scale.values[[0, n - 1] + picks]
    guess = RatingScale.infer(sparse)
    assert guess.on_scale(sparse).all() and guess.minimum == scale.minimum and guess.maximum == scale.maximum


IDS = {
    "int": st.integers(-(2**62), 2**62),
    "str": st.text(max_size=8) | st.sampled_from(["\x00", "a\x00", "", " ", "5", "nan", "None"]),
    "mixed": st.integers(-1000, 1000) | st.text(max_size=4),
}


@SETTINGS
@given(kind=st.sampled_from(sorted(IDS)), data=st.data())
def test_id_index_round_trip(kind, data):
    ids = data.draw(st.lists(IDS[kind], max_size=30, unique_by=lambda v: (type(v), v)), label="ids")
    repeats = data.draw(st.lists(st.sampled_from(ids), max_size=10), label="repeats") if ids else []
    idx = IdIndex(ids + repeats)
    positions = np.arange(1, len(ids) + 1)
    assert len(idx) == len(ids) and idx.size == len(ids) + 1
    assert idx.to_list() == ids
    assert idx.index(ids).tolist() == positions.tolist()
    assert idx.raw(positions).tolist() == ids
    assert all(v in idx for v in ids)


@SETTINGS
@given(kind=st.sampled_from(sorted(IDS)), data=st.data())
def test_unknown_ids_map_to_zero(kind, data):
    ids = data.draw(st.lists(IDS[kind], max_size=20, unique_by=lambda v: (type(v), v)), label="ids")
    known = {(type(v), v) for v in ids}
    others = data.draw(st.lists(IDS["mixed"] | IDS["int"], max_size=10), label="others")
    unknown = [v for v in others if (type(v), v) not in known]
    unknown += [str(v) for v in ids if isinstance(v, int) and (str, str(v)) not in known]
    unknown += [int(v) for v in ids if isinstance(v, str) and v.isdecimal() and v.isascii() and (int, int(v)) not in known]
    idx = IdIndex(ids)
    assert idx.index(unknown).tolist() == [IdIndex.UNKNOWN] * len(unknown)
    assert not any(v in idx for v in unknown)

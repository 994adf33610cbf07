"""Property-based tests of the ratings reader: well-formed files round-trip, malformed ones give one DataError."""

import re
import string
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ratecast.datasets import load_ratings
from ratecast.errors import DataError

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LABEL = st.text(alphabet=string.ascii_letters + string.digits + "_-", max_size=6)
SCALES = {"stars": (1.0, 5.0, 1.0), "half": (0.5, 5.0, 0.5), "ten": (1.0, 10.0, 1.0)}


@st.composite
def rating_tables(draw, min_rows=1, int_ids=None):
    """A well-formed ratings table: rows of (user, item, rating[, timestamp]) plus how to write it."""
    n = draw(st.integers(min_rows, 12))
    ints = {c: draw(st.booleans()) if int_ids is None else int_ids for c in ("user", "item")}
    user = st.integers(0, 10**6) if ints["user"] else LABEL.map(lambda s: "u" + s)
    item = st.integers(-1000, 10**6) if ints["item"] else LABEL.map(lambda s: "m" + s)
    pairs = draw(st.lists(st.tuples(user, item), min_size=n, max_size=n, unique=True))
    lo, hi, step = SCALES[draw(st.sampled_from(sorted(SCALES)))]
    values = lo + step * np.arange(round((hi - lo) / step) + 1)
    ratings = draw(st.lists(st.sampled_from(values.tolist()), min_size=n, max_size=n))
    stamps = draw(st.none() | st.lists(st.integers(0, 2**31), min_size=n, max_size=n))
    sep = draw(st.sampled_from([",", "\t", ";"]))
    return {"pairs": pairs, "ratings": ratings, "timestamps": stamps, "sep": sep, "scale": (lo, hi, step)}


def render(table, rows=None, *, trailing="\n") -> str:
    sep, stamps = table["sep"], table["timestamps"]
    header = ["user_id", "item_id", "rating"] + (["ts"] if stamps else [])
    if rows is None:
        rows = [
            [str(u), str(i), f"{r:g}"] + ([str(stamps[k])] if stamps else [])
            for k, ((u, i), r) in enumerate(zip(table["pairs"], table["ratings"]))
        ]
    return "\n".join(sep.join(row) for row in [header] + rows) + trailing


def load(text: str, table, **kwargs):
    suffix = ".tsv" if table["sep"] == "\t" else ".csv"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"ratings{suffix}"
        path.write_text(text, encoding="utf-8")
        ts = {"timestamp_col": "ts"} if table["timestamps"] else {}
        return load_ratings(path, **ts, **kwargs)


@SETTINGS
@given(table=rating_tables(), trailing=st.sampled_from(["", "\n", "\n\n\n"]))
def test_well_formed_files_round_trip(table, trailing):
    ds = load(render(table, trailing=trailing), table)
    r = ds.ratings
    assert r["user_id"].tolist() == [u for u, _ in table["pairs"]]
    assert r["item_id"].tolist() == [i for _, i in table["pairs"]]
    assert r["rating"].tolist() == table["ratings"]
    if table["timestamps"]:
        assert r["timestamp"].tolist() == table["timestamps"]
    else:
        assert r["timestamp"].isna().all()
    assert ds.rating_scale.on_scale(r["rating"].to_numpy()).all()
    assert ds.rating_scale.minimum == min(table["ratings"]) and ds.rating_scale.maximum >= max(table["ratings"])


CORRUPTIONS = [
    "rating_text", "rating_off_scale", "rating_empty", "extra_field", "short_row", "blank_line", "float_id",
    "text_id", "duplicate", "bad_timestamp",
]  # fmt: skip


@SETTINGS
@given(table=rating_tables(min_rows=3, int_ids=True), data=st.data())
def test_malformed_rows_give_one_data_error_naming_the_line(table, data):
    kind = data.draw(st.sampled_from(CORRUPTIONS), label="kind")
    if kind == "bad_timestamp":
        assume(table["timestamps"])
    rows = [line.split(table["sep"]) for line in render(table).splitlines()[1:]]
    k = data.draw(st.integers(1 if kind in ("blank_line", "duplicate") else 0, len(rows) - 1), label="row")
    line, kwargs = k + 2, {}
    if kind == "rating_text":
        rows[k][2] = data.draw(st.text(alphabet=string.ascii_letters, min_size=1, max_size=8), label="token")
    elif kind == "rating_off_scale":
        rows[k][2] = data.draw(st.sampled_from(["0", "11", "2.25", "-1", "1e9"]), label="token")
        kwargs["rating_scale"] = table["scale"]
    elif kind == "rating_empty":
        rows[k][2] = ""
    elif kind == "extra_field":
        rows[k].append("9")
    elif kind == "short_row":
        rows[k] = rows[k][:-1]
    elif kind == "blank_line":
        rows.insert(k, [""])
    elif kind == "float_id":
        rows[k][0] = data.draw(st.sampled_from(["1.5", "-0.25", "inf", "1e400"]), label="token")
    elif kind == "text_id":
        rows[k][1] = data.draw(st.sampled_from(["True", "x9", "N/A?", "one"]), label="token")
    elif kind == "duplicate":
        j = data.draw(st.integers(0, k - 1), label="original")
        rows[k][:2] = rows[j][:2]
        line = j + 2
    elif kind == "bad_timestamp":
        rows[k][3] = data.draw(st.text(alphabet=string.ascii_letters, min_size=1, max_size=8), label="token")
    text = "\n".join(table["sep"].join(r) for r in [render(table).splitlines()[0].split(table["sep"])] + rows)
    with pytest.raises(DataError) as err:
        load(text + "\n", table, **kwargs)
    message = str(err.value)
    assert "\n" not in message
    assert re.search(rf"ratings\.(csv|tsv), line {line}: ", message), message


CSV_ALPHABET = st.sampled_from(list("0123456789,.;\t\n\r :-+\"'|eEx") + ["True", "nan", "inf", "NA", "::", "\x00", "é"])


@SETTINGS
@given(
    header=st.sampled_from(["", "user_id,item_id,rating\n", "user_id\titem_id\trating\n"]),
    body=st.lists(CSV_ALPHABET, max_size=60).map("".join) | st.text(max_size=60),
    encoding=st.sampled_from(["utf-8", "latin-1", "utf-16", "ascii", "cp1252"]),
    suffix=st.sampled_from([".csv", ".tsv", ".dat", ".parquet"]),
)
def test_arbitrary_content_gives_a_dataset_or_a_data_error(header, body, encoding, suffix):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"ratings{suffix}"
        path.write_bytes((header + body).encode("utf-8"))
        try:
            ds = load_ratings(path, encoding=encoding)
        except DataError as exc:
            assert "\n" not in str(exc) and str(path) in str(exc)
        else:
            assert len(ds.ratings) > 0 and np.isfinite(ds.ratings["rating"].to_numpy()).all()
            assert not ds.ratings[["user_id", "item_id", "rating"]].isna().any().any()

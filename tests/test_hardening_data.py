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

import os
from pathlib import Path

import pytest

os.environ.setdefault("KERAS_BACKEND", "jax")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("RATECAST_DATA", REPO.parent / "shared" / "data")).resolve()


# fixtures that train on real ML-100k: tests using them are slow (``-m "not slow"`` trains on synthetic data only)
TRAINS_ON_REAL_DATA = {"run_dir", "lab_split"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if TRAINS_ON_REAL_DATA & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
    if not (SHARED_DATA / "ml-100k" / "u.data").exists():
        skip = pytest.mark.skip(reason=f"no ML-100k copy under {SHARED_DATA}")
        for item in items:
            if "ml100k" in getattr(item, "fixturenames", ()):
                item.add_marker(skip)


@pytest.fixture(scope="session")
def data_home() -> Path:
    return SHARED_DATA


@pytest.fixture(scope="session")
def ml100k(data_home):
    import ratecast as rc

    return rc.datasets.load_movielens("ml-100k", data_home=data_home, download=False)


@pytest.fixture(scope="session")
def lab_split(ml100k):
    import ratecast as rc

    return rc.split.holdout(ml100k, test_size=0.2, random_state=0)

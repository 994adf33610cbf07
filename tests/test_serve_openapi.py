"""The API's public contract stays put: every path, method, summary, description, parameter and response code of the
OpenAPI document matches the recorded snapshot (tests/data/openapi_operations.json).

After an intended change of the API, record the snapshot again with
``python tests/test_serve_openapi.py RUN_DIR`` (any trained run folder) and review the diff.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

SNAPSHOT = Path(__file__).parent / "data" / "openapi_operations.json"


def operations(document: dict) -> dict:
    """Path -> method -> what a client relies on: summary, description, tags, operation id, parameters (name,
    place, required) and response codes."""
    out = {}
    for path, methods in document["paths"].items():
        for method, op in methods.items():
            out.setdefault(path, {})[method] = {
                "summary": op.get("summary"), "description": op.get("description"), "tags": op.get("tags"),
                "operationId": op.get("operationId"),
                "parameters": [[p["name"], p["in"], p.get("required", False)] for p in op.get("parameters", [])],
                "requestBody": "requestBody" in op,
                "responses": sorted(op.get("responses", {})),
            }
    return out


def tiny_run(folder: Path) -> Path:
    """A dot model trained for one epoch on a few synthetic ratings."""
    from ratecast.runs import RunSpec, train_run

    rng = np.random.default_rng(0)
    rows = [(u, i, float(rng.integers(1, 6))) for u in range(1, 21) for i in range(101, 116) if rng.random() < 0.5]
    data = folder / "ratings.csv"
    pd.DataFrame(rows, columns=["user_id", "item_id", "rating"]).to_csv(data, index=False)
    train_run(RunSpec(data=str(data), model="dot", params={"epochs": 1, "embedding_dim": 2, "batch_size": 32}),
              folder / "run", progress=False)
    return folder / "run"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return tiny_run(tmp_path_factory.mktemp("openapi"))


def test_openapi_paths_methods_and_responses_are_unchanged(run):
    from ratecast.serve import create_app

    recorded = json.loads(SNAPSHOT.read_text())
    assert operations(create_app(run).openapi()) == recorded


if __name__ == "__main__":  # record the snapshot from the app built by the code on PYTHONPATH
    from ratecast.serve import create_app

    SNAPSHOT.write_text(json.dumps(operations(create_app(sys.argv[1]).openapi()), indent=1, sort_keys=True) + "\n")

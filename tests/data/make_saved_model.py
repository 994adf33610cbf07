"""Write a small saved model and the predictions it must give, for tests/test_hardening_state.py.

    PYTHONPATH=src KERAS_BACKEND=jax python tests/data/make_saved_model.py tests/data/biased_dot_v3 [MODEL]

writes the folder ``tests/data/biased_dot_v3`` (a ``biased_dot`` recommender of embedding size 2 fitted on the
synthetic data of ``tests/synthetic.py``, never MovieLens) and ``tests/data/biased_dot_v3.json`` beside it (the
predictions for a few pairs, an unknown user among them). It uses the public API only, so running it with the
source of an older ratecast on ``PYTHONPATH`` writes that version's format: ``biased_dot_v2`` was written so from
the source of the last commit that saved format 2 (``git archive 3f21a71 src``), and ``implicit_v3`` (MODEL
``implicit``) from the source of 89046b6, the last commit before the implicit model's large-catalogue options.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for synthetic.py

import ratecast as rc  # noqa: E402
from synthetic import make_dataset  # noqa: E402

PAIRS = [(1, 101), (2, 105), (7, 112), (30, 124), (9999, 101)]  # the last user is unknown: the baseline answers


def main(out: Path, model: str = "biased_dot") -> None:
    rec = rc.Recommender(model, random_state=0, embedding_dim=2, epochs=2, batch_size=64, verbose=0)
    rec.fit(make_dataset())
    rec.save(out, overwrite=True)
    users, items = zip(*PAIRS)
    meta = json.loads((out / "recommender.json").read_text())
    expected = {"format_version": meta["format_version"], "pairs": [list(p) for p in PAIRS],
                "predictions": [float(p) for p in rec.predict(list(users), list(items))]}
    out.with_suffix(".json").write_text(json.dumps(expected, indent=1) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), *sys.argv[2:3])

"""Write a small saved model and what it must give, for tests/test_hardening_state.py.

    PYTHONPATH=src KERAS_BACKEND=jax python tests/data/make_saved_model.py tests/data/biased_dot_v3 [MODEL [OPTIONS]]
    PYTHONPATH=src KERAS_BACKEND=jax python tests/data/make_saved_model.py --expect tests/data/implicit_v3

The first form writes the folder ``tests/data/biased_dot_v3`` (a ``biased_dot`` recommender of embedding size 2
fitted on the synthetic data of ``tests/synthetic.py``, never MovieLens; ``OPTIONS``: more of the model's options as
a JSON object) and ``tests/data/biased_dot_v3.json`` beside it: the predictions for a few pairs (an unknown user
among them) and the top-5 lists of a few users. The second form rewrites that file from a folder saved before.

It uses the public API only, so running it with the source of an older ratecast on ``PYTHONPATH`` writes that
version's format:

* ``biased_dot_v2`` was written so from the source of the last commit that saved format 2 (``git archive 3f21a71
  src``);
* ``implicit_v3`` (MODEL ``implicit``) from the source of 89046b6, the last commit before the implicit model's
  large-catalogue options (its lists were added by ``--expect`` with the source of 18d0cb7);
* ``implicit_large_v3`` (MODEL ``implicit``, OPTIONS ``{"softmax_max_items": 10, "item_item_max_items": 10,
  "set_model_max_items": 10, "item_item_rank": 3, "set_model_sampled_hidden": 4, "sampled_negatives": 8,
  "set_model_hidden": 8}``: every head on its large-catalogue variant) from the source of 18d0cb7, the last commit
  whose implicit model kept its heads' weights in the model itself, as was ``implicit_off_v3`` (OPTIONS
  ``{"item_item_weight": 0.0, "set_model_weight": 0.0}``: those two heads off, kept as placeholders then).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for synthetic.py

import ratecast as rc  # noqa: E402
from synthetic import make_dataset  # noqa: E402

PAIRS = [(1, 101), (2, 105), (7, 112), (30, 124), (9999, 101)]  # the last user is unknown: the baseline answers
LIST_USERS = [1, 7, 30]


def write_expected(rec: rc.Recommender, out: Path) -> None:
    """``out``.json: the format ``out`` was saved in, and what ``rec`` (loaded from or saved to ``out``) gives."""
    users, items = zip(*PAIRS)
    meta = json.loads((out / "recommender.json").read_text())
    lists = {}
    for user in LIST_USERS:
        frame = rec.recommend(user, k=5)
        lists[str(user)] = {"items": [int(i) for i in frame["item_id"]], "scores": [float(s) for s in frame["score"]]}
    expected = {"format_version": meta["format_version"], "pairs": [list(p) for p in PAIRS],
                "predictions": [float(p) for p in rec.predict(list(users), list(items))], "lists": lists}
    out.with_suffix(".json").write_text(json.dumps(expected, indent=1) + "\n")


def main(out: Path, model: str = "biased_dot", options: str = "{}") -> None:
    rec = rc.Recommender(model, random_state=0, embedding_dim=2, epochs=2, batch_size=64, verbose=0,
                         **json.loads(options))
    rec.fit(make_dataset())
    rec.save(out, overwrite=True)
    write_expected(rec, out)


if __name__ == "__main__":
    if sys.argv[1] == "--expect":
        write_expected(rc.Recommender.load(Path(sys.argv[2])), Path(sys.argv[2]))
    else:
        main(Path(sys.argv[1]), *sys.argv[2:4])

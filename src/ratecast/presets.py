"""Named configurations: a model and its options, for ``Recommender.from_preset`` and ``ratecast train --preset``.

* ``lab``: the lab's exact training (Keras ``fit``, Adam, learning rate 0.001, batch 64, 10 epochs) for any model.
* ``fast``: the project's recommended rating model at its validated defaults (biased matrix factorisation,
  compiled engine).
* ``topn``: the project's recommended model for recommendation lists (``implicit``: an implicit-feedback user
  representation with a whole-catalogue interaction head beside the rating head, an item-item head and a user-level
  set head, Mult-DAE), at defaults chosen on a validation
  split of the lab training set (``benchmarks/topn.py --tune implicit``).
* ``accurate``: the project's recommended model for rating prediction (``bayesian``: a Bayesian factorisation
  machine with implicit sets on both sides, fitted by Gibbs sampling), at defaults chosen on a validation split of
  the lab training set (``benchmarks/accuracy.py --validate``).
"""

from __future__ import annotations

from typing import Any

from .models import MODELS

LAB_TRAINING = {"engine": "keras", "optimizer": "adam", "learning_rate": 1e-3, "batch_size": 64, "epochs": 10,
                "lr_schedule": "constant"}
DEFAULT_MODEL = {"lab": "deep", "fast": "biased_dot", "topn": "implicit", "accurate": "bayesian"}
#: the preset of a run that names no model or preset (``ratecast train``): the recommended rating model
RECOMMENDED = "accurate"


def names() -> list[str]:
    return sorted(DEFAULT_MODEL)


def resolve(name: str, model: str | None = None) -> tuple[str, dict[str, Any]]:
    """(model, options) of preset ``name``; ``model`` picks the model where the preset allows a choice."""
    if name not in DEFAULT_MODEL:
        raise ValueError(f"preset must be one of {names()}, got {name!r}")
    if model is not None and model not in MODELS:
        raise ValueError(f"model must be one of {sorted(MODELS)}, got {model!r}")
    if name == "lab":
        model = model or DEFAULT_MODEL[name]
        return model, {**LAB_TRAINING, "min_support": 0, **MODELS[model].config_class.lab}  # lists as the lab made them
    if model is not None and model != DEFAULT_MODEL[name]:
        raise ValueError(f"preset {name!r} is for model {DEFAULT_MODEL[name]!r}, got model={model!r}")
    return DEFAULT_MODEL[name], {}

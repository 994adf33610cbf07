"""Layering: the training engines use the models, never the other way round, and both engines run the one epoch
loop."""

import ast
import dataclasses
from pathlib import Path

import pytest

import ratecast

SRC = Path(ratecast.__file__).parent


def imported_modules(path: Path, package: str) -> set[str]:
    """Every module a file imports, at any depth of the file (lazy imports in functions included), resolved to
    absolute ``ratecast....`` names."""
    tree = ast.parse(path.read_text())
    parts = package.split(".")
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = parts[:len(parts) - node.level + 1] if node.level else []
            name = ".".join(base + ([node.module] if node.module else []))
            out.add(name)
            out.update(f"{name}.{alias.name}" for alias in node.names)
    return out


def package_of(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    names = list(rel.parts)
    return ".".join(names[:-1]) if names[-1] != "__init__" else ".".join(names[:-1])


def test_models_never_import_the_engines():
    offenders = {}
    for path in sorted((SRC / "models").glob("*.py")):
        package = package_of(path) if path.name != "__init__.py" else "ratecast.models"
        bad = sorted(m for m in imported_modules(path, package) if m.startswith("ratecast.engine"))
        if bad:
            offenders[path.name] = bad
    assert offenders == {}


def test_the_import_check_sees_relative_and_lazy_imports(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("from ..engine import training\ndef f():\n    from ..engine.epochs import run_epochs\n")
    found = imported_modules(module, "ratecast.models")
    assert {"ratecast.engine.training", "ratecast.engine.epochs"} <= found


def test_both_engines_run_the_one_epoch_loop():
    from ratecast.engine import compiled, epochs, keras_fit, training

    source = (SRC / "engine" / "training.py").read_text()
    assert source.count("run_epochs(") == 1
    for module in (compiled, keras_fit):
        text = Path(module.__file__).read_text()
        assert "for epoch in range" not in text and "early_stopping" not in text and "ckpt." not in text
    runner_methods = {"restore", "train_epoch", "validate", "sync", "checkpoint_arrays", "best_weights",
                      "set_weights"}
    for runner in (compiled.CompiledRunner, keras_fit.KerasRunner):
        assert runner_methods <= set(dir(runner))
    assert epochs.run_epochs is training.run_epochs


def test_every_config_field_is_a_checked_type():
    """Configs are pydantic dataclasses whose every field says what it accepts (a constrained type, a literal or a
    flag): a field written as a bare ``int`` or ``float`` would take any number."""
    from typing import Literal, get_origin

    from ratecast.models import CONFIGS, TrainingConfig
    from ratecast.models.config import Says

    for cls in (*CONFIGS.values(), TrainingConfig):
        for name, info in cls.__pydantic_fields__.items():
            checked = any(isinstance(m, Says) for m in info.metadata) or get_origin(info.annotation) is Literal
            assert checked, f"{cls.__name__}.{name} is a bare {info.annotation}"


def test_config_refusals_are_one_line_and_name_the_field():
    import numpy as np
    import pytest

    from ratecast.models import BayesianConfig, HybridConfig, ImplicitConfig, TrainingConfig

    cases = [
        (HybridConfig, {"embedding_dim": "8"}, r"^embedding_dim must be a positive integer, got '8'$"),
        (HybridConfig, {"embedding_dim": 8.0}, r"^embedding_dim must be a positive integer, got 8.0$"),
        (HybridConfig, {"hidden": [8, 0]}, r"^hidden\[1\] must be a positive integer, got 0$"),
        (HybridConfig, {"hidden": "64"}, r"^hidden must be a list, got '64'$"),
        (HybridConfig, {"batch_norm": 1}, r"^batch_norm must be true or false, got 1$"),
        (HybridConfig, {"epochs": 3}, r"^unknown option\(s\) \['epochs'\] for HybridConfig; allowed: \["),
        (ImplicitConfig, {"liked": 1.5}, r"^liked must be in \[0, 1\], got 1.5$"),
        (ImplicitConfig, {"item_item_weight": 0.6, "set_model_weight": 0.6}, r"^set_model_weight must be in"),
        (BayesianConfig, {"noise_per": ["day"]}, r"^noise_per must be drawn from \['user', 'item', 'rating'\], "
                                                 r"got \['day'\]$"),
        (TrainingConfig, {"optimizer": "lion"}, r"^optimizer must be one of \['adam', 'adamw', 'sgd', 'rmsprop', "
                                                r"'adagrad'\], got 'lion'$"),
        (TrainingConfig, {"validation_split": float("nan")}, r"^validation_split must be in \[0, 1\), got nan$"),
    ]
    for cls, options, message in cases:
        with pytest.raises(ValueError, match=message):
            cls(**options)
    assert HybridConfig(embedding_dim=np.int64(8), hidden=[16, 8]).hidden == (16, 8)  # NumPy scalars, lists taken
    assert TrainingConfig(learning_rate=1).learning_rate == 1.0


def test_networks_neither_sample_nor_loop_over_epochs():
    """What a model fits apart from the training engine is a part of its own (models.fitting.Fitter), not a method
    of the network; the network has no prepare/finish, and what its outputs mean is its output rule."""
    from ratecast.models import MODELS
    from ratecast.models.fitting import Fitter
    from ratecast.models.outputs import Outputs

    for name, cls in MODELS.items():
        for gone in ("prepare", "finish", "to_rating", "ranking_key", "training_loss", "targets", "metric_names"):
            assert not hasattr(cls, gone), f"{name}.{gone}"
        assert all(isinstance(part, Fitter) for part in cls.fitters), name
        assert cls.trained_by_gradient == (not any(p.replaces_gradient for p in cls.fitters)), name
    assert not MODELS["bayesian"].trained_by_gradient and MODELS["implicit"].trained_by_gradient
    assert [type(p).__name__ for p in MODELS["implicit"].fitters] == ["FillSets", "FitItemItem", "FitSampledHeads",
                                                                       "FitSetHead"]
    scale = {"minimum": 1.0, "maximum": 5.0, "step": 1.0}
    for name, cls in MODELS.items():
        model = cls({}, 3, 4, rating_scale=scale, seed=0)
        assert isinstance(model.output_rule, Outputs), name


def test_what_a_model_can_do_is_one_record_declared_once():
    """Every model's capabilities are one frozen ``Capabilities`` record; the loose flags it holds are gone from
    ``RatingModel`` and from every model class, so none can come back beside the record."""
    from ratecast.models import MODELS, RatingModel
    from ratecast.models.capabilities import Capabilities

    fields = [f.name for f in dataclasses.fields(Capabilities)]
    assert sorted(fields) == ["features_where_available", "has_vectors", "rates_by_user", "uses_days"]
    for name, cls in {"RatingModel": RatingModel, **MODELS}.items():
        assert isinstance(cls.capabilities, Capabilities), name
        assert [f for f in fields if hasattr(cls, f)] == [], name
    with pytest.raises(dataclasses.FrozenInstanceError):
        RatingModel.capabilities.has_vectors = False  # type: ignore[misc]
    assert RatingModel.capabilities == Capabilities()
    declared = {"baseline": Capabilities(has_vectors=False), "popularity": Capabilities(has_vectors=False),
                "bayesian": Capabilities(features_where_available=True, uses_days=True),
                "implicit": Capabilities(rates_by_user=True)}
    for name in ("dot", "biased_dot", "deep", "hybrid", "classification", *declared):
        assert MODELS[name].capabilities == declared.get(name, Capabilities()), name


def test_implicits_heads_are_layers_of_their_own_and_absent_when_off():
    """implicit holds its parts as layers (its weights all belong to layers), and a head with no share in the key is
    not there at all (no placeholder weights)."""
    from ratecast.models import MODELS
    from ratecast.models.item_item import ItemItemHead
    from ratecast.models.pick_head import PickHead
    from ratecast.models.set_head import SetHead
    from ratecast.models.user_sets import UserSets

    scale = {"minimum": 1.0, "maximum": 5.0, "step": 1.0}
    m = MODELS["implicit"]({"embedding_dim": 2, "set_model_hidden": 3}, 5, 6, rating_scale=scale, seed=0).build_now()
    assert (type(m.sets), type(m.pick), type(m.item_item), type(m.set_head)) == (UserSets, PickHead, ItemItemHead,
                                                                                  SetHead)
    assert {id(w) for w in m.weights} == {id(w) for layer in m.layers for w in layer.weights}
    off = MODELS["implicit"]({"embedding_dim": 2, "item_item_weight": 0.0, "set_model_weight": 0.0}, 5, 6,
                             rating_scale=scale, seed=0).build_now()
    assert off.item_item is None and off.set_head is None
    assert len(off.weights) == len(m.weights) - 7  # the exact item-item head's 2 weights, the set head's 5


def test_how_a_model_meets_new_users_and_items_is_a_part_declared_apart_from_its_network():
    """Cold start (the metadata read, ids replaced by 0 while training, new sides scored from metadata) is one
    declared part per model class, not methods of the network."""
    from ratecast.models import MODELS
    from ratecast.models.cold_start import ColdStart, LearnedFromFeatures, NamedFeatures

    for name, cls in MODELS.items():
        assert isinstance(cls.cold_start, ColdStart), name
        for gone in ("wanted_features", "supports_cold_start", "substitutes_unknown_ids"):
            assert not hasattr(cls, gone), f"{name}.{gone}"
    assert type(MODELS["hybrid"].cold_start) is LearnedFromFeatures
    assert type(MODELS["bayesian"].cold_start) is NamedFeatures
    scale = {"minimum": 1.0, "maximum": 5.0, "step": 1.0}
    hybrid = MODELS["hybrid"]({"cold_start_rate": 0.1}, 3, 4, rating_scale=scale, user_feature_dim=2, seed=0)
    assert hybrid.cold_start.supports(hybrid, "user") and not hybrid.cold_start.supports(hybrid, "item")
    assert hybrid.cold_start.features(hybrid.cfg) == (hybrid.cfg.item_features, hybrid.cfg.user_features)
    assert not MODELS["dot"].cold_start.supports(MODELS["dot"]({}, 3, 4, rating_scale=scale), "user")

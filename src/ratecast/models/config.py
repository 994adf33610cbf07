"""One frozen config object per model, plus the training config. They validate eagerly, reject unknown keys and
round-trip through JSON, so the estimator, CLI, tuner, report and service all share them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, get_args, get_type_hints

Loss = Literal["mae", "mse", "huber", "crossentropy"]


def _check_literal(cfg: Any) -> None:
    hints = get_type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        hint = hints.get(f.name)
        if getattr(hint, "__origin__", None) is Literal:
            allowed = get_args(hint)
            if getattr(cfg, f.name) not in allowed:
                raise ValueError(f"{f.name} must be one of {list(allowed)}, got {getattr(cfg, f.name)!r}")


def _positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _fraction(name: str, value: Any, upper_open: bool = True) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not (0 <= value < 1):
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")


def _non_negative(name: str, value: Any) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")


@dataclass(frozen=True)
class ModelConfig:
    """Shared fields of every model."""

    name: ClassVar[str] = ""
    embedding_dim: int = 64
    l2: float = 0.0  # L2 penalty on the embeddings looked up in a batch
    loss: Loss = "mae"

    def __post_init__(self) -> None:
        _positive_int("embedding_dim", self.embedding_dim)
        _non_negative("l2", self.l2)
        _check_literal(self)
        if self.loss == "crossentropy" and self.name != "classification":
            raise ValueError(f"loss 'crossentropy' applies to the classification model only, got model {self.name!r}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown option(s) {unknown} for model {cls.name!r}; allowed: {sorted(names)}")
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**kw)


@dataclass(frozen=True)
class DotConfig(ModelConfig):
    """User and item embeddings, dot product (the lab's first model)."""

    name: ClassVar[str] = "dot"
    use_global_mean: bool = False  # add the training mean (off: the lab's pure dot product validated better)


@dataclass(frozen=True)
class BiasedDotConfig(ModelConfig):
    """Biased matrix factorisation: global mean + user bias + item bias + dot product."""

    name: ClassVar[str] = "biased_dot"
    loss: Loss = "mse"
    l2: float = 1e-4


@dataclass(frozen=True)
class DeepConfig(ModelConfig):
    """Concatenated embeddings -> dropout -> dense stack -> one output."""

    name: ClassVar[str] = "deep"
    hidden: tuple[int, ...] = (64,)
    dropout: float = 0.5  # on the concatenated embeddings
    hidden_dropout: float = 0.0  # after each hidden layer
    batch_norm: bool = False
    activation: Literal["relu", "gelu", "tanh", "silu"] = "relu"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.hidden, tuple):
            object.__setattr__(self, "hidden", tuple(self.hidden))
        for i, width in enumerate(self.hidden):
            _positive_int(f"hidden[{i}]", width)
        _fraction("dropout", self.dropout)
        _fraction("hidden_dropout", self.hidden_dropout)


@dataclass(frozen=True)
class HybridConfig(DeepConfig):
    """The deep model plus item metadata (popularity, release year, genres) and user metadata (age, gender,
    occupation), transformed by encoders fitted on the training set only."""

    name: ClassVar[str] = "hybrid"
    hidden: tuple[int, ...] = (64, 64)
    dropout: float = 0.3
    hidden_dropout: float = 0.3
    item_features: tuple[str, ...] = ("popularity", "release_year", "genres")
    user_features: tuple[str, ...] = ("age", "gender", "occupation")
    # share of training rows whose user/item id is replaced by "unknown" (index 0), so the model learns to
    # predict from metadata alone: what cold-start recommendations for new users and items rely on
    cold_start_rate: float = 0.05

    def __post_init__(self) -> None:
        super().__post_init__()
        _fraction("cold_start_rate", self.cold_start_rate)
        for attr, allowed in (("item_features", ITEM_FEATURES), ("user_features", USER_FEATURES)):
            value = tuple(getattr(self, attr))
            object.__setattr__(self, attr, value)
            bad = [v for v in value if v not in allowed]
            if bad:
                raise ValueError(f"{attr} must be drawn from {list(allowed)}, got {bad}")


ITEM_FEATURES = ("popularity", "release_year", "genres")
USER_FEATURES = ("age", "gender", "occupation")


@dataclass(frozen=True)
class ClassificationConfig(DeepConfig):
    """Softmax over the rating values with sparse categorical cross-entropy."""

    name: ClassVar[str] = "classification"
    embedding_dim: int = 16
    loss: Loss = "crossentropy"
    # median of the predicted distribution minimises expected absolute error (chosen on validation MAE);
    # "expected" (sum p*r) minimises squared error; "argmax" is the most likely class
    prediction: Literal["median", "expected", "argmax"] = "median"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.loss != "crossentropy":
            raise ValueError(f"loss for the classification model must be 'crossentropy', got {self.loss!r}")


@dataclass(frozen=True)
class TrainingConfig:
    """How a model is fitted."""

    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 1e-3
    optimizer: Literal["adam", "adamw", "sgd", "rmsprop", "adagrad"] = "adam"
    early_stopping: int | None = 3  # patience in epochs on the validation loss; None turns it off
    validation_split: float = 0.1  # used when fit() is given neither validation nor validation_split

    def __post_init__(self) -> None:
        _positive_int("epochs", self.epochs)
        _positive_int("batch_size", self.batch_size)
        if not isinstance(self.learning_rate, (int, float)) or not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate!r}")
        if self.early_stopping is not None:
            _positive_int("early_stopping", self.early_stopping)
        _fraction("validation_split", self.validation_split)
        _check_literal(self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


CONFIGS: dict[str, type[ModelConfig]] = {
    c.name: c for c in (DotConfig, BiasedDotConfig, DeepConfig, HybridConfig, ClassificationConfig)
}


def split_params(model: str, params: dict[str, Any]) -> tuple[ModelConfig, TrainingConfig]:
    """Build (model config, training config) from one flat dict of options, rejecting unknown keys."""
    if model not in CONFIGS:
        raise ValueError(f"model must be one of {sorted(CONFIGS)}, got {model!r}")
    cls = CONFIGS[model]
    model_keys = {f.name for f in dataclasses.fields(cls)}
    train_keys = {f.name for f in dataclasses.fields(TrainingConfig)}
    unknown = sorted(set(params) - model_keys - train_keys)
    if unknown:
        raise ValueError(
            f"unknown option(s) {unknown} for model {model!r}; allowed: {sorted(model_keys | train_keys)}"
        )
    mcfg = cls.from_dict({k: v for k, v in params.items() if k in model_keys})
    tcfg = TrainingConfig(**{k: v for k, v in params.items() if k in train_keys})
    return mcfg, tcfg


__all__ = [
    "CONFIGS", "ModelConfig", "DotConfig", "BiasedDotConfig", "DeepConfig", "HybridConfig", "ClassificationConfig",
    "TrainingConfig", "split_params", "field",
]  # fmt: skip

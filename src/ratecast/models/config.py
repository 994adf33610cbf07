"""Config objects: the fields every model shares (:class:`ModelConfig`) and how a model is fitted
(:class:`TrainingConfig`). Each model's own config lives in its module. Configs are frozen dataclasses that validate
eagerly in one ``validate`` step, reject unknown keys and round-trip through JSON."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, ClassVar, Literal, get_args, get_type_hints

import numpy as np

Loss = Literal["mae", "mse", "huber", "crossentropy"]


def check_literals(cfg: Any) -> None:
    """Every ``Literal``-typed field holds one of its allowed values."""
    hints = get_type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        hint = hints.get(f.name)
        if getattr(hint, "__origin__", None) is Literal:
            allowed = get_args(hint)
            if getattr(cfg, f.name) not in allowed:
                raise ValueError(f"{f.name} must be one of {list(allowed)}, got {getattr(cfg, f.name)!r}")


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, (bool, np.bool_))


def positive_int(name: str, value: Any, maximum: int | None = None) -> None:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Integral) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be at most {maximum}, got {value!r}")


def fraction(name: str, value: Any) -> None:
    if not _is_number(value) or not (0 <= value < 1):
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")


def non_negative(name: str, value: Any) -> None:
    if not _is_number(value) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def as_tuple(cfg: Any, name: str) -> tuple:
    """Store a list-valued field as a tuple (configs are hashable and frozen)."""
    value = getattr(cfg, name)
    if isinstance(value, (str, bytes, dict, set, frozenset)) or not hasattr(value, "__iter__"):
        raise ValueError(f"{name} must be a list, got {value!r}")
    value = tuple(value)
    object.__setattr__(cfg, name, value)
    return value


@dataclass(frozen=True)
class ModelConfig:
    """Fields every model shares."""

    name: ClassVar[str] = ""
    #: losses this model can be trained with
    losses: ClassVar[tuple[str, ...]] = ("mae", "mse", "huber")
    #: the model's own training defaults (over :class:`TrainingConfig`'s); the user's options win
    training: ClassVar[dict[str, Any]] = {}
    #: model options of the ``lab`` preset where they differ from the defaults
    lab: ClassVar[dict[str, Any]] = {}
    #: what hyperparameter search explores (``ratecast.search_space``): ranges, log scales and choices over the
    #: model's and its training options; every registered model declares one
    search_space: ClassVar[dict[str, Any]] = {}
    #: which metrics a search may select this model on: "rating" (rmse, mae) and "top_n" (recall@k, ndcg@k)
    tune_metrics: ClassVar[tuple[str, ...]] = ("rating", "top_n")
    embedding_dim: int = 64
    l2: float = 0.0  # L2 penalty on the embeddings looked up in a batch
    loss: Loss = "mae"
    # lists leave out items with fewer training ratings than this unless recommend(min_ratings=...) says otherwise
    # (0: none); each model's default is chosen on validation lists (benchmarks/topn.py --tune-support)
    min_support: int = 0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every field; subclasses extend it (call ``super().validate()``)."""
        positive_int("embedding_dim", self.embedding_dim, maximum=4096)
        if isinstance(self.min_support, (bool, np.bool_)) or not isinstance(self.min_support, Integral) \
                or self.min_support < 0:
            raise ValueError(f"min_support must be an integer >= 0, got {self.min_support!r}")
        non_negative("l2", self.l2)
        check_literals(self)
        if self.loss not in self.losses:
            raise ValueError(f"loss for model {self.name!r} must be one of {list(self.losses)}, got {self.loss!r}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def field_names(cls) -> set[str]:
        return {f.name for f in dataclasses.fields(cls)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        if not isinstance(d, dict):
            raise ValueError(f"a model config must be a mapping of options, got {type(d).__name__}")
        unknown = sorted(set(d) - cls.field_names())
        if unknown:
            raise ValueError(f"unknown option(s) {unknown} for model {cls.name!r}; allowed: {sorted(cls.field_names())}")
        return cls(**d)


@dataclass(frozen=True)
class TrainingConfig:
    """How a model is fitted. The field defaults are the lab's settings; each model's ``training`` defaults
    (chosen on validation data) replace some of them, see :func:`ratecast.models.split_params`."""

    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 1e-3
    optimizer: Literal["adam", "adamw", "sgd", "rmsprop", "adagrad"] = "adam"
    early_stopping: int | None = 3  # patience in epochs on the validation loss; None turns it off
    validation_split: float = 0.1  # used when fit() is given neither validation nor validation_split
    # "jax": compiled epochs with sparse row updates (JAX backend; adam, adagrad, sgd); "keras": Keras fit (the
    # lab's exact training, every backend and optimizer); "auto": jax where it applies
    engine: Literal["auto", "jax", "keras"] = "auto"
    lr_schedule: Literal["constant", "cosine"] = "constant"  # cosine: from learning_rate down to a tenth of it
    # what early stopping watches: the validation loss, or "val_top_n" (recall@10 + NDCG@10 of whole-catalogue
    # lists for the validation users; for models whose lists matter more than their loss)
    monitor: Literal["val_loss", "val_top_n"] = "val_loss"
    # the rule for the user and item tables on the compiled engine ("same": the optimizer's), and its learning rate
    # (None: learning_rate); e.g. row-wise "adagrad" for the tables beside "adam" for the dense layers. Keras fit
    # (engine "keras") uses optimizer for every weight, so it refuses either option. A model's default table rule
    # goes with its default optimizer and the compiled engine: giving optimizer, or engine "keras", drops it
    table_optimizer: Literal["same", "adam", "adagrad", "sgd"] = "same"
    table_learning_rate: float | None = None

    def __post_init__(self) -> None:
        positive_int("epochs", self.epochs, maximum=100_000)
        positive_int("batch_size", self.batch_size, maximum=1 << 24)
        lr = self.learning_rate
        if not _is_number(lr) or not math.isfinite(lr) or not 0 < lr <= 10:
            raise ValueError(f"learning_rate must be a finite number in (0, 10], got {lr!r}")
        if self.early_stopping is not None:
            positive_int("early_stopping", self.early_stopping)
        fraction("validation_split", self.validation_split)
        check_literals(self)
        tlr = self.table_learning_rate
        if tlr is not None and (not _is_number(tlr) or not math.isfinite(tlr) or not 0 < tlr <= 10):
            raise ValueError(f"table_learning_rate must be a finite number in (0, 10] or None, got {tlr!r}")
        if self.engine == "jax" and self.optimizer not in ("adam", "adagrad", "sgd"):
            raise ValueError(f"optimizer must be one of ['adam', 'adagrad', 'sgd'] with engine 'jax', "
                             f"got {self.optimizer!r}")
        if self.engine == "keras" or (self.engine == "auto" and self.optimizer not in ("adam", "adagrad", "sgd")):
            self.refuse_table_rule("keras")  # the engine auto picks for the other optimizers

    def refuse_table_rule(self, engine: str) -> None:
        """Raise ``ValueError`` when the config sets a rule of its own for the tables, which only the compiled
        engine has: ``engine`` (Keras ``fit``) trains every weight with ``optimizer``."""
        for name, value, plain in (("table_optimizer", self.table_optimizer, "same"),
                                   ("table_learning_rate", self.table_learning_rate, None)):
            if value != plain:
                raise ValueError(f"{name}={value!r} needs engine 'jax' (the JAX backend and optimizer adam, adagrad "
                                 f"or sgd); engine {engine!r} trains every weight with optimizer "
                                 f"{self.optimizer!r}: leave {name} out")

    #: an epoch of a default batch size has at least this many steps: on a small file (a few thousand ratings) a
    #: batch of 1024 leaves 2 or 3 steps an epoch, too few for the dense layers and the pure dot product to learn
    MIN_STEPS_PER_EPOCH: ClassVar[int] = 32
    MIN_BATCH_SIZE: ClassVar[int] = 16

    def with_batch_for(self, n_ratings: int) -> "TrainingConfig":
        """This config with its batch size lowered, where needed, so that an epoch over ``n_ratings`` has at least
        :attr:`MIN_STEPS_PER_EPOCH` steps (never below :attr:`MIN_BATCH_SIZE`). Applied to a batch size the model
        chose by default, never to one the user gave; data of 32,768 ratings or more keeps every default."""
        batch = max(self.MIN_BATCH_SIZE, min(self.batch_size, int(n_ratings) // self.MIN_STEPS_PER_EPOCH))
        return self if batch >= self.batch_size else dataclasses.replace(self, batch_size=batch)

    def epoch_learning_rate(self, epoch: int) -> float:
        """The learning rate of ``epoch`` (0-based) under ``lr_schedule`` (cosine: from ``learning_rate`` down to
        a tenth of it at the last epoch)."""
        if self.lr_schedule == "cosine" and self.epochs > 1:
            return self.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * epoch / (self.epochs - 1))))
        return self.learning_rate

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def field_names(cls) -> set[str]:
        return {f.name for f in dataclasses.fields(cls)}

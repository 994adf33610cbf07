"""Config objects: the fields every model shares (:class:`ModelConfig`) and how a model is fitted
(:class:`TrainingConfig`). Each model's own config lives in its module.

Configs are frozen pydantic dataclasses (:func:`config`): each field's type says what it accepts (the constrained
types below: :data:`PositiveInt`, :data:`NonNegative`, :func:`names`, ...), checked by pydantic in strict mode (no
``"3"`` for 3, no ``True`` for 1) when the config is made, and a refusal is one line, ``NAME must be ..., got
VALUE`` (:class:`ValueError`). What ties several fields together is checked in ``__post_init__``. Configs reject
unknown keys and round-trip through JSON."""

from __future__ import annotations

import dataclasses
import functools
import math
from numbers import Integral
from typing import Annotated, Any, ClassVar, Literal, Optional, get_args, get_origin

import numpy as np
from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic.dataclasses import dataclass as pydantic_dataclass

Loss = Literal["mae", "mse", "huber", "crossentropy"]


class Says:
    """A field's constraint in words, for the one-line refusal: ``NAME must be <text>, got VALUE``."""

    def __init__(self, text: str) -> None:
        self.text = text


class Refused(ValueError):
    """Raised by a field's own check: ``NAME <predicate>, got <got>``."""

    def __init__(self, predicate: str, got: Any) -> None:
        super().__init__(predicate)
        self.predicate, self.got = predicate, got


PositiveInt = Annotated[int, Field(gt=0), Says("a positive integer")]
Dim = Annotated[int, Field(gt=0, le=4096), Says("a positive integer")]  # a width of the embeddings
Count = Annotated[int, Field(ge=0), Says("an integer >= 0")]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False), Says("a finite number >= 0")]
Fraction = Annotated[float, Field(ge=0, lt=1), Says("in [0, 1)")]
Share = Annotated[float, Field(ge=0, le=1), Says("in [0, 1]")]
Flag = Annotated[bool, Says("true or false")]
LearningRate = Annotated[float, Field(gt=0, le=10, allow_inf_nan=False), Says("a finite number in (0, 10]")]


def at_most(kind: Any, maximum: int) -> Any:
    """``kind`` with an upper bound (refused as ``NAME must be at most MAXIMUM``)."""
    return Annotated[kind, Field(le=maximum)]


def _listed(value: Any) -> tuple:
    if isinstance(value, (str, bytes, dict, set, frozenset)) or not hasattr(value, "__iter__"):
        raise Refused("must be a list", value)
    return tuple(value)


def names(allowed: tuple[str, ...]) -> Any:
    """A list of names drawn from ``allowed`` (held as a tuple; configs are hashable and frozen)."""
    def drawn(value: tuple) -> tuple:
        bad = [v for v in value if v not in allowed]
        if bad:
            raise Refused(f"must be drawn from {list(allowed)}", bad)
        return value

    return Annotated[tuple[str, ...], BeforeValidator(_listed), AfterValidator(drawn), Says("a list of names")]


def widths(maximum: int) -> Any:
    """A list of positive integers of at most ``maximum`` (layer widths; held as a tuple)."""
    return Annotated[tuple[Annotated[int, Field(gt=0, le=maximum)], ...], BeforeValidator(_listed),
                     Says(f"a list of positive integers of at most {maximum}")]


def _plain(value: Any) -> Any:
    """NumPy scalars as the Python values they hold (a config takes ``np.int64(3)`` as 3)."""
    return value.item() if isinstance(value, np.generic) else value


def _says(cls: type, name: str) -> str | None:
    info = getattr(cls, "__pydantic_fields__", {}).get(name)
    if info is None:
        return None
    found = next((m.text for m in info.metadata if isinstance(m, Says)), None)
    if found is None and get_origin(info.annotation) is Literal:
        found = f"one of {list(get_args(info.annotation))}"
    return found


def one_line(cls: type, exc: ValidationError) -> str:
    """A pydantic refusal of config class ``cls`` as one line: ``NAME must be ..., got VALUE``."""
    err = exc.errors()[0]
    loc, value, ctx = err.get("loc", ()), err.get("input"), err.get("ctx") or {}
    cause = ctx.get("error")
    if not loc:  # a rule over several fields (__post_init__)
        return str(cause) if cause is not None else err["msg"]
    name = str(loc[0]) + "".join(f"[{part}]" for part in loc[1:] if isinstance(part, int))
    if err["type"] == "unexpected_keyword_argument":
        allowed = sorted(f.name for f in dataclasses.fields(cls))
        return f"unknown option(s) {[name]} for {cls.__name__}; allowed: {allowed}"
    if isinstance(cause, Refused):
        return f"{name} {cause.predicate}, got {cause.got!r}"
    if cause is not None:
        return f"{name} {cause}, got {value!r}"
    says = _says(cls, str(loc[0])) or err["msg"].lower()
    if err["type"] == "less_than_equal" and "integer" in says and isinstance(value, Integral):
        return f"{name} must be at most {ctx['le']}, got {value!r}"
    if len(loc) > 1:  # an entry of a list field
        return f"{name} must be a positive integer, got {value!r}"
    return f"{name} must be {says}, got {value!r}"


def config(cls: type) -> type:
    """Make ``cls`` a frozen, strictly checked pydantic dataclass whose refusals are one-line ValueErrors."""
    cls = pydantic_dataclass(cls, frozen=True, config=ConfigDict(strict=True, extra="forbid"))
    made = cls.__init__

    @functools.wraps(made)
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        try:
            made(self, *map(_plain, args), **{k: _plain(v) for k, v in kwargs.items()})
        except ValidationError as exc:
            raise ValueError(one_line(type(self), exc)) from None

    cls.__init__ = __init__
    return cls


@config
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
    embedding_dim: Dim = 64
    l2: NonNegative = 0.0  # L2 penalty on the embeddings looked up in a batch
    loss: Loss = "mae"
    # lists leave out items with fewer training ratings than this unless recommend(min_ratings=...) says otherwise
    # (0: none); each model's default is chosen on validation lists (benchmarks/topn.py --tune-support)
    min_support: Count = 0

    def __post_init__(self) -> None:
        """The rules that tie fields together (each field's own type is checked before); subclasses extend it
        (call ``super().__post_init__()``)."""
        if self.loss not in self.losses:
            raise ValueError(f"loss for model {self.name!r} must be one of {list(self.losses)}, got {self.loss!r}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def field_names(cls) -> set[str]:
        return {f.name for f in dataclasses.fields(cls)}

    @classmethod
    def saved_before(cls, saved: dict[str, Any], known_items: int) -> dict[str, Any]:
        """A saved config that lacks options added since it was saved, with those options at the values that keep
        the model as it was fitted and scored (``known_items``: its catalogue); the default adds none."""
        return saved

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        if not isinstance(d, dict):
            raise ValueError(f"a model config must be a mapping of options, got {type(d).__name__}")
        unknown = sorted(set(d) - cls.field_names())
        if unknown:
            raise ValueError(f"unknown option(s) {unknown} for model {cls.name!r}; allowed: {sorted(cls.field_names())}")
        return cls(**d)


@config
class TrainingConfig:
    """How a model is fitted. The field defaults are the lab's settings; each model's ``training`` defaults
    (chosen on validation data) replace some of them, see :func:`ratecast.models.split_params`."""

    epochs: at_most(PositiveInt, 100_000) = 10
    batch_size: at_most(PositiveInt, 1 << 24) = 64
    learning_rate: LearningRate = 1e-3
    optimizer: Literal["adam", "adamw", "sgd", "rmsprop", "adagrad"] = "adam"
    # patience in epochs on the validation loss; None turns it off
    early_stopping: Annotated[Optional[Annotated[int, Field(gt=0)]], Says("a positive integer")] = 3
    validation_split: Fraction = 0.1  # used when fit() is given neither validation nor validation_split
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
    table_learning_rate: Annotated[Optional[Annotated[float, Field(gt=0, le=10, allow_inf_nan=False)]],
                                   Says("a finite number in (0, 10] or None")] = None

    def __post_init__(self) -> None:
        """The rules that tie the engine, the optimizer and the tables' rule together."""
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

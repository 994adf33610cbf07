"""Search spaces for hyperparameter search: ranges, log scales and choices over a model's options.

Each model declares its space next to its config fields (``search_space`` on the config class); a user overrides
it with a dict, or a TOML table of the same shape::

    embedding_dim = {low = 16, high = 256, log = true}   # integers: both bounds are integers
    l2 = {low = 1e-5, high = 0.1, log = true}            # floats
    hidden = {choices = [[64], [128, 64]]}               # a choice (lists allowed)
    epochs = 40                                          # a plain value fixes the option

This module never imports Optuna; :func:`suggest` takes an Optuna trial.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, Mapping, Union

__all__ = ["Float", "Int", "Choice", "Fixed", "Param", "parse", "merge", "check_names", "suggest", "describe",
           "default_values"]


def _number(x: Any) -> bool:
    return isinstance(x, Real) and not isinstance(x, bool) and math.isfinite(x)


@dataclass(frozen=True)
class Float:
    """A float in [low, high], optionally on a log scale."""

    low: float
    high: float
    log: bool = False

    def check(self, name: str) -> None:
        if not (_number(self.low) and _number(self.high)):
            raise ValueError(f"search space {name}: low and high must be finite numbers, got {self.low!r}, "
                             f"{self.high!r}")
        if self.low >= self.high:
            raise ValueError(f"search space {name}: the range must have low < high, got low={self.low!r}, "
                             f"high={self.high!r}")
        if self.log and self.low <= 0:
            raise ValueError(f"search space {name}: a log range needs low > 0, got low={self.low!r}")


@dataclass(frozen=True)
class Int(Float):
    """An integer in [low, high], optionally on a log scale."""

    low: int
    high: int

    def check(self, name: str) -> None:
        if not all(isinstance(v, Integral) and not isinstance(v, bool) for v in (self.low, self.high)):
            raise ValueError(f"search space {name}: an integer range needs integer bounds, got {self.low!r}, "
                             f"{self.high!r}")
        super().check(name)


@dataclass(frozen=True)
class Choice:
    """One of ``values`` (numbers, strings, booleans, or lists of them)."""

    values: tuple

    def check(self, name: str) -> None:
        if not isinstance(self.values, tuple) or len(self.values) == 0:
            raise ValueError(f"search space {name}: choices must be a non-empty list, got {self.values!r}")
        keys = [_choice_key(v) for v in self.values]
        if len(set(keys)) != len(keys):
            raise ValueError(f"search space {name}: choices repeat a value: {list(self.values)!r}")


@dataclass(frozen=True)
class Fixed:
    """Not searched: the option is set to ``value`` in every trial."""

    value: Any

    def check(self, name: str) -> None:
        pass


Param = Union[Float, Int, Choice, Fixed]


def _choice_key(value: Any) -> Any:
    """What Optuna stores for a choice: lists become their JSON text."""
    if isinstance(value, (list, tuple)):
        return json.dumps(list(value))
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ValueError(f"a choice must be a number, string, boolean or list, got {value!r}")


def _from_spec(name: str, spec: Any) -> Param:
    if isinstance(spec, (Float, Choice, Fixed)):
        spec.check(name)
        return spec
    if not isinstance(spec, Mapping):
        return Fixed(list(spec) if isinstance(spec, tuple) else spec)
    keys = set(spec)
    if "choices" in keys:
        extra = keys - {"choices"}
        if extra:
            raise ValueError(f"search space {name}: a choice takes only 'choices', got also {sorted(extra)}")
        values = spec["choices"]
        if not isinstance(values, (list, tuple)):
            raise ValueError(f"search space {name}: choices must be a non-empty list, got {values!r}")
        param: Param = Choice(tuple(tuple(v) if isinstance(v, list) else v for v in values))
    elif keys >= {"low", "high"}:
        extra = keys - {"low", "high", "log"}
        if extra:
            raise ValueError(f"search space {name}: a range takes low, high and log, got also {sorted(extra)}")
        log = spec.get("log", False)
        if not isinstance(log, bool):
            raise ValueError(f"search space {name}: log must be true or false, got {log!r}")
        low, high = spec["low"], spec["high"]
        ints = all(isinstance(v, Integral) and not isinstance(v, bool) for v in (low, high))
        param = Int(int(low), int(high), log) if ints else Float(low, high, log)
    else:
        raise ValueError(f"search space {name}: expected {{low = ..., high = ...[, log = true]}}, "
                         f"{{choices = [...]}} or a plain value, got {dict(spec)!r}")
    param.check(name)
    return param


def parse(space: Mapping[str, Any] | None, where: str = "search_space") -> dict[str, Param]:
    """A search space from a dict (or a parsed TOML table); errors name ``where`` and the option."""
    if space is None:
        return {}
    if not isinstance(space, Mapping):
        raise ValueError(f"{where} must be a mapping of option -> range, choices or value, got "
                         f"{type(space).__name__}")
    out = {}
    for name, spec in space.items():
        try:
            out[str(name)] = _from_spec(str(name), spec)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
    return out


def merge(default: Mapping[str, Param], override: Mapping[str, Param]) -> dict[str, Param]:
    """The model's space with the user's entries replacing or adding options."""
    return {**dict(default), **dict(override)}


def check_names(space: Mapping[str, Param], allowed: set[str], model: str, where: str = "search_space") -> None:
    """Every option of ``space`` is one the model takes."""
    unknown = sorted(set(space) - allowed)
    if unknown:
        raise ValueError(f"{where}: unknown parameter(s) {unknown} for model {model!r}; allowed: {sorted(allowed)}")


def suggest(trial: Any, space: Mapping[str, Param]) -> dict[str, Any]:
    """Options for one trial: each searched option sampled by the Optuna ``trial``, fixed ones as given."""
    out: dict[str, Any] = {}
    for name, p in space.items():
        if isinstance(p, Fixed):
            out[name] = p.value
        elif isinstance(p, Choice):
            keys = [_choice_key(v) for v in p.values]
            picked = trial.suggest_categorical(name, keys)
            out[name] = p.values[keys.index(picked)]
        elif isinstance(p, Int):
            out[name] = trial.suggest_int(name, p.low, p.high, log=p.log)
        else:
            out[name] = trial.suggest_float(name, p.low, p.high, log=p.log)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


def trial_params(space: Mapping[str, Param], sampled: Mapping[str, Any]) -> dict[str, Any]:
    """Options of a finished trial from Optuna's stored ``params`` (choices decoded, fixed options added)."""
    out: dict[str, Any] = {}
    for name, p in space.items():
        if isinstance(p, Fixed):
            out[name] = p.value
        elif name in sampled:
            value = sampled[name]
            if isinstance(p, Choice):
                keys = [_choice_key(v) for v in p.values]
                value = p.values[keys.index(value)] if value in keys else value
            out[name] = list(value) if isinstance(value, tuple) else value
    return out


def default_values(space: Mapping[str, Param], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """The model's default options expressed in the space (Optuna's stored form), for options whose default lies
    inside it: the first trial of a new study starts from the defaults."""
    out: dict[str, Any] = {}
    for name, p in space.items():
        if name not in defaults or isinstance(p, Fixed):
            continue
        value = defaults[name]
        if isinstance(p, Choice):
            key = _choice_key(tuple(value) if isinstance(value, list) else value)
            if key in [_choice_key(v) for v in p.values]:
                out[name] = key
        elif _number(value) and p.low <= value <= p.high and (not isinstance(p, Int) or float(value).is_integer()):
            out[name] = int(value) if isinstance(p, Int) else float(value)
    return out


def describe(space: Mapping[str, Param]) -> dict[str, Any]:
    """A JSON-able form of the space (stored with a study, shown in reports)."""
    out: dict[str, Any] = {}
    for name, p in space.items():
        if isinstance(p, Fixed):
            out[name] = p.value
        elif isinstance(p, Choice):
            out[name] = {"choices": [list(v) if isinstance(v, tuple) else v for v in p.values]}
        else:
            out[name] = {"low": p.low, "high": p.high, "log": p.log}
    return out

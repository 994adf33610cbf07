"""The options of a run, layered: the model's defaults <- a preset <- a TOML config file <- options given one by one
(``--epochs``, ...) <- ``--set KEY=VALUE``. Each option remembers where it came from, so that a message about it
names it as the user gave it: ``--epochs``, ``cfg.toml: epochs``, ``--set epochs``, ``--preset lab``.

Nothing here loads Keras unless a preset, a model named in a config file or the check of the options needs it.
"""

from __future__ import annotations

import ast
import json
import math
import re
import tomllib
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Sequence

#: keys that are no model option, and the flag that sets them instead
RESERVED = {"model": "--model", "random_state": "--seed", "verbose": "--quiet"}


class PresetError(ValueError):
    """A preset that cannot be used as asked: an unknown name, or a model the preset does not allow."""


class Resolved(NamedTuple):
    """The outcome of :func:`resolve`."""

    model: str
    #: the merged options (model and training options; no run options such as the seed)
    params: dict[str, Any]
    #: where each option (and ``model``) came from, as the user gave it: ``--epochs``, ``cfg.toml: epochs``, ...
    origins: dict[str, str]


def resolve(model: str | None = None, preset: str | None = None, config_file: Path | None = None,
            cli_options: Mapping[str, Any] | None = None, set_options: Sequence[str] = (), *,
            default_model: str = "deep", default_preset: str | None = None, check: bool = True) -> Resolved:
    """Merge a run's options: defaults <- ``preset`` <- ``config_file`` <- ``cli_options`` <- ``set_options``.

    ``model`` is the model named on the command line (None: not named; then the config file's, else the preset's,
    else ``default_preset``'s, else ``default_model``). ``default_preset`` applies only when neither ``model``,
    ``preset`` nor the config file names a model. ``cli_options`` maps option names to values, None meaning not
    given. ``set_options`` are ``KEY=VALUE`` texts (JSON values; anything else is text). Every number must be finite;
    with ``check`` the options must be the model's (unknown keys and bad values are named by where they came from).
    Raises :class:`PresetError` for a preset that cannot be used, ValueError (or
    :class:`~ratecast.errors.MissingFileError` for a missing config file) otherwise.
    """
    chosen = model
    params: dict[str, Any] = {}
    origins: dict[str, str] = {"model": "--model"}
    file_opts = read_config(config_file) if config_file is not None else {}
    file_model = file_opts.pop("model", None)
    named = f"--preset {preset}"
    if preset is None and model is None and file_model is None and default_preset is not None:
        preset, named = default_preset, f"the default preset {default_preset}"
    if preset is not None:
        from . import presets

        try:
            chosen, preset_params = presets.resolve(preset, model)
        except ValueError as exc:
            raise PresetError(str(exc).replace("model=", "--model ")) from None
        if model is None:
            origins["model"] = named
        params.update(preset_params)
        origins.update({k: named for k in preset_params})
    if config_file is not None:
        if file_model is not None:
            from .models import MODELS

            if file_model not in MODELS:
                raise ValueError(f"{config_file}: model must be one of {sorted(MODELS)}, got {file_model!r}")
            if model is None:  # the command line wins over the file
                chosen, origins["model"] = file_model, f"{config_file}: model"
        for key in ("random_state", "verbose"):  # not model options: say where they belong
            if key in file_opts:
                raise ValueError(f"{config_file}: {key} is not a model option; use {RESERVED[key]}")
        params.update(file_opts)
        origins.update({k: f"{config_file}: {k}" for k in file_opts})
    given = {k: v for k, v in (cli_options or {}).items() if v is not None}
    params.update(given)
    origins.update({k: "--" + k.replace("_", "-") for k in given})
    set_opts = parse_set(set_options)
    for key, flag in RESERVED.items():  # not model options: say where they belong
        if key in set_opts:
            raise ValueError(f"--set {key}=...: {key} is not a model option; use {flag}")
    params.update(set_opts)
    origins.update({k: f"--set {k}" for k in set_opts})
    check_params_finite(params, origins)
    chosen = chosen or default_model
    if check:
        from .models import split_params

        try:
            split_params(chosen, params)
        except ValueError as exc:
            raise name_origin(exc, origins) from None
    return Resolved(chosen, params, origins)


def parse_set(values: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` texts as a dict: JSON values, anything else as text; ``-`` in a key reads as ``_``."""
    opts = {}
    for item in values:
        if "=" not in item:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        key, raw = item.split("=", 1)
        try:
            opts[key.strip().replace("-", "_")] = json.loads(raw)
        except json.JSONDecodeError:
            opts[key.strip().replace("-", "_")] = raw
    return opts


def read_toml(path: Path, what: str) -> dict[str, Any]:
    """A TOML file's table; a missing, non-UTF-8 or invalid file is one clear error naming it."""
    from .errors import MissingFileError

    if not path.is_file():
        raise MissingFileError(f"{what} not found", path=str(path))
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text; expected a TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: invalid TOML: {exc}") from None


def read_config(path: Path) -> dict[str, Any]:
    """The options of a TOML config file: ``model`` plus any model or training option, at the top level."""
    opts = read_toml(path, "config file")
    tables = [k for k, v in opts.items() if isinstance(v, dict)]
    if tables:
        raise ValueError(f"{path}: options go at the top level (model = \"deep\", epochs = 10, ...), "
                         f"got table(s) {tables}")
    if "model" in opts and not isinstance(opts["model"], str):
        raise ValueError(f"{path}: model must be a model name (a string), got {opts['model']!r}")
    return opts


def check_params_finite(params: Mapping[str, Any], origins: Mapping[str, str]) -> None:
    """Every number in ``params`` is finite; the message names where the option came from."""
    def bad(v) -> bool:
        if isinstance(v, float):
            return not math.isfinite(v)
        if isinstance(v, (list, tuple)):
            return any(bad(x) for x in v)
        if isinstance(v, dict):
            return any(bad(x) for x in v.values())
        return False

    for key, value in params.items():
        if bad(value):
            raise ValueError(f"{origins.get(key, key)} must be a finite number, got {value!r}")


def name_origin(exc: Exception, origins: Mapping[str, str]) -> Exception:
    """``exc`` with the option its message starts with (``epochs must be ...``), or the unknown options it lists,
    named as the user gave them: ``--epochs``, ``cfg.toml: epochs``, ``--set epochs``."""
    message = str(exc)
    m = re.match(r"([A-Za-z_]\w*)(?=[\s\[])", message)
    if m and m.group(1) in origins:
        return ValueError(origins[m.group(1)] + message[m.end():])
    m = re.match(r"unknown option\(s\) (\[[^\]]*\])", message)
    if m:
        try:
            keys = ast.literal_eval(m.group(1))
        except (ValueError, SyntaxError):
            return exc
        return ValueError(f"{', '.join(origins.get(k, k) for k in keys)}: {message}")
    return exc

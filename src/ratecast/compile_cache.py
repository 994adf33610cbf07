"""The on-disk cache of compiled programs: one setting for the library and the command line.

Compiled XLA programs are kept in :func:`compilation_cache_folder` (``$RATECAST_CACHE/jax``, else ``jax`` in the
per-user cache folder), so a new process that runs the same shapes loads them instead of compiling. Every program
is kept, however quick its compilation: a first fit runs dozens of small ones (weight initialisers, the model's
first call), and together they cost more than the training step. :mod:`ratecast.models` sets the cache up when it
loads, before any model computes, so every user of the models (the estimator, the command line, the server) gets it.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

CACHE_ENV = "RATECAST_CACHE"


def cache_folder() -> Path:
    """``$RATECAST_CACHE`` if set, else the per-user cache folder of ratecast."""
    value = os.environ.get(CACHE_ENV)
    if value:
        return Path(value).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("ratecast"))


def compilation_cache_folder() -> Path:
    """Where compiled programs are kept: ``jax`` in :func:`cache_folder`."""
    return cache_folder() / "jax"


def use_compilation_cache() -> str | None:
    """Keep compiled programs in :func:`compilation_cache_folder` from now on, whatever their compile time, and
    return the folder in use. A folder already given to JAX (``JAX_COMPILATION_CACHE_DIR`` or ``jax.config``) is
    kept, with JAX's other cache settings. A folder that cannot be created leaves the cache off, with a warning.
    Call it before the first JAX computation, so that every program of the process is cached."""
    import jax

    if jax.config.jax_compilation_cache_dir:
        return jax.config.jax_compilation_cache_dir
    folder = compilation_cache_folder()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        given = bool(os.environ.get(CACHE_ENV))
        warnings.warn(f"compiled programs are not cached: {'$' + CACHE_ENV if given else 'the user cache folder'} "
                      f"{str(folder.parent)!r} must be a writable folder ({exc.strerror or exc})"
                      + ("" if given else f"; set {CACHE_ENV} to another"), RuntimeWarning, stacklevel=2)
        return None
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return str(folder)

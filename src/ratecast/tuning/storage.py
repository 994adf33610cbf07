"""Where a study lives: an Optuna RDB storage (SQLite file, PostgreSQL, MySQL) opened with the settings that
several processes and machines need."""

from __future__ import annotations

import time
import warnings

from ..errors import RatecastError


class StorageError(RatecastError, OSError):
    """A study storage cannot be reached or used."""


def shown_url(url: str | None) -> str:
    """``url`` with any password hidden, for messages."""
    if url is None:
        return "memory"
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL at all: say so without echoing more than needed
        return repr(url)


def _driver_url(url: str) -> str:
    """``postgresql://`` through whichever PostgreSQL driver is installed (psycopg 3 or psycopg2)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        import importlib.util

        if importlib.util.find_spec("psycopg2") is None and importlib.util.find_spec("psycopg") is not None:
            return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def open_storage(url: str):
    """An Optuna storage for ``url``; a storage that cannot be reached raises :class:`StorageError` naming it."""
    import optuna
    import sqlalchemy.exc
    from sqlalchemy.engine import make_url

    if not isinstance(url, str) or not url.strip():
        raise ValueError(f"storage must be a database URL (e.g. sqlite:///study.db or postgresql://host/db), "
                         f"got {url!r}")
    try:
        parsed = make_url(_driver_url(url))
    except sqlalchemy.exc.ArgumentError:
        raise ValueError(f"storage {url!r}: not a database URL (e.g. sqlite:///study.db or "
                         "postgresql://user@host:5432/db)") from None
    kwargs: dict = {"pool_pre_ping": True}
    if parsed.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"timeout": 120}  # worker processes wait for each other's writes
    else:
        kwargs["connect_args"] = {"connect_timeout": 10}
    try:
        for attempt in range(6):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # the heartbeat options
                    return optuna.storages.RDBStorage(parsed.render_as_string(hide_password=False),
                                                      engine_kwargs=kwargs, heartbeat_interval=30, grace_period=120)
            except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError) as exc:
                # processes that open a new database together race to create its tables: the loser retries
                if attempt == 5 or not any(word in str(exc) for word in ("duplicate key", "already exists")):
                    raise
                time.sleep(0.2 * (attempt + 1))
    except ModuleNotFoundError as exc:
        raise StorageError(f"storage {shown_url(url)}: its database driver is not installed ({exc.name}); "
                           "install ratecast[postgres] for PostgreSQL") from None
    except (sqlalchemy.exc.SQLAlchemyError, OSError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        raise StorageError(f"storage {shown_url(url)}: cannot be reached ({reason[0] if reason else type(exc).__name__})"
                           ) from None

"""The memory a piece of work may take: what the machine has available, and the one refusal every estimate shares
(training refuses a configuration that cannot fit before it starts, instead of being killed by the kernel)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from .errors import TrainingError

#: False while shapes are only being declared (nothing allocated): see :func:`declaring_only`
_CHECKING: ContextVar[bool] = ContextVar("ratecast_memory_checking", default=True)


def available_memory() -> int | None:
    """Bytes of memory available to new work (Linux' MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def device_memory() -> int | None:
    """Bytes free on the default accelerator (its limit less what is in use), or None on a CPU (whose memory is
    :func:`available_memory`) or where the device does not report it."""
    try:
        import jax

        device = jax.local_devices()[0]
        if device.platform == "cpu":
            return None
        stats = device.memory_stats() or {}
    except Exception:  # another backend, or a device without statistics
        return None
    if "bytes_limit" not in stats:
        return None
    return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))


def readable(n: float) -> str:
    """Bytes as a short size: ``5.1 GB``, ``340 MB``."""
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def available(devices: int = 1) -> int | None:
    """Bytes available to new work: the host's, or on accelerators the smaller of the host's and ``devices`` times
    one device's (work laid out over that many devices); None where neither is known."""
    device = device_memory()
    known = [m for m in (available_memory(), None if device is None else device * max(1, devices)) if m is not None]
    return min(known) if known else None


def require(needed: int, what: str, hint: str, devices: int = 1) -> None:
    """Raise :class:`TrainingError` (one line: ``what``, the estimate, the memory available and ``hint``) when
    ``needed`` bytes exceed :func:`available` memory. Unknown availability lets the work run."""
    if not _CHECKING.get():
        return
    free = available(devices)
    if free is not None and needed > free:
        raise TrainingError(f"{what} needs about {readable(needed)} of memory, more than the {readable(free)} "
                            f"available; {hint}")


@contextmanager
def declaring_only() -> Iterator[None]:
    """While the block only declares shapes (e.g. a model built abstractly to read its weights' shapes), nothing is
    allocated, so :func:`require` lets everything through: what is declared is judged by the files it must match,
    not by this machine's free memory."""
    token = _CHECKING.set(False)
    try:
        yield
    finally:
        _CHECKING.reset(token)

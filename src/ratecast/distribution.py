"""Training and scoring on several devices or machines, on JAX's own distribution (``keras.distribution``).

* :func:`data_parallel`: every device holds every weight; each batch is split across the devices.
* :func:`model_parallel`: the user and item tables are split by rows across the devices (a ``LayoutMap`` puts
  every per-user and per-item table on the ``model`` axis); dense layers are replicated.

Pass one to ``Recommender(..., distribution=...)`` or ``ratecast train --devices N [--shard-embeddings]``. The
compiled engine then lays its training state out as the distribution says (tables whose row count does not divide
evenly get padding rows that nothing reads) and lets XLA partition each step.

Several machines: start the same program on each with :func:`initialize` (``jax.distributed.initialize``) before
anything else touches JAX, e.g. on machine ``k`` of ``n``::

    RATECAST_COORDINATOR=10.0.0.1:7777 RATECAST_NUM_PROCESSES=n RATECAST_PROCESS_ID=k ratecast train ...

Every process reads the same data; the devices of all processes form one mesh and train one model.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from keras import distribution as kd

#: variables split by rows under model_parallel: every per-user and per-item table
TABLE_PATTERN = r".*(user|item)_(embedding|bias|feature_table).*"


def _devices(devices: int | Sequence[str] | None) -> list[str]:
    found = kd.list_devices()
    if devices is None:
        return found
    if isinstance(devices, (int, np.integer)) and not isinstance(devices, bool):
        if not 1 <= devices <= len(found):
            raise ValueError(f"devices must be between 1 and the {len(found)} available ({', '.join(found)}), "
                             f"got {devices}")
        return found[:int(devices)]
    if isinstance(devices, (str, bytes)) or not isinstance(devices, Sequence):
        raise ValueError(f"devices must be a count or a list of device names such as {found[:2]}, got {devices!r}")
    unknown = [d for d in devices if d not in found]
    if unknown or not devices:
        raise ValueError(f"devices must be drawn from {found}, got {list(devices)!r}")
    return list(devices)


def data_parallel(devices: int | Sequence[str] | None = None) -> kd.DataParallel:
    """Replicate the weights and split each batch over ``devices`` (a count, names, or None for all)."""
    return kd.DataParallel(devices=_devices(devices))


def model_parallel(devices: int | Sequence[str] | None = None) -> kd.ModelParallel:
    """Split the user and item tables by rows over ``devices``; replicate the dense layers."""
    found = _devices(devices)
    mesh = kd.DeviceMesh((1, len(found)), ["batch", "model"], found)
    layout = kd.LayoutMap(mesh)
    layout[TABLE_PATTERN] = ("model", None)
    return kd.ModelParallel(layout_map=layout, batch_dim_name="batch")


def from_options(devices: int | None, shard_embeddings: bool) -> kd.DataParallel | kd.ModelParallel | None:
    """The distribution for ``--devices N`` and ``--shard-embeddings`` (None: one device)."""
    if devices is None and not shard_embeddings:
        return None
    return (model_parallel if shard_embeddings else data_parallel)(devices)


def initialize() -> bool:
    """Join a multi-process run when ``RATECAST_COORDINATOR``, ``RATECAST_NUM_PROCESSES`` and
    ``RATECAST_PROCESS_ID`` are set (``jax.distributed.initialize``); True when it did."""
    address = os.environ.get("RATECAST_COORDINATOR")
    if not address:
        return False
    try:
        n, k = int(os.environ["RATECAST_NUM_PROCESSES"]), int(os.environ["RATECAST_PROCESS_ID"])
    except (KeyError, ValueError):
        raise ValueError("RATECAST_NUM_PROCESSES and RATECAST_PROCESS_ID must be set to integers beside "
                         "RATECAST_COORDINATOR") from None
    kd.initialize(job_addresses=address, num_processes=n, process_id=k)  # jax.distributed.initialize
    return True


def describe(dist: kd.DataParallel | kd.ModelParallel | None) -> str:
    if dist is None:
        return "one device"
    kind = "model_parallel" if isinstance(dist, kd.ModelParallel) else "data_parallel"
    return f"{kind} over {dist.device_mesh.devices.size} devices"


def is_distribution(value) -> bool:
    return isinstance(value, (kd.DataParallel, kd.ModelParallel))


__all__ = ["data_parallel", "model_parallel", "from_options", "initialize", "describe", "is_distribution"]

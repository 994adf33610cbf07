"""Where the compiled engine's arrays live: one device, or a ``keras.distribution`` mesh (several devices, possibly
in several processes).

Under a distribution, each variable's layout comes from the distribution (``get_variable_layout``: replicated for
data parallel, row-split tables for model parallel); a split axis is padded to a multiple of its shard count with
rows that nothing reads. Each batch is split along the distribution's batch axis. Arrays are made with
``jax.make_array_from_callback``, so the same code runs when the mesh spans processes.
"""

from __future__ import annotations

import math

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec


class Placement:
    """Puts arrays on the mesh of ``distribution`` (or the default device when it is None)."""

    def __init__(self, distribution=None):
        self.distribution = distribution
        self.mesh = None
        self.batch_axis = None
        if distribution is not None:
            dm = distribution.device_mesh
            by_name = {f"{d.platform}:{d.id}": d for d in jax.devices()}
            devices = np.array([by_name[str(name)] for name in np.ravel(dm.devices)]).reshape(dm.shape)
            self.mesh = Mesh(devices, tuple(dm.axis_names))
            self.batch_axis = distribution.batch_dim_name

    @property
    def batch_shards(self) -> int:
        return 1 if self.mesh is None else int(self.mesh.shape[self.batch_axis])

    def spec(self, variable) -> PartitionSpec:
        """The partition of ``variable`` (a Keras variable) under the distribution."""
        if self.distribution is None:
            return PartitionSpec()
        layout = self.distribution.get_variable_layout(variable)
        axes = tuple(getattr(layout, "axes", None) or ())
        return PartitionSpec(*axes) if any(a is not None for a in axes) else PartitionSpec()

    def padded_rows(self, rows: int, spec: PartitionSpec) -> int:
        """``rows`` rounded up to a multiple of the shards of the first axis."""
        if self.mesh is None or not len(spec) or spec[0] is None:
            return rows
        axes = spec[0] if isinstance(spec[0], tuple) else (spec[0],)
        shards = math.prod(int(self.mesh.shape[a]) for a in axes)
        return -(-rows // shards) * shards

    def put(self, value, spec: PartitionSpec = PartitionSpec(), rows: int | None = None):
        """``value`` on the mesh with partition ``spec``, its first axis padded with zeros to ``rows``."""
        value = np.asarray(value)
        if rows is not None and rows > value.shape[0]:
            value = np.concatenate([value, np.zeros((rows - value.shape[0], *value.shape[1:]), value.dtype)])
        if self.mesh is None:
            return jax.device_put(value)  # a transfer (jnp.asarray compiles a copy program per shape)
        sharding = NamedSharding(self.mesh, spec)
        return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])

    def put_variable(self, variable):
        """A Keras variable's value on the mesh, split as its layout says where its shape divides evenly (no
        padding: scoring reads whole tables), else replicated."""
        spec = self.spec(variable)
        if self.padded_rows(int(variable.shape[0]) if len(variable.shape) else 0, spec) != \
                (int(variable.shape[0]) if len(variable.shape) else 0):
            spec = PartitionSpec()
        return self.put(np.asarray(variable.value), spec)

    def put_batch(self, value):
        """A batch-leading host array split over the batch axis (replicated when its length does not divide)."""
        value = np.asarray(value)
        if self.mesh is None or value.shape[0] % self.batch_shards:
            return self.put(value)
        return self.put(value, PartitionSpec(self.batch_axis))

    def split_batch(self, x):
        """Inside a compiled step: split a batch-leading array over the batch axis."""
        if self.mesh is None:
            return x
        return jax.lax.with_sharding_constraint(x, NamedSharding(self.mesh, PartitionSpec(self.batch_axis)))

    def to_host(self, x) -> np.ndarray:
        """A full host copy of ``x``, gathered from every process when the mesh spans several."""
        if jax.process_count() > 1 and not x.is_fully_addressable:
            from jax.experimental import multihost_utils

            return np.array(multihost_utils.process_allgather(x, tiled=True))
        return np.array(x)

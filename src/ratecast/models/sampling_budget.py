"""How large a Gibbs-sampled fit (model ``bayesian``) may be: its memory and time estimated before anything is
sampled, against a budget, and the chains, samples and stored tables sized to fit.

The budgets:

* ``memory_budget`` (GB): the option, else :data:`DEFAULT_MEMORY_GB` (sized for a 24 GB, 2-core machine: the rest
  of a ``ratecast train`` run, its evaluation and saving, fits beside it); never more than :data:`SAFETY` of the
  memory available when the fit starts (Linux' MemAvailable).
* ``time_budget`` (seconds of sampling): the option, else :data:`DEFAULT_SECONDS`.

What they size, where the options leave it open (an option given is kept as given):

* ``stored_samples``, the posterior samples whose factors the tables keep (each adds ``embedding_dim`` columns per
  user and item row; the biases and the rest average over every sample): every sample, as long as the tables take at
  most :data:`TABLE_SHARE` of the memory budget option (or of the default: never of the memory a machine happens to
  have, so a saved model rebuilds with the same tables anywhere);
* ``chains`` and ``samples``: up to :data:`DEFAULT_CHAINS` chains of :data:`DEFAULT_SAMPLES` samples, fewer where
  the time budget asks (chains first, down to those that run at once, then samples, down to
  :data:`MIN_SAMPLES`), never fewer samples in all than the tables store;
* how many chains run side by side: one per core, as far as memory allows.

The estimates (:func:`chain_bytes`, :func:`shared_bytes`, :func:`sweep_seconds`) count what a sweep holds and does
per rating, per vocabulary row (each row's K x K normal equations) and per extra feature, with constants measured
on this project's sweeps (two loaded x86 cores, rank 16, ML-25M's vocabulary: 1 M ratings 5 s a sweep and 3.6 GB
at the peak of the whole fit, 5 M ratings 9 s and 5.5 GB) and rounded up: estimates, not bounds. A fit whose plan
cannot stay inside the memory budget is refused in one line (:class:`~ratecast.errors.TrainingError`, exit code 1)
naming the options to change and the numbers, before it starts.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from .. import memory
from ..errors import TrainingError

DEFAULT_MEMORY_GB = 16.0
SAFETY = 0.8  # the share of the available memory a fit may plan to use
DEFAULT_SECONDS = 1800.0
TABLE_SHARE = 1 / 16  # the share of the memory budget the stored tables may take by default
USERS_PER_ITEM = 2  # users counted per item where the stored samples are sized (ML-25M: 2.75, ML-100k: 0.56)
DEFAULT_CHAINS, DEFAULT_SAMPLES, MIN_SAMPLES = 8, 50, 10
# bytes a running chain holds per rating and column of K (the sweep's intermediates and its copy of the data), per
# vocabulary row and entry of a K x K matrix (the normal equations, their factors and temporaries), per extra
# feature and column of K
BYTES_PER_RATING_COLUMN, BYTES_PER_ROW_ENTRY, BYTES_PER_FEATURE_COLUMN = 20, 36, 64
# bytes held once per rating whatever the chains (the host's index arrays, lists and the day slots)
BYTES_PER_RATING = 150
# copies of the stored tables at their peak: the chains' kept samples, the tables being filled and the network's
# weights; fold-in's prior holds the users' rows once more in float64 (counted as 4 float32 copies of the user side)
TABLE_COPIES, FOLD_IN_USER_COPIES = 3, 4
# seconds one sweep of one chain takes on one core: per rating and entry of K x K (each owner's normal equations),
# per conjugate-gradient step and entry of the features' matrix times K, per vocabulary row or feature and entry of
# K^3 (the factorisations), and once per fit (the compilation)
SECONDS_PER_RATING_ENTRY, SECONDS_PER_SOLVER_ENTRY, SECONDS_PER_ROW_CUBE, COMPILE_SECONDS = 3.5e-9, 3e-10, 1.8e-9, 30.0
CONTENTION = 1.3  # chains side by side share the memory bus: each sweep takes this much longer


@dataclass(frozen=True)
class Shape:
    """What a sampler's cost depends on: ratings, vocabulary rows (index 0 included), extra features and their
    entries (both sides), the rank."""

    n_ratings: int
    n_users: int
    n_items: int
    n_features: int
    rank: int
    n_entries: int = 0


@dataclass(frozen=True)
class Plan:
    """The chains and samples a fit runs, the samples its tables store, how many chains run at once, and its
    estimates (bytes at the peak, seconds of sampling) against the budgets."""

    chains: int
    samples: int
    stored: int
    concurrent: int
    memory_bytes: int
    memory_budget: int
    seconds: float
    time_budget: float

    def options(self, rank: int) -> str:
        """The options that size the fit, as one would set them."""
        return (f"embedding_dim={rank}, chains={self.chains} ({self.concurrent} at once), samples={self.samples}, "
                f"stored_samples={self.stored}")


def cores() -> int:
    """CPU cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def nominal_memory(option_gb: float | None) -> int:
    """The memory budget in bytes before the machine is looked at: the option, else the default."""
    return int((DEFAULT_MEMORY_GB if option_gb is None else float(option_gb)) * 1e9)


def memory_budget(option_gb: float | None) -> int:
    """The memory budget in bytes: :func:`nominal_memory`, at most :data:`SAFETY` of the memory available."""
    budget = nominal_memory(option_gb)
    available = memory.available_memory()
    return budget if available is None else min(budget, int(SAFETY * available))


def table_bytes(n_users: int, n_items: int, rank: int, stored: int, fold_in: bool = True) -> int:
    """Bytes the stored factor tables take at their peak: :data:`TABLE_COPIES` float32 copies of both sides, and
    (``fold_in``) fold-in's prior over the users' rows, made later, when the first user is folded in."""
    per_copy = 4 * (n_users + n_items) * rank * stored
    return int(TABLE_COPIES * per_copy + fold_in * FOLD_IN_USER_COPIES * 4 * n_users * rank * stored)


def stored_samples(n_items: int, rank: int, total: int, stored: int | None, memory_gb: float | None) -> int:
    """The samples the tables keep: ``stored`` where given (at most ``total``), else as many of the ``total`` as
    fit in :data:`TABLE_SHARE` of the nominal memory budget (at least one), the users counted as
    :data:`USERS_PER_ITEM` per item: from the items alone, which a fitted model never gains (fold-in adds users), so
    that its tables keep their width."""
    if stored is not None:
        return max(1, min(int(stored), int(total)))
    users = USERS_PER_ITEM * n_items
    fits = int(TABLE_SHARE * nominal_memory(memory_gb) // max(table_bytes(users, n_items, rank, 1), 1))
    return max(1, min(int(total), fits))


def chain_bytes(shape: Shape) -> int:
    """Bytes one running chain holds: its sweep's intermediates, its copy of the data and its state."""
    K = shape.rank + 1
    rows = shape.n_users + shape.n_items
    return int(BYTES_PER_RATING_COLUMN * shape.n_ratings * K + BYTES_PER_ROW_ENTRY * rows * K * K
               + BYTES_PER_FEATURE_COLUMN * shape.n_features * K)


def shared_bytes(shape: Shape, stored: int) -> int:
    """Bytes held whatever the chains running at once: the ratings' host arrays and the stored tables."""
    return int(BYTES_PER_RATING * shape.n_ratings
               + table_bytes(shape.n_users, shape.n_items, shape.rank, stored, fold_in=False))


def sweep_seconds(shape: Shape) -> float:
    """Seconds one sweep of one chain takes on one core (an estimate)."""
    from .gibbs import CG_MAX_STEPS

    K = shape.rank + 1
    rows = shape.n_users + shape.n_items
    return (SECONDS_PER_RATING_ENTRY * shape.n_ratings * K * K
            + SECONDS_PER_SOLVER_ENTRY * CG_MAX_STEPS * (shape.n_entries * K + rows * K * K)
            + SECONDS_PER_ROW_CUBE * (rows + shape.n_features) * K ** 3)


def sampling_seconds(shape: Shape, chains: int, samples: int, burn_in: int, concurrent: int) -> float:
    """Seconds of sampling: the chains in rounds of ``concurrent`` side by side, each of ``burn_in + samples``
    sweeps."""
    rounds = math.ceil(chains / concurrent)
    slowdown = CONTENTION if concurrent > 1 else 1.0
    return COMPILE_SECONDS + rounds * (burn_in + samples) * sweep_seconds(shape) * slowdown


def plan(shape: Shape, *, chains: int | None, samples: int | None, burn_in: int, stored: int,
         memory_gb: float | None = None, seconds: float | None = None, n_cores: int | None = None) -> Plan:
    """The fit's chains and samples inside the budgets (``memory_gb``, ``seconds`` of sampling; None: the
    defaults); ``chains`` or ``samples`` None: chosen (see the module docstring); ``stored``: the samples the
    tables keep (fixed when the model was built). Raises :class:`~ratecast.errors.TrainingError` in one line where
    even one chain at a time does not fit the memory budget."""
    budget = memory_budget(memory_gb)
    time_limit = DEFAULT_SECONDS if seconds is None else float(seconds)
    n_cores = cores() if n_cores is None else max(1, int(n_cores))
    n_chains = DEFAULT_CHAINS if chains is None else int(chains)
    per_chain, shared = chain_bytes(shape), shared_bytes(shape, stored)
    room = (budget - shared) // max(per_chain, 1)
    concurrent = int(max(0, min(n_chains, n_cores, room)))
    n_samples = DEFAULT_SAMPLES if samples is None else int(samples)
    if concurrent < 1:
        needed = shared + per_chain
        source = "the default" if memory_gb is None else "memory_budget"
        available = memory.available_memory()
        where = "" if available is None else f", {memory.readable(available)} available"
        raise TrainingError(
            f"sampling 'bayesian' on {shape.n_ratings:,} ratings ({shape.n_users - 1:,} users, "
            f"{shape.n_items - 1:,} items) with embedding_dim={shape.rank}, stored_samples={stored} needs about "
            f"{memory.readable(needed)} of memory (one chain {memory.readable(per_chain)}, stored tables and data "
            f"{memory.readable(shared)}), more than its budget of {memory.readable(budget)} ({source}{where}); "
            f"raise memory_budget (GB), lower embedding_dim or stored_samples, or sample on a machine with more "
            f"memory")

    def cost(c: int, s: int) -> float:
        return sampling_seconds(shape, c, s, burn_in, min(concurrent, c))

    if chains is None:  # chains first, down to those that run at once
        while n_chains > concurrent and cost(n_chains, n_samples) > time_limit:
            n_chains -= 1
    if samples is None:  # then samples, never below the floor nor below what the tables store
        floor = max(MIN_SAMPLES, math.ceil(stored / n_chains))
        while n_samples > floor and cost(n_chains, n_samples) > time_limit:
            n_samples -= 1
        n_samples = max(n_samples, math.ceil(stored / n_chains))
    elif n_chains * n_samples < stored:  # chains were lowered under samples given: as many as the tables store
        n_chains = math.ceil(stored / n_samples)
    concurrent = min(concurrent, n_chains)
    return Plan(chains=n_chains, samples=n_samples, stored=stored, concurrent=concurrent,
                memory_bytes=int(shared + concurrent * per_chain), memory_budget=int(budget),
                seconds=cost(n_chains, n_samples), time_budget=time_limit)

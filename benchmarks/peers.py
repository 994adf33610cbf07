"""Rating predictors that users compare ratecast with, fitted on a ratecast split (benchmarks only).

Each peer is a function ``(train, test, seed) -> predictions for test`` (numpy, test order), imported lazily so the
benchmarks run without the optional ``peers`` extra (``pip install -e '.[peers]'``): :func:`available` says which
are installed and why the others are skipped.

* ``surprise_svd``, ``surprise_svdpp``: Surprise's SVD and SVD++ with their default settings.
* ``myfm_bmf``: myFM's Bayesian factorisation machine on user and item one-hots (Bayesian MF), rank 10.
* ``myfm_flipped``: myFM's "timeSVD++ flipped" (Rendle et al. 2019): the date as a category, each user with the
  items they rated and each item with the users who rated it (implicit sets from train only, normalised by the
  square root of their size), one prior per feature group, rank 10, as relation blocks.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from typing import Callable

import numpy as np
import pandas as pd
import scipy.sparse as sp

SAMPLES = 200  # Gibbs iterations kept for the myFM peers (all of them after the first 5)


@contextlib.contextmanager
def _no_stdout():
    """Send file descriptor 1 to /dev/null for the block: myFM's progress bar holds its own handle on stdout, and the
    benchmarks print one JSON line there."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _quiet(*_):
    """A myFM callback that only replaces its progress bar (never stops early)."""
    return False, None


def available() -> dict[str, str | None]:
    """For each peer: None when it can run, else why it is skipped."""
    missing = {pkg: importlib.util.find_spec(pkg) is None for pkg in ("surprise", "myfm")}
    why = {pkg: f"{pkg} is not installed: pip install -e '.[peers]'" for pkg, gone in missing.items() if gone}
    return {"surprise_svd": why.get("surprise"), "surprise_svdpp": why.get("surprise"),
            "myfm_bmf": why.get("myfm"), "myfm_flipped": why.get("myfm")}


def _surprise(algo_name: str) -> Callable:
    def fit_predict(train, test, seed: int) -> np.ndarray:
        import surprise

        tr, te = train.ratings, test.ratings
        scale = (float(tr["rating"].min()), float(tr["rating"].max()))
        data = surprise.Dataset.load_from_df(tr[["user_id", "item_id", "rating"]], surprise.Reader(rating_scale=scale))
        algo = getattr(surprise, algo_name)(random_state=seed)
        algo.fit(data.build_full_trainset())
        return np.array([algo.predict(u, i).est for u, i in zip(te["user_id"], te["item_id"])])

    return fit_predict


def _codes(train_ids: pd.Series, ids: pd.Series) -> tuple[np.ndarray, int]:
    """1-based codes of ``ids`` in the training vocabulary (0 = unknown) and the vocabulary size + 1."""
    vocab = pd.Index(pd.unique(train_ids))
    return vocab.get_indexer(ids) + 1, len(vocab) + 1


def _one_hot(codes: np.ndarray, width: int) -> sp.csr_matrix:
    return sp.csr_matrix((np.ones(len(codes)), (np.arange(len(codes)), codes)), shape=(len(codes), width))


def _implicit(owner: np.ndarray, member: np.ndarray, n_owner: int, n_member: int) -> sp.csr_matrix:
    """Row per owner: its members at 1/sqrt(count)."""
    m = sp.csr_matrix((np.ones(len(owner)), (owner, member)), shape=(n_owner, n_member))
    m.data[:] = 1.0
    count = np.asarray(m.sum(axis=1)).ravel()
    return sp.diags(1.0 / np.sqrt(np.maximum(count, 1))) @ m


def myfm_bmf(train, test, seed: int) -> np.ndarray:
    import myfm

    tr, te = train.ratings, test.ratings
    u_tr, n_u = _codes(tr["user_id"], tr["user_id"])
    i_tr, n_i = _codes(tr["item_id"], tr["item_id"])
    u_te, _ = _codes(tr["user_id"], te["user_id"])
    i_te, _ = _codes(tr["item_id"], te["item_id"])
    X_tr = sp.hstack([_one_hot(u_tr, n_u), _one_hot(i_tr, n_i)], format="csr")
    X_te = sp.hstack([_one_hot(u_te, n_u), _one_hot(i_te, n_i)], format="csr")
    fm = myfm.MyFMRegressor(rank=10, random_seed=seed)
    with _no_stdout():
        fm.fit(X_tr, tr["rating"].to_numpy(float), n_iter=SAMPLES + 5, n_kept_samples=SAMPLES,
               group_shapes=[n_u, n_i], callback=_quiet)
    return fm.predict(X_te)


def myfm_flipped(train, test, seed: int) -> np.ndarray:
    import myfm
    from myfm import RelationBlock

    tr, te = train.ratings, test.ratings
    u_tr, n_u = _codes(tr["user_id"], tr["user_id"])
    i_tr, n_i = _codes(tr["item_id"], tr["item_id"])
    users = np.arange(n_u)
    items = np.arange(n_i)
    # one row per user: [user one-hot | the items they rated]; per item: [item one-hot | the users who rated it]
    user_rows = sp.hstack([_one_hot(users, n_u), _implicit(u_tr, i_tr, n_u, n_i)], format="csr")
    item_rows = sp.hstack([_one_hot(items, n_i), _implicit(i_tr, u_tr, n_i, n_u)], format="csr")
    dates_tr = pd.to_datetime(tr["timestamp"], unit="s").dt.normalize()
    _, n_d = _codes(dates_tr, dates_tr)

    def blocks(frame):
        u, _ = _codes(tr["user_id"], frame["user_id"])
        i, _ = _codes(tr["item_id"], frame["item_id"])
        d, _ = _codes(dates_tr, pd.to_datetime(frame["timestamp"], unit="s").dt.normalize())
        return _one_hot(d, n_d), [RelationBlock(u, user_rows), RelationBlock(i, item_rows)]

    X_tr, rel_tr = blocks(tr)
    X_te, rel_te = blocks(te)
    fm = myfm.MyFMRegressor(rank=10, random_seed=seed)
    with _no_stdout():
        fm.fit(X_tr, tr["rating"].to_numpy(float), X_rel=rel_tr, n_iter=SAMPLES + 5, n_kept_samples=SAMPLES,
               group_shapes=[n_d, n_u, n_i, n_i, n_u], callback=_quiet)
    return fm.predict(X_te, X_rel=rel_te)


PEERS: dict[str, Callable] = {"surprise_svd": _surprise("SVD"), "surprise_svdpp": _surprise("SVDpp"),
                              "myfm_bmf": myfm_bmf, "myfm_flipped": myfm_flipped}

"""Explanations of a user's score for an item, faithful to the fold-in that solves the user's rows.

* Models solved in closed form (``fold_in_design``: dot, biased_dot, baseline, implicit's rating head, bayesian):
  the user's rows are ``theta = m + sum_j alpha_j S x_j`` over their rated items ``j`` (:func:`ratecast.foldin.ridge`),
  so the rating (before clipping) is exactly ``offset_i + m . x_i + sum_j alpha_j (S x_j) . x_i``: each rated item
  contributes ``alpha_j (S x_j) . x_i``, the prior (the mean trained user) contributes ``m . x_i``, and ``offset_i``
  (the mean, the item's bias and, for implicit, the user's implicit part) is the part no row explains. With user
  metadata (``bayesian``) the prior's mean moves with it, and each metadata group gets its share of ``m . x_i``;
  for a model of several averaged fits (``bayesian``'s samples) each share is the fits' mean. The contributions plus
  ``offset`` sum to ``score``.
* Any other model (deep, hybrid, classification): leave-one-out. A rated item contributes the drop of the ranking
  key when the user is folded in without it; a user metadata group (hybrid: age, gender, occupation) contributes the
  drop when its columns take the unknown user's values (a group that holds them already, as for a user who gave
  none, has no row). ``offset`` is then what these do not add up to.

``score`` is the rating (closed form) or ranking key (leave-one-out) of the user as fold-in solves them from their
current ratings: a folded-in user's own score; a trained user's fold-in re-solve of it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import foldin

#: the ``feature`` of the row that holds the prior's share (closed form: the mean trained user's part of the score)
PRIOR = "prior (the mean user)"


def explain(s, u: int, targets: np.ndarray, items: np.ndarray, ratings: np.ndarray, k: int, noise
            ) -> list[pd.DataFrame]:
    """For each item index of ``targets``, the ``k`` largest contributions to user index ``u``'s score for it in
    state ``s`` (see the module docstring); ``items``/``ratings``: the user's ratings (item indices); ``noise()``:
    the model's noise variance (for its fold-in prior). The user is solved once for all ``targets``."""
    m = s.model
    prior = foldin.prior_of(s, noise)
    users = foldin.Users([None], np.array([u]), np.array([True]), [items], [ratings], [items], [ratings])
    padded, y, mask = users.padded()
    given = foldin.table_rows(m, users)
    tables = {}
    for name, table in m.user_tables().items():  # the rows a fold-in would give the user, else the ones they have
        row = given[name][1][0] if name in given else np.asarray(s.value(table))[u]
        tables[name] = np.repeat(row[None], padded.shape[0], axis=0)
    design = m.fold_in_design(padded, tables)
    features = None
    if m.user_feature_table is not None:
        features = np.repeat(np.asarray(s.value(m.user_feature_table))[u:u + 1], padded.shape[0], axis=0)
    if design is None:
        return [_frame(rows, score, score - sum(v for _, _, v in rows), "leave one out", k)
                for score, rows in _leave_one_out(s, u, targets, items, ratings, prior)]
    X, offset = design
    means = prior.means(features, padded.shape[0])
    fit = foldin.block_ridge(X, offset, y, mask, prior, means, *foldin.block_layout(m))
    rated = list(zip(s.item_index.raw(items), [f"rated {r:g}" for r in ratings]))
    groups = _groups(s, features[0]) if features is not None and prior.feature_weights is not None else []
    frames = []
    for i in targets:
        xi, off_i = m.fold_in_design(np.full((padded.shape[0], 1), i, "int32"), tables)
        per_item, prior_part = fit.contributions(np.asarray(xi[:, 0], "float64"))
        x = np.asarray(xi[0, 0], "float64")
        shifts = []  # the metadata's shift of the prior
        for label, at in groups:
            delta = np.where(at, features[0] - prior.feature_mean, 0.0)
            shifts.append((None, label, fit.mean_share(delta @ prior.feature_weights, x)))
        rows = [(raw, label, value) for (raw, label), value in zip(rated, per_item[0, :len(items)].tolist())]
        rows.append((None, PRIOR, float(prior_part[0]) - sum(v for _, _, v in shifts)))
        rows += shifts
        offset_i = float(off_i[0, 0])
        frames.append(_frame(rows, float(offset_i + x @ fit.theta[0]), offset_i, "closed form", k))
    return frames


def _frame(rows: list[tuple], score: float, offset: float, method: str, k: int) -> pd.DataFrame:
    """The ``k`` largest of ``rows`` (item id or None, feature, contribution), largest first, with ``attrs``."""
    frame = pd.DataFrame({"item_id": pd.Series([r[0] for r in rows], dtype=object),
                          "feature": [r[1] for r in rows],
                          "contribution": np.asarray([r[2] for r in rows], "float64")})
    frame = frame.sort_values("contribution", ascending=False, kind="stable").head(k).reset_index(drop=True)
    frame.attrs.update({"score": score, "offset": offset, "base": score - float(frame["contribution"].sum()),
                        "method": method})
    return frame


def _leave_one_out(s, u: int, targets: np.ndarray, items: np.ndarray, ratings: np.ndarray, prior
                   ) -> list[tuple[float, list[tuple]]]:
    """For each target item: (score, [(item id or None, label, contribution)]) by leave-one-out re-solves (one
    batch of solves, shared by the targets)."""
    m = s.model
    n = len(items)
    # user 0: every rating; user 1 + j: all but rating j (one batch, one solve)
    variants = [np.arange(n)] + [np.delete(np.arange(n), j) for j in range(n)]
    users = foldin.Users([None] * len(variants), np.full(len(variants), u), np.ones(len(variants), bool),
                         [items[v] for v in variants], [ratings[v] for v in variants],
                         [items] * len(variants), [ratings] * len(variants))
    padded, y, mask = users.padded()
    U = padded.shape[0]
    rows = np.full(U, u)
    overlay = dict(s.user_values or {})
    features = None
    names: list[tuple[str, np.ndarray]] = []
    if m.user_feature_table is not None:
        table = np.asarray(s.value(m.user_feature_table))
        features = np.repeat(table[u:u + 1], U, axis=0).astype("float32")
        fill = table[0]  # the unknown user's values: a group that holds them adds nothing (a user who gave none)
        names = [(label, at) for label, at in _groups(s, table[u]) if not np.array_equal(table[u][at], fill[at])]
    theta = foldin.gradient_solve(s, overlay, rows, padded, y, mask, prior, features)
    T = len(targets)
    wide = np.full(foldin.bucket(T), targets[0], "int32")  # padded to a bucket: few compiled shapes
    wide[:T] = targets
    scores = foldin.gradient_scores(s, overlay, theta, rows, np.repeat(wide[None], U, axis=0), features)[:, :T]
    full = scores[0]
    raw = s.item_index.raw(items)
    out = [[(raw[j], f"rated {ratings[j]:g}", full - scores[1 + j]) for j in range(n)]]
    if names:
        G = foldin.bucket(len(names))
        swapped = np.repeat(features[:1], G, axis=0)
        for g, (_, at) in enumerate(names):
            swapped[g, at] = fill[at]
        alt = foldin.gradient_scores(s, overlay, np.repeat(theta[:1], G, axis=0), np.full(G, u),
                                     np.repeat(wide[None], G, axis=0), swapped)[:, :T]
        out.append([(None, label, full - alt[g]) for g, (label, _) in enumerate(names)])
    return [(float(full[t]), [(i, label, float(v[t])) for part in out for i, label, v in part]) for t in range(T)]


def _groups(s, row: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """The user metadata groups (age, gender, occupation) of a feature row: (label, their columns), the label
    naming the user's values (e.g. ``gender:F``)."""
    if s.encoder is None:
        return []
    cols = s.encoder.user_feature_names()
    out = []
    for group in dict.fromkeys(c.split(":")[0] for c in cols):
        at = np.array([c.split(":")[0] == group for c in cols])
        active = [c for c, a, v in zip(cols, at, row) if a and v != 0]
        out.append((", ".join(active) or group, at))
    return out

"""Evaluation of recommenders as served: rating errors and whole-catalogue lists per test user, summaries with
bootstrap intervals over users, breakdowns by user group and item popularity, and paired comparisons.

* :func:`evaluate` -> :class:`Evaluation` (``summary``, ``per_user``, ``bands``, ``groups``/``gaps``);
* :func:`compare`: paired differences, intervals and Holm-corrected tests between recommenders or evaluations;
* :func:`score_lists`: the vectorised engine on arrays of lists; :func:`liked_threshold`: what counts as relevant.
"""

from .compare import compare, holm
from .core import Evaluation, evaluate, fold_in_users, liked_threshold, score_lists, served_lists
from .figures import METRICS

__all__ = ["evaluate", "compare", "Evaluation", "score_lists", "liked_threshold", "fold_in_users", "served_lists",
           "holm", "METRICS"]

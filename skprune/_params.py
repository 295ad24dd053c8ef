"""The pruning parameters' constraints and defaults, shared by estimators and callback.

:class:`skprune.PrunedClassifier` and :class:`skprune.callbacks.Pruning` take the
same pruning parameters by the same names; this table says once what each
accepts, in scikit-learn's ``_parameter_constraints`` form, so that both raise
scikit-learn's ``InvalidParameterError`` (a ``ValueError``) with the same words.
"""

from __future__ import annotations

from numbers import Integral, Real

from sklearn.utils._param_validation import Interval, StrOptions

from .granularity import GRANULARITIES
from .importance import IMPORTANCE_CRITERIA
from .schedules import SCHEDULES

__all__ = ["PRUNING_PARAMETER_CONSTRAINTS", "SCOPES", "default_retrain_epochs"]

SCOPES = ("global", "layer")

#: Constraints of the pruning parameters the estimators and the callback share.
#: ``random_state`` differs (an estimator's seed or generator, the callback's int
#: seed) and each adds its own.
PRUNING_PARAMETER_CONSTRAINTS: dict = {
    "prune_ratio": [Interval(Real, 0.0, 1.0, closed="left")],
    "importance": [StrOptions(set(IMPORTANCE_CRITERIA)), callable],
    "granularity": [StrOptions(set(GRANULARITIES))],
    "scope": [StrOptions(set(SCOPES))],
    "schedule": [StrOptions(set(SCHEDULES))],
    "n_rounds": [Interval(Integral, 1, None, closed="left")],
    "retrain_epochs": [Interval(Integral, 0, None, closed="left"), None],
    "retrain_lr_factor": [Interval(Real, 0.0, None, closed="neither")],
    "rewind": ["boolean"],
    "rewind_epoch": [Interval(Integral, 0, None, closed="left")],
    "min_keep": [
        Interval(Integral, 0, None, closed="left"),
        Interval(Real, 0.0, 1.0, closed="neither"),
    ],
    "prune_output": ["boolean"],
    "prune_bias": ["boolean"],
    "layers": [list, tuple, None],
}


def default_retrain_epochs(train_epochs: int) -> int:
    """Epochs of retraining per round when none are given: two thirds of the
    dense training, at least one.

    Parameters
    ----------
    train_epochs : int
        Epochs of dense training before the first pruning step.

    Returns
    -------
    retrain_epochs : int

    Examples
    --------
    >>> default_retrain_epochs(6), default_retrain_epochs(1)
    (4, 1)
    """
    return max(1, (2 * train_epochs) // 3)

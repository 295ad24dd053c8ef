"""The pruning parameters, declared once: name, default, constraint, one line of doc.

:class:`skprune.PrunedClassifier`, :class:`skprune.PrunedRegressor`,
:class:`skprune.PrunedClassifierCV` and the :class:`skprune.callbacks.Pruning`
callback take these parameters by the same names and defaults. scikit-learn
needs each ``__init__`` to spell its parameters out, so the signatures repeat
the names; ``tests/test_params.py`` checks every signature, constraint table and
docstring entry against :data:`PRUNING_PARAMETERS`. The estimators hand the
values on to the callback by these names (:func:`pruning_params`), never by
comparing signatures.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral, Real

from ._compat import Interval, StrOptions
from ._core.granularity import DEFAULT_BLOCK_SIZE, GRANULARITIES
from ._core.importance import IMPORTANCE_CRITERIA
from ._core.schedules import SCHEDULES

__all__ = [
    "PATH_SETS",
    "PRUNING_PARAMETERS",
    "PRUNING_PARAMETER_CONSTRAINTS",
    "SCOPES",
    "check_rewind_epoch",
    "PruningParameter",
    "default_path_retrain_epochs",
    "default_retrain_epochs",
    "pruning_params",
]

SCOPES = ("global", "layer")


@dataclass(frozen=True)
class PruningParameter:
    """One pruning parameter as every class that takes it declares it.

    ``type`` and ``default`` make the numpydoc header ``name : type,
    default=...``; ``doc`` is the first sentence of every docstring entry.
    """

    name: str
    default: object
    constraints: tuple
    type: str
    doc: str

    @property
    def header(self) -> str:
        """The numpydoc line that names the parameter, its type and default."""
        default = f'"{self.default}"' if isinstance(self.default, str) else self.default
        return f"{self.name} : {self.type}, default={default}"


PRUNING_PARAMETERS: tuple[PruningParameter, ...] = (
    PruningParameter(
        "prune_ratio",
        0.5,
        (Interval(Real, 0.0, 1.0, closed="left"),),
        "float in [0, 1)",
        "Fraction pruned in the end: of the prunable weights for "
        '``granularity="weight"``, of their blocks for ``"block"``, of the hidden '
        'units for ``"neuron"``, of the input features for ``"feature"``.',
    ),
    PruningParameter(
        "importance",
        "magnitude",
        (StrOptions(set(IMPORTANCE_CRITERIA)), callable),
        '{"magnitude", "taylor", "random"} or callable',
        "How weights are ranked.",
    ),
    PruningParameter(
        "granularity",
        "weight",
        (StrOptions(set(GRANULARITIES)),),
        '{"weight", "block", "neuron", "feature"}',
        "What is removed: single weights, blocks of ``block_size`` weights, whole "
        "hidden units, or whole input features.",
    ),
    PruningParameter(
        "block_size",
        DEFAULT_BLOCK_SIZE,
        (Interval(Integral, 1, None, closed="left"),),
        "int",
        'Consecutive outputs of one input per block of ``granularity="block"``; '
        "unused otherwise.",
    ),
    PruningParameter(
        "scope",
        "global",
        (StrOptions(set(SCOPES)),),
        '{"global", "layer"}',
        "One ranking across all prunable layers, or ``prune_ratio`` in each layer.",
    ),
    PruningParameter(
        "schedule",
        "oneshot",
        (StrOptions(set(SCHEDULES)),),
        '{"oneshot", "iterative", "gradual"}',
        "When to prune.",
    ),
    PruningParameter(
        "n_rounds",
        1,
        (Interval(Integral, 1, None, closed="left"),),
        "int",
        'Rounds of ``"iterative"``, steps of ``"gradual"``.',
    ),
    PruningParameter(
        "retrain_epochs",
        None,
        (Interval(Integral, 0, None, closed="left"), None),
        "int or None",
        "Epochs of retraining after each round.",
    ),
    PruningParameter(
        "retrain_lr_factor",
        1.0,
        (Interval(Real, 0.0, None, closed="neither"),),
        "float",
        "Learning rate during retraining, as a multiple of the initial one.",
    ),
    PruningParameter(
        "rewind",
        False,
        ("boolean",),
        "bool",
        "Reset surviving weights to their values after ``rewind_epoch`` epochs "
        "after each pruning step (lottery-ticket rewinding).",
    ),
    PruningParameter(
        "rewind_epoch",
        0,
        (Interval(Integral, 0, None, closed="left"),),
        "int",
        "Epoch whose weights ``rewind`` restores; 0 is the initialisation.",
    ),
    PruningParameter(
        "min_keep",
        1,
        (
            Interval(Integral, 0, None, closed="left"),
            Interval(Real, 0.0, 1.0, closed="neither"),
        ),
        "int or float",
        "Floor per layer: a count, or a fraction in (0, 1), of its weights "
        "(blocks, units, features) that always survives.",
    ),
    PruningParameter(
        "prune_output",
        False,
        ("boolean",),
        "bool",
        "Whether the output layer's weights are prunable.",
    ),
    PruningParameter(
        "prune_bias",
        False,
        ("boolean",),
        "bool",
        'Whether biases are prunable (``granularity="weight"`` only).',
    ),
    PruningParameter(
        "layers",
        None,
        (list, tuple, None),
        "list of str or None",
        "``fnmatch`` patterns of the weight names to prune, for example "
        '``["layers.0.weight"]``; None means every layer but the output layer.',
    ),
    PruningParameter(
        "random_state",
        None,
        ("random_state",),
        "int, RandomState instance or None",
        'Seeds what pruning draws at random (``importance="random"``).',
    ),
)

#: The parameters the search's path sets itself, one step per ratio.
PATH_SETS = ("prune_ratio", "schedule", "n_rounds")

#: ``_parameter_constraints`` entries of the pruning parameters.
PRUNING_PARAMETER_CONSTRAINTS: dict = {
    parameter.name: list(parameter.constraints) for parameter in PRUNING_PARAMETERS
}


def pruning_params(owner, exclude=()) -> dict:
    """The pruning parameters of ``owner`` (an estimator or callback), by name."""
    return {
        parameter.name: getattr(owner, parameter.name)
        for parameter in PRUNING_PARAMETERS
        if parameter.name not in exclude
    }


def check_rewind_epoch(rewind_epoch: int, train_epochs: int) -> None:
    """Refuse a ``rewind_epoch`` past the dense training, whose weights would
    not exist when the first pruning step rewinds to them."""
    if rewind_epoch > train_epochs:
        raise ValueError(
            f"rewind_epoch must be in [0, train_epochs={train_epochs}], "
            f"got {rewind_epoch!r}."
        )


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
    >>> from skprune.callbacks import default_retrain_epochs
    >>> default_retrain_epochs(6), default_retrain_epochs(1)
    (4, 1)
    """
    return max(1, (2 * train_epochs) // 3)


def default_path_retrain_epochs(train_epochs: int) -> int:
    """Epochs of retraining per ratio of the search's path when none are given:
    a third of the dense training, at least one.

    Each step of the path removes a smaller share of what is left than one-shot
    pruning to the same ratio, and the retraining adds up along the path.

    Examples
    --------
    >>> default_path_retrain_epochs(6), default_path_retrain_epochs(2)
    (2, 1)
    """
    return max(1, train_epochs // 3)

"""When to prune: the steps of a pruning schedule and the epochs it takes.

Pure Python. A schedule turns a target ratio and an epoch budget into a list of
:class:`PruningStep`, each a position in the training (in epochs, possibly
fractional) and the fraction of prunable weights pruned once it is done.

- ``"oneshot"``: train ``train_epochs``, prune once, retrain ``retrain_epochs``.
- ``"iterative"``: train, then ``n_rounds`` times prune and retrain
  ``retrain_epochs``; each round removes the same fraction of what is left,
  ``1 - (1 - ratio) ** (k / n_rounds)`` after round ``k`` (Han et al. 2015,
  Frankle & Carbin 2019).
- ``"gradual"``: train, then raise the sparsity in ``n_rounds`` small steps on the
  cubic schedule of Zhu & Gupta (2017),
  ``s_k = s_f + (s_i - s_f) * (1 - k / n_rounds) ** 3`` with ``s_i = 0``,
  evenly spaced (fractional epochs allowed) over the first half of the
  remaining ``n_rounds * retrain_epochs`` epochs, and fine-tune in the second.

Every schedule with the same arguments takes ``total_epochs`` epochs whatever the
ratio, so that a ratio of 0 is an unpruned control trained for as long.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "SCHEDULES",
    "PruningStep",
    "is_due",
    "make_schedule",
    "non_finite_loss_message",
    "pending_step",
    "total_epochs",
    "training_phase",
]

SCHEDULES = ("oneshot", "iterative", "gradual")


@dataclass(frozen=True)
class PruningStep:
    """One pruning step.

    Attributes
    ----------
    epoch : float
        When to prune, in epochs of training done; 3.0 is the end of the third
        epoch, 3.5 the middle of the fourth.
    ratio : float
        Fraction of prunable weights (or units, or features) pruned after it.

    Examples
    --------
    >>> from skprune.schedules import make_schedule
    >>> make_schedule("gradual", 0.9, 6, 4, n_rounds=2)
    [PruningStep(epoch=8.0, ratio=0.7875), PruningStep(epoch=10.0, ratio=0.9)]
    """

    epoch: float
    ratio: float


# The schedule's cursor: ``taken`` steps of ``steps`` are done. -----------------


def pending_step(steps: list[PruningStep], taken: int) -> PruningStep | None:
    """The next step to take once ``taken`` steps are done; None after the last."""
    return steps[taken] if taken < len(steps) else None


def is_due(steps: list[PruningStep], taken: int, progress: float) -> bool:
    """Whether the next step is due after ``progress`` epochs of training."""
    step = pending_step(steps, taken)
    # A fractional epoch (taken mid-epoch) is a sum of batch fractions.
    return step is not None and step.epoch <= progress + 1e-9


def training_phase(taken: int, n_steps: int) -> str:
    """The phase of training once ``taken`` of ``n_steps`` steps are done."""
    if taken == 0:
        return "dense training"
    return f"retraining after pruning step {taken} of {n_steps}"


def non_finite_loss_message(value: float, epoch: int, phase: str) -> str:
    """Why training stops at a non-finite loss, and the likely fixes."""
    return (
        f"The training loss is not finite ({value}) at epoch {epoch}, during "
        f"{phase}. A module that returns logits (such as skprune.MLPModule) "
        "trained with NLLLoss, skorch's default criterion, needs "
        "criterion=torch.nn.CrossEntropyLoss; otherwise try a lower learning "
        "rate (lr)."
    )


def total_epochs(
    schedule: str, train_epochs: int, retrain_epochs: int, n_rounds: int = 1
) -> int:
    """Number of epochs a schedule trains for in all, pruned or not.

    Parameters
    ----------
    schedule : {"oneshot", "iterative", "gradual"}
    train_epochs : int
        Epochs of dense training before the first step.
    retrain_epochs : int
        Epochs of retraining after each round.
    n_rounds : int, default=1
        Number of pruning steps; ignored by ``"oneshot"``.

    Returns
    -------
    epochs : int
        ``train_epochs + retrain_epochs`` for ``"oneshot"``,
        ``train_epochs + n_rounds * retrain_epochs`` otherwise.

    Raises
    ------
    ValueError
        For an unknown schedule or an epoch count out of range.

    Examples
    --------
    >>> from skprune.schedules import SCHEDULES, total_epochs
    >>> SCHEDULES
    ('oneshot', 'iterative', 'gradual')
    >>> [total_epochs(schedule, 6, 4, n_rounds=3) for schedule in SCHEDULES]
    [10, 18, 18]
    >>> total_epochs("cosine", 6, 4)
    Traceback (most recent call last):
    ...
    ValueError: schedule must be one of ('oneshot', 'iterative', 'gradual'), \
got 'cosine'.
    """
    _check(schedule, train_epochs, retrain_epochs, n_rounds)
    rounds = 1 if schedule == "oneshot" else n_rounds
    return train_epochs + rounds * retrain_epochs


def make_schedule(
    schedule: str,
    ratio: float,
    train_epochs: int,
    retrain_epochs: int,
    n_rounds: int = 1,
) -> list[PruningStep]:
    """Pruning steps of a schedule.

    Parameters
    ----------
    schedule : {"oneshot", "iterative", "gradual"}
    ratio : float in [0, 1)
        Fraction pruned after the last step.
    train_epochs : int
        Epochs of dense training before the first step.
    retrain_epochs : int
        Epochs of retraining after each round (``"oneshot"``, ``"iterative"``);
        for ``"gradual"``, the budget after warm-up is ``n_rounds * retrain_epochs``.
    n_rounds : int, default=1
        Number of pruning steps; ignored by ``"oneshot"``.

    Returns
    -------
    steps : list of PruningStep
        In order of ``epoch``.

    Examples
    --------
    >>> from skprune.schedules import make_schedule
    >>> [round(s.ratio, 3) for s in make_schedule("iterative", 0.875, 2, 1, 3)]
    [0.5, 0.75, 0.875]
    """
    _check(schedule, train_epochs, retrain_epochs, n_rounds)
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"prune_ratio must be in [0, 1), got {ratio!r}.")
    if schedule == "oneshot":
        return [PruningStep(float(train_epochs), ratio)]
    if schedule == "iterative":
        positions = [float(train_epochs + k * retrain_epochs) for k in range(n_rounds)]
        ratios = [1.0 - (1.0 - ratio) ** (k / n_rounds) for k in range(1, n_rounds)]
    else:
        spacing = retrain_epochs / 2
        positions = [train_epochs + k * spacing for k in range(1, n_rounds + 1)]
        ratios = [ratio * (1.0 - (1.0 - k / n_rounds) ** 3) for k in range(1, n_rounds)]
    # The last step is the target itself, not a power of it that rounds off.
    return [
        PruningStep(epoch, r)
        for epoch, r in zip(positions, [*ratios, ratio], strict=True)
    ]


def _check(schedule: str, train_epochs: int, retrain_epochs: int, n_rounds: int):
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}.")
    if train_epochs < 1:
        raise ValueError(f"train_epochs must be at least 1, got {train_epochs}.")
    if retrain_epochs < 0:
        raise ValueError(f"retrain_epochs must be at least 0, got {retrain_epochs}.")
    if n_rounds < 1:
        raise ValueError(f"n_rounds must be at least 1, got {n_rounds}.")
    if schedule == "gradual" and retrain_epochs < 1:
        raise ValueError("schedule='gradual' needs retrain_epochs of at least 1.")

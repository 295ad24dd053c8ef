"""What a pruning run keeps between a training loop's hooks, in pure torch.

- :class:`ScheduleCursor`: where training is in the schedule: epochs done,
  steps taken, batches of the current epoch, and which step is due;
- :class:`RewindSnapshot`: the weights that rewinding restores, taken once at
  their epoch.

:class:`skprune.callbacks.Pruning` moves them at its skorch hooks; each can be
driven and tested by a plain training loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from .maskset import rewind_, take_snapshot
from .schedules import PruningStep, is_due, pending_step, training_phase

__all__ = ["RewindSnapshot", "ScheduleCursor"]


class ScheduleCursor:
    """Where training is in a pruning schedule.

    Parameters
    ----------
    steps : list of PruningStep
        The schedule's steps, in order; kept by reference.
    taken : int, default=0
        Steps taken so far.
    epochs_done : int, default=0
        Epochs of training finished.
    batches_in_epoch : int, default=0
        Training batches finished in the current epoch.
    batches_per_epoch : int or None, default=None
        Training batches of an epoch, counted at the first epoch; None before.
    """

    def __init__(
        self,
        steps: list[PruningStep],
        *,
        taken: int = 0,
        epochs_done: int = 0,
        batches_in_epoch: int = 0,
        batches_per_epoch: int | None = None,
    ) -> None:
        self.steps = steps
        self.taken = taken
        self.epochs_done = epochs_done
        self.batches_in_epoch = batches_in_epoch
        self.batches_per_epoch = batches_per_epoch

    @property
    def pending(self) -> PruningStep | None:
        """The next step to take; None after the last."""
        return pending_step(self.steps, self.taken)

    @property
    def phase(self) -> str:
        """The phase of training now, for messages."""
        return training_phase(self.taken, len(self.steps))

    @property
    def at_last_step(self) -> bool:
        """Whether the pending step is the schedule's last."""
        return self.taken == len(self.steps) - 1

    def start_epoch(self, count_batches: Callable[[], int]) -> None:
        """Begin an epoch; ``count_batches()`` is called at the first one only."""
        if self.batches_per_epoch is None:
            self.batches_per_epoch = int(count_batches())
        self.batches_in_epoch = 0

    def end_batch(self) -> float | None:
        """Count a training batch; the fraction of the epoch done if the epoch
        goes on, None at its last batch (whose steps :meth:`end_epoch` makes
        due)."""
        self.batches_in_epoch += 1
        if self.batches_in_epoch < self.batches_per_epoch:
            return self.batches_in_epoch / self.batches_per_epoch
        return None

    def end_epoch(self) -> None:
        """Count a finished epoch."""
        self.epochs_done += 1

    def is_due(self, epoch_fraction: float = 0.0) -> bool:
        """Whether the pending step is due after ``epochs_done +
        epoch_fraction`` epochs."""
        return is_due(self.steps, self.taken, self.epochs_done + epoch_fraction)

    def advance(self) -> PruningStep:
        """Take the pending step; returns it."""
        step = self.steps[self.taken]
        self.taken += 1
        return step


class RewindSnapshot:
    """The parameter values that rewinding restores, taken once at ``epoch``.

    Parameters
    ----------
    epoch : int or None
        Epochs of training done when the snapshot is taken (0 is the
        initialisation); None means no rewinding: nothing is ever taken.
    values : dict of str to torch.Tensor or None, default=None
        A snapshot already taken, by parameter name.
    """

    def __init__(
        self, epoch: int | None, values: dict[str, torch.Tensor] | None = None
    ) -> None:
        self.epoch = epoch
        self.values = values

    def offer(self, epochs_done: int, module: torch.nn.Module) -> None:
        """Take the snapshot if ``epochs_done`` is its epoch and none is taken."""
        if self.epoch is not None and self.values is None and epochs_done == self.epoch:
            self.values = take_snapshot(module)

    def restore(
        self,
        params: Mapping[str, torch.Tensor],
        optimizer: torch.optim.Optimizer | None = None,
    ) -> bool:
        """Put the snapshot back into ``params`` and clear the optimizer's state;
        False, touching nothing, when there is no snapshot."""
        if self.values is None:
            return False
        rewind_(params, self.values, optimizer)
        return True

    def drop(self) -> None:
        """Forget the snapshot for good (its shapes are gone after shrinking)."""
        self.epoch, self.values = None, None

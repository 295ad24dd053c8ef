"""The pruning history: one row per round, opened at its pruning step and closed
when its retraining ends.

A row holds the round, its epoch and target ratio, the sparsity reached, where
it was evaluated, and the loss and score before pruning, right after it and
after retraining; its ``loss_retrained`` and ``score_retrained`` are there once
the round is closed. :class:`skprune.callbacks.Pruning` writes the rows
(``history_``) through its :class:`RoundLog`, which also decides whether a row
is evaluated at all (the search's folds skip the evaluations: their held-out
score selects); the estimators hand that log to
:class:`skprune.progress.PruningProgress`, which prints each row once it is
closed.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["NOT_EVALUATED", "RoundLog", "close_round", "is_retraining", "open_round"]

#: The ``(loss, score)`` of a row whose evaluations are skipped.
NOT_EVALUATED = (None, None)


def open_round(
    history: list,
    *,
    number: int,
    epoch: float,
    target_ratio: float,
    sparsity: float,
    evaluated_on: str,
    before: tuple,
    after: tuple,
) -> dict:
    """Append the row of round ``number`` (from 1), just pruned and still open;
    ``before`` and ``after`` are ``(loss, score)`` pairs. Returns the row."""
    row = {
        "round": number,
        "epoch": epoch,
        "target_ratio": target_ratio,
        "sparsity": sparsity,
        "evaluated_on": evaluated_on,
        "loss_before": before[0],
        "score_before": before[1],
        "loss_after": after[0],
        "score_after": after[1],
    }
    history.append(row)
    return row


def close_round(history: list, evaluate) -> None:
    """Close the last round with its loss and score after retraining,
    ``evaluate()``'s ``(loss, score)``, unless it is closed already (or there is
    no round)."""
    if history and is_retraining(history[-1]):
        loss, score = evaluate()
        history[-1].update(loss_retrained=loss, score_retrained=score)


def is_retraining(row: dict) -> bool:
    """Whether the round of ``row`` is not closed yet."""
    # Presence, not value: a closed row may hold None (skipped evaluations,
    # a net without score).
    return "loss_retrained" not in row


class RoundLog:
    """The rows of one pruning run, for whoever reads them as they are written.

    Parameters
    ----------
    rows : list of dict or None, default=None
        The rows, written with :func:`open_round` and :func:`close_round`; None
        is a new empty list.
    n_rounds : int, default=0
        The rounds the run's schedule has.
    dense_epochs : int, default=0
        The epochs of dense training before the first round.
    evaluations : bool, default=True
        Whether rows get their losses and scores; False records
        :data:`NOT_EVALUATED` without calling the evaluations it is handed.
    """

    def __init__(
        self,
        rows: list | None = None,
        n_rounds: int = 0,
        dense_epochs: int = 0,
        *,
        evaluations: bool = True,
    ) -> None:
        self.rows = [] if rows is None else rows
        self.n_rounds = n_rounds
        self.dense_epochs = dense_epochs
        self.evaluations = evaluations

    def start(self, rows: list, n_rounds: int, dense_epochs: int | None = None) -> None:
        """Read ``rows``, a run of ``n_rounds`` rounds, from now on."""
        self.rows, self.n_rounds = rows, n_rounds
        if dense_epochs is not None:
            self.dense_epochs = dense_epochs

    def _evaluate(self, evaluate: Callable[[], tuple]) -> tuple:
        return evaluate() if self.evaluations else NOT_EVALUATED

    def evaluate_before_step(self, evaluate: Callable[[], tuple]) -> tuple:
        """The ``(loss, score)`` before a pruning step, evaluated once: it also
        closes the round before."""
        before = self._evaluate(evaluate)
        close_round(self.rows, lambda: before)
        return before

    def open(self, *, evaluate_after: Callable[[], tuple], **row) -> dict:
        """Open the round just pruned (the fields of :func:`open_round` but
        ``after``, evaluated now with ``evaluate_after()``). Returns the row."""
        where = row.pop("evaluated_on")
        after = self._evaluate(evaluate_after)
        where = where if self.evaluations else None
        return open_round(self.rows, evaluated_on=where, after=after, **row)

    def close(self, evaluate: Callable[[], tuple]) -> None:
        """Close the last round after its retraining (see :func:`close_round`)."""
        close_round(self.rows, lambda: self._evaluate(evaluate))

    @property
    def dense(self) -> bool:
        """Whether the run is still in its dense training (no round yet)."""
        return not self.rows

    def closed_since(self, start: int) -> list[dict]:
        """The rows from index ``start`` on whose retraining is over, in order,
        up to the first still retraining."""
        closed = []
        for row in self.rows[start:]:
            if is_retraining(row):
                break
            closed.append(row)
        return closed

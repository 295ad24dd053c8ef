"""The pruning history: one row per round, opened at its pruning step and closed
when its retraining ends.

A row holds the round, its epoch and target ratio, the sparsity reached, where
it was evaluated, and the loss and score before pruning, right after it and
after retraining. :class:`skprune.callbacks.Pruning` writes the rows
(``history_``) through its :class:`RoundLog`; the estimators hand that log to
:class:`skprune.progress.PruningProgress`, which prints each row once it is
closed.
"""

from __future__ import annotations

__all__ = ["RoundLog", "close_round", "is_retraining", "open_round"]


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
    """Append the row of round ``number`` (from 1), just pruned; ``before`` and
    ``after`` are ``(loss, score)`` pairs. Returns the row."""
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
        "loss_retrained": None,
        "score_retrained": None,
    }
    history.append(row)
    return row


def close_round(history: list, evaluate) -> None:
    """Record the last round's loss and score after retraining, ``evaluate()``'s
    ``(loss, score)``, unless it is recorded already (or there is no round)."""
    if history and history[-1]["loss_retrained"] is None:
        loss, score = evaluate()
        history[-1].update(loss_retrained=loss, score_retrained=score)


def is_retraining(row: dict) -> bool:
    """Whether the round of ``row`` has no scores after retraining yet."""
    return row.get("loss_retrained") is None and row.get("score_retrained") is None


class RoundLog:
    """The rows of one pruning run, for whoever reads them as they are written.

    Parameters
    ----------
    rows : list of dict or None, default=None
        The rows, written with :func:`open_round` and :func:`close_round`; None
        is a new empty list.
    n_rounds : int, default=0
        The rounds the run's schedule has.
    """

    def __init__(self, rows: list | None = None, n_rounds: int = 0) -> None:
        self.rows = [] if rows is None else rows
        self.n_rounds = n_rounds

    def start(self, rows: list, n_rounds: int) -> None:
        """Read ``rows``, a run of ``n_rounds`` rounds, from now on."""
        self.rows, self.n_rounds = rows, n_rounds

    def closed_since(self, start: int) -> list[dict]:
        """The rows from index ``start`` on whose retraining is over, in order,
        up to the first still retraining."""
        closed = []
        for row in self.rows[start:]:
            if is_retraining(row):
                break
            closed.append(row)
        return closed

"""The pruning history: one row per round, opened at its pruning step and closed
when its retraining ends.

A row holds the round, its epoch and target ratio, the sparsity reached, where
it was evaluated, and the loss and score before pruning, right after it and
after retraining. :class:`skprune.callbacks.Pruning` writes the rows
(``history_``); :class:`skprune.progress.PruningProgress` prints each once it is
closed.
"""

from __future__ import annotations

__all__ = ["close_round", "is_retraining", "open_round"]


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

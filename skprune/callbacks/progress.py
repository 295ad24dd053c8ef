"""Progress lines while a pruned network trains: one line per pruning round.

:class:`PruningProgress` is a skorch callback that reads the round
log that the :class:`~skprune.callbacks.Pruning` callback writes (its
``round_log``, the rows of ``history_``) and prints each row once its retraining
is over. ``PrunedClassifier(verbose=1)`` and ``PrunedClassifierCV(verbose=1)``
add it, handed that log; skorch's own epoch table stays under the wrapped net's
``verbose``.
"""

from __future__ import annotations

import time

from skorch.callbacks import Callback

from .._core.rounds import RoundLog
from ._pruning import Pruning

__all__ = ["PruningProgress", "format_round"]


class PruningProgress(Callback):
    """Print one line per pruning round of a :class:`~skprune.callbacks.Pruning`
    callback's round log.

    A line reads::

        round 1/2  ratio 0.900  sparsity 0.900  loss 0.41 -> 1.20 -> 0.45
        score 0.880 -> 0.610 -> 0.870  12.3 s

    (on one line): the round, its target ratio, the sparsity reached, the loss and
    the net's score before pruning, right after it and after retraining, and the
    seconds since the previous line (the first line includes dense training). A
    row with a ``"heldout_score"`` (:class:`~skprune.PrunedClassifierCV` adds it)
    also shows that score; a row that was not evaluated (the search's folds,
    whose held-out score selects) shows no loss and score.

    The estimators hand it the log with :meth:`follow`; on a plain skorch net it
    follows the log of the net's ``Pruning`` callback from ``on_train_begin``.

    Parameters
    ----------
    prefix : str, default=""
        Printed at the start of each line, for example ``"fold 2/5  "``.
    sink : callable, default=print
        Called with each line.
    """

    def __init__(self, prefix: str = "", sink=print) -> None:
        self.prefix = prefix
        self.sink = sink

    def follow(self, log: RoundLog) -> PruningProgress:
        """Print the rows of ``log`` (a ``Pruning`` callback's ``round_log``)."""
        self.log_ = log
        return self

    def initialize(self):
        self.printed_ = 0
        self.last_time_ = None
        return self

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        if getattr(self, "log_", None) is None:
            self.log_ = _round_log_of(net)
        if self.last_time_ is None:
            self.last_time_ = time.perf_counter()

    def on_epoch_end(self, net, **kwargs):
        self._print_finished()

    def on_train_end(self, net, X=None, y=None, **kwargs):
        self._print_finished()

    def _print_finished(self):
        log = getattr(self, "log_", None)
        if log is None:
            return
        for row in log.closed_since(self.printed_):
            now = time.perf_counter()
            self.sink(
                self.prefix + format_round(row, log.n_rounds, now - self.last_time_)
            )
            self.last_time_ = now
            self.printed_ += 1


def format_round(row: dict, n_rounds: int, seconds: float) -> str:
    """One pruning-history row as a progress line (see :class:`PruningProgress`)."""
    parts = [
        f"round {row['round']}/{n_rounds}",
        f"ratio {row['target_ratio']:.3f}",
        f"sparsity {row['sparsity']:.3f}",
    ]
    if row.get("evaluated_on", "training") is not None:  # None: not evaluated
        parts += [
            "loss " + _chain(row, "loss", ".4g"),
            "score " + _chain(row, "score", ".3f"),
        ]
    if row.get("heldout_score") is not None:
        parts.append(f"held-out {row['heldout_score']:.3f}")
    parts.append(f"{seconds:.1f} s")
    return "  ".join(parts)


def _chain(row, kind, spec):
    values = [row.get(f"{kind}_{when}") for when in ("before", "after", "retrained")]
    return " -> ".join("n/a" if v is None else format(v, spec) for v in values)


def _round_log_of(net) -> RoundLog | None:
    """The round log of a plain net's ``Pruning`` callback, for a printer that
    was not handed one."""
    for _, callback in getattr(net, "callbacks_", []):
        if isinstance(callback, Pruning):
            return callback.round_log
    return None

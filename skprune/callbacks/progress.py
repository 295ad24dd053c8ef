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
    also shows that score.

    The estimators hand it the log with :meth:`follow`; on a plain skorch net it
    follows the log of the net's ``Pruning`` callback from ``on_train_begin``.

    Parameters
    ----------
    prefix : str, default=""
        Printed at the start of each line, for example ``"fold 2/5  "``.
    sink : callable, default=print
        Called with each line.

    Examples
    --------
    On a plain skorch net, next to its :class:`~skprune.callbacks.Pruning`
    callback; here the lines are collected instead of printed:

    >>> import torch
    >>> from skorch import NeuralNetClassifier
    >>> from skprune import MLPModule
    >>> from skprune.callbacks import Pruning, PruningProgress
    >>> from skprune.datasets import make_text_classification
    >>> X, y = make_text_classification(
    ...     100, 500, n_classes=2, n_topic_words=20, random_state=0
    ... )
    >>> pruning = Pruning(prune_ratio=0.9, train_epochs=2, retrain_epochs=1)
    >>> lines = []
    >>> net = NeuralNetClassifier(
    ...     MLPModule,
    ...     module__n_features=500,
    ...     module__n_classes=2,
    ...     module__hidden_layer_sizes=(16,),
    ...     criterion=torch.nn.CrossEntropyLoss,
    ...     max_epochs=pruning.total_epochs,
    ...     callbacks=[pruning, PruningProgress(prefix="run 1  ", sink=lines.append)],
    ...     train_split=None,
    ...     verbose=0,
    ... ).fit(X.toarray(), y)
    >>> len(lines), lines[0].split("  loss")[0]
    (1, 'run 1  round 1/1  ratio 0.900  sparsity 0.900')
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
    """One pruning-history row as a progress line (see :class:`PruningProgress`).

    Parameters
    ----------
    row : dict
        A row of a :class:`~skprune.callbacks.Pruning` callback's ``history_``:
        ``round``, ``target_ratio``, ``sparsity``, and ``loss_`` and ``score_``
        ``before``, ``after`` and ``retrained`` (None or missing: ``n/a``);
        ``heldout_score`` if any.
    n_rounds : int
        Rounds in the schedule.
    seconds : float
        Time the round took.

    Returns
    -------
    line : str

    Examples
    --------
    >>> from skprune.progress import format_round
    >>> row = {
    ...     "round": 1, "target_ratio": 0.9, "sparsity": 0.9,
    ...     "loss_before": 0.5, "loss_after": 1.25, "loss_retrained": 0.625,
    ...     "score_before": 0.875, "score_after": 0.5, "score_retrained": None,
    ... }
    >>> print(format_round(row, 2, 1.5))
    round 1/2  ratio 0.900  sparsity 0.900  loss 0.5 -> 1.25 -> 0.625  \
score 0.875 -> 0.500 -> n/a  1.5 s
    """
    parts = [
        f"round {row['round']}/{n_rounds}",
        f"ratio {row['target_ratio']:.3f}",
        f"sparsity {row['sparsity']:.3f}",
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

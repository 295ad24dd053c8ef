"""Progress lines while a pruned network trains: one line per epoch of dense
training, then one line per pruning round.

:class:`PruningProgress` is a skorch callback that reads the round
log that the :class:`~skprune.callbacks.Pruning` callback writes (its
``round_log``, the rows of ``history_``): it prints each epoch while no round
has begun, and each row once its retraining is over.
``PrunedClassifier(verbose=1)`` and ``PrunedClassifierCV(verbose=1)`` add it,
handed that log; skorch's own epoch table stays under the wrapped net's
``verbose``.
"""

from __future__ import annotations

import time

from sklearn.base import BaseEstimator
from skorch.callbacks import Callback

from .._compat import validate_parameter_constraints
from .._core.rounds import RoundLog
from ._pruning import Pruning

__all__ = ["PruningProgress", "format_round"]


class PruningProgress(Callback):
    """Print one line per epoch of dense training, then one line per pruning
    round of a :class:`~skprune.callbacks.Pruning` callback's round log.

    An epoch of dense training reads ``epoch 2/6  dense training  loss 0.6931
    1.5 s``: the epoch, the epochs of dense training, the net's ``train_loss``
    (and ``valid_loss`` when the net splits off validation data) and the
    seconds since the previous line. A round reads::

        round 1/2  ratio 0.900  sparsity 0.900  loss 0.41 -> 1.20 -> 0.45
        score 0.880 -> 0.610 -> 0.870  12.3 s

    (on one line): the round, its target ratio, the sparsity reached, the loss and
    the net's score before pruning, right after it and after retraining, and the
    seconds since the previous line (the last epoch of dense training's). A
    row with a ``"heldout_score"`` (:class:`~skprune.PrunedClassifierCV` adds it)
    also shows that score; a row that was not evaluated (the search's folds,
    whose held-out score selects) shows no loss and score.

    The estimators hand it the log with :meth:`follow`. On a plain skorch net,
    not handed one, it follows the round log of the net's ``Pruning`` callback
    that ``pruning`` names, from ``on_train_begin``.

    Parameters
    ----------
    prefix : str, default=""
        Printed at the start of each line, for example ``"fold 2/5  "``.
    sink : callable, default=print
        Called with each line.
    pruning : str or None, default=None
        The name, among the net's ``callbacks``, of the
        :class:`~skprune.callbacks.Pruning` callback to follow; None means the
        net's only one.

    Raises
    ------
    ValueError
        From ``on_train_begin``, before any training, when the printer was not
        handed a log and the net has no ``Pruning`` callback by that name (for
        ``pruning=None``: none, or several).

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from skorch import NeuralNetClassifier
    >>> from skprune.callbacks import Pruning, PruningProgress
    >>> X = np.random.default_rng(0).random((40, 4), dtype=np.float32)
    >>> y = (X[:, 0] > 0.5).astype(np.int64)
    >>> pruning = Pruning(0.5, train_epochs=2, retrain_epochs=1)
    >>> lines = []
    >>> net = NeuralNetClassifier(
    ...     torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 2)),
    ...     criterion=torch.nn.CrossEntropyLoss,
    ...     max_epochs=pruning.total_epochs,
    ...     train_split=None,
    ...     verbose=0,
    ...     callbacks=[
    ...         ("prune", pruning),
    ...         ("progress", PruningProgress(pruning="prune", sink=lines.append)),
    ...     ],
    ... ).fit(X, y)
    >>> [line.split("  ")[0] for line in lines]
    ['epoch 1/2', 'epoch 2/2', 'round 1/1']
    """

    _parameter_constraints: dict = {
        "prefix": [str],
        "sink": [callable],
        "pruning": [str, None],
    }

    def __init__(
        self, prefix: str = "", sink=print, pruning: str | None = None
    ) -> None:
        self.prefix = prefix
        self.sink = sink
        self.pruning = pruning

    @classmethod
    def _get_param_names(cls):
        # skorch lists every attribute not ending in "_", private state
        # included; the parameters are the constructor's (see Pruning).
        return BaseEstimator._get_param_names.__func__(cls)

    def follow(self, log: RoundLog) -> PruningProgress:
        """Print the rows of ``log`` (a ``Pruning`` callback's ``round_log``)."""
        self.log_ = log
        return self

    def initialize(self):
        validate_parameter_constraints(
            self._parameter_constraints,
            self.get_params(deep=False),
            caller_name=type(self).__name__,
        )
        self.printed_ = 0
        self.last_time_ = None
        return self

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        if getattr(self, "log_", None) is None:
            self.log_ = _pruning_callback(net, self.pruning).round_log
        if self.last_time_ is None:
            self.last_time_ = time.perf_counter()

    def on_epoch_begin(self, net, **kwargs):
        log = getattr(self, "log_", None)
        self._dense_epoch = log is not None and log.dense

    def on_epoch_end(self, net, **kwargs):
        # Decided at the epoch's begin: the last dense epoch ends in a pruning step.
        if getattr(self, "_dense_epoch", False):
            line = _format_dense_epoch(
                net.history[-1], self.log_.dense_epochs, self._seconds()
            )
            self.sink(self.prefix + line)
        self._print_finished()

    def on_train_end(self, net, X=None, y=None, **kwargs):
        self._print_finished()

    def _print_finished(self):
        log = getattr(self, "log_", None)
        if log is None:
            return
        for row in log.closed_since(self.printed_):
            self.sink(self.prefix + format_round(row, log.n_rounds, self._seconds()))
            self.printed_ += 1

    def _seconds(self) -> float:
        """Seconds since the previous line, which the caller is printing now."""
        now = time.perf_counter()
        seconds, self.last_time_ = now - self.last_time_, now
        return seconds


def _format_dense_epoch(epoch: dict, dense_epochs: int, seconds: float) -> str:
    """An epoch of dense training as a progress line (see
    :class:`PruningProgress`), from the net's history row of that epoch."""
    parts = [f"epoch {epoch['epoch']}/{dense_epochs}", "dense training"]
    for key, label in (("train_loss", "loss"), ("valid_loss", "valid loss")):
        if epoch.get(key) is not None:
            parts.append(f"{label} {epoch[key]:.4g}")
    parts.append(f"{seconds:.1f} s")
    return "  ".join(parts)


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


def _pruning_callback(net, name: str | None) -> Pruning:
    """The net's ``Pruning`` callback called ``name`` (None: its only one), for a
    printer that was not handed a log."""
    found = [
        (key, callback)
        for key, callback in getattr(net, "callbacks_", [])
        if isinstance(callback, Pruning)
    ]
    names = [key for key, _ in found]
    if name is not None:
        if name not in names:
            raise ValueError(
                f"PruningProgress(pruning={name!r}): the net has no Pruning "
                f"callback of that name; its Pruning callbacks are {names}."
            )
        return dict(found)[name]
    if len(found) != 1:
        raise ValueError(
            f"PruningProgress follows the net's Pruning callback, but the net has "
            f"{len(found)} ({names}): add one to its callbacks, or name the one to "
            "follow with pruning=<its name>."
        )
    return found[0][1]

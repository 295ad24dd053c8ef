"""The search's path callback: prune along increasing ratios, scoring each.

:class:`skprune.PrunedClassifierCV` trains each fold's network once, dense, then
prunes it further ratio by ratio, with a short retraining after each; this
callback is that path.
"""

from __future__ import annotations

import time

from .._core.schedules import PruningStep
from .._params import PATH_SETS
from ._pruning import Pruning

__all__ = ["_PathPruning"]


class _PathPruning(Pruning):
    """Prune along increasing ratios, one step per ratio, each followed by
    ``retrain_epochs`` of retraining; with ``heldout_`` set, score the net right
    before each step and at the end of training.

    ``scores_`` and ``times_`` hold the scores and the seconds since training
    began, the dense network's first; each history row also gets its
    ``"heldout_score"``.
    """

    def __init__(self, ratios=(0.5,), **params) -> None:
        super().__init__(
            prune_ratio=float(ratios[-1]) if len(ratios) else 0.0, **params
        )
        self.ratios = ratios  # as given, so that clone() finds it unchanged
        # Set by the estimator after construction; skorch re-initialises
        # callbacks, so initialize() leaves them alone.
        self.heldout_ = None
        self.prefix_ = ""

    @classmethod
    def _get_param_names(cls):
        # The path's ratios and every parameter of Pruning but those the path
        # sets itself: clone() rebuilds the callback from exactly these.
        return sorted({"ratios", *Pruning._get_param_names()} - set(PATH_SETS))

    @property
    def total_epochs(self) -> int:
        return self.train_epochs + len(self.ratios) * self.retrain_epochs

    def _make_steps(self) -> list[PruningStep]:
        return [
            PruningStep(
                float(self.train_epochs + k * self.retrain_epochs), float(ratio)
            )
            for k, ratio in enumerate(self.ratios)
        ]

    def initialize(self):
        super().initialize()
        self.scores_ = []
        self.times_ = []
        self.start_time_ = None
        return self

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        if self.start_time_ is None:
            self.start_time_ = time.perf_counter()
        super().on_train_begin(net, X=X, y=y, **kwargs)

    def _prune(self, net):
        self._score_heldout(net)
        super()._prune(net)

    def on_train_end(self, net, X=None, y=None, **kwargs):
        super().on_train_end(net, X=X, y=y, **kwargs)
        self._score_heldout(net)

    def _score_heldout(self, net) -> None:
        if self.heldout_ is None:
            return
        self.times_.append(time.perf_counter() - self.start_time_)
        ratio = (0.0, *self.ratios)[len(self.scores_)]
        score = self.heldout_.score(net, self, float(ratio))
        self.scores_.append(score)
        if self.history_:
            self.history_[-1]["heldout_score"] = score

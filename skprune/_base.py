"""The shared base of skprune's estimators: validation, the fit sequence, reports.

:class:`BasePruned` orchestrates: it validates parameters and data, clones the
wrapped skorch net, plugs in the sparse data path and the :class:`Pruning`
callback, trains under a private random state, and turns what the callback holds
into fitted attributes. It does no tensor arithmetic of its own. Task-specific
subclasses (:class:`skprune.PrunedClassifier`) add target handling and the
prediction methods.
"""

from __future__ import annotations

import inspect
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator, MetaEstimatorMixin, clone
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted
from sklearn_compat.utils.validation import validate_data
from skorch.dataset import Dataset as SkorchDataset
from torch.utils.data import DataLoader

from .callbacks import GRANULARITIES, SCOPES, Pruning
from .data import BatchLoader, SparseDataset, as_canonical_csr
from .importance import IMPORTANCE_CRITERIA
from .report import summarize
from .schedules import SCHEDULES

ACCEPTED_SPARSE = ("csr", "csc", "coo")


class BasePruned(MetaEstimatorMixin, BaseEstimator):
    """Base class of pruned estimators; not for direct use."""

    _parameter_constraints: dict = {
        "estimator": [HasMethods(["fit", "initialize", "partial_fit"]), None],
        "prune_ratio": [Interval(Real, 0.0, 1.0, closed="left")],
        "importance": [StrOptions(set(IMPORTANCE_CRITERIA)), callable],
        "granularity": [StrOptions(set(GRANULARITIES))],
        "scope": [StrOptions(set(SCOPES))],
        "schedule": [StrOptions(set(SCHEDULES))],
        "n_rounds": [Interval(Integral, 1, None, closed="left")],
        "retrain_epochs": [Interval(Integral, 0, None, closed="left"), None],
        "retrain_lr_factor": [Interval(Real, 0.0, None, closed="neither")],
        "rewind": ["boolean"],
        "rewind_epoch": [Interval(Integral, 0, None, closed="left")],
        "min_keep": [
            Interval(Integral, 0, None, closed="left"),
            Interval(Real, 0.0, 1.0, closed="neither"),
        ],
        "prune_output": ["boolean"],
        "prune_bias": ["boolean"],
        "layers": [list, tuple, None],
        "random_state": ["random_state"],
    }

    #: skorch class the wrapped estimator must be an instance of; set by subclasses.
    _net_class: type = object

    def __init__(
        self,
        estimator=None,
        *,
        prune_ratio: float = 0.5,
        importance="magnitude",
        granularity: str = "weight",
        scope: str = "global",
        schedule: str = "oneshot",
        n_rounds: int = 1,
        retrain_epochs: int | None = None,
        retrain_lr_factor: float = 1.0,
        rewind: bool = False,
        rewind_epoch: int = 0,
        min_keep: int | float = 1,
        prune_output: bool = False,
        prune_bias: bool = False,
        layers=None,
        random_state=None,
    ) -> None:
        self.estimator = estimator
        self.prune_ratio = prune_ratio
        self.importance = importance
        self.granularity = granularity
        self.scope = scope
        self.schedule = schedule
        self.n_rounds = n_rounds
        self.retrain_epochs = retrain_epochs
        self.retrain_lr_factor = retrain_lr_factor
        self.rewind = rewind
        self.rewind_epoch = rewind_epoch
        self.min_keep = min_keep
        self.prune_output = prune_output
        self.prune_bias = prune_bias
        self.layers = layers
        self.random_state = random_state

    # to be provided by subclasses ---------------------------------------------

    def _default_estimator(self):
        raise NotImplementedError

    def _encode_targets(self, y):
        """Validate ``y`` and return what the net trains on; set target attributes."""
        raise NotImplementedError

    def _module_sizes(self) -> dict:
        """``module__`` parameters set from the data (input and output sizes)."""
        raise NotImplementedError

    # the fit sequence ---------------------------------------------------------

    def _fit(self, X, y):
        net = self._check_estimator()
        X, y = validate_data(
            self,
            X,
            y,
            accept_sparse=ACCEPTED_SPARSE,
            dtype=np.float32,
            ensure_min_samples=2,
        )
        X = _as_batchable(X)
        y = self._encode_targets(y)
        seed = int(check_random_state(self.random_state).randint(2**31 - 1))
        pruning = self._make_pruning(net, seed)
        net.set_params(**self._net_params(net, pruning))

        # A private generator: the fit is reproducible and the caller's global
        # torch random state is left as it was.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net.initialize()
            net.partial_fit(X, y, epochs=pruning.total_epochs)

        self.estimator_ = net
        self._set_pruning_attributes(net, pruning)
        return self

    def _check_estimator(self):
        if self.estimator is None:
            return self._default_estimator()
        if not isinstance(self.estimator, self._net_class):
            raise TypeError(
                f"estimator must be a skorch {self._net_class.__name__}, got "
                f"{type(self.estimator).__name__}."
            )
        callbacks = self.estimator.callbacks
        if callbacks == "disable":
            raise ValueError(
                "estimator has callbacks='disable', but pruning runs as a callback; "
                "pass callbacks=[] and remove the default ones by name instead."
            )
        if any(isinstance(cb, Pruning) for _, cb in _named(callbacks or [])):
            raise ValueError(
                "estimator already has a skprune Pruning callback; "
                "PrunedClassifier adds its own, so remove it."
            )
        return clone(self.estimator)

    def _make_pruning(self, net, seed: int) -> Pruning:
        train_epochs = int(net.max_epochs)
        retrain_epochs = self.retrain_epochs
        if retrain_epochs is None:
            retrain_epochs = max(1, (2 * train_epochs) // 3)
        # The estimator's pruning parameters are the callback's, by the same names.
        shared = set(inspect.signature(Pruning).parameters) & set(
            self.get_params(deep=False)
        )
        return Pruning(
            train_epochs=train_epochs,
            retrain_epochs=retrain_epochs,
            random_state=seed,
            **{
                name: getattr(self, name)
                for name in shared - {"retrain_epochs", "random_state"}
            },
        ).initialize()

    def _net_params(self, net, pruning) -> dict:
        # First among the user's callbacks, so theirs see masked weights.
        params = {"callbacks": [("pruning", pruning), *_named(net.callbacks or [])]}
        module = net.module
        if isinstance(module, type):
            accepted = inspect.signature(module).parameters
            params.update(
                {
                    f"module__{key}": value
                    for key, value in self._module_sizes().items()
                    if key in accepted
                }
            )
        if net.dataset is SkorchDataset:
            params["dataset"] = SparseDataset
        densify = not getattr(module, "accepts_sparse_input", False)
        for role in ("iterator_train", "iterator_valid"):
            if getattr(net, role) is DataLoader:
                params[role] = BatchLoader
                params[f"{role}__densify"] = densify
        return params

    def _set_pruning_attributes(self, net, pruning: Pruning) -> None:
        module = net.module_
        # Views of the callback's CPU masks; nothing pruned (the unpruned
        # control) gives read-only all-True views that take no memory.
        self.masks_ = {n: m.cpu().numpy() for n, m in pruning.masks_.items()} or {
            name: np.broadcast_to(np.True_, tuple(param.shape))
            for name, param in module.named_parameters()
            if name in pruning.prunable_
        }
        # One pass over the weights counts everything reported.
        summary = summarize(module, pruning.layers_, pruning.prunable_)
        self.n_params_, self.n_nonzero_params_ = summary.n_params, summary.n_nonzero
        self.sparsity_ = 1.0 - self.n_nonzero_params_ / self.n_params_
        self.pruning_report_ = summary.rows
        self.pruning_history_ = [dict(row) for row in pruning.history_]
        self.flops_ = {"dense": summary.flops_dense, "pruned": summary.flops_pruned}
        self.support_ = summary.support.cpu().numpy()

    def get_support(self, indices: bool = False) -> np.ndarray:
        """Mask, or integer indices, of the input features that survived pruning.

        Parameters
        ----------
        indices : bool, default=False
            Return integer indices instead of a boolean mask.

        Returns
        -------
        support : numpy.ndarray
            ``support_``, or its non-zero positions.
        """
        check_is_fitted(self)
        return np.flatnonzero(self.support_) if indices else self.support_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


def _as_batchable(X):
    """Canonical CSR without stored zeros for sparse input, C-contiguous otherwise."""
    if sp.issparse(X):
        return as_canonical_csr(X)
    return np.ascontiguousarray(X)


def _named(callbacks):
    """skorch callbacks as ``(name, callback)`` pairs; unnamed ones get their class."""
    return [
        cb if isinstance(cb, tuple) else (type(cb).__name__, cb) for cb in callbacks
    ]

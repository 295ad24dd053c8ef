"""The shared base of skprune's estimators: the fit sequence and fitted attributes.

:class:`BasePruned` orchestrates: it validates parameters and data, runs the
checks of :mod:`skprune._checks`, wires the cloned net with
:mod:`skprune._wiring` (the sparse data path, the :class:`Pruning` callback,
sample weights), trains with generators of its own, and turns what the
callback holds into fitted attributes. It does no tensor arithmetic of its
own. Task-specific subclasses (:class:`skprune.PrunedClassifier`) add target
handling and the prediction methods.
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator, MetaEstimatorMixin, clone
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from ._budget import default_max_epochs
from ._checks import (
    _check_callbacks,
    _check_gradients_suit_optimizer,
    _check_outputs_suit_criterion,
    _checked_sample_weight,
    _float32_weights,
)
from ._compat import HasMethods
from ._core.report import summarize
from ._nn._random import fit_random_state
from ._nn._threads import thread_budget
from ._nn.modules import float64_prediction
from ._params import (
    PRUNING_PARAMETER_CONSTRAINTS,
    default_retrain_epochs,
    pruning_params,
)
from ._validation import ACCEPTED_SPARSE, validate_data, validate_prediction_data
from ._wiring import (
    _as_batchable,
    _net_params,
    _train,
    _weighted_training,
)
from .callbacks._pruning import Pruning


def _all_or_nothing(fit):
    """Leave the estimator as it was if ``fit`` fails or is interrupted.

    Validation sets ``n_features_in_`` and ``classes_`` before training; without
    this, an error or a Ctrl-C during training would leave an estimator that
    looks fitted (or, on a refit, mixes two fits).
    """

    @functools.wraps(fit)
    def fit_all_or_nothing(estimator, *args, **kwargs):
        before = dict(vars(estimator))
        try:
            return fit(estimator, *args, **kwargs)
        except BaseException:
            vars(estimator).clear()
            vars(estimator).update(before)
            raise

    return fit_all_or_nothing


class BasePruned(MetaEstimatorMixin, BaseEstimator):
    """Base class of pruned estimators; not for direct use."""

    _parameter_constraints: dict = {
        "estimator": [HasMethods(["fit", "initialize", "partial_fit"]), None],
        **PRUNING_PARAMETER_CONSTRAINTS,
        "verbose": ["verbose"],
    }

    #: skorch class the wrapped estimator must be an instance of; set by subclasses.
    _net_class: type = object
    #: Extra ``validate_data`` options for ``y`` (a regressor's ``multi_output``).
    _y_validation: dict = {}

    def __init__(
        self,
        estimator=None,
        *,
        prune_ratio: float = 0.5,
        importance="magnitude",
        granularity: str = "weight",
        block_size: int = 8,
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
        verbose: int = 0,
    ) -> None:
        self.estimator = estimator
        self.prune_ratio = prune_ratio
        self.importance = importance
        self.granularity = granularity
        self.block_size = block_size
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
        self.verbose = verbose

    # skorch lists this bookkeeping of its __init__ among a net's parameters.
    _SKORCH_INTERNAL = "_params_to_validate"

    def get_params(self, deep: bool = True) -> dict:
        """Parameters of this estimator, as scikit-learn's ``get_params``.

        With ``deep=True`` the net's parameters come prefixed with
        ``estimator__``, without skorch's internal ``_params_to_validate``.
        """
        params = super().get_params(deep=deep)
        params.pop(f"estimator__{self._SKORCH_INTERNAL}", None)
        return params

    def __repr__(self, N_CHAR_MAX: int = 700) -> str:
        # Shown through a view of the net without skorch's internal attribute;
        # the net itself (and so clone, which passes that attribute) is untouched.
        net = self.estimator
        if net is None or self._SKORCH_INTERNAL not in vars(net):
            return super().__repr__(N_CHAR_MAX)
        net_view = object.__new__(type(net))
        net_view.__dict__.update(vars(net))
        del net_view.__dict__[self._SKORCH_INTERNAL]
        shown = object.__new__(type(self))
        shown.__dict__.update(vars(self), estimator=net_view)
        return BaseEstimator.__repr__(shown, N_CHAR_MAX)

    # to be provided by subclasses ---------------------------------------------

    def _default_estimator(self):
        raise NotImplementedError

    def _encode_targets(self, y):
        """Validate ``y`` and return what the net trains on; set target attributes."""
        raise NotImplementedError

    def _module_sizes(self) -> dict:
        """``module__`` parameters set from the data (input and output sizes)."""
        raise NotImplementedError

    def _sample_weights(self, y, sample_weight, name: str = "sample_weight"):
        """Per-sample training weights from the encoded ``y``; None if all 1.

        ``name`` is what the weights are called in an error (a classifier's are
        ``sample_weight`` times ``class_weight``).
        """
        if sample_weight is None or np.all(sample_weight == 1):
            return None
        return _float32_weights(sample_weight, name)

    # the fit sequence ---------------------------------------------------------

    @_all_or_nothing
    def _fit(self, X, y, sample_weight=None, **pruning_options):
        # pruning_options go to _make_pruning (PrunedClassifierCV's path and fold).
        net = self._check_estimator()
        X, y, sample_weight = self._validated_data(X, y, sample_weight)
        y = self._encode_targets(y)
        weights = self._sample_weights(y, sample_weight)
        if self.estimator is None:  # enough optimizer steps on small data
            epochs = default_max_epochs(
                X.shape[0], net.batch_size, min_epochs=net.max_epochs
            )
            net.set_params(max_epochs=epochs)
        seed = int(check_random_state(self.random_state).randint(2**31 - 1))
        pruning = self._make_pruning(net, seed, **pruning_options)
        net.set_params(**self._net_params(net, pruning))
        if weights is not None:
            net.set_params(**_weighted_training(net, weights))

        # Its own generators: fits at once in threads must not share torch's.
        with fit_random_state(seed, net.device), thread_budget():
            net.initialize()
            _check_outputs_suit_criterion(net, X, y)
            _check_gradients_suit_optimizer(net, sparse_input=sp.issparse(X))
            _train(net, X, y, epochs=pruning.total_epochs)

        if weights is not None:  # the weights are data: the fitted net keeps none
            delattr(net, "iterator_train__sample_weight")
        self.estimator_ = net
        self._set_pruning_attributes(net, pruning)
        return self

    def _validated_data(self, X, y, sample_weight):
        """``X`` (batchable), ``y`` and ``sample_weight`` checked as every fit
        checks them; sets ``n_features_in_`` (and ``feature_names_in_``)."""
        X, y = validate_data(
            self,
            X,
            y,
            accept_sparse=ACCEPTED_SPARSE,
            dtype=np.float32,
            ensure_min_samples=2,
            **self._y_validation,
        )
        if sample_weight is not None:
            sample_weight = _checked_sample_weight(sample_weight, X)
        return _as_batchable(X), y, sample_weight

    def _check_estimator(self):
        if self.estimator is None:
            return self._default_estimator()
        if not isinstance(self.estimator, self._net_class):
            raise TypeError(
                f"estimator must be a skorch {self._net_class.__name__}, got "
                f"{type(self.estimator).__name__}."
            )
        _check_callbacks(self.estimator.callbacks, type(self).__name__)
        return clone(self.estimator)

    def _make_pruning(self, net, seed: int) -> Pruning:
        train_epochs = int(net.max_epochs)
        retrain_epochs = self.retrain_epochs
        if retrain_epochs is None:
            retrain_epochs = default_retrain_epochs(train_epochs)
        params = {
            **pruning_params(self),
            "train_epochs": train_epochs,
            "retrain_epochs": retrain_epochs,
            "random_state": seed,
        }
        return Pruning(**params).initialize()

    def _net_params(self, net, pruning) -> dict:
        return _net_params(net, pruning, self._module_sizes(), self.verbose)

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

    def _net_outputs(self, X, nonlinearity: bool) -> np.ndarray:
        """The fitted net's outputs for ``X`` in float64, after skorch's
        ``predict_nonlinearity`` if ``nonlinearity``; a row's outputs do not
        depend on the rows predicted with it (see ``float64_prediction``)."""
        check_is_fitted(self)
        X = validate_prediction_data(self, X)
        net = self.estimator_
        with float64_prediction():
            outputs = net.forward(_as_batchable(X))
        if isinstance(outputs, tuple):  # skorch's convention: the first is y_pred
            outputs = outputs[0]
        outputs = outputs.to(torch.float64)
        if nonlinearity:
            outputs = net._get_predict_nonlinearity()(outputs)
        return outputs.numpy()

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

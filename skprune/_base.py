"""The shared base of skprune's estimators: validation, the fit sequence, reports.

:class:`BasePruned` orchestrates: it validates parameters and data, clones the
wrapped skorch net, plugs in the sparse data path and the :class:`Pruning`
callback, trains with generators of its own, and turns what the callback holds
into fitted attributes. It does no tensor arithmetic of its own. Task-specific
subclasses (:class:`skprune.PrunedClassifier`) add target handling and the
prediction methods.
"""

from __future__ import annotations

import functools
import inspect
import warnings

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator, MetaEstimatorMixin, clone
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted
from skorch import NeuralNetClassifier
from skorch.callbacks import EarlyStopping, GradientNormClipping
from skorch.dataset import Dataset as SkorchDataset
from torch.utils.data import DataLoader

from ._budget import default_max_epochs
from ._compat import HasMethods, _check_sample_weight
from ._core.masks import find_prunable_layers
from ._core.report import summarize
from ._nn._random import fit_random_state
from ._nn._threads import thread_budget
from ._nn.data import BatchLoader, SparseDataset, as_canonical_csr
from ._nn.losses import WeightedLoss, unweighted_loss
from ._nn.modules import float64_prediction
from ._nn.optim import LazyAdam
from ._params import (
    PRUNING_PARAMETER_CONSTRAINTS,
    default_retrain_epochs,
    pruning_params,
)
from ._validation import ACCEPTED_SPARSE, validate_data
from .callbacks._pruning import Pruning
from .callbacks.progress import PruningProgress
from .exceptions import DenseGradientWarning

#: What the default classifier and regressor nets share: one hidden layer of 256
#: units with a row-sparse first-layer gradient stepped by LazyAdam (the fast
#: sparse path), shuffled batches of 64 for 6 dense epochs, no held-out split,
#: silent. Each adds its dropout and criterion.
DEFAULT_NET_TRAINING = {
    "module__hidden_layer_sizes": (256,),
    "module__sparse_grad": True,
    "optimizer": LazyAdam,
    "lr": 1e-3,
    "max_epochs": 6,
    "batch_size": 64,
    "iterator_train__shuffle": True,
    "train_split": None,
    "verbose": 0,
}


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
        X = _as_batchable(X)
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
        for name, callback in _named(callbacks or []):
            if isinstance(callback, Pruning):
                raise ValueError(
                    "estimator already has a skprune Pruning callback; "
                    f"{type(self).__name__} adds its own, so remove it."
                )
            if isinstance(callback, EarlyStopping):
                raise ValueError(
                    f"estimator has an EarlyStopping callback ({name!r}), which is "
                    "not supported: it would end training before the pruning "
                    "schedule has run (dense max_epochs, then retrain_epochs after "
                    "each pruning step). Remove it and choose max_epochs instead."
                )
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
        # First among the user's callbacks, so theirs see masked weights.
        params = {"callbacks": [("pruning", pruning), *_named(net.callbacks or [])]}
        if self.verbose:
            params["callbacks"].insert(1, ("pruning_progress", PruningProgress()))
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

    def _net_outputs(self, X, nonlinearity: bool) -> np.ndarray:
        """The fitted net's outputs for ``X`` in float64, after skorch's
        ``predict_nonlinearity`` if ``nonlinearity``; a row's outputs do not
        depend on the rows predicted with it (see ``float64_prediction``)."""
        check_is_fitted(self)
        X = validate_data(
            self, X, accept_sparse=ACCEPTED_SPARSE, dtype=np.float32, reset=False
        )
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


def _train(net, X, y, **fit_params) -> None:
    """skorch's ``partial_fit`` on an initialised net, but letting Ctrl-C through.

    ``partial_fit`` catches ``KeyboardInterrupt`` and returns normally, which
    would make an interrupted fit look complete.
    """
    net.notify("on_train_begin", X=X, y=y)
    net.fit_loop(X, y, **fit_params)
    net.notify("on_train_end", X=X, y=y)


#: Rows of the training data the module's outputs are checked on.
N_PROBE_ROWS = 8


def _check_outputs_suit_criterion(net, X, y) -> None:
    """Run the module once on a few training rows; refuse logits under NLLLoss.

    skorch's ``NeuralNetClassifier`` applies ``NLLLoss`` to ``log(y_pred)``: on a
    module that returns logits, that trains on NaN. The forward pass also lets
    the module's own errors surface before anything else looks at it.
    """
    n_rows = min(N_PROBE_ROWS, X.shape[0])
    dataset = net.get_dataset(X[:n_rows], y[:n_rows])
    # Forked so that the check draws nothing from the fit's random stream.
    with torch.random.fork_rng(devices=[]):
        batch = next(iter(net.get_iterator(dataset, training=False)), None)
        if batch is None:  # a loader that drops short batches
            return
        y_pred = net.evaluation_step(batch, training=False)
    if isinstance(y_pred, tuple):  # skorch's convention: the first is y_pred
        y_pred = y_pred[0]
    criterion = unweighted_loss(net.criterion_)
    if not isinstance(criterion, torch.nn.NLLLoss) or y_pred.dim() != 2:
        return
    low, high = y_pred.min().item(), y_pred.max().item()
    row_sums = y_pred.double().sum(dim=1)
    off_one = (row_sums - 1.0).abs().max().item()
    if low < 0.0 or high > 1.0 or off_one > 1e-3:
        raise ValueError(
            f"The net's criterion is {type(criterion).__name__}, which skorch "
            "applies to log(y_pred) and so expects probabilities, but the module "
            f"returns values in [{low:.3g}, {high:.3g}] with row sums from "
            f"{row_sums.min().item():.3g} to {row_sums.max().item():.3g}: these "
            "look like logits. Pass criterion=torch.nn.CrossEntropyLoss to the net "
            "(or end the module's forward with a softmax)."
        )


#: Optimizers that step sparse gradients. The other torch optimizers raise at
#: their first step; torch.optim.SparseAdam takes nothing but sparse gradients.
SPARSE_GRADIENT_OPTIMIZERS = (LazyAdam, torch.optim.SGD, torch.optim.Adagrad)

#: Weights in the first layer from which a dense gradient is worth a warning.
DENSE_GRADIENT_WARNING_SIZE = 1_000_000


def _check_gradients_suit_optimizer(net, sparse_input: bool) -> None:
    """Refuse sparse gradients the optimizer cannot step; warn of a slow first layer."""
    module, optimizer = net.module_, net.optimizer_
    sparse = [name for name, layer in module.named_modules() if _sparse_grad(layer)]
    if sparse:
        _check_optimizer_accepts_sparse_gradients(optimizer, sparse[0])
        _check_callbacks_accept_sparse_gradients(net, sparse[0])
        return
    layers = find_prunable_layers(module)
    if not sparse_input or not layers:
        return
    first = layers[0]
    n_weights = first.in_features * first.out_features
    if n_weights >= DENSE_GRADIENT_WARNING_SIZE:
        warnings.warn(
            f"The first layer ({first.name!r}) has {n_weights:,} weights and a "
            "dense gradient: every optimizer step updates all of them, although "
            "a sparse batch touches only the rows of its features. For the fast "
            "path give it a row-sparse gradient: skprune.MLPModule with "
            "module__sparse_grad=True and optimizer=skprune.optim.LazyAdam (or "
            "torch.optim.SGD / torch.optim.Adagrad).",
            DenseGradientWarning,
            stacklevel=3,
        )


def _check_optimizer_accepts_sparse_gradients(optimizer, layer_name: str) -> None:
    kind = type(optimizer)
    in_torch = kind.__module__.startswith("torch.")
    name = f"torch.optim.{kind.__name__}" if in_torch else kind.__name__
    problem = None
    if isinstance(optimizer, SPARSE_GRADIENT_OPTIMIZERS):
        if kind in (torch.optim.SGD, torch.optim.Adagrad) and any(
            group.get("weight_decay", 0) for group in optimizer.param_groups
        ):
            problem = (
                f"{name} rejects sparse gradients when weight_decay is not 0 "
                "(optimizer__weight_decay)"
            )
    elif not in_torch:
        pass  # a user's own optimizer knows what it accepts
    elif issubclass(kind, torch.optim.SparseAdam):
        problem = f"{name} rejects the dense gradients of the other layers"
    else:
        problem = f"{name} rejects sparse gradients"
    if problem:
        raise ValueError(
            f"The module's layer {layer_name!r} makes sparse gradients, but "
            f"{problem}. Use optimizer=skprune.optim.LazyAdam (Adam with lazy "
            "row-sparse steps), torch.optim.SGD or torch.optim.Adagrad, or turn the "
            "sparse gradients off (module__sparse_grad=False on skprune.MLPModule)."
        )


def _check_callbacks_accept_sparse_gradients(net, layer_name: str) -> None:
    """Refuse skorch's gradient clipping, whose norm torch cannot take of a sparse
    gradient (it would fail at the first step of training)."""
    for name, callback in _named(net.callbacks or []):
        if isinstance(callback, GradientNormClipping):
            raise ValueError(
                f"The net's {name!r} callback clips gradients with "
                "torch.nn.utils.clip_grad_norm_, which cannot take the sparse "
                f"gradient of the module's layer {layer_name!r}. Turn the sparse "
                "gradients off (module__sparse_grad=False on skprune.MLPModule; "
                "slower on wide sparse input) or remove the callback."
            )


def _sparse_grad(layer: torch.nn.Module) -> bool:
    """Whether ``layer`` gives its weight a sparse gradient."""
    if isinstance(layer, torch.nn.Embedding | torch.nn.EmbeddingBag):
        return bool(layer.sparse)
    return getattr(layer, "sparse_grad", False) is True


def _as_batchable(X):
    """Canonical CSR without stored zeros for sparse input, C-contiguous otherwise."""
    if sp.issparse(X):
        return as_canonical_csr(X)
    return np.ascontiguousarray(X)


def _checked_sample_weight(sample_weight, X) -> np.ndarray:
    """scikit-learn's check of ``sample_weight``, its errors naming the parameter.

    Some of scikit-learn's messages say "Sample weights" (a 2-d array, all
    zeros); they get the parameter's name in front.
    """
    try:
        return _check_sample_weight(
            sample_weight, X, dtype=np.float64, ensure_non_negative=True
        )
    except ValueError as exc:
        if "sample_weight" in str(exc):
            raise
        raise ValueError(f"sample_weight: {exc}") from exc


def _float32_weights(weights: np.ndarray, name: str) -> np.ndarray:
    """Non-negative float64 ``weights`` as the float32 the training loss uses.

    Refuses weights that float32 cannot hold: a sum beyond its range (the
    batch losses would overflow), or positive weights that it rounds to 0
    (their samples would silently take no part in training).
    """
    float32 = np.finfo(np.float32)
    total = weights.sum()
    if not total <= float32.max:
        raise ValueError(
            f"{name} sums to {total:.3g}, beyond the range of float32 (at most "
            f"{float32.max:.3g}), in which the net computes its training loss; "
            "divide the weights by a constant."
        )
    weights32 = weights.astype(np.float32)
    lost = (weights > 0) & (weights32 == 0)
    if np.any(lost):
        raise ValueError(
            f"{name} has positive values below float32's smallest positive number "
            f"({float32.smallest_subnormal:.3g}; {np.count_nonzero(lost)} of them, "
            f"the smallest {weights[lost].min():.3g}): float32, in which the net "
            "trains, rounds them to 0, and their samples would take no part in "
            "training. "
            "Multiply the weights by a constant, or set those to 0."
        )
    return weights32


def _weighted_training(net, weights) -> dict:
    """Net parameters that weight each training sample's loss by ``weights``.

    The training loader hands over ``(y, weights)`` targets and the user's
    criterion is wrapped in :class:`WeightedLoss`, which takes them apart.
    """
    if net.iterator_train is not BatchLoader:
        raise ValueError(
            "sample_weight and class_weight need skprune's data path, but the "
            f"estimator's iterator_train is {net.iterator_train!r}; leave "
            "iterator_train at its default."
        )
    if net.criterion is WeightedLoss:  # the user's own, already weighting
        return {"iterator_train__sample_weight": weights}
    return {
        "criterion": WeightedLoss,
        "criterion__loss": net.criterion,
        # NeuralNetClassifier feeds NLLLoss log(y_pred); WeightedLoss hides the
        # NLLLoss from it, so it takes the log itself.
        "criterion__nll_on_probabilities": isinstance(net, NeuralNetClassifier),
        "iterator_train__sample_weight": weights,
    }


def _named(callbacks):
    """skorch callbacks as ``(name, callback)`` pairs; unnamed ones get their class."""
    return [
        cb if isinstance(cb, tuple) else (type(cb).__name__, cb) for cb in callbacks
    ]

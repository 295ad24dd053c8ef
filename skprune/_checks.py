"""The checks a fit makes before training, each raising an error that names the
problem and the way out: the wrapped net's callbacks, its criterion against
the module's outputs, its optimizer against sparse gradients, and the sample
weights.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from skorch.callbacks import EarlyStopping, GradientNormClipping

from ._compat import _check_sample_weight
from ._core.masks import find_prunable_layers
from ._nn.losses import unweighted_loss
from ._nn.optim import LazyAdam
from ._wiring import _named
from .callbacks._pruning import Pruning
from .exceptions import DenseGradientWarning


def _check_callbacks(callbacks, owner: str) -> None:
    """Refuse the wrapped net's callbacks that pruning cannot run with."""
    if callbacks == "disable":
        raise ValueError(
            "estimator has callbacks='disable', but pruning runs as a callback; "
            "pass callbacks=[] and remove the default ones by name instead."
        )
    for name, callback in _named(callbacks or []):
        if isinstance(callback, Pruning):
            raise ValueError(
                "estimator already has a skprune Pruning callback; "
                f"{owner} adds its own, so remove it."
            )
        if isinstance(callback, EarlyStopping):
            raise ValueError(
                f"estimator has an EarlyStopping callback ({name!r}), which is "
                "not supported: it would end training before the pruning "
                "schedule has run (dense max_epochs, then retrain_epochs after "
                "each pruning step). Remove it and choose max_epochs instead."
            )


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

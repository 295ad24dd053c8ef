"""Wiring a skorch net for a pruned fit: the default training settings, the
sparse data path, the callbacks, per-sample weights, and a training loop that
lets Ctrl-C through.
"""

from __future__ import annotations

import inspect

import numpy as np
import scipy.sparse as sp
from skorch import NeuralNetClassifier
from skorch.dataset import Dataset as SkorchDataset
from torch.utils.data import DataLoader

from ._nn.data import BatchLoader, SparseDataset, as_canonical_csr
from ._nn.losses import WeightedLoss
from ._nn.optim import LazyAdam
from .callbacks.progress import PruningProgress

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


def _train(net, X, y, **fit_params) -> None:
    """skorch's ``partial_fit`` on an initialised net, but letting Ctrl-C through.

    ``partial_fit`` catches ``KeyboardInterrupt`` and returns normally, which
    would make an interrupted fit look complete.
    """
    net.notify("on_train_begin", X=X, y=y)
    net.fit_loop(X, y, **fit_params)
    net.notify("on_train_end", X=X, y=y)


def _as_batchable(X):
    """Canonical CSR without stored zeros for sparse input, C-contiguous otherwise."""
    if sp.issparse(X):
        return as_canonical_csr(X)
    return np.ascontiguousarray(X)


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


def _net_params(net, pruning, module_sizes: dict, verbose: int) -> dict:
    """What the net is set to before training: the pruning callback (and the
    progress lines with ``verbose``), the data sizes its module takes, and
    skprune's sparse data path where the net uses skorch's defaults."""
    # First among the user's callbacks, so theirs see masked weights.
    params = {"callbacks": [("pruning", pruning), *_named(net.callbacks or [])]}
    if verbose:
        progress = PruningProgress().follow(pruning.round_log)
        params["callbacks"].insert(1, ("pruning_progress", progress))
    module = net.module
    if isinstance(module, type):
        accepted = inspect.signature(module).parameters
        params.update(
            {
                f"module__{key}": value
                for key, value in module_sizes.items()
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

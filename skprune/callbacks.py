"""The skorch callback that prunes a network while it trains.

:class:`Pruning` holds the masks and acts at batch and epoch boundaries: it
records gradients for importance criteria that need them, prunes at the steps of
its schedule, keeps pruned weights at exactly zero after every optimizer step,
lowers the learning rate for retraining and, if asked, rewinds the survivors to
their early values. :class:`skprune.PrunedClassifier` drives it; users of a plain
skorch net add it to ``callbacks`` and train for ``total_epochs`` epochs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from skorch.callbacks import Callback
from skorch.dataset import get_len
from skorch.utils import data_from_dataset

from . import importance as importance_lib
from .compress import shrink_mlp_, structure_to_keep
from .masks import (
    PrunableLayer,
    apply_masks,
    find_prunable_layers,
    mask_sparse_gradient,
    matching_names,
    reachable_ratio,
    select_masks,
)
from .modules import MLPModule
from .schedules import make_schedule, total_epochs

__all__ = ["Pruning"]

GRANULARITIES = ("weight", "neuron", "feature")
SCOPES = ("global", "layer")


class Pruning(Callback):
    """Prune a skorch net's module during training, on a schedule.

    Parameters
    ----------
    prune_ratio : float in [0, 1), default=0.5
        Fraction pruned in the end: of the prunable weights for
        ``granularity="weight"``, of the hidden units for ``"neuron"``, of the
        input features for ``"feature"``. 0 prunes nothing but trains on the
        same schedule, which makes it the fair unpruned control.
    importance : {"magnitude", "taylor", "random"} or callable, default="magnitude"
        How weights are ranked; a callable ``(name, weight, grad) -> scores`` is
        also accepted (see :mod:`skprune.importance`).
    granularity : {"weight", "neuron", "feature"}, default="weight"
        What is removed: single weights; whole hidden units (a row of one layer,
        its bias and the matching column of the next layer); or whole input
        features (a column of the first layer).
    scope : {"global", "layer"}, default="global"
        Rank across all prunable layers at once, or prune ``prune_ratio`` of
        each layer.
    schedule : {"oneshot", "iterative", "gradual"}, default="oneshot"
        When to prune; see :mod:`skprune.schedules`.
    train_epochs : int, default=6
        Epochs of dense training before the first pruning step.
    retrain_epochs : int, default=4
        Epochs of retraining after each pruning round.
    n_rounds : int, default=1
        Pruning rounds of ``"iterative"`` and steps of ``"gradual"``.
    retrain_lr_factor : float, default=1.0
        From the first pruning step on, the learning rate of every parameter
        group is its initial value times this factor.
    rewind : bool, default=False
        After each pruning step, reset the surviving weights (and all biases) to
        their values after ``rewind_epoch`` epochs and clear the optimizer state,
        as in Frankle & Carbin (2019).
    rewind_epoch : int, default=0
        Epoch whose values ``rewind`` restores; 0 is the initialisation.
    min_keep : int or float, default=1
        Floor per prunable tensor (per layer): an int is a count of weights
        (units, features), a float in (0, 1) a fraction that always survives.
    prune_output : bool, default=False
        Whether the output layer's weights are prunable.
    prune_bias : bool, default=False
        Whether biases are prunable (``granularity="weight"`` only; pruning a
        hidden unit always removes its bias).
    layers : sequence of str or None, default=None
        ``fnmatch`` patterns over weight names (``"layers.0.weight"``) selecting
        the prunable layers; overrides ``prune_output``. None selects every
        affine layer except the output layer.
    random_state : int, default=0
        Seed of ``importance="random"``.

    Attributes
    ----------
    masks_ : dict of str to torch.Tensor of bool
        True where a weight is kept, for every parameter that pruning touched.
    steps_ : list of skprune.schedules.PruningStep
        The schedule's steps.
    history_ : list of dict
        One row per pruning step: epoch, target ratio, achieved sparsity, and the
        loss and score (the net's ``score``) before pruning, right after it, and
        after retraining, on the validation data if the net splits some off,
        otherwise on the training data.
    layers_ : list of skprune.masks.PrunableLayer
        Every affine layer of the module, input first.
    prunable_ : list of str
        Names of the parameters that count as prunable.
    initial_sparsity_ : float
        Fraction of prunable weights already zero before training (the module
        may come with zeros of its own); kept for reports.
    """

    def __init__(
        self,
        prune_ratio: float = 0.5,
        *,
        importance="magnitude",
        granularity: str = "weight",
        scope: str = "global",
        schedule: str = "oneshot",
        train_epochs: int = 6,
        retrain_epochs: int = 4,
        n_rounds: int = 1,
        retrain_lr_factor: float = 1.0,
        rewind: bool = False,
        rewind_epoch: int = 0,
        min_keep: int | float = 1,
        prune_output: bool = False,
        prune_bias: bool = False,
        layers: Sequence[str] | None = None,
        random_state: int = 0,
    ) -> None:
        self.prune_ratio = prune_ratio
        self.importance = importance
        self.granularity = granularity
        self.scope = scope
        self.schedule = schedule
        self.train_epochs = train_epochs
        self.retrain_epochs = retrain_epochs
        self.n_rounds = n_rounds
        self.retrain_lr_factor = retrain_lr_factor
        self.rewind = rewind
        self.rewind_epoch = rewind_epoch
        self.min_keep = min_keep
        self.prune_output = prune_output
        self.prune_bias = prune_bias
        self.layers = layers
        self.random_state = random_state

    @property
    def total_epochs(self) -> int:
        """Epochs the net must train for the whole schedule to run."""
        return total_epochs(
            self.schedule, self.train_epochs, self.retrain_epochs, self.n_rounds
        )

    # skorch hooks ---------------------------------------------------------------

    def initialize(self):
        self._check_params()
        self.steps_ = make_schedule(
            self.schedule,
            self.prune_ratio,
            self.train_epochs,
            self.retrain_epochs,
            self.n_rounds,
        )
        self.masks_ = {}
        self.shrunk_ = False
        self.history_ = []
        self.epochs_done_ = 0
        self._next_step = 0
        self._snapshot = None
        self._initial_lrs = None
        self._grad_sums = {}
        self._grad_batches = 0
        self._batches_in_epoch = 0
        self._batches_per_epoch = None
        self._train_dataset = None
        self._eval_dataset = None
        return self

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        module = net.module_
        params = dict(module.named_parameters())
        if not self.masks_ and self._next_step == 0:
            self.layers_ = find_prunable_layers(module)
            self.prunable_ = self._select_prunable(self.layers_, params)
            self._check_against_module(params)
            self.initial_sparsity_ = self.sparsity(module)
        self._activate(params)
        if self._initial_lrs is None:
            self._initial_lrs = [g["lr"] for g in net.optimizer_.param_groups]
        if self.rewind and self._snapshot is None and self.rewind_epoch == 0:
            self._snapshot = _copy_parameters(module)

    def on_epoch_begin(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        self._train_dataset = dataset_train
        self._eval_dataset = dataset_train if dataset_valid is None else dataset_valid
        if self._batches_per_epoch is None:
            self._batches_per_epoch = len(
                net.get_iterator(dataset_train, training=True)
            )
        self._batches_in_epoch = 0

    def on_grad_computed(
        self, net, named_parameters, batch=None, training=True, **kwargs
    ):
        if not training:
            return
        for param, kept in self._active:
            if param.grad is not None and param.grad.is_sparse:
                mask_sparse_gradient(param, kept=kept)
        if not self._collects_gradients():
            return
        wanted = set(self._scored)
        for name, param in named_parameters:
            if name not in wanted or param.grad is None:
                continue
            grad = param.grad.detach()
            total = self._grad_sums.get(name)
            if total is None:
                total = self._grad_sums[name] = torch.zeros_like(param)
            if grad.is_sparse:
                grad = grad.coalesce()
                total.index_add_(0, grad.indices()[0], grad.values().abs())
            else:
                total.add_(grad.abs())
        self._grad_batches += 1

    def on_batch_end(self, net, batch=None, training=True, **kwargs):
        if not training:
            return
        # Dense gradients can move any weight: re-zero the pruned ones after the
        # step. Row-sparse gradients were masked before it (on_grad_computed).
        with torch.no_grad():
            for param, kept in self._active:
                if param.grad is None or not param.grad.is_sparse:
                    param.masked_fill_(~kept, 0.0)
        self._batches_in_epoch += 1
        if self._batches_in_epoch >= self._batches_per_epoch:
            return  # steps at the end of an epoch are taken in on_epoch_end
        progress = self.epochs_done_ + self._batches_in_epoch / self._batches_per_epoch
        while (step := self._pending_step()) is not None and (
            step.epoch <= progress + 1e-9
        ):
            self._prune(net)

    def on_epoch_end(self, net, **kwargs):
        self.epochs_done_ += 1
        if self.masks_ and not self.shrunk_:  # for optimizers that move zeros
            apply_masks(dict(net.module_.named_parameters()), self.masks_)
        if (
            self.rewind
            and self._snapshot is None
            and (self.epochs_done_ == self.rewind_epoch)
        ):
            self._snapshot = _copy_parameters(net.module_)
        while (step := self._pending_step()) is not None and (
            step.epoch <= self.epochs_done_ + 1e-9
        ):
            self._prune(net)

    def on_train_end(self, net, X=None, y=None, **kwargs):
        if self.history_ and self.history_[-1].get("loss_retrained") is None:
            loss, score = _evaluate(net, self._eval_dataset)
            self.history_[-1].update(loss_retrained=loss, score_retrained=score)

    # pruning ------------------------------------------------------------------

    def _prune(self, net):
        step = self.steps_[self._next_step]
        module = net.module_
        params = dict(module.named_parameters())
        loss_before, score_before = _evaluate(net, self._eval_dataset)
        if self.history_ and self.history_[-1].get("loss_retrained") is None:
            self.history_[-1].update(
                loss_retrained=loss_before, score_retrained=score_before
            )

        # Nothing pruned yet and nothing to prune (the unpruned control): no
        # scores, no masks.
        if step.ratio > 0 or self.masks_:
            grads = None
            if self._grad_batches:
                grads = {n: s / self._grad_batches for n, s in self._grad_sums.items()}
            criterion = importance_lib.resolve(
                self.importance, seed=self.random_state + self._next_step
            )
            score = (
                importance_lib.score_by_rows
                if self.granularity == "weight"
                else importance_lib.compute_scores
            )
            scores = score(criterion, {n: params[n] for n in self._scored}, grads)
            self.masks_ = self._masks_from_scores(scores, step.ratio)
        if self.rewind and self._snapshot is not None:
            with torch.no_grad():
                for name, value in self._snapshot.items():
                    params[name].copy_(value)
            net.optimizer_.state.clear()
        apply_masks(params, self.masks_, net.optimizer_)
        self._activate(params)
        if self._shrinks_after(self._next_step, module):
            self._shrink(net)
        if self._next_step == 0:
            for group, lr in zip(
                net.optimizer_.param_groups, self._initial_lrs, strict=True
            ):
                group["lr"] = lr * self.retrain_lr_factor
        self._grad_sums, self._grad_batches = {}, 0
        self._next_step += 1

        loss_after, score_after = _evaluate(net, self._eval_dataset)
        self.history_.append(
            {
                "round": self._next_step,
                "epoch": step.epoch,
                "target_ratio": step.ratio,
                "sparsity": self.sparsity(module),
                "evaluated_on": self._eval_name(net),
                "loss_before": loss_before,
                "score_before": score_before,
                "loss_after": loss_after,
                "score_after": score_after,
                "loss_retrained": None,
                "score_retrained": None,
            }
        )

    def _masks_from_scores(self, scores, ratio):
        """Turn weight-level scores into masks at the configured granularity."""
        if self.granularity == "weight":
            floors = {n: self._floor(scores[n].numel()) for n in scores}
            return select_masks(
                scores, ratio, scope=self.scope, min_keep=floors, previous=self.masks_
            )
        # A group's score is the mean score of its weights, slice by slice (a
        # unit's incoming and outgoing weights count alike), each tensor's scores
        # relative to their own mean: layers with large fan-in have small weights,
        # and a global ranking would otherwise empty them first.
        group_scores = {
            key: torch.stack(
                [
                    scores[n].mean(dim=1 - axis) / scores[n].mean().clamp_min(1e-30)
                    for n, axis in members
                    if n in scores
                ]
            ).mean(0)
            for key, members in self._groups_.items()
        }
        previous = {
            key: self.masks_[key].any(dim=1 - members[0][1])
            for key, members in self._groups_.items()
            if key in self.masks_
        }
        floors = {k: self._floor(v.numel()) for k, v in group_scores.items()}
        kept = select_masks(
            group_scores, ratio, scope=self.scope, min_keep=floors, previous=previous
        )
        masks = {}
        for key, members in self._groups_.items():
            for name, axis in members:
                mask = _expand(kept[key], axis, self._shapes[name])
                masks[name] = mask if name not in masks else masks[name] & mask
        return masks

    def _group_sizes(self) -> dict[str, int]:
        """Number of entries ranked in each tensor: weights, units or features."""
        if self.granularity == "weight":
            return {n: math.prod(self._shapes[n]) for n in self.prunable_}
        return {
            key: self._shapes[key][members[0][1]]
            for key, members in self._groups_.items()
        }

    def _find_groups(self):
        """Map each group tensor to the (parameter, axis) slices it removes.

        For ``"neuron"``: the units of every prunable hidden layer, each one a
        slice of the layer's weight along its output axis, of its bias, and of
        the next layer's weight along its input axis. For ``"feature"``: the
        input features, slices of the first layer's weight along its input axis.
        """
        by_weight = {layer.weight: i for i, layer in enumerate(self.layers_)}
        groups = {}
        if self.granularity == "feature":
            first = self.layers_[0]
            groups[first.weight] = [(first.weight, first.in_axis)]
            return groups
        for name in self.prunable_:
            i = by_weight[name]
            layer, following = self.layers_[i], self.layers_[i + 1]
            members = [(layer.weight, layer.out_axis)]
            if layer.bias is not None:
                members.append((layer.bias, 0))
            members.append((following.weight, following.in_axis))
            groups[layer.weight] = members
        return groups

    def _select_prunable(self, layers: list[PrunableLayer], params) -> list[str]:
        if self.layers is not None:
            chosen = [
                layer for layer in layers if matching_names([layer.weight], self.layers)
            ]
        else:
            chosen = layers if self.prune_output else layers[:-1]
        if self.granularity == "feature":
            chosen = [layer for layer in chosen if layer is layers[0]]
        elif self.granularity == "neuron":
            chosen = [layer for layer in chosen if layer is not layers[-1]]
        names = [layer.weight for layer in chosen]
        if self.prune_bias and self.granularity == "weight":
            names += [layer.bias for layer in chosen if layer.bias is not None]
        return names

    def _check_against_module(self, params):
        if not self.layers_:
            raise ValueError(
                "The module has no prunable layer: Pruning needs torch.nn.Linear "
                "or skprune.modules.SparseLinear layers."
            )
        if not self.prunable_:
            what = {
                "weight": "no layer is selected (the output layer is excluded "
                "unless prune_output=True, and layers= may match nothing)",
                "neuron": "no hidden layer is selected (a network without "
                "hidden layers has no units to remove)",
                "feature": "the first layer is not selected",
            }[self.granularity]
            raise ValueError(f"Nothing to prune: {what}.")
        if self.granularity == "neuron":
            for i, layer in enumerate(self.layers_[:-1]):
                following = self.layers_[i + 1]
                if layer.weight in self.prunable_ and (
                    layer.out_features != following.in_features
                ):
                    raise ValueError(
                        "granularity='neuron' needs a chain of layers, each "
                        f"feeding the next, but {layer.name!r} has "
                        f"{layer.out_features} outputs and {following.name!r} "
                        f"{following.in_features} inputs."
                    )
        self._shapes = {name: tuple(p.shape) for name, p in params.items()}
        if self.granularity == "weight":
            self._groups_ = {}
            self._scored = list(self.prunable_)
        else:
            self._groups_ = self._find_groups()
            self._scored = list(
                dict.fromkeys(
                    name
                    for members in self._groups_.values()
                    for name, _ in members
                    if len(self._shapes[name]) == 2
                )
            )
        # An unreachable ratio or a misbehaving importance callable fails here,
        # before any training.
        sizes = self._group_sizes()
        reachable = reachable_ratio(
            sizes, {n: self._floor(size) for n, size in sizes.items()}, self.scope
        )
        if self.prune_ratio > reachable + 1e-12:
            raise ValueError(
                f"prune_ratio={self.prune_ratio} cannot be reached with "
                f"min_keep={self.min_keep!r} and scope={self.scope!r}; the highest "
                f"reachable ratio is {reachable:.4f}."
            )
        if callable(self.importance):
            importance_lib.compute_scores(
                self.importance,
                {n: params[n] for n in self._scored},
                {n: torch.zeros_like(params[n]) for n in self._scored},
            )

    def _check_params(self):
        if self.granularity not in GRANULARITIES:
            raise ValueError(
                f"granularity must be one of {GRANULARITIES}, got {self.granularity!r}."
            )
        if self.scope not in SCOPES:
            raise ValueError(f"scope must be one of {SCOPES}, got {self.scope!r}.")
        if not (
            callable(self.importance)
            or self.importance in importance_lib.IMPORTANCE_CRITERIA
        ):
            raise ValueError(
                "importance must be one of "
                f"{importance_lib.IMPORTANCE_CRITERIA} or a callable, got "
                f"{self.importance!r}."
            )
        if isinstance(self.min_keep, float) and not 0.0 < self.min_keep < 1.0:
            raise ValueError(
                f"min_keep as a fraction must be in (0, 1), got {self.min_keep!r}."
            )
        if isinstance(self.min_keep, int) and self.min_keep < 0:
            raise ValueError(f"min_keep must be at least 0, got {self.min_keep!r}.")
        if not self.retrain_lr_factor > 0:
            raise ValueError(
                f"retrain_lr_factor must be positive, got {self.retrain_lr_factor!r}."
            )
        if self.rewind_epoch < 0 or self.rewind_epoch > self.train_epochs:
            raise ValueError(
                f"rewind_epoch must be in [0, train_epochs={self.train_epochs}], "
                f"got {self.rewind_epoch!r}."
            )

    # helpers --------------------------------------------------------------------

    def count_parameters(self, module: torch.nn.Module) -> tuple[int, int]:
        """Prunable weights in the original network, and how many are non-zero.

        Weights physically removed by shrinking count as zero.
        """
        params = dict(module.named_parameters())
        total = sum(math.prod(self._shapes[n]) for n in self.prunable_)
        nonzero = sum(int(torch.count_nonzero(params[n])) for n in self.prunable_)
        return total, nonzero

    def sparsity(self, module: torch.nn.Module) -> float:
        """Fraction of the prunable weights that are zero (or removed)."""
        total, nonzero = self.count_parameters(module)
        return 1.0 - nonzero / total if total else 0.0

    def _floor(self, n_entries: int) -> int:
        if isinstance(self.min_keep, float):
            return math.ceil(self.min_keep * n_entries)
        return min(int(self.min_keep), n_entries)

    def _collects_gradients(self) -> bool:
        return self._pending_step() is not None and importance_lib.needs_gradients(
            self.importance
        )

    def _pending_step(self):
        if self._next_step < len(self.steps_):
            return self.steps_[self._next_step]
        return None

    def _shrinks_after(self, step_index: int, module: torch.nn.Module) -> bool:
        """Whether the module is physically shrunk after this pruning step.

        After the last step of a structured granularity, removed units and
        features are cut out of an :class:`~skprune.MLPModule`, so retraining
        runs on the smaller network. Earlier rounds keep the shapes, so that
        every round ranks the same units.
        """
        return (
            self.granularity != "weight"
            and step_index == len(self.steps_) - 1
            and isinstance(module, MLPModule)
        )

    def _shrink(self, net):
        module = net.module_
        shrink_mlp_(module, *structure_to_keep(module))
        lrs = [group["lr"] for group in net.optimizer_.param_groups]
        net.initialize_optimizer()
        for group, lr in zip(net.optimizer_.param_groups, lrs, strict=True):
            group["lr"] = lr
        self.shrunk_ = True
        self._active = []
        self._snapshot = None

    def _activate(self, params):
        """Pair each parameter that has pruned weights with its mask."""
        if self.shrunk_:  # what is left after shrinking is all kept
            self._active = []
            return
        self._active = [
            (params[name], mask.to(params[name].device))
            for name, mask in self.masks_.items()
            if not bool(mask.all())
        ]

    def _eval_name(self, net):
        return "validation" if net.train_split else "training"

    def __getstate__(self):
        state = self.__dict__.copy()
        # Tensors aliasing the module's parameters are rebuilt at the next
        # on_train_begin; the datasets would put the training data in the pickle.
        state.pop("_active", None)
        state["_train_dataset"] = state["_eval_dataset"] = None
        return state


def _evaluate(net, dataset):
    """Loss and the net's ``score`` on a dataset, in evaluation mode."""
    if dataset is None:
        return None, None
    total, count = 0.0, 0
    for batch in net.get_iterator(dataset, training=False):
        step = net.validation_step(batch)
        n = get_len(batch[0])
        total += float(step["loss"]) * n
        count += n
    _, y = data_from_dataset(dataset)
    score = float(net.score(dataset, np.asarray(y))) if hasattr(net, "score") else None
    return total / max(count, 1), score


def _copy_parameters(module):
    return {n: p.detach().clone() for n, p in module.named_parameters()}


def _expand(group_keep, axis, shape):
    if len(shape) == 1:
        return group_keep.clone()
    view = [1, 1]
    view[axis] = -1
    return group_keep.reshape(view).expand(shape).clone()

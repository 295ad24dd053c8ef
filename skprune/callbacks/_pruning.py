"""The skorch callback that prunes a network while it trains.

:class:`Pruning` holds the masks and acts at batch and epoch boundaries: it
records gradients for importance criteria that need them, prunes at the steps of
its schedule, keeps pruned weights at exactly zero after every optimizer step,
lowers the learning rate for retraining and, if asked, rewinds the survivors to
their early values. What a step removes (weights, units, features) is its
granularity's business (:mod:`skprune.granularity`). :class:`skprune.PrunedClassifier`
drives it; users of a plain skorch net add it to ``callbacks`` and train for
``total_epochs`` epochs.

What it keeps between hooks lives in pure-torch objects of ``skprune._core``,
each tested without skorch: where training is in the schedule
(``ScheduleCursor``), the rewind snapshot (``RewindSnapshot``), the gradient
sums (``GradientSums``), the masks held on the weights (``MaskSet``) and the
history rows (``RoundLog``).
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from skorch.callbacks import Callback
from skorch.dataset import get_len
from skorch.utils import data_from_dataset

from .._compat import Interval, validate_parameter_constraints
from .._core import importance as importance_lib
from .._core.masks import apply_masks
from .._core.maskset import (
    GradientSums,
    MaskSet,
    choose_masks,
    count_kept,
    prepare_granularity,
    set_learning_rates,
    sparsity,
)
from .._core.rounds import RoundLog
from .._core.schedules import (
    PruningStep,
    make_schedule,
    non_finite_loss_message,
    total_epochs,
)
from .._core.training import RewindSnapshot, ScheduleCursor
from .._nn.modules import MLPModule
from .._params import (
    PRUNING_PARAMETER_CONSTRAINTS,
    check_rewind_epoch,
    default_retrain_epochs,
)
from ..compress._shrink import shrink_mlp_, structure_to_keep

__all__ = ["Pruning", "default_retrain_epochs"]


class Pruning(Callback):
    """Prune a skorch net's module during training, on a schedule.

    Parameters
    ----------
    prune_ratio : float in [0, 1), default=0.5
        Fraction pruned in the end: of the prunable weights for
        ``granularity="weight"``, of their blocks for ``"block"``, of the hidden
        units for ``"neuron"``, of the input features for ``"feature"``. 0
        prunes nothing but trains on the same schedule, which makes it the fair
        unpruned control.
    importance : {"magnitude", "taylor", "random"} or callable, default="magnitude"
        How weights are ranked. A callable ``(name, weight, grad) -> scores`` is
        also accepted (see :mod:`skprune.importance`).
    granularity : {"weight", "block", "neuron", "feature"}, default="weight"
        What is removed: single weights, blocks of ``block_size`` weights, whole
        hidden units, or whole input features. A hidden unit is a row of one
        layer, its bias and the matching column of the next layer; a feature is
        a column of the first layer.
    block_size : int, default=8
        Consecutive outputs of one input per block of ``granularity="block"``;
        unused otherwise. A block of a ``torch.nn.Linear`` weight ``W`` is
        ``W[b * block_size:(b + 1) * block_size, i]``, a run of one input's
        weights that a sparse kernel multiplies a vector at a time; a layer
        whose width is not a multiple of it ends each run with a shorter block.
    scope : {"global", "layer"}, default="global"
        One ranking across all prunable layers, or ``prune_ratio`` in each layer.
    schedule : {"oneshot", "iterative", "gradual"}, default="oneshot"
        When to prune. See :mod:`skprune.schedules`.
    train_epochs : int, default=6
        Epochs of dense training before the first pruning step.
    n_rounds : int, default=1
        Rounds of ``"iterative"``, steps of ``"gradual"``.
    retrain_epochs : int or None, default=None
        Epochs of retraining after each round. None means
        :func:`default_retrain_epochs` of ``train_epochs`` (two thirds, at
        least 1).
    retrain_lr_factor : float, default=1.0
        Learning rate during retraining, as a multiple of the initial one. From
        the first pruning step on, every parameter group's learning rate is its
        initial value times this factor.
    rewind : bool, default=False
        Reset surviving weights to their values after ``rewind_epoch`` epochs
        after each pruning step (lottery-ticket rewinding). Biases are reset
        too and the optimizer state is cleared, as in Frankle & Carbin (2019).
    rewind_epoch : int, default=0
        Epoch whose weights ``rewind`` restores; 0 is the initialisation.
    min_keep : int or float, default=1
        Floor per layer: a count, or a fraction in (0, 1), of its weights
        (blocks, units, features) that always survives.
    prune_output : bool, default=False
        Whether the output layer's weights are prunable.
    prune_bias : bool, default=False
        Whether biases are prunable (``granularity="weight"`` only). Pruning a
        hidden unit always removes its bias.
    layers : list of str or None, default=None
        ``fnmatch`` patterns of the weight names to prune, for example
        ``["layers.0.weight"]``; None means every layer but the output layer.
        The patterns override ``prune_output``.
    random_state : int, RandomState instance or None, default=None
        Seeds what pruning draws at random (``importance="random"``). An
        int is the seed of the first round (each round adds one); otherwise a
        seed is drawn from it at ``initialize``, None drawing from numpy's
        global generator.

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
    granularity_ : skprune.granularity.Granularity
        What a step removes, made from ``granularity`` for this module.
    prunable_ : list of str
        Names of the parameters that count as prunable.
    initial_sparsity_ : float
        Fraction of prunable weights already zero before training (the module
        may come with zeros of its own); kept for reports.

    Raises
    ------
    ValueError
        From ``initialize``, scikit-learn's ``InvalidParameterError`` for a bad
        parameter; from ``fit``, before training, when nothing can be pruned or
        the ratio cannot be reached, and during training, when the training loss
        is not finite (naming the epoch and the phase).

    See Also
    --------
    skprune.PrunedClassifier : Drives this callback from ``fit``.

    Examples
    --------
    A plain skorch net, trained for the schedule's ``total_epochs``: 2 dense
    epochs, then one-shot pruning of 90% of the first layer and 1 epoch of
    retraining:

    >>> import torch
    >>> from skorch import NeuralNetClassifier
    >>> from skprune import MLPModule
    >>> from skprune.callbacks import Pruning, PruningProgress
    >>> from skprune.datasets import make_text_classification
    >>> X, y = make_text_classification(
    ...     100, 500, n_classes=2, n_topic_words=20, random_state=0
    ... )
    >>> pruning = Pruning(prune_ratio=0.9, train_epochs=2, retrain_epochs=1)
    >>> pruning.total_epochs
    3
    >>> net = NeuralNetClassifier(
    ...     MLPModule,
    ...     module__n_features=500,
    ...     module__n_classes=2,
    ...     module__hidden_layer_sizes=(16,),
    ...     criterion=torch.nn.CrossEntropyLoss,
    ...     max_epochs=pruning.total_epochs,
    ...     callbacks=[pruning],
    ...     train_split=None,
    ...     verbose=0,
    ... ).fit(X.toarray(), y)
    >>> pruning.steps_, list(pruning.masks_)
    ([PruningStep(epoch=2.0, ratio=0.9)], ['layers.0.weight'])
    >>> round(pruning.sparsity(net.module_), 3)
    0.9
    >>> int(torch.count_nonzero(net.module_.layers[0].weight))
    800
    """

    _parameter_constraints: dict = {
        **PRUNING_PARAMETER_CONSTRAINTS,
        "train_epochs": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(
        self,
        prune_ratio: float = 0.5,
        *,
        importance="magnitude",
        granularity: str = "weight",
        block_size: int = 8,
        scope: str = "global",
        schedule: str = "oneshot",
        train_epochs: int = 6,
        n_rounds: int = 1,
        retrain_epochs: int | None = None,
        retrain_lr_factor: float = 1.0,
        rewind: bool = False,
        rewind_epoch: int = 0,
        min_keep: int | float = 1,
        prune_output: bool = False,
        prune_bias: bool = False,
        layers: Sequence[str] | None = None,
        random_state=None,
    ) -> None:
        self.prune_ratio = prune_ratio
        self.importance = importance
        self.granularity = granularity
        self.block_size = block_size
        self.scope = scope
        self.schedule = schedule
        self.train_epochs = train_epochs
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

    @classmethod
    def _get_param_names(cls):
        # skorch lists every attribute not ending in "_", private state
        # included, which clone() would pass back to __init__. A callback's
        # parameters are its constructor's, as for any scikit-learn estimator.
        return BaseEstimator._get_param_names.__func__(cls)

    @property
    def round_log(self) -> RoundLog:
        """The log of :attr:`history_`, the same object across fits: what
        :class:`~skprune.progress.PruningProgress` is handed to read."""
        log = self.__dict__.setdefault("_round_log", RoundLog())
        # A restored callback gets its history_ and steps_ set directly.
        if "history_" in self.__dict__:
            log.start(self.history_, len(self.steps_), self.train_epochs)
        return log

    @property
    def total_epochs(self) -> int:
        """Epochs the net must train for the whole schedule to run."""
        return total_epochs(
            self.schedule, self.train_epochs, self._retrain_epochs(), self.n_rounds
        )

    @property
    def epochs_done_(self) -> int:
        """Epochs of training finished."""
        return self._cursor.epochs_done

    # skorch hooks ---------------------------------------------------------------

    def initialize(self):
        self._validate_params()
        self._seed = _seed_of(self.random_state)
        self.steps_ = self._make_steps()
        self.masks_ = {}
        self.shrunk_ = False
        self.history_ = []
        self.round_log.start(self.history_, len(self.steps_), self.train_epochs)
        self._cursor = ScheduleCursor(self.steps_)
        self._rewind = RewindSnapshot(self.rewind_epoch if self.rewind else None)
        self._gradients = GradientSums()
        self._initial_lrs = None
        self._eval_dataset = None
        return self

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        module = net.module_
        if self._cursor.taken == 0:
            self._prepare(module)
        self._activate(dict(module.named_parameters()))
        if self._initial_lrs is None:
            self._initial_lrs = [g["lr"] for g in net.optimizer_.param_groups]
        self._rewind.offer(0, module)

    def on_epoch_begin(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        self._eval_dataset = dataset_train if dataset_valid is None else dataset_valid
        self._cursor.start_epoch(
            lambda: len(net.get_iterator(dataset_train, training=True))
        )

    def on_grad_computed(
        self, net, named_parameters, batch=None, training=True, **kwargs
    ):
        if not training:
            return
        self._active.mask_sparse_gradients()
        pending = self._cursor.pending is not None
        if pending and importance_lib.needs_gradients(self.importance):
            self._gradients.add(named_parameters, self.granularity_.scored)

    def on_batch_end(self, net, batch=None, training=True, loss=None, **kwargs):
        if not training:
            return
        if loss is not None and not bool(torch.isfinite(torch.as_tensor(loss)).all()):
            raise ValueError(
                non_finite_loss_message(
                    float(torch.as_tensor(loss).detach().sum()),
                    self._cursor.epochs_done + 1,
                    self._cursor.phase,
                )
            )
        # Row-sparse gradients were masked before the step (on_grad_computed).
        self._active.zero_pruned()
        fraction = self._cursor.end_batch()
        if fraction is not None:  # steps at an epoch's end wait for on_epoch_end
            self._prune_due(net, fraction)

    def on_epoch_end(self, net, **kwargs):
        self._cursor.end_epoch()
        if self.masks_ and not self.shrunk_:  # for optimizers that move zeros
            apply_masks(dict(net.module_.named_parameters()), self.masks_)
        self._rewind.offer(self._cursor.epochs_done, net.module_)
        self._prune_due(net)

    def on_train_end(self, net, X=None, y=None, **kwargs):
        self.round_log.close(self._evaluation(net))

    # pruning ------------------------------------------------------------------

    def _make_steps(self) -> list[PruningStep]:
        """The schedule's steps; subclasses may prune on another schedule."""
        return make_schedule(
            self.schedule,
            self.prune_ratio,
            self.train_epochs,
            self._retrain_epochs(),
            self.n_rounds,
        )

    def _prune_due(self, net, epoch_fraction: float = 0.0):
        """Take every step due after ``epoch_fraction`` more of the epochs done."""
        while self._cursor.is_due(epoch_fraction):
            self._prune(net)

    def _prune(self, net):
        """Take the next step of the schedule and record it in ``history_``."""
        module, optimizer = net.module_, net.optimizer_
        params = dict(module.named_parameters())
        evaluation = self._evaluation(net)
        before = self.round_log.evaluate_before_step(evaluation)
        step, first = self._cursor.pending, self._cursor.taken == 0
        last = self._cursor.at_last_step
        # Nothing pruned yet and nothing to prune (the unpruned control): no
        # scores, no masks.
        if step.ratio > 0 or self.masks_:
            self.masks_ = self._choose_masks(params, step.ratio)
        if self.rewind:
            self._rewind.restore(params, optimizer)
        self._activate(params)
        self._active.apply(params, optimizer)
        # Earlier rounds keep the shapes, so that every round ranks the same
        # groups; only skprune's own MLPModule knows how to lose them.
        if last and self.granularity_.shrinks and isinstance(module, MLPModule):
            self._shrink(net)
        if first:
            set_learning_rates(optimizer, self._initial_lrs, self.retrain_lr_factor)
        self._gradients = GradientSums()
        self._cursor.advance()
        self.round_log.open(
            number=self._cursor.taken,
            epoch=step.epoch,
            target_ratio=step.ratio,
            sparsity=self.sparsity(module),
            evaluated_on="validation" if net.train_split else "training",
            before=before,
            evaluate_after=evaluation,
        )

    def _evaluation(self, net):
        """The history's evaluation of ``net`` on this epoch's data, to call."""
        dataset = self._eval_dataset
        return lambda: _evaluate(net, dataset)

    def _choose_masks(self, params, ratio: float) -> dict:
        """Masks at the granularity, from the importance of the current weights."""
        return choose_masks(
            params,
            ratio,
            granularity=self.granularity_,
            criterion=importance_lib.resolve(
                self.importance, seed=self._seed + self._cursor.taken
            ),
            scope=self.scope,
            min_keep=self.min_keep,
            previous=self.masks_,
            grads=self._gradients.means(),
        )

    # validation -----------------------------------------------------------------

    def _validate_params(self):
        validate_parameter_constraints(
            self._parameter_constraints,
            self.get_params(deep=False),
            caller_name=type(self).__name__,
        )
        check_rewind_epoch(self.rewind_epoch, self.train_epochs)

    def _prepare(self, module: torch.nn.Module):
        """Find what to prune in ``module``; fail before training if impossible."""
        self.layers_, self.granularity_ = prepare_granularity(
            module,
            self.granularity,
            block_size=self.block_size,
            patterns=self.layers,
            prune_output=self.prune_output,
            prune_bias=self.prune_bias,
            prune_ratio=self.prune_ratio,
            min_keep=self.min_keep,
            scope=self.scope,
            importance=self.importance,
        )
        self.prunable_ = self.granularity_.prunable
        self.initial_sparsity_ = self.sparsity(module)

    # helpers --------------------------------------------------------------------

    def count_parameters(self, module: torch.nn.Module) -> tuple[int, int]:
        """Prunable weights in the original network, and how many are non-zero.

        Weights physically removed by shrinking count as zero.
        """
        return count_kept(dict(module.named_parameters()), self.granularity_)

    def sparsity(self, module: torch.nn.Module) -> float:
        """Fraction of the prunable weights that are zero (or removed)."""
        return sparsity(dict(module.named_parameters()), self.granularity_)

    def _retrain_epochs(self) -> int:
        if self.retrain_epochs is None:
            return default_retrain_epochs(self.train_epochs)
        return self.retrain_epochs

    def _shrink(self, net):
        """Cut removed units and features out of the module; retrain the rest."""
        module = net.module_
        shrink_mlp_(module, *structure_to_keep(module))
        lrs = [group["lr"] for group in net.optimizer_.param_groups]
        net.initialize_optimizer()
        set_learning_rates(net.optimizer_, lrs)
        self.shrunk_ = True
        self._active = MaskSet({}, {})
        self._rewind.drop()

    def _activate(self, params):
        """Pair each parameter that has pruned weights with its mask."""
        # What is left after shrinking is all kept.
        self._active = MaskSet(params, {} if self.shrunk_ else self.masks_)

    def __getstate__(self):
        state = self.__dict__.copy()
        # Tensors aliasing the module's parameters are rebuilt at the next
        # on_train_begin; the dataset would put the training data in the pickle.
        state.pop("_active", None)
        state["_eval_dataset"] = None
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


def _seed_of(random_state) -> int:
    """An int seed as it is; otherwise one drawn from ``random_state`` (None is
    numpy's global generator), as scikit-learn draws seeds."""
    if isinstance(random_state, Integral):
        return int(random_state)
    return int(check_random_state(random_state).randint(2**31 - 1))

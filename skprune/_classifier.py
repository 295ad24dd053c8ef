""":class:`PrunedClassifier`: train, prune and retrain a skorch classifier in fit."""

from __future__ import annotations

from numbers import Real

import numpy as np
import torch
from sklearn.base import ClassifierMixin
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted
from skorch import NeuralNetClassifier

from ._base import BasePruned
from ._compat import StrOptions, _fit_context
from ._nn.losses import WeightedLoss, unweighted_loss
from ._nn.modules import MLPModule
from ._wiring import DEFAULT_NET_TRAINING
from .compress._compact import check_dtype, compact_mlp
from .compress._estimators import (
    CompressedClassifier,
    copy_feature_names,
    decision_from_logits,
)

__all__ = ["PrunedClassifier", "default_classifier_net"]


def default_classifier_net() -> NeuralNetClassifier:
    """The skorch net :class:`PrunedClassifier` uses when ``estimator=None``.

    An :class:`~skprune.MLPModule` with one hidden layer of 256 units, ReLU and
    dropout 0.5, trained with cross-entropy and :class:`~skprune.optim.LazyAdam`
    (learning rate 1e-3) in shuffled batches of 64 for 6 epochs, on all the data
    (``train_split=None``: inside a grid search no data is held out behind the
    search's back), silently. The first layer's gradient is row-sparse. With
    ``estimator=None`` the dense epochs grow on small data until they make at
    least 1,000 optimizer steps (at most 50 epochs, see
    :func:`skprune._budget.default_max_epochs`); a net passed explicitly keeps
    its ``max_epochs``.

    Start from it to change a setting while keeping the fast sparse path; any
    other skorch ``NeuralNetClassifier`` works too.

    Returns
    -------
    net : skorch.NeuralNetClassifier
        Unfitted; :class:`PrunedClassifier` sets its module's ``n_features`` and
        ``n_classes`` from the data.

    Examples
    --------
    >>> from skprune import PrunedClassifier, default_classifier_net
    >>> net = default_classifier_net()
    >>> net.max_epochs, net.batch_size, net.module__hidden_layer_sizes
    (6, 64, (256,))
    >>> net = net.set_params(max_epochs=10, module__hidden_layer_sizes=(128, 64))
    >>> clf = PrunedClassifier(net, prune_ratio=0.9)
    >>> clf.estimator.max_epochs, clf.estimator.module__hidden_layer_sizes
    (10, (128, 64))
    """
    return NeuralNetClassifier(
        MLPModule,
        module__dropout=0.5,
        criterion=torch.nn.CrossEntropyLoss,
        **DEFAULT_NET_TRAINING,
    )


class PrunedClassifier(ClassifierMixin, BasePruned):
    """A neural-network classifier that is trained, pruned and retrained in ``fit``.

    Wraps an unfitted skorch :class:`~skorch.NeuralNetClassifier`. ``fit`` clones
    it, sets its module's input and output sizes from the data, trains it dense
    for its ``max_epochs``, prunes ``prune_ratio`` of its prunable weights (or
    hidden units, or input features) and retrains what is left, following
    ``schedule``. Pruned weights are exactly zero after every optimizer step.
    scipy sparse input is batched as torch sparse tensors, never densified.

    Parameters
    ----------
    estimator : skorch.NeuralNetClassifier, default=None
        The unfitted net to train; it is cloned, never modified. None uses
        :func:`default_classifier_net`, with more dense epochs on small data (at
        least 1,000 optimizer steps, at most 50 epochs). Modules whose constructor takes
        ``n_features`` and ``n_classes`` get them from the data. Its
        ``max_epochs`` is the number of dense training epochs; its ``train_split``
        is kept (the default net holds no data out). Before training, ``fit``
        runs its module on a few rows and refuses a criterion that does not suit
        the outputs (``NLLLoss`` on logits: use ``torch.nn.CrossEntropyLoss``),
        sparse gradients its optimizer cannot step, and ``EarlyStopping``
        callbacks (they would stop training before pruning); it warns with
        :class:`~skprune.exceptions.DenseGradientWarning` when a wide first
        layer gets a dense gradient on sparse input.
    prune_ratio : float in [0, 1), default=0.5
        Fraction pruned in the end: of the prunable weights for
        ``granularity="weight"``, of their blocks for ``"block"``, of the hidden
        units for ``"neuron"``, of the input features for ``"feature"``. 0.0
        trains the unpruned control, for exactly as many epochs with the same
        learning rates.
    importance : {"magnitude", "taylor", "random"} or callable, default="magnitude"
        How weights are ranked. ``"magnitude"``: ``|w|``; ``"taylor"``:
        ``|w| * mean|dL/dw|`` over the training batches before pruning;
        ``"random"``: random scores (a control); or a callable
        ``(name, weight, grad) -> scores`` of the weight's shape.
    granularity : {"weight", "block", "neuron", "feature"}, default="weight"
        What is removed: single weights, blocks of ``block_size`` weights, whole
        hidden units, or whole input features. Removing features is a feature
        selection, see ``get_support``.
    block_size : int, default=8
        Consecutive outputs of one input per block of ``granularity="block"``;
        unused otherwise. A block of a ``torch.nn.Linear`` weight ``W`` is
        ``W[b * block_size:(b + 1) * block_size, i]``, a run of one input's
        weights that a sparse kernel multiplies a vector at a time; a layer
        whose width is not a multiple of it ends each run with a shorter block.
    scope : {"global", "layer"}, default="global"
        One ranking across all prunable layers, or ``prune_ratio`` in each layer.
    schedule : {"oneshot", "iterative", "gradual"}, default="oneshot"
        When to prune. Prune once; prune ``n_rounds`` times, each round removing
        the same fraction of what is left and retraining; or raise the sparsity
        in ``n_rounds`` small steps on the cubic schedule of Zhu & Gupta (2017).
    n_rounds : int, default=1
        Rounds of ``"iterative"``, steps of ``"gradual"``.
    retrain_epochs : int or None, default=None
        Epochs of retraining after each round. None means two thirds of the
        net's ``max_epochs`` (at least 1).
    retrain_lr_factor : float, default=1.0
        Learning rate during retraining, as a multiple of the initial one.
    rewind : bool, default=False
        Reset surviving weights to their values after ``rewind_epoch`` epochs
        after each pruning step (lottery-ticket rewinding).
    rewind_epoch : int, default=0
        Epoch whose weights ``rewind`` restores; 0 is the initialisation.
    min_keep : int or float, default=1
        Floor per layer: a count, or a fraction in (0, 1), of its weights (blocks,
        units, features) that always survives.
    prune_output : bool, default=False
        Whether the output layer's weights are prunable.
    prune_bias : bool, default=False
        Whether biases are prunable (``granularity="weight"`` only).
    layers : list of str or None, default=None
        ``fnmatch`` patterns of the weight names to prune, for example
        ``["layers.0.weight"]``; None means every layer but the output layer.
    random_state : int, RandomState instance or None, default=None
        Seeds what pruning draws at random (``importance="random"``). Also
        seeds weight initialisation, shuffling and dropout; an int makes two
        fits give identical predictions. Each fit draws from torch generators
        of its own (:func:`skprune.fit_generator`), so fits run at once in
        threads, in processes or on Dask equal the same fits run one after
        another, bit for bit, with the same intra-op thread count.
        The exception is a module of your own that draws from torch's global
        generator (``torch.nn.Linear``'s initialisation, ``torch.nn.Dropout``):
        it is seeded too, so fits in sequence repeat, but fits at once in
        threads share it.
    class_weight : dict, "balanced" or None, default=None
        Weights of the classes in the training loss (and so in the gradients
        that ``importance="taylor"`` ranks by), ``{class_label: weight}``;
        classes not in the dict weigh 1. ``"balanced"`` weighs each class by
        ``n_samples / (n_classes * np.bincount(y))``, counting ``sample_weight``
        when given, as scikit-learn's linear models do. A sample's weight is
        ``sample_weight[i] * class_weight[y[i]]``; a batch's loss is the mean
        over the batch of weight x per-sample loss. Weights need the net's
        criterion to take ``reduction="none"`` (torch's losses do); the
        validation loss and the scores are unweighted.
    verbose : int, default=0
        1 prints one line per epoch of dense training (its loss), then one
        line per pruning round (round, target ratio, sparsity reached, loss
        and score before pruning, after it and after retraining, seconds), see
        :class:`skprune.progress.PruningProgress`; 0 is silent.
        skorch's epoch table is the wrapped net's own ``verbose``.

    Attributes
    ----------
    estimator_ : skorch.NeuralNetClassifier
        The fitted net, with its pruning callback under ``callbacks_``.
    classes_ : ndarray of shape (n_classes,)
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Defined only when ``X`` has string column names.
    masks_ : dict of str to ndarray of bool
        For each parameter that pruning touched, True where a weight is kept.
    sparsity_ : float
        Fraction of the prunable weights that are exactly zero.
    n_params_ : int
        Number of prunable weights.
    n_nonzero_params_ : int
        Number of prunable weights that are not zero.
    support_ : ndarray of bool of shape (`n_features_in_`,)
        Input features that kept at least one weight in the first layer.
    pruning_report_ : list of dict
        One row per layer (``pandas.DataFrame(pruning_report_)`` shows it).
    pruning_history_ : list of dict
        One row per pruning step: target ratio, achieved sparsity, loss and score
        before pruning, after it and after retraining.
    flops_ : dict
        Theoretical operations of one prediction, ``"dense"`` and ``"pruned"``.

    See Also
    --------
    skprune.callbacks.Pruning : The callback that does the pruning, for plain
        skorch nets.
    sklearn.neural_network.MLPClassifier : A dense, unpruned network.

    Examples
    --------
    >>> from skprune import PrunedClassifier
    >>> from skprune.datasets import make_text_classification
    >>> X, y = make_text_classification(300, 2000, random_state=0)
    >>> clf = PrunedClassifier(prune_ratio=0.9, random_state=0).fit(X, y)
    >>> round(clf.sparsity_, 2)
    0.9
    >>> clf.predict(X[:3]).shape
    (3,)
    """

    _parameter_constraints: dict = {
        **BasePruned._parameter_constraints,
        "class_weight": [StrOptions({"balanced"}), dict, None],
    }

    _net_class = NeuralNetClassifier

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
        class_weight=None,
    ) -> None:
        super().__init__(
            estimator,
            prune_ratio=prune_ratio,
            importance=importance,
            granularity=granularity,
            block_size=block_size,
            scope=scope,
            schedule=schedule,
            n_rounds=n_rounds,
            retrain_epochs=retrain_epochs,
            retrain_lr_factor=retrain_lr_factor,
            rewind=rewind,
            rewind_epoch=rewind_epoch,
            min_keep=min_keep,
            prune_output=prune_output,
            prune_bias=prune_bias,
            layers=layers,
            random_state=random_state,
            verbose=verbose,
        )
        self.class_weight = class_weight

    def _default_estimator(self):
        return default_classifier_net()

    def _encode_targets(self, y):
        check_classification_targets(y)
        encoder = LabelEncoder().fit(y)
        self.classes_ = encoder.classes_
        if len(self.classes_) < 2:
            raise ValueError(
                "PrunedClassifier needs samples of at least 2 classes in y; got "
                f"only class {self.classes_[0]!r}."
            )
        return encoder.transform(y).astype(np.int64)

    def _module_sizes(self) -> dict:
        return {"n_features": self.n_features_in_, "n_classes": len(self.classes_)}

    def _sample_weights(self, y, sample_weight):
        if self.class_weight is None:
            return super()._sample_weights(y, sample_weight)
        if self.class_weight == "balanced":
            # As LogisticRegression: class counts weighted by sample_weight.
            with np.errstate(divide="ignore"):  # a class whose samples weigh 0
                per_class = compute_class_weight(
                    "balanced",
                    classes=np.arange(len(self.classes_)),
                    y=y,
                    sample_weight=sample_weight,
                )
        else:
            per_class = self._class_weight_array()
        weights = per_class[y]
        if sample_weight is not None:
            with np.errstate(invalid="ignore"):
                weights = np.where(sample_weight == 0, 0.0, weights * sample_weight)
        if not np.any(weights):
            raise ValueError(
                "class_weight and sample_weight give every sample a weight of zero."
            )
        name = "class_weight"
        if sample_weight is not None:
            name = "sample_weight times class_weight"
        return super()._sample_weights(y, weights, name=name)

    def _class_weight_array(self) -> np.ndarray:
        """``class_weight`` (a dict) as one weight per class of ``classes_``."""
        classes = self.classes_.tolist()
        unknown = [c for c in self.class_weight if c not in classes]
        if unknown:
            raise ValueError(
                f"class_weight has classes {unknown!r} that are not in y; the "
                f"classes are {classes!r}."
            )
        for label, weight in self.class_weight.items():
            if not (isinstance(weight, Real) and np.isfinite(weight) and weight >= 0):
                raise ValueError(
                    "class_weight must map classes to finite non-negative "
                    f"numbers; got {weight!r} for class {label!r}."
                )
        return np.array([self.class_weight.get(c, 1.0) for c in classes], float)

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y, sample_weight=None):
        """Train, prune and retrain the network.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Any scipy sparse format or a dense array; converted to float32.
        y : array-like of shape (n_samples,)
            Class labels of any type.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights of the samples in the training loss, multiplied
            by ``class_weight``; None weighs every sample 1. A sample of weight
            0 takes no part in training (as if removed; it stays in a
            validation split, whose loss and scores are unweighted).

        Returns
        -------
        self : PrunedClassifier
        """
        return self._fit(X, y, sample_weight)

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities.

        The net's outputs, after the nonlinearity skorch infers from its
        criterion (softmax for ``CrossEntropyLoss``, with or without weights;
        none for ``NLLLoss``, whose module returns probabilities), in float64.
        With an :class:`~skprune.MLPModule` a row's probabilities do not depend
        on the rows predicted with it (to float64 rounding; see
        :func:`skprune.modules.float64_prediction`).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of float64 of shape (n_samples, n_classes)
            Columns follow ``classes_``; each row sums to 1.
        """
        proba = self._net_outputs(X, nonlinearity=True)
        # A module ending in a float32 softmax sums to 1 only to float32 rounding.
        return proba / proba.sum(axis=1, keepdims=True)

    def _outputs_logits(self) -> bool:
        """Whether the net is trained on logits (``CrossEntropyLoss``)."""
        net = getattr(self, "estimator_", self.estimator)
        criterion = torch.nn.CrossEntropyLoss if net is None else net.criterion
        if criterion is WeightedLoss:  # a weighted fit wraps the net's criterion
            criterion = net.criterion__loss
        if isinstance(criterion, torch.nn.Module):
            return isinstance(criterion, torch.nn.CrossEntropyLoss)
        return isinstance(criterion, type) and issubclass(
            criterion, torch.nn.CrossEntropyLoss
        )

    @available_if(_outputs_logits)
    def decision_function(self, X) -> np.ndarray:
        """Unnormalised class scores: the network's logits.

        Available when the net is trained with ``torch.nn.CrossEntropyLoss``.
        In float64, independent of the batch as :meth:`predict_proba` is.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        scores : ndarray of shape (n_samples,) or (n_samples, n_classes)
            For two classes, the score of the second class minus the first's,
            as scikit-learn's binary classifiers return.
        """
        return decision_from_logits(self._net_outputs(X, nonlinearity=False))

    def compress(self, dtype: str = "float32") -> CompressedClassifier:
        """A compact, prediction-only copy of the fitted model.

        Hidden units and input features that pruning left without weights are
        physically removed (a unit left with only its bias is folded into the
        next layer's bias), the remaining weights are stored sparse where that is
        smaller, and prediction runs in compiled loops whose cost follows the
        surviving weights: it is faster on sparse input and pickles to a much
        smaller file, with the same predictions to float tolerance. Needs the
        fitted net's module to be an :class:`~skprune.MLPModule` trained with
        ``CrossEntropyLoss``.

        Parameters
        ----------
        dtype : {"float32", "int8"}, default="float32"
            How the weights are stored. ``"int8"``: int8 values with one float32
            scale per weight row (per input of each layer), about a quarter of
            the bytes of a dense float32 layer; predictions then differ from the
            fitted model's by the rounding, at most half a scale per weight.

        Returns
        -------
        compressed : CompressedClassifier

        Raises
        ------
        ValueError
            If ``dtype`` is unknown, or the weights are not all finite.
        """
        check_dtype(dtype)
        check_is_fitted(self)
        criterion = unweighted_loss(self.estimator_.criterion_)
        if not isinstance(criterion, torch.nn.CrossEntropyLoss):
            raise TypeError(
                "compress() needs a net trained with torch.nn.CrossEntropyLoss "
                f"(its outputs are logits); got {type(criterion).__name__}."
            )
        compressed = CompressedClassifier(
            compact_mlp(self.estimator_.module_, dtype=dtype), self.classes_
        )
        return copy_feature_names(compressed, self)

    def predict(self, X) -> np.ndarray:
        """Predicted class labels.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,)
        """
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

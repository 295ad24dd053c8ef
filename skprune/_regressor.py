""":class:`PrunedRegressor`: train, prune and retrain a skorch regressor in fit.

Everything about pruning lives in :class:`skprune._base.BasePruned`; this module
adds what is particular to regression: numeric targets of one or several
outputs, ``predict``, and :class:`CompressedRegressor`.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import RegressorMixin
from sklearn.utils.validation import check_array, check_is_fitted
from skorch import NeuralNetRegressor

from ._base import BasePruned
from ._compat import _fit_context
from ._nn.modules import MLPModule
from ._wiring import DEFAULT_NET_TRAINING
from .compress._compact import check_dtype, compact_mlp
from .compress._estimators import CompressedRegressor, _as_targets, copy_feature_names

__all__ = ["PrunedRegressor", "default_regressor_net"]


def default_regressor_net() -> NeuralNetRegressor:
    """The skorch net :class:`PrunedRegressor` uses when ``estimator=None``.

    An :class:`~skprune.MLPModule` with one hidden layer of 256 units, ReLU and
    dropout 0.1 (less than the classifier's 0.5: dropout noise in the last hidden
    layer goes straight into a regression output), one output per target, trained
    with the mean squared error and :class:`~skprune.optim.LazyAdam` (learning
    rate 1e-3) in shuffled batches of 64 for 6 epochs, on all the data
    (``train_split=None``), silently. The first layer's gradient is row-sparse.

    Start from it to change a setting while keeping the fast sparse path; any
    other skorch ``NeuralNetRegressor`` works too.

    Returns
    -------
    net : skorch.NeuralNetRegressor
        Unfitted; :class:`PrunedRegressor` sets its module's ``n_features`` and
        number of outputs from the data.

    Examples
    --------
    >>> from skprune import PrunedRegressor, default_regressor_net
    >>> net = default_regressor_net()
    >>> net.max_epochs, net.module__dropout, net.criterion.__name__
    (6, 0.1, 'MSELoss')
    >>> reg = PrunedRegressor(net.set_params(max_epochs=10), prune_ratio=0.8)
    >>> reg.estimator.max_epochs
    10
    """
    return NeuralNetRegressor(
        MLPModule,
        module__dropout=0.1,
        criterion=torch.nn.MSELoss,
        **DEFAULT_NET_TRAINING,
    )


class PrunedRegressor(RegressorMixin, BasePruned):
    """A neural-network regressor that is trained, pruned and retrained in ``fit``.

    Wraps an unfitted skorch :class:`~skorch.NeuralNetRegressor` and prunes it
    exactly as :class:`~skprune.PrunedClassifier` prunes a classifier: the same
    parameters, schedules, callback and fitted attributes. ``y`` may hold one
    target or several (multi-output regression); the net trains on it as a
    float32 matrix of shape (n_samples, n_outputs). scipy sparse input is batched
    as torch sparse tensors, never densified.

    Parameters
    ----------
    estimator : skorch.NeuralNetRegressor, default=None
        The unfitted net to train; it is cloned, never modified. None uses
        :func:`default_regressor_net`. Modules whose constructor takes
        ``n_features`` and ``n_outputs`` get them from the data (a module that
        takes ``n_classes`` instead, as :class:`~skprune.MLPModule` does, gets the
        number of outputs under that name). Its ``max_epochs`` is the number of
        dense training epochs.
    prune_ratio : float in [0, 1), default=0.5
        Fraction pruned in the end: of the prunable weights for
        ``granularity="weight"``, of their blocks for ``"block"``, of the hidden
        units for ``"neuron"``, of the input features for ``"feature"``. 0.0
        trains the unpruned control.
    importance : {"magnitude", "taylor", "random"} or callable, default="magnitude"
        How weights are ranked. See :class:`~skprune.PrunedClassifier`.
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
        When to prune. See :class:`~skprune.PrunedClassifier`.
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
        Floor per layer: a count, or a fraction in (0, 1), of its weights
        (blocks, units, features) that always survives.
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

    Attributes
    ----------
    estimator_ : skorch.NeuralNetRegressor
        The fitted net, with its pruning callback under ``callbacks_``.
    n_outputs_ : int
        Number of targets.
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
        One row per layer.
    pruning_history_ : list of dict
        One row per pruning step; scores are the net's R^2.
    flops_ : dict
        Theoretical operations of one prediction, ``"dense"`` and ``"pruned"``.

    See Also
    --------
    skprune.PrunedClassifier : The same for classification.
    sklearn.neural_network.MLPRegressor : A dense, unpruned network.

    Examples
    --------
    >>> import numpy as np
    >>> from skprune import PrunedRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 20))
    >>> y = X[:, 0] - 2 * X[:, 1]
    >>> reg = PrunedRegressor(prune_ratio=0.8, random_state=0).fit(X, y)
    >>> round(reg.sparsity_, 2)
    0.8
    >>> reg.predict(X[:3]).shape
    (3,)
    """

    _net_class = NeuralNetRegressor
    _y_validation = {"multi_output": True, "y_numeric": True}

    def _default_estimator(self):
        return default_regressor_net()

    def _encode_targets(self, y):
        # scikit-learn's errors for strings, complex numbers, NaN and infinity;
        # the second pass catches float64 values beyond float32's range.
        y = check_array(y, ensure_2d=False, dtype="numeric", input_name="y")
        y = check_array(y, ensure_2d=False, dtype=np.float32, input_name="y")
        y = y.reshape(len(y), -1)
        self.n_outputs_ = y.shape[1]
        return np.ascontiguousarray(y)

    def _module_sizes(self) -> dict:
        return {
            "n_features": self.n_features_in_,
            "n_outputs": self.n_outputs_,
            "n_classes": self.n_outputs_,
        }

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y):
        """Train, prune and retrain the network.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Any scipy sparse format or a dense array; converted to float32.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Numeric targets; converted to float32.

        Returns
        -------
        self : PrunedRegressor
        """
        return self._fit(X, y)

    def predict(self, X) -> np.ndarray:
        """Predicted targets.

        In float64; with an :class:`~skprune.MLPModule` a row's prediction does
        not depend on the rows predicted with it (to float64 rounding; see
        :func:`skprune.modules.float64_prediction`).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            One column per target; a 1-D array for a single target.
        """
        outputs = self._net_outputs(X, nonlinearity=True)
        return _as_targets(outputs.reshape(len(outputs), -1))

    def compress(self, dtype: str = "float32") -> CompressedRegressor:
        """A compact, prediction-only copy of the fitted model.

        Hidden units and input features that pruning left without weights are
        physically removed and prediction runs in compiled loops, with the same
        predictions to float tolerance; see
        :meth:`skprune.PrunedClassifier.compress`. Needs the fitted net's module
        to be an :class:`~skprune.MLPModule`.

        Parameters
        ----------
        dtype : {"float32", "int8"}, default="float32"
            How the weights are stored; ``"int8"`` as in
            :meth:`skprune.PrunedClassifier.compress`.

        Returns
        -------
        compressed : CompressedRegressor

        Raises
        ------
        ValueError
            If ``dtype`` is unknown, or the weights are not all finite.
        """
        check_dtype(dtype)
        check_is_fitted(self)
        compressed = CompressedRegressor(
            compact_mlp(self.estimator_.module_, dtype=dtype)
        )
        return copy_feature_names(compressed, self)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

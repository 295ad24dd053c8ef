""":class:`PrunedClassifierCV`: the prune ratio chosen by cross-validation.

A grid search over ``prune_ratio`` trains a network from scratch for every ratio
and fold. The ratios of one fold can share their work instead: train the dense
network once, then prune to the smallest ratio, retrain, score on the held-out
part, prune further to the next ratio from there, and so on. Each fold then costs
one dense training plus one short retraining per ratio.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
from scipy.stats import rankdata
from sklearn import get_config
from sklearn.base import clone
from sklearn.metrics import check_scoring, get_scorer_names
from sklearn.model_selection import StratifiedKFold, check_cv
from sklearn.utils import check_random_state
from sklearn.utils.metadata_routing import (
    UNUSED,
    MetadataRouter,
    MethodMapping,
    process_routing,
)
from sklearn.utils.parallel import Parallel, delayed

from ._classifier import PrunedClassifier
from ._compat import Interval, StrOptions, _fit_context
from ._params import PATH_SETS, default_path_retrain_epochs, pruning_params
from .callbacks._path import _PathPruning
from .callbacks._pruning import Pruning
from .callbacks.progress import PruningProgress

__all__ = ["PrunedClassifierCV"]

SELECTIONS = ("1se", "best")

#: Parameters of a :class:`PrunedClassifier` that the search takes over as they
#: are (besides ``estimator``): the pruning parameters its path does not set.
SEARCH_SHARED = ("verbose", "class_weight")


def search_params(estimator) -> dict:
    """What a :class:`PrunedClassifier` (or search) hands a search, by name; the
    search's own ``prune_ratios`` replace ``prune_ratio``, ``schedule`` and
    ``n_rounds``."""
    return {
        **pruning_params(estimator, exclude=PATH_SETS),
        **{name: getattr(estimator, name) for name in SEARCH_SHARED},
    }


class PrunedClassifierCV(PrunedClassifier):
    """A :class:`PrunedClassifier` whose prune ratio is chosen by cross-validation.

    In each fold of ``cv`` the network is trained dense once (the wrapped net's
    ``max_epochs``) and scored on the fold's held-out part: that is the unpruned
    control. Then, for each ratio of ``prune_ratios`` in increasing order, the
    same network is pruned further to that ratio, retrained for
    ``retrain_epochs`` and scored again: one pruning path per fold, costing about
    one dense training plus one retraining per ratio, where a grid search over
    the same ratios trains one network per ratio. A ratio is then selected (see
    ``select``) and the network is refitted on all the data along the same path,
    stopping at the selected ratio. The result is a fitted
    :class:`PrunedClassifier`: every fitted attribute and method is there.

    Parameters
    ----------
    estimator : skorch.NeuralNetClassifier, default=None
        The unfitted net, as in :class:`PrunedClassifier`.
    prune_ratios : array-like of float in [0, 1), default=(0.5, 0.8, 0.9, 0.95, 0.98)
        The candidate ratios. They are sorted and duplicates dropped; 0.0 is the
        unpruned control, which is always scored.
    cv : int, cross-validation generator or iterable, default=5
        As in :class:`~sklearn.model_selection.GridSearchCV`; an int is a
        :class:`~sklearn.model_selection.StratifiedKFold`, which needs at least
        ``cv`` samples of every class. A group splitter such as
        :class:`~sklearn.model_selection.GroupKFold` takes the ``groups`` of
        ``fit``.
    scoring : str, callable or None, default=None
        A scikit-learn scorer (see :func:`sklearn.metrics.check_scoring`); None
        is accuracy. At each point of a fold's path it is called with a fitted
        :class:`PrunedClassifier` of that point: its ``prune_ratio`` the ratio
        reached, its ``sparsity_``, ``masks_``, ``pruning_report_`` and other
        fitted attributes those of the network as it is scored (the rows of
        its ``pruning_history_`` hold no losses and scores: the folds skip
        those passes over their training data).
    select : {"1se", "best"}, default="1se"
        ``"1se"``: the sparsest ratio whose mean score is at least the best mean
        score minus its standard error (the best ratio's standard deviation
        across folds over the square root of the number of folds); ``"best"``:
        the best mean score, the sparsest on ties. The control (0.0) is a
        candidate: it is selected when every ratio loses more than that.
    n_jobs : int, default=None
        Folds run in parallel with joblib; None is 1 unless in a
        :func:`joblib.parallel_backend` context, -1 is all processors. Results
        do not depend on it, nor on the joblib backend (threads or processes),
        where each fit gets the same torch thread count (see ``random_state``).
    retrain_epochs : int or None, default=None
        Epochs of retraining after each round. Here a round is a ratio of the
        path; None means a third of the net's ``max_epochs`` (at least 1,
        :func:`~skprune._params.default_path_retrain_epochs`): each step of the
        path removes a smaller share of what is left than one-shot pruning to
        the same ratio, much as the rounds of ``schedule="iterative"`` do, and
        the retraining adds up along the path.
    importance, granularity, block_size, scope, retrain_lr_factor, rewind, \
rewind_epoch, min_keep, prune_output, prune_bias, layers
        As in :class:`PrunedClassifier`.
    random_state : int, RandomState instance or None, default=None
        Seeds what pruning draws at random (``importance="random"``). Also
        seeds the training: all folds train with one seed drawn from it, and
        the refit is seeded with it as :class:`PrunedClassifier` would be
        (whose ``random_state`` says what a module of your own must do for
        ``n_jobs`` not to matter).
    verbose : int, default=0
        1 prints one line per epoch of dense training and one per ratio, in
        each fold (see :class:`skprune.progress.PruningProgress`; a fold's
        ratio line shows its held-out score) and in the refit; 0 is silent.
    class_weight : dict, "balanced" or None, default=None
        As in :class:`PrunedClassifier`: weights of the classes in the training
        loss of every fold and of the refit (held-out scores are unweighted).

    Attributes
    ----------
    cv_results_ : dict of str to ndarray
        ``pandas.DataFrame(cv_results_)`` shows one row per candidate, the
        control first: ``param_prune_ratio`` (0.0 for the control),
        ``params``, ``split{k}_test_score``, ``mean_test_score``,
        ``std_test_score``, ``rank_test_score`` (1 is the best mean score),
        ``mean_fit_time`` and ``std_fit_time`` (seconds of training along the
        path until that ratio is scored, the control's being the dense training).
    prune_ratio_ : float
        The selected ratio; the refitted network is pruned to it.
    best_index_ : int
        Row of ``cv_results_`` of the selected ratio.
    best_score_ : float
        Its mean held-out score.
    prune_ratios_ : ndarray of float
        The ratios of the path, sorted, without duplicates nor 0.0.
    n_splits_ : int
        Number of folds.
    scorer_ : callable
        The scorer used.
    estimator_, classes_, n_features_in_, feature_names_in_, masks_, sparsity_, \
n_params_, n_nonzero_params_, support_, pruning_report_, pruning_history_, flops_
        Those of :class:`PrunedClassifier`, for the refitted network.

    See Also
    --------
    PrunedClassifier : One prune ratio, no search.
    sklearn.model_selection.GridSearchCV : Searches any parameter, training
        one network per ratio and fold.
    skprune.plotting.SparsityCurveDisplay : Plots ``cv_results_``.

    Examples
    --------
    A small net, for speed (``estimator=None`` trains the default one):

    >>> from skprune import PrunedClassifierCV, default_classifier_net
    >>> from skprune.datasets import make_text_classification
    >>> X, y = make_text_classification(300, 2000, random_state=0)
    >>> net = default_classifier_net().set_params(
    ...     max_epochs=4, module__hidden_layer_sizes=(32,)
    ... )
    >>> clf = PrunedClassifierCV(net, prune_ratios=[0.5, 0.9], cv=3, random_state=0)
    >>> clf = clf.fit(X, y)
    >>> clf.cv_results_["param_prune_ratio"].tolist(), clf.n_splits_
    ([0.0, 0.5, 0.9], 3)

    The unpruned control (ratio 0) is always scored; the network refitted at
    the chosen ratio is pruned to it:

    >>> clf.prune_ratio_ in (0.0, 0.5, 0.9), round(clf.sparsity_, 2) == clf.prune_ratio_
    (True, True)
    """

    _parameter_constraints: dict = {
        **{
            name: constraint
            for name, constraint in PrunedClassifier._parameter_constraints.items()
            if name not in PATH_SETS
        },
        "prune_ratios": ["array-like"],
        "cv": ["cv_object"],
        "scoring": [StrOptions(set(get_scorer_names())), callable, None],
        "select": [StrOptions(set(SELECTIONS))],
        "n_jobs": [Interval(Integral, None, None, closed="neither"), None],
    }

    # fit's groups are for the splitter (routed to it), not a request of this fit.
    __metadata_request__fit = {"groups": UNUSED}

    def __init__(
        self,
        estimator=None,
        *,
        prune_ratios=(0.5, 0.8, 0.9, 0.95, 0.98),
        cv=5,
        scoring=None,
        select: str = "1se",
        n_jobs: int | None = None,
        importance="magnitude",
        granularity: str = "weight",
        block_size: int = 8,
        scope: str = "global",
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
        self.estimator = estimator
        self.prune_ratios = prune_ratios
        self.cv = cv
        self.scoring = scoring
        self.select = select
        self.n_jobs = n_jobs
        self.importance = importance
        self.granularity = granularity
        self.block_size = block_size
        self.scope = scope
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
        self.class_weight = class_weight

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y, sample_weight=None, groups=None):
        """Cross-validate the pruning path, select a ratio and refit on all data.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights of the samples in the training loss, in every
            fold (their training part) and in the refit; see ``class_weight``.
            Checked before any training. The held-out scores are unweighted.
        groups : array-like of shape (n_samples,), default=None
            Group labels of the samples, for a splitter such as
            :class:`~sklearn.model_selection.GroupKFold`: passed to
            ``cv.split``, as :class:`~sklearn.model_selection.GridSearchCV`
            does. With metadata routing enabled
            (``sklearn.set_config(enable_metadata_routing=True)``) they are
            routed to the splitter when it requests them.

        Returns
        -------
        self : PrunedClassifierCV
        """
        ratios = _check_prune_ratios(self.prune_ratios)
        X_checked, y_checked, sample_weight = self._validated_data(X, y, sample_weight)
        split_params = self._split_params(sample_weight, groups)
        encoded = self._encode_targets(y_checked)
        # Weights that float32 cannot hold are refused before any fold trains.
        self._sample_weights(encoded, sample_weight)
        cv = check_cv(self.cv, encoded, classifier=True)
        _check_stratified_folds(cv, encoded, self.classes_, self.cv)
        scorer = check_scoring(self, scoring=self.scoring)
        seed = int(check_random_state(self.random_state).randint(2**31 - 1))
        splits = list(cv.split(X_checked, encoded, **split_params))
        n_splits = len(splits)

        fold = clone(self).set_params(random_state=seed)
        results = Parallel(n_jobs=self.n_jobs)(
            delayed(_fit_fold_path)(
                fold,
                X_checked,
                y_checked,
                None if sample_weight is None else sample_weight[train],
                train,
                test,
                tuple(ratios),
                scorer,
                f"fold {k + 1}/{n_splits}  ",
            )
            for k, (train, test) in enumerate(splits)
        )
        self.cv_results_ = _cv_results(
            np.concatenate([[0.0], ratios]),
            np.array([r[0] for r in results]),  # (n_splits, 1 + n_ratios)
            np.array([r[1] for r in results]),
        )
        means = self.cv_results_["mean_test_score"]
        index = _select(
            means, self.cv_results_["std_test_score"], n_splits, self.select
        )
        self.prune_ratios_ = ratios
        self.n_splits_ = n_splits
        self.scorer_ = scorer
        self.best_index_ = int(index)
        self.best_score_ = float(means[index])
        self.prune_ratio_ = float(self.cv_results_["param_prune_ratio"][index])

        # The refit: the same path on all the data, up to the selected ratio.
        path = tuple(r for r in ratios if r <= self.prune_ratio_)
        return self._fit(X, y, sample_weight, ratios=path, prefix="refit  ")

    def _split_params(self, sample_weight, groups) -> dict:
        """What ``cv.split`` is given besides ``X`` and ``y``."""
        if not get_config()["enable_metadata_routing"]:
            return {"groups": groups}
        # As GridSearchCV: only metadata actually given is validated and routed.
        given = {"sample_weight": sample_weight, "groups": groups}
        routed = process_routing(
            self,
            "fit",
            **{key: value for key, value in given.items() if value is not None},
        )
        return routed["splitter"]["split"]

    def get_metadata_routing(self) -> MetadataRouter:
        """Metadata routing: ``sample_weight`` for this fit, ``groups`` for ``cv``.

        See the :ref:`User Guide <metadata_routing>` of scikit-learn.

        Returns
        -------
        routing : sklearn.utils.metadata_routing.MetadataRouter
        """
        return (
            MetadataRouter(owner=self)
            .add_self_request(self)
            .add(
                splitter=check_cv(self.cv, classifier=True),
                method_mapping=MethodMapping().add(caller="fit", callee="split"),
            )
        )

    def _make_pruning(
        self, net, seed: int, *, ratios, heldout=None, prefix: str = ""
    ) -> Pruning:
        """The path callback along ``ratios``: it scores ``heldout`` (a fold's
        :class:`_HeldOut`; None in the refit) at each ratio, and ``prefix`` leads
        its progress lines."""
        train_epochs = int(net.max_epochs)
        retrain_epochs = self.retrain_epochs
        if retrain_epochs is None:
            retrain_epochs = default_path_retrain_epochs(train_epochs)
        params = {
            **pruning_params(self, exclude=PATH_SETS),
            "train_epochs": train_epochs,
            "retrain_epochs": retrain_epochs,
            "random_state": seed,
        }
        pruning = _PathPruning(ratios=ratios, **params).initialize()
        pruning.heldout_ = heldout
        pruning.prefix_ = prefix
        # A fold's held-out score selects: the history's passes over its
        # training data are skipped there; the refit's history_ keeps them.
        pruning.round_log.evaluations = heldout is None
        return pruning

    def _net_params(self, net, pruning) -> dict:
        params = super()._net_params(net, pruning)
        for _, callback in params["callbacks"]:
            if isinstance(callback, PruningProgress):
                callback.set_params(prefix=pruning.prefix_)
        return params


def _fit_fold_path(fold, X, y, sample_weight, train, test, ratios, scorer, prefix):
    """Train one fold along the path; its held-out scores and cumulative times."""
    fold = clone(fold)
    heldout = _HeldOut(X[test], y[test], scorer, fold)
    fold._fit(
        X[train], y[train], sample_weight, ratios=ratios, heldout=heldout, prefix=prefix
    )
    pruning = _path_pruning(fold.estimator_)
    if fold.verbose:
        print(
            f"{prefix}done  held-out "
            + "  ".join(
                f"{ratio:g}: {score:.3f}"
                for ratio, score in zip((0.0, *ratios), pruning.scores_, strict=True)
            )
        )
    return pruning.scores_, pruning.times_


def _path_pruning(net) -> _PathPruning:
    """The path callback of a fitted net."""
    (pruning,) = [cb for _, cb in net.callbacks_ if isinstance(cb, _PathPruning)]
    return pruning


class _HeldOut:
    """Scores a fold's network on the fold's held-out part with a scorer.

    The scorer is handed a fitted :class:`PrunedClassifier` of the path's current
    point: its ``prune_ratio`` the ratio just reached, its fitted attributes
    (``sparsity_``, ``masks_``, ``pruning_report_``, ...) those of the network
    as it is scored.
    """

    def __init__(self, X, y, scorer, fold):
        self.X, self.y, self.scorer, self.fold = X, y, scorer, fold

    def score(self, net, pruning, ratio: float) -> float:
        view = PrunedClassifier(
            **search_params(self.fold), estimator=self.fold.estimator, prune_ratio=ratio
        )
        view.estimator_ = net
        view.classes_ = self.fold.classes_
        view.n_features_in_ = self.fold.n_features_in_
        view._set_pruning_attributes(net, pruning)
        return float(self.scorer(view, self.X, self.y))


def _check_prune_ratios(prune_ratios) -> np.ndarray:
    """The path's ratios from ``prune_ratios``: sorted, without duplicates nor
    0.0 (the control, always scored); a ValueError for anything else."""
    ratios = np.asarray(prune_ratios, dtype=float)
    if ratios.ndim != 1 or ratios.size == 0:
        raise ValueError(
            "prune_ratios must be a non-empty 1d list of ratios in [0, 1), got "
            f"{prune_ratios!r}."
        )
    bad = ratios[~((ratios >= 0.0) & (ratios < 1.0))]
    if bad.size:
        raise ValueError(
            f"prune_ratios must lie in [0, 1); got {bad[0]!r} in "
            f"{list(prune_ratios)!r}."
        )
    return np.unique(ratios[ratios > 0.0])


def _check_stratified_folds(cv, encoded, classes, cv_param) -> None:
    """Refuse stratified folds that some class has too few samples for."""
    if not isinstance(cv, StratifiedKFold):
        return
    counts = np.bincount(encoded)
    smallest = int(np.argmin(counts))
    label = classes[smallest : smallest + 1].tolist()[0]
    if counts[smallest] < cv.n_splits:
        raise ValueError(
            f"cv={cv_param!r} makes {cv.n_splits} stratified folds, but class "
            f"{label!r} has only {counts[smallest]} "
            "samples; lower cv or pass a splitter of your own."
        )


def _cv_results(candidates, scores, times) -> dict:
    """``cv_results_`` from the held-out ``scores`` and cumulative ``times`` of
    shape (n_splits, n_candidates), the candidates from dense to sparsest."""
    means = scores.mean(axis=0)
    return {
        "param_prune_ratio": candidates,
        "params": [{"prune_ratio": float(r)} for r in candidates],
        **{f"split{k}_test_score": split for k, split in enumerate(scores)},
        "mean_test_score": means,
        "std_test_score": scores.std(axis=0),
        "rank_test_score": rankdata(-means, method="min").astype(np.int32),
        "mean_fit_time": times.mean(axis=0),
        "std_fit_time": times.std(axis=0),
    }


def _select(means, stds, n_splits: int, select: str) -> int:
    """Index of the selected candidate; candidates go from dense to sparsest."""
    best = int(np.argmax(means))
    if select == "best":
        threshold = means[best]
    else:
        threshold = means[best] - stds[best] / np.sqrt(n_splits)
    return int(np.flatnonzero(means >= threshold - 1e-12).max())

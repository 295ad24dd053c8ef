"""Plots of what pruning costs and what it removed (needs matplotlib).

- :class:`SparsityCurveDisplay`: held-out score against the fraction of weights
  kept, from :class:`~skprune.PrunedClassifierCV` or a grid search over the prune
  ratio, with the unpruned control as a reference line.
- :class:`PruningReportDisplay` (and :func:`plot_pruning_report`): the fraction
  of weights kept in each layer of a fitted pruned estimator.

They follow scikit-learn's Display conventions: ``from_estimator`` and
``from_cv_results`` compute and plot, ``plot`` draws on an ``ax``, and what was
drawn is kept in ``ax_``, ``figure_``, ``lines_`` and ``errorbar_``.
"""

from __future__ import annotations

import re

import numpy as np
from sklearn.base import clone
from sklearn.utils.validation import check_is_fitted

from ._compat import check_matplotlib_support

__all__ = ["PruningReportDisplay", "SparsityCurveDisplay", "plot_pruning_report"]

_RATIO_KEY = re.compile(r"^param_(?:.+__)?prune_ratio$")


class SparsityCurveDisplay:
    """Score against the fraction of weights kept, across cross-validation folds.

    Create it with :meth:`from_estimator` or :meth:`from_cv_results`; all
    parameters are stored as attributes.

    Parameters
    ----------
    prune_ratios : ndarray of shape (n_ratios,)
        The pruned candidates' ratios, in (0, 1).
    test_scores : ndarray of shape (n_ratios, n_folds)
        Their held-out scores, fold by fold.
    control_scores : ndarray of shape (n_folds,), default=None
        The unpruned control's scores (ratio 0), if it was scored.
    selected_ratio : float, default=None
        The ratio to mark as selected, if any.
    score_name : str, default=None
        Label of the y axis; None is ``"Score"``.

    Attributes
    ----------
    ax_ : matplotlib Axes
    figure_ : matplotlib Figure
    errorbar_ : list of matplotlib ErrorbarContainer
        The mean held-out score with one standard deviation across folds.
    lines_ : list of matplotlib Line2D
        The mean score's line, then the control's horizontal line and the
        selected ratio's marker, those that are drawn.

    See Also
    --------
    skprune.PrunedClassifierCV : Scores a pruning path per fold.
    sklearn.model_selection.ValidationCurveDisplay : Any parameter, one network
        per value and fold.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from skprune import PrunedClassifierCV, default_classifier_net
    >>> from skprune.datasets import make_text_classification
    >>> from skprune.plotting import SparsityCurveDisplay
    >>> X, y = make_text_classification(300, 2000, random_state=0)
    >>> net = default_classifier_net().set_params(
    ...     max_epochs=4, module__hidden_layer_sizes=(32,)
    ... )
    >>> clf = PrunedClassifierCV(net, prune_ratios=[0.5, 0.9], cv=3, random_state=0)
    >>> display = SparsityCurveDisplay.from_cv_results(clf.fit(X, y).cv_results_)
    >>> display.prune_ratios.tolist(), display.test_scores.shape
    ([0.5, 0.9], (2, 3))
    >>> display.ax_.get_xscale(), len(display.control_scores)
    ('log', 3)
    """

    def __init__(
        self,
        *,
        prune_ratios,
        test_scores,
        control_scores=None,
        selected_ratio: float | None = None,
        score_name: str | None = None,
    ) -> None:
        self.prune_ratios = prune_ratios
        self.test_scores = test_scores
        self.control_scores = control_scores
        self.selected_ratio = selected_ratio
        self.score_name = score_name

    def plot(
        self,
        ax=None,
        *,
        score_name: str | None = None,
        errorbar_kw: dict | None = None,
        control_kw: dict | None = None,
        selected_kw: dict | None = None,
    ):
        """Draw the curve.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Where to draw; None makes a new figure.
        score_name : str, default=None
            Overrides the y label given at construction.
        errorbar_kw, control_kw, selected_kw : dict, default=None
            Keyword arguments of ``ax.errorbar`` for the curve, ``ax.axhline``
            for the control and ``ax.plot`` for the selected ratio's marker.

        Returns
        -------
        display : SparsityCurveDisplay
        """
        check_matplotlib_support(f"{type(self).__name__}.plot")
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots()
        ratios = np.asarray(self.prune_ratios, dtype=float)
        scores = np.asarray(self.test_scores, dtype=float)
        kept = 1.0 - ratios
        means, stds = scores.mean(axis=1), scores.std(axis=1)
        n_folds = scores.shape[1]

        errorbar_kw = {
            "marker": "o",
            "capsize": 3,
            "label": f"Pruned (mean ± std over {n_folds} folds)",
            **(errorbar_kw or {}),
        }
        container = ax.errorbar(kept, means, yerr=stds, **errorbar_kw)
        self.errorbar_ = [container]
        self.lines_ = [container.lines[0]]
        if self.control_scores is not None:
            control = np.asarray(self.control_scores, dtype=float)
            control_kw = {
                "color": "gray",
                "linestyle": "--",
                "label": f"Unpruned control ({control.mean():.3f})",
                **(control_kw or {}),
            }
            self.lines_.append(ax.axhline(control.mean(), **control_kw))
        if self.selected_ratio is not None:
            selected = float(self.selected_ratio)
            if selected == 0.0:
                y = np.asarray(self.control_scores, dtype=float).mean()
            else:
                y = means[np.flatnonzero(np.isclose(ratios, selected))[0]]
            selected_kw = {
                "marker": "*",
                "markersize": 14,
                "linestyle": "none",
                "color": "C3",
                "label": f"Selected: prune ratio {selected:g}",
                **(selected_kw or {}),
            }
            self.lines_.extend(ax.plot([1.0 - selected], [y], **selected_kw))

        # Dense on the left, ticks at the fractions drawn, written plainly.
        right = min([kept.min(), *(line.get_xdata()[0] for line in self.lines_[2:])])
        ax.set_xlim(1.0 / 0.8, right * 0.8)
        ax.set_xscale("log")
        ticks = np.union1d(np.round(kept, 6), [1.0])
        ax.set_xticks(ticks, labels=[f"{tick:g}" for tick in ticks])
        ax.minorticks_off()
        ax.set_xlabel("Fraction of weights kept (1 - prune ratio)")
        ax.set_ylabel(score_name or self.score_name or "Score")
        ax.legend(loc="best")
        self.ax_ = ax
        self.figure_ = ax.figure
        return self

    @classmethod
    def from_cv_results(
        cls,
        cv_results: dict,
        *,
        selected_ratio: float | None = None,
        ax=None,
        score_name: str | None = None,
        **kwargs,
    ):
        """Plot the ``cv_results_`` of a search over the prune ratio.

        Parameters
        ----------
        cv_results : dict
            ``cv_results_`` of :class:`~skprune.PrunedClassifierCV`, or of a
            :class:`~sklearn.model_selection.GridSearchCV` (or any search with the
            same keys) over ``prune_ratio`` or ``<step>__prune_ratio``; every
            other searched parameter must have a single value. A row with ratio
            0.0 is drawn as the unpruned control.
        selected_ratio : float, default=None
            The ratio to mark; None marks the row ranked first
            (``rank_test_score``), a grid search's choice. Pass
            ``PrunedClassifierCV.prune_ratio_`` to mark its choice.
        ax : matplotlib Axes, default=None
        score_name : str, default=None
        **kwargs
            Passed to :meth:`plot`.

        Returns
        -------
        display : SparsityCurveDisplay
        """
        check_matplotlib_support(f"{cls.__name__}.from_cv_results")
        keys = [key for key in cv_results if _RATIO_KEY.match(key)]
        if len(keys) != 1:
            raise ValueError(
                "cv_results has no prune-ratio parameter: expected one key "
                "'param_prune_ratio' or 'param_<step>__prune_ratio', got "
                f"{sorted(k for k in cv_results if k.startswith('param_'))}."
            )
        ratios = np.asarray(cv_results[keys[0]], dtype=float)
        if len(np.unique(ratios)) != len(ratios):
            raise ValueError(
                f"cv_results has several rows for one value of {keys[0][6:]!r}: "
                "other parameters vary too; plot one value of each of them."
            )
        n_splits = sum(
            1 for key in cv_results if re.fullmatch(r"split\d+_test_score", key)
        )
        scores = np.column_stack(
            [cv_results[f"split{k}_test_score"] for k in range(n_splits)]
        ).astype(float)
        if selected_ratio is None and "rank_test_score" in cv_results:
            selected_ratio = ratios[int(np.argmin(cv_results["rank_test_score"]))]
        order = np.argsort(ratios)
        ratios, scores = ratios[order], scores[order]
        control = scores[ratios == 0.0][0] if ratios[0] == 0.0 else None
        display = cls(
            prune_ratios=ratios[ratios > 0.0],
            test_scores=scores[ratios > 0.0],
            control_scores=control,
            selected_ratio=selected_ratio,
            score_name=score_name,
        )
        return display.plot(ax=ax, **kwargs)

    @classmethod
    def from_estimator(
        cls,
        estimator,
        X,
        y,
        *,
        prune_ratios=(0.5, 0.8, 0.9, 0.95, 0.98),
        cv=5,
        scoring=None,
        n_jobs=None,
        select: str = "1se",
        ax=None,
        score_name: str | None = None,
        **kwargs,
    ):
        """Cross-validate a pruned estimator along a pruning path and plot it.

        Fits a :class:`~skprune.PrunedClassifierCV` with the pruning parameters
        of ``estimator`` (a copy; ``estimator`` is left as it is) and marks the
        ratio it selects.

        Parameters
        ----------
        estimator : PrunedClassifier or PrunedClassifierCV
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        prune_ratios, cv, scoring, n_jobs, select
            As in :class:`~skprune.PrunedClassifierCV`.
        ax : matplotlib Axes, default=None
        score_name : str, default=None
            None is the scoring's name, or ``"Accuracy"``.
        **kwargs
            Passed to :meth:`plot`.

        Returns
        -------
        display : SparsityCurveDisplay
            Also holds the fitted search in ``estimator_``.
        """
        check_matplotlib_support(f"{cls.__name__}.from_estimator")
        from ._cv import PrunedClassifierCV, search_params

        search = PrunedClassifierCV(**search_params(estimator))
        search.set_params(
            estimator=None
            if estimator.estimator is None
            else clone(estimator.estimator),
            prune_ratios=prune_ratios,
            cv=cv,
            scoring=scoring,
            n_jobs=n_jobs,
            select=select,
        ).fit(X, y)
        if score_name is None:
            score_name = "Accuracy" if scoring is None else _score_name(scoring)
        display = cls.from_cv_results(
            search.cv_results_,
            selected_ratio=search.prune_ratio_,
            ax=ax,
            score_name=score_name,
            **kwargs,
        )
        display.estimator_ = search
        return display


def _score_name(scoring) -> str:
    if isinstance(scoring, str):
        name = scoring.replace("_", " ")
        return name[0].upper() + name[1:]
    return getattr(scoring, "__name__", "Score")


class PruningReportDisplay:
    """Bar chart of the fraction of weights kept in each layer.

    Create it with :meth:`from_estimator` (or :func:`plot_pruning_report`); all
    parameters are stored as attributes.

    Parameters
    ----------
    layers : list of str
        The layers' names, input layer first.
    kept : list of int
        Weights kept in each layer.
    n_weights : list of int
        Prunable weights of each layer.

    Attributes
    ----------
    bars_ : matplotlib BarContainer
        One bar per layer, the input layer on top; ``bars_[i].get_width()`` is
        layer ``i``'s kept fraction. Indexing, iterating and ``len`` of the
        display go to ``bars_``, as on the ``BarContainer`` that
        :func:`plot_pruning_report` returned before.
    ax_ : matplotlib Axes
    figure_ : matplotlib Figure

    Examples
    --------
    >>> from skprune import PrunedClassifier, default_classifier_net
    >>> from skprune.datasets import make_text_classification
    >>> from skprune.plotting import PruningReportDisplay
    >>> X, y = make_text_classification(300, 2000, random_state=0)
    >>> net = default_classifier_net().set_params(max_epochs=2)
    >>> clf = PrunedClassifier(net, prune_ratio=0.9, retrain_epochs=1, random_state=0)
    >>> display = PruningReportDisplay.from_estimator(clf.fit(X, y))
    >>> [round(float(bar.get_width()), 2) for bar in display]
    [0.1, 1.0]
    """

    def __init__(self, *, layers, kept, n_weights) -> None:
        self.layers = layers
        self.kept = kept
        self.n_weights = n_weights

    def __getitem__(self, index):
        return self.bars_[index]

    def __iter__(self):
        return iter(self.bars_)

    def __len__(self) -> int:
        return len(self.bars_)

    def plot(self, ax=None, **bar_kw) -> PruningReportDisplay:
        """Draw the bars on ``ax`` (None: a new figure with a constrained layout).

        Parameters
        ----------
        ax : matplotlib Axes, default=None
        **bar_kw
            Passed to ``ax.barh``.

        Returns
        -------
        display : PruningReportDisplay
        """
        check_matplotlib_support("PruningReportDisplay.plot")
        import matplotlib.pyplot as plt

        if ax is None:  # constrained: the layer names and counts stay inside
            _, ax = plt.subplots(layout="constrained")
        positions = np.arange(len(self.layers))
        fractions = [k / n for k, n in zip(self.kept, self.n_weights, strict=True)]
        self.bars_ = ax.barh(positions, fractions, **bar_kw)
        ax.set_yticks(positions, labels=self.layers)
        ax.invert_yaxis()  # input layer on top
        ax.set_xlim(0.0, 1.0)
        ax.set_xlabel("Fraction of weights kept")
        for bar, kept, total in zip(self.bars_, self.kept, self.n_weights, strict=True):
            # Inside a long bar (the output layer's is full), past a short one.
            inside = bar.get_width() > 0.5
            ax.annotate(
                f"{kept:,} / {total:,}",
                (bar.get_width(), bar.get_y() + bar.get_height() / 2),
                xytext=(-3 if inside else 3, 0),
                textcoords="offset points",
                ha="right" if inside else "left",
                va="center",
                color="white" if inside else None,
                fontsize="small",
            )
        self.ax_ = ax
        self.figure_ = ax.figure
        return self

    @classmethod
    def from_estimator(cls, estimator, ax=None, **bar_kw) -> PruningReportDisplay:
        """Plot a fitted estimator's ``pruning_report_``.

        Parameters
        ----------
        estimator : fitted PrunedClassifier (or any estimator with ``pruning_report_``)
        ax : matplotlib Axes, default=None
        **bar_kw
            Passed to ``ax.barh``.

        Returns
        -------
        display : PruningReportDisplay
        """
        check_matplotlib_support("PruningReportDisplay.from_estimator")
        check_is_fitted(estimator, "pruning_report_")
        report = estimator.pruning_report_
        return cls(
            layers=[row["layer"] for row in report],
            kept=[row["kept"] for row in report],
            n_weights=[row["n_weights"] for row in report],
        ).plot(ax=ax, **bar_kw)


def plot_pruning_report(estimator, ax=None, **bar_kw) -> PruningReportDisplay:
    """Bar chart of the fraction of weights kept in each layer.

    Parameters
    ----------
    estimator : fitted PrunedClassifier (or any estimator with ``pruning_report_``)
    ax : matplotlib Axes, default=None
        Where to draw; None makes a new figure.
    **bar_kw
        Passed to ``ax.barh``.

    Returns
    -------
    display : PruningReportDisplay
        With ``bars_``, ``ax_`` and ``figure_``. It used to be the
        ``BarContainer``; indexing and iterating the display still give the
        bars (``display[0].get_width()``), input layer first.

    Examples
    --------
    90% of the first layer pruned, the output layer left whole:

    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from skprune import PrunedClassifier, default_classifier_net
    >>> from skprune.datasets import make_text_classification
    >>> from skprune.plotting import plot_pruning_report
    >>> X, y = make_text_classification(
    ...     100, 500, n_classes=2, n_topic_words=20, random_state=0
    ... )
    >>> net = default_classifier_net().set_params(
    ...     max_epochs=1, module__hidden_layer_sizes=(8,)
    ... )
    >>> clf = PrunedClassifier(net, prune_ratio=0.9, random_state=0).fit(X, y)
    >>> display = plot_pruning_report(clf)
    >>> type(display).__name__, display.layers, display.kept, display.n_weights
    ('PruningReportDisplay', ['layers.0', 'layers.1'], [400, 16], [4000, 16])
    >>> [label.get_text() for label in display.ax_.get_yticklabels()]
    ['layers.0', 'layers.1']
    >>> [round(float(bar.get_width()), 2) for bar in display]
    [0.1, 1.0]
    """
    return PruningReportDisplay.from_estimator(estimator, ax=ax, **bar_kw)

"""What the displays draw: lines' data, labels, scales and limits, not pixels."""

import matplotlib
import numpy as np
import pytest
from conftest import small_net
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from skprune import PrunedClassifier
from skprune.plotting import (
    PruningReportDisplay,
    SparsityCurveDisplay,
    plot_pruning_report,
)

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


CV_RESULTS = {
    "param_prune_ratio": np.array([0.9, 0.0, 0.5]),
    "params": [{"prune_ratio": r} for r in (0.9, 0.0, 0.5)],
    "split0_test_score": np.array([0.80, 0.90, 0.88]),
    "split1_test_score": np.array([0.84, 0.86, 0.90]),
    "mean_test_score": np.array([0.82, 0.88, 0.89]),
    "std_test_score": np.array([0.02, 0.02, 0.01]),
    "rank_test_score": np.array([3, 2, 1]),
}


def test_from_cv_results_draws_the_mean_curve_on_a_log_kept_axis():
    display = SparsityCurveDisplay.from_cv_results(CV_RESULTS)
    curve, control, selected = display.lines_
    np.testing.assert_allclose(curve.get_xdata(), [0.5, 0.1])
    np.testing.assert_allclose(curve.get_ydata(), [0.89, 0.82])
    assert display.ax_.get_xscale() == "log"
    assert display.ax_.get_xlabel() == "Fraction of weights kept (1 - prune ratio)"
    assert display.ax_.get_ylabel() == "Score"
    left, right = display.ax_.get_xlim()
    assert left > 1.0 > 0.1 > right  # dense on the left, sparsest on the right
    assert display.figure_ is display.ax_.figure


def test_error_bars_are_one_std_across_folds():
    display = SparsityCurveDisplay.from_cv_results(CV_RESULTS)
    (container,) = display.errorbar_
    (segments,) = container.lines[2]
    lows_highs = np.array([seg[:, 1] for seg in segments.get_segments()])
    np.testing.assert_allclose(lows_highs, [[0.88, 0.90], [0.80, 0.84]])


def test_control_is_a_horizontal_line_at_its_mean():
    display = SparsityCurveDisplay.from_cv_results(CV_RESULTS)
    control = display.lines_[1]
    assert list(control.get_ydata()) == [0.88, 0.88]
    assert control.get_label() == "Unpruned control (0.880)"


def test_selected_ratio_defaults_to_the_first_ranked_and_can_be_given():
    display = SparsityCurveDisplay.from_cv_results(CV_RESULTS)
    marker = display.lines_[2]
    assert (marker.get_xdata()[0], marker.get_ydata()[0]) == (0.5, 0.89)
    display = SparsityCurveDisplay.from_cv_results(CV_RESULTS, selected_ratio=0.9)
    marker = display.lines_[2]
    assert marker.get_xdata()[0] == pytest.approx(0.1)
    assert marker.get_ydata()[0] == pytest.approx(0.82)
    assert marker.get_label() == "Selected: prune ratio 0.9"


def test_plot_draws_on_the_given_axes():
    _, ax = plt.subplots()
    display = SparsityCurveDisplay.from_cv_results(CV_RESULTS, ax=ax)
    assert display.ax_ is ax
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert sorted(legend) == [
        "Pruned (mean ± std over 2 folds)",
        "Selected: prune ratio 0.5",
        "Unpruned control (0.880)",
    ]


def test_cv_results_without_a_prune_ratio_are_rejected():
    results = {k: v for k, v in CV_RESULTS.items() if k != "param_prune_ratio"}
    results["param_alpha"] = np.array([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="no prune-ratio parameter.*param_alpha"):
        SparsityCurveDisplay.from_cv_results(results)


def test_cv_results_of_a_pipeline_grid_search(text_data):
    rng = np.random.default_rng(0)
    words = np.array([f"w{i}" for i in range(40)])
    labels = rng.integers(0, 2, 80)
    texts = [
        " ".join(rng.choice(words[label * 20 : label * 20 + 20], 8)) for label in labels
    ]
    pipe = make_pipeline(
        TfidfVectorizer(),
        PrunedClassifier(small_net(max_epochs=2), retrain_epochs=1, random_state=0),
    )
    search = GridSearchCV(
        pipe, {"prunedclassifier__prune_ratio": [0.0, 0.5, 0.8]}, cv=2
    ).fit(texts, labels)
    display = SparsityCurveDisplay.from_cv_results(search.cv_results_)
    np.testing.assert_allclose(display.lines_[0].get_xdata(), [0.5, 0.2])
    np.testing.assert_allclose(
        display.lines_[0].get_ydata(), search.cv_results_["mean_test_score"][1:]
    )
    assert display.lines_[1].get_ydata()[0] == search.cv_results_["mean_test_score"][0]


def test_from_estimator_fits_a_copy_and_marks_its_selection(text_data):
    X, y = text_data
    clf = PrunedClassifier(small_net(max_epochs=2), retrain_epochs=1, random_state=0)
    display = SparsityCurveDisplay.from_estimator(
        clf, X, y, prune_ratios=[0.5, 0.9], cv=2, scoring="balanced_accuracy"
    )
    search = display.estimator_
    assert search.retrain_epochs == 1 and search.random_state == 0
    assert not hasattr(clf, "estimator_")
    np.testing.assert_allclose(
        display.lines_[0].get_ydata(), search.cv_results_["mean_test_score"][1:]
    )
    marker = display.lines_[-1]
    assert marker.get_xdata()[0] == pytest.approx(1 - search.prune_ratio_)
    assert display.ax_.get_ylabel() == "Balanced accuracy"


def test_plot_pruning_report_draws_kept_fraction_per_layer(text_data):
    X, y = text_data
    clf = PrunedClassifier(
        small_net(max_epochs=2, module__hidden_layer_sizes=(16, 8)),
        prune_ratio=0.8,
        retrain_epochs=1,
        random_state=0,
    ).fit(X, y)
    bars = plot_pruning_report(clf)
    widths = [bar.get_width() for bar in bars]
    expected = [row["kept"] / row["n_weights"] for row in clf.pruning_report_]
    assert widths == expected
    assert widths[-1] == 1.0  # the output layer is not pruned
    ax = bars[0].axes
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == [row["layer"] for row in clf.pruning_report_]
    assert ax.get_xlim() == (0.0, 1.0)


def test_plot_pruning_report_needs_a_fitted_estimator():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        plot_pruning_report(PrunedClassifier())


def test_plot_pruning_report_returns_a_display_whose_labels_fit_the_figure(text_data):
    X, y = text_data
    clf = PrunedClassifier(
        # 400 x 3 output weights: a count as wide as the old layout cut off
        small_net(max_epochs=1, module__hidden_layer_sizes=(400,)),
        prune_ratio=0.8,
        retrain_epochs=1,
        random_state=0,
    ).fit(X, y)
    display = plot_pruning_report(clf)
    assert isinstance(display, PruningReportDisplay)
    assert display.ax_.figure is display.figure_
    assert list(display) == list(display.bars_) and len(display) == 2
    widths = [bar.get_width() for bar in display.bars_]
    assert widths == [row["kept"] / row["n_weights"] for row in clf.pruning_report_]
    # Every tick label and count, the output layer's included, inside the figure.
    display.figure_.canvas.draw()
    renderer = display.figure_.canvas.get_renderer()
    figure_box = display.figure_.bbox
    texts = [*display.ax_.get_yticklabels(), *display.ax_.texts]
    assert len(display.ax_.texts) == 2
    for text in texts:
        box = text.get_window_extent(renderer)
        assert figure_box.x0 <= box.x0 and box.x1 <= figure_box.x1, text.get_text()

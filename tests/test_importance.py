"""Tests for skprune.importance: criteria, resolving them, and checking scores."""

import pytest
import torch

from skprune.importance import (
    IMPORTANCE_CRITERIA,
    compute_scores,
    magnitude,
    needs_gradients,
    resolve,
    taylor,
)


def weights(seed=0):
    generator = torch.Generator().manual_seed(seed)
    return {
        "layers.0.weight": torch.randn(5, 3, generator=generator),
        "layers.1.weight": torch.randn(2, 5, generator=generator),
    }


def test_magnitude_is_absolute_value():
    weight = torch.tensor([[-2.0, 0.0], [0.5, -0.25]])
    assert torch.equal(
        magnitude("w", weight, None), torch.tensor([[2.0, 0], [0.5, 0.25]])
    )


def test_magnitude_ignores_gradient():
    weight = torch.tensor([-1.0, 3.0])
    assert torch.equal(magnitude("w", weight, torch.tensor([5.0, 0.0])), weight.abs())


def test_taylor_is_absolute_weight_times_gradient():
    weight = torch.tensor([[-2.0, 1.0], [0.5, -3.0]])
    grad = torch.tensor([[0.5, 2.0], [0.0, 1.0]])
    expected = torch.tensor([[1.0, 2.0], [0.0, 3.0]])
    assert torch.equal(taylor("w", weight, grad), expected)


def test_taylor_without_gradient_raises_naming_the_parameter():
    with pytest.raises(ValueError, match="taylor.*'layers.1.weight'"):
        taylor("layers.1.weight", torch.ones(2, 2), None)


def test_resolve_names_to_criteria():
    assert resolve("magnitude") is magnitude
    assert resolve("taylor") is taylor
    assert set(IMPORTANCE_CRITERIA) == {"magnitude", "taylor", "random"}


@pytest.mark.parametrize("name", ["l1", "Magnitude", "", None, 3])
def test_resolve_rejects_unknown_names(name):
    with pytest.raises(ValueError, match="importance must be one of"):
        resolve(name)


def test_resolve_returns_a_callable_as_is():
    def criterion(name, weight, grad):
        return weight

    assert resolve(criterion) is criterion
    assert resolve(criterion, seed=5) is criterion


def test_random_is_reproducible_by_seed():
    w = weights()
    first = compute_scores(resolve("random", seed=3), w)
    second = compute_scores(resolve("random", seed=3), w)
    for name in w:
        assert torch.equal(first[name], second[name])
        assert first[name].shape == w[name].shape
        assert ((first[name] >= 0) & (first[name] < 1)).all()


def test_random_differs_across_seeds_and_tensors():
    w = weights()
    first = compute_scores(resolve("random", seed=3), w)
    other = compute_scores(resolve("random", seed=4), w)
    for name in w:
        assert not torch.equal(first[name], other[name])
    a = resolve("random", seed=0)("x", torch.zeros(20), None)
    b = resolve("random", seed=0)("x", torch.zeros(20), None)
    c = resolve("random", seed=1)("x", torch.zeros(20), None)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_random_does_not_depend_on_or_consume_the_global_generator():
    torch.manual_seed(0)
    first = resolve("random", seed=7)("w", torch.zeros(10), None)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    second = resolve("random", seed=7)("w", torch.zeros(10), None)
    torch.manual_seed(0)
    resolve("random", seed=7)("w", torch.zeros(10), None)
    assert torch.equal(first, second)
    assert torch.equal(torch.rand(3), expected_next)


def test_needs_gradients():
    assert needs_gradients("taylor")
    assert not needs_gradients("magnitude")
    assert not needs_gradients("random")
    assert needs_gradients(lambda name, weight, grad: weight)


def test_compute_scores_magnitude_of_each_weight():
    w = weights()
    scores = compute_scores(magnitude, w)
    assert set(scores) == set(w)
    for name in w:
        assert torch.equal(scores[name], w[name].abs())


def test_compute_scores_passes_each_parameter_its_own_gradient():
    w = weights()
    grads = {"layers.0.weight": torch.full((5, 3), 2.0)}
    seen = {}

    def criterion(name, weight, grad):
        seen[name] = grad
        return weight.abs() + (0.0 if grad is None else grad)

    scores = compute_scores(criterion, w, grads)
    assert seen["layers.1.weight"] is None  # missing gradient means None
    assert torch.equal(seen["layers.0.weight"], grads["layers.0.weight"])
    assert torch.equal(scores["layers.0.weight"], w["layers.0.weight"].abs() + 2.0)


def test_compute_scores_taylor_without_gradients_raises():
    with pytest.raises(ValueError, match="'layers.0.weight'"):
        compute_scores(taylor, weights())


def test_custom_callable_is_used_as_is():
    w = weights()

    def criterion(name, weight, grad):
        return torch.arange(weight.numel(), dtype=torch.float64).reshape(weight.shape)

    scores = compute_scores(resolve(criterion), w)
    for name in w:
        expected = torch.arange(w[name].numel(), dtype=torch.float32)
        assert torch.equal(scores[name], expected.reshape(w[name].shape))


def test_compute_scores_returns_detached_float32_tensors():
    param = torch.nn.Parameter(torch.randn(3, 4))
    scores = compute_scores(
        lambda name, weight, grad: (weight * 2).to(torch.float64), {"w": param}
    )
    assert scores["w"].dtype == torch.float32
    assert scores["w"].device.type == "cpu"
    assert not scores["w"].requires_grad
    # Integer or list scores are accepted and converted.
    scores = compute_scores(
        lambda name, weight, grad: [[1, 2], [3, 4]], {"w": torch.ones(2, 2)}
    )
    assert scores["w"].dtype == torch.float32
    assert scores["w"].tolist() == [[1.0, 2.0], [3.0, 4.0]]


def test_criterion_gets_a_detached_weight():
    param = torch.nn.Parameter(torch.randn(3))
    seen = {}

    def criterion(name, weight, grad):
        seen["requires_grad"] = weight.requires_grad
        return weight

    compute_scores(criterion, {"w": param})
    assert seen["requires_grad"] is False


@pytest.mark.parametrize("bad_shape", [(5,), (3, 5), (5, 3, 1), (15,)])
def test_compute_scores_rejects_wrong_shape_naming_the_parameter(bad_shape):
    with pytest.raises(ValueError, match=r"'layers.0.weight'.*\(5, 3\)"):
        compute_scores(lambda name, weight, grad: torch.ones(bad_shape), weights())


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_compute_scores_rejects_nan_and_infinity_naming_the_parameter(bad):
    def criterion(name, weight, grad):
        score = weight.abs()
        if name == "layers.1.weight":
            score[1, 2] = bad
        return score

    with pytest.raises(ValueError, match=r"NaN or infinite.*'layers.1.weight'"):
        compute_scores(criterion, weights())


def test_compute_scores_does_not_modify_the_weights():
    w = weights()
    before = {n: t.clone() for n, t in w.items()}
    compute_scores(magnitude, w)
    compute_scores(resolve("random"), w)
    for name in w:
        assert torch.equal(w[name], before[name])


# score_by_rows ------------------------------------------------------------------------


def test_score_by_rows_gives_the_scores_of_compute_scores_block_by_block():
    from skprune.importance import RowScores, score_by_rows

    ws = weights(seed=3)
    grads = {name: w.abs() + 0.5 for name, w in ws.items()}
    for criterion in (magnitude, taylor):
        full = compute_scores(criterion, ws, grads)
        lazy = score_by_rows(criterion, ws, grads)
        for name, scores in lazy.items():
            assert isinstance(scores, RowScores)
            assert scores.shape == ws[name].shape
            assert scores.numel() == ws[name].numel()
            blocks = torch.cat([scores.rows(0, 2), scores.rows(2, len(ws[name]))])
            assert torch.equal(blocks, full[name])


def test_score_by_rows_scores_other_criteria_in_full():
    from skprune.importance import score_by_rows

    ws = weights()
    criterion = resolve("random", seed=1)
    scores = score_by_rows(criterion, ws)
    expected = compute_scores(resolve("random", seed=1), ws)
    for name in ws:
        assert torch.equal(scores[name], expected[name])


def test_score_by_rows_taylor_without_gradients_raises_at_once():
    from skprune.importance import score_by_rows

    with pytest.raises(ValueError, match="layers.0.weight"):
        score_by_rows(taylor, weights())


def test_row_scores_reject_nan_naming_the_parameter():
    from skprune.importance import score_by_rows

    ws = weights()
    ws["layers.1.weight"][1, 2] = float("nan")
    scores = score_by_rows(magnitude, ws)
    with pytest.raises(ValueError, match="'layers.1.weight'"):
        scores["layers.1.weight"].rows(0, 2)


def test_row_scores_reject_infinity_in_rows_read_after_the_first():
    from skprune.importance import score_by_rows

    ws = weights()
    ws["layers.0.weight"][4, 0] = float("inf")
    scores = score_by_rows(magnitude, ws)["layers.0.weight"]
    scores.rows(0, 2)  # finite rows pass
    with pytest.raises(ValueError, match="infinite"):
        scores.rows(2, 5)

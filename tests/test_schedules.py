"""Tests for skprune.schedules: pruning steps and the epochs a schedule takes."""

import math

import pytest
import torch

from skprune.masks import select_masks
from skprune.schedules import SCHEDULES, PruningStep, make_schedule, total_epochs

RATIOS = [0.1, 0.3, 0.5, 0.875, 0.9, 0.99]


def test_oneshot_prunes_once_after_training():
    steps = make_schedule("oneshot", 0.8, train_epochs=5, retrain_epochs=3)
    assert steps == [PruningStep(epoch=5.0, ratio=0.8)]
    assert isinstance(steps[0].epoch, float)


def test_oneshot_ignores_n_rounds():
    assert make_schedule("oneshot", 0.8, 5, 3, n_rounds=4) == make_schedule(
        "oneshot", 0.8, 5, 3
    )
    assert total_epochs("oneshot", 5, 3, n_rounds=4) == 8


def test_iterative_steps_follow_training_and_each_retraining():
    steps = make_schedule(
        "iterative", 0.875, train_epochs=2, retrain_epochs=3, n_rounds=3
    )
    assert [s.epoch for s in steps] == [2.0, 5.0, 8.0]
    assert [s.ratio for s in steps] == pytest.approx([0.5, 0.75, 0.875])
    # The last round is followed by a full retraining.
    assert steps[-1].epoch + 3 == total_epochs("iterative", 2, 3, 3)


@pytest.mark.parametrize("ratio", RATIOS)
@pytest.mark.parametrize("n_rounds", [2, 3, 5])
def test_iterative_each_round_removes_the_same_fraction_of_what_is_left(
    ratio, n_rounds
):
    steps = make_schedule("iterative", ratio, 1, 1, n_rounds)
    assert len(steps) == n_rounds
    left = [1.0] + [1.0 - s.ratio for s in steps]
    fractions = [after / before for before, after in zip(left, left[1:], strict=False)]
    expected = (1.0 - ratio) ** (1.0 / n_rounds)
    assert fractions == pytest.approx([expected] * n_rounds)


def test_gradual_follows_the_cubic_schedule_at_fractional_epochs():
    steps = make_schedule("gradual", 0.8, train_epochs=4, retrain_epochs=3, n_rounds=4)
    assert [s.epoch for s in steps] == [5.5, 7.0, 8.5, 10.0]
    expected = [0.8 * (1 - (1 - k / 4) ** 3) for k in range(1, 5)]
    assert [s.ratio for s in steps] == pytest.approx(expected)
    assert steps[0].ratio == pytest.approx(0.8 * (1 - 0.75**3))


@pytest.mark.parametrize("ratio", RATIOS)
@pytest.mark.parametrize("n_rounds", [1, 2, 7])
def test_gradual_is_strictly_increasing_and_ends_in_the_first_half(ratio, n_rounds):
    steps = make_schedule("gradual", ratio, 3, 2, n_rounds)
    ratios = [s.ratio for s in steps]
    assert all(b > a for a, b in zip(ratios, ratios[1:], strict=False))
    assert ratios[0] > 0.0
    epochs = [s.epoch for s in steps]
    assert all(b > a for a, b in zip(epochs, epochs[1:], strict=False))
    assert epochs[0] > 3
    # Pruning ends halfway through the budget after warm-up; fine-tuning follows.
    assert epochs[-1] == 3 + n_rounds * 2 / 2
    assert total_epochs("gradual", 3, 2, n_rounds) - epochs[-1] == n_rounds * 2 / 2


def test_gradual_first_steps_prune_more_than_later_ones():
    steps = make_schedule("gradual", 0.9, 1, 1, 5)
    increments = [b.ratio - a.ratio for a, b in zip(steps, steps[1:], strict=False)]
    assert all(b < a for a, b in zip(increments, increments[1:], strict=False))


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("ratio", RATIOS)
@pytest.mark.parametrize("n_rounds", [1, 3, 4])
def test_last_step_prunes_exactly_the_target_ratio(schedule, ratio, n_rounds):
    # Exactly, not approximately: a step's ratio becomes round(ratio * n) weights,
    # and 0.30000000000000004 instead of 0.3 prunes 5 of 15 weights, not 4.
    steps = make_schedule(schedule, ratio, 2, 2, n_rounds)
    assert steps[-1].ratio == ratio


@pytest.mark.parametrize("schedule", ["iterative", "gradual"])
@pytest.mark.parametrize(("ratio", "n_weights"), [(0.1, 15), (0.3, 15), (0.3, 35)])
def test_every_schedule_ends_with_as_many_weights_pruned_as_oneshot(
    schedule, ratio, n_weights
):
    scores = {"w": torch.arange(float(n_weights))}
    oneshot = make_schedule("oneshot", ratio, 2, 2)[-1].ratio
    last = make_schedule(schedule, ratio, 2, 2, 3)[-1].ratio
    expected = select_masks(scores, oneshot)["w"]
    assert torch.equal(select_masks(scores, last)["w"], expected)


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_steps_are_ordered_and_within_training(schedule):
    steps = make_schedule(schedule, 0.7, 3, 2, 4)
    total = total_epochs(schedule, 3, 2, 4)
    epochs = [s.epoch for s in steps]
    assert epochs == sorted(epochs)
    assert all(3 <= e <= total for e in epochs)
    ratios = [s.ratio for s in steps]
    assert ratios == sorted(ratios)


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_total_epochs_does_not_depend_on_the_ratio(schedule):
    # The unpruned control (ratio 0) trains exactly as long as a pruned model.
    total = total_epochs(schedule, 3, 2, 4)
    for ratio in (0.0, 0.5, 0.95):
        steps = make_schedule(schedule, ratio, 3, 2, 4)
        assert steps[-1].epoch <= total
        assert [s.epoch for s in steps] == [
            s.epoch for s in make_schedule(schedule, 0.0, 3, 2, 4)
        ]


def test_total_epochs_values():
    assert total_epochs("oneshot", 10, 5) == 15
    assert total_epochs("iterative", 10, 5, 3) == 25
    assert total_epochs("gradual", 10, 5, 3) == 25
    assert total_epochs("oneshot", 10, 0) == 10


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_ratio_zero_prunes_nothing(schedule):
    assert all(s.ratio == 0.0 for s in make_schedule(schedule, 0.0, 1, 1, 3))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"schedule": "cosine"}, "schedule"),
        ({"train_epochs": 0}, "train_epochs"),
        ({"retrain_epochs": -1}, "retrain_epochs"),
        ({"n_rounds": 0}, "n_rounds"),
        ({"schedule": "gradual", "retrain_epochs": 0}, "retrain_epochs"),
    ],
)
def test_bad_arguments_raise_naming_the_parameter(kwargs, match):
    arguments = {
        "schedule": "iterative",
        "train_epochs": 2,
        "retrain_epochs": 1,
        "n_rounds": 2,
    }
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=match):
        make_schedule(ratio=0.5, **arguments)
    with pytest.raises(ValueError, match=match):
        total_epochs(**arguments)


@pytest.mark.parametrize("ratio", [1.0, -0.1, 1.5, math.nan])
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_ratio_outside_zero_one_raises(ratio, schedule):
    with pytest.raises(ValueError, match="ratio"):
        make_schedule(schedule, ratio, 2, 1, 2)


def test_oneshot_without_retraining_is_allowed():
    assert make_schedule("oneshot", 0.5, 3, 0) == [PruningStep(3.0, 0.5)]

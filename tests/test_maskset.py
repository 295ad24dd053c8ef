"""The pure-torch pieces under the Pruning callback, on plain torch modules:
no skorch, no scikit-learn."""

import pytest
import torch

from skprune._core.granularity import make_granularity
from skprune._core.importance import magnitude
from skprune._core.masks import find_prunable_layers
from skprune._core.maskset import (
    GradientSums,
    MaskSet,
    choose_masks,
    count_kept,
    floor_of,
    prepare_granularity,
    rewind_,
    set_learning_rates,
    sparsity,
    take_snapshot,
)
from skprune._core.rounds import (
    NOT_EVALUATED,
    RoundLog,
    close_round,
    is_retraining,
    open_round,
)
from skprune._core.schedules import (
    PruningStep,
    is_due,
    non_finite_loss_message,
    pending_step,
    training_phase,
)
from skprune._core.training import RewindSnapshot, ScheduleCursor
from skprune.modules import MLPModule


def mlp(sparse_grad=False):
    torch.manual_seed(0)
    return MLPModule(
        n_features=12, n_classes=3, hidden_layer_sizes=(8,), sparse_grad=sparse_grad
    )


def weight_granularity(module):
    params = dict(module.named_parameters())
    return make_granularity(
        "weight",
        find_prunable_layers(module),
        {n: tuple(p.shape) for n, p in params.items()},
        patterns=None,
        prune_output=False,
        prune_bias=False,
    )


def test_floor_of_reads_an_int_as_a_count_and_a_float_as_a_fraction_rounded_up():
    assert [floor_of(3, n) for n in (1, 3, 10)] == [1, 3, 3]
    assert [floor_of(0.25, n) for n in (1, 4, 5)] == [1, 1, 2]


def test_chosen_masks_prune_the_smallest_weights_to_the_exact_ratio():
    module = mlp()
    params = dict(module.named_parameters())
    granularity = weight_granularity(module)
    masks = choose_masks(
        params,
        0.75,
        granularity=granularity,
        criterion=magnitude,
        scope="global",
        min_keep=1,
        previous={},
    )
    (name,) = granularity.prunable
    kept = masks[name]
    assert int(kept.sum()) == kept.numel() // 4
    weights = params[name].detach().abs()
    assert weights[kept].min() >= weights[~kept].max()


def test_a_second_choice_never_revives_a_pruned_weight_even_when_it_grew():
    module = mlp()
    params = dict(module.named_parameters())
    granularity = weight_granularity(module)
    options = dict(
        granularity=granularity, criterion=magnitude, scope="global", min_keep=1
    )
    first = choose_masks(params, 0.5, previous={}, **options)
    (name,) = granularity.prunable
    with torch.no_grad():  # the pruned weights become the largest
        params[name][~first[name]] = 100.0
    second = choose_masks(params, 0.75, previous=first, **options)
    assert not bool((second[name] & ~first[name]).any())
    assert int(second[name].sum()) == second[name].numel() // 4


def test_the_mask_set_keeps_pruned_weights_zero_through_dense_steps_and_zeroes_state():
    module = mlp()
    params = dict(module.named_parameters())
    name = "layers.0.weight"
    kept = torch.rand(params[name].shape, generator=torch.Generator().manual_seed(1))
    masks = {name: kept > 0.5}
    optimizer = torch.optim.Adam(module.parameters(), lr=0.1)
    held = MaskSet(params, masks)
    held.apply(params, optimizer)
    for _ in range(3):
        optimizer.zero_grad()
        module(torch.randn(5, 12)).sum().backward()
        held.mask_sparse_gradients()
        optimizer.step()
        held.zero_pruned()
    assert bool((params[name][~masks[name]] == 0).all())
    # Dense gradients move the optimizer's state too; a pruning step zeroes it.
    state = optimizer.state[params[name]]
    assert bool((state["exp_avg"][~masks[name]] != 0).any())
    held.apply(params, optimizer)
    assert bool((state["exp_avg"][~masks[name]] == 0).all())
    assert bool((state["exp_avg_sq"][~masks[name]] == 0).all())


def test_masked_row_sparse_gradients_leave_pruned_weights_exactly_zero():
    module = mlp(sparse_grad=True)
    params = dict(module.named_parameters())
    name = "layers.0.weight"
    mask = torch.ones(params[name].shape, dtype=torch.bool)
    mask[::2] = False
    held = MaskSet(params, {name: mask})
    optimizer = torch.optim.SGD(module.parameters(), lr=0.5)
    held.apply(params, optimizer)
    X = torch.eye(12)[:4].to_sparse_csr()
    for _ in range(3):
        optimizer.zero_grad()
        module(X).sum().backward()
        assert params[name].grad.is_sparse
        held.mask_sparse_gradients()
        optimizer.step()  # no re-zeroing after it: the gradient was masked
    assert bool((params[name][~mask] == 0).all())
    assert bool((params[name][mask] != 0).any())


def test_a_mask_set_holds_only_the_parameters_with_pruned_weights():
    module = mlp()
    params = dict(module.named_parameters())
    full = torch.ones(params["layers.0.weight"].shape, dtype=torch.bool)
    assert MaskSet(params, {"layers.0.weight": full}).held == []


def test_gradient_sums_average_absolute_gradients_over_batches():
    weight = torch.nn.Parameter(torch.zeros(2, 2))
    sums = GradientSums()
    assert sums.means() is None
    for grad in (torch.tensor([[1.0, -2.0], [0.0, 4.0]]), -torch.ones(2, 2)):
        weight.grad = grad
        sums.add([("w", weight), ("other", weight)], scored=["w"])
    assert set(sums.sums) == {"w"}
    torch.testing.assert_close(
        sums.means()["w"], torch.tensor([[1.0, 1.5], [0.5, 2.5]])
    )


def test_gradient_sums_add_row_sparse_gradients_to_their_rows_only():
    # Row 2 appears twice: the batch's gradient is their sum, then its |.|.
    weight = torch.nn.Parameter(torch.zeros(3, 2))
    weight.grad = torch.sparse_coo_tensor(
        torch.tensor([[2, 0, 2]]),
        torch.tensor([[1.0, -1.0], [3.0, 3.0], [1.0, 1.0]]),
        (3, 2),
    )
    sums = GradientSums()
    sums.add([("w", weight)], scored=["w"])
    torch.testing.assert_close(
        sums.sums["w"], torch.tensor([[3.0, 3.0], [0.0, 0.0], [2.0, 0.0]])
    )


def test_rewinding_restores_the_snapshot_and_clears_the_optimizer_state():
    module = mlp()
    snapshot = take_snapshot(module)
    params = dict(module.named_parameters())
    optimizer = torch.optim.Adam(module.parameters(), lr=0.1)
    module(torch.randn(4, 12)).sum().backward()
    optimizer.step()
    assert not torch.equal(params["layers.0.weight"], snapshot["layers.0.weight"])
    rewind_(params, snapshot, optimizer)
    for name, value in snapshot.items():
        assert torch.equal(params[name], value)
    assert len(optimizer.state) == 0


@pytest.mark.parametrize("name", ["layers.0.weight", "layers.1.bias"])
def test_a_snapshot_is_a_copy_that_training_does_not_move(name):
    module = mlp()
    snapshot = take_snapshot(module)
    before = snapshot[name].clone()
    with torch.no_grad():
        dict(module.named_parameters())[name].add_(1.0)
    assert torch.equal(snapshot[name], before)


def test_prepare_granularity_refuses_a_ratio_the_floors_make_unreachable():
    module = mlp()
    options = dict(
        patterns=None,
        prune_output=False,
        prune_bias=False,
        scope="layer",
        importance="magnitude",
    )
    layers, granularity = prepare_granularity(
        module, "neuron", prune_ratio=0.75, min_keep=2, **options
    )
    assert [layer.name for layer in layers] == ["layers.0", "layers.1"]
    assert granularity.n_weights > 0
    # 8 hidden units, 3 of which must stay: at most 5/8 can go.
    with pytest.raises(ValueError, match=r"highest reachable ratio is 0\.6250"):
        prepare_granularity(module, "neuron", prune_ratio=0.7, min_keep=3, **options)


def test_prepare_granularity_lets_a_failing_importance_fail_before_training():
    def broken(name, weight, grad):
        raise RuntimeError("scores unavailable")

    with pytest.raises(RuntimeError, match="scores unavailable"):
        prepare_granularity(
            mlp(),
            "weight",
            patterns=None,
            prune_output=False,
            prune_bias=False,
            prune_ratio=0.5,
            min_keep=1,
            scope="global",
            importance=broken,
        )


def test_a_round_stays_open_until_its_retraining_is_recorded_once():
    history = []
    row = open_round(
        history,
        number=1,
        epoch=2.0,
        target_ratio=0.5,
        sparsity=0.5,
        evaluated_on="training",
        before=(0.3, 0.9),
        after=(0.8, 0.6),
    )
    assert history == [row] and is_retraining(row)
    assert (row["loss_before"], row["score_after"]) == (0.3, 0.6)
    close_round(history, lambda: (0.4, 0.85))
    close_round(history, lambda: pytest.fail("a closed round is evaluated again"))
    assert (row["loss_retrained"], row["score_retrained"]) == (0.4, 0.85)
    assert not is_retraining(row)


def test_closing_without_a_round_evaluates_nothing():
    close_round([], lambda: pytest.fail("evaluated without a round"))


def _open(history, number):
    return open_round(
        history,
        number=number,
        epoch=float(number),
        target_ratio=0.5,
        sparsity=0.5,
        evaluated_on="training",
        before=(0.3, 0.9),
        after=(0.8, 0.6),
    )


def test_round_log_hands_out_closed_rows_up_to_the_first_still_retraining():
    log = RoundLog(n_rounds=3)
    first = _open(log.rows, 1)
    assert log.closed_since(0) == []
    close_round(log.rows, lambda: (0.4, 0.85))
    second = _open(log.rows, 2)
    assert log.closed_since(0) == [first]
    close_round(log.rows, lambda: (0.5, 0.8))
    _open(log.rows, 3)
    assert log.closed_since(0) == [first, second]
    assert log.closed_since(1) == [second]
    assert log.closed_since(2) == []


def test_round_log_reads_the_list_it_is_given_not_a_copy():
    rows = []
    log = RoundLog(rows)
    row = _open(rows, 1)
    close_round(rows, lambda: (0.1, 1.0))
    assert log.closed_since(0) == [row] and log.rows is rows


STEPS = [PruningStep(2.0, 0.3), PruningStep(2.5, 0.5), PruningStep(4.0, 0.6)]


def test_the_cursor_names_the_next_step_and_none_after_the_last():
    assert [pending_step(STEPS, k) for k in range(4)] == [*STEPS, None]
    assert pending_step([], 0) is None


def test_a_step_is_due_from_its_epoch_on_and_not_a_batch_before():
    assert not is_due(STEPS, 0, 1.99)
    assert is_due(STEPS, 0, 2.0) and is_due(STEPS, 0, 3.0)
    # Mid-epoch: half an epoch as a sum of eight batch fractions is not short.
    assert is_due(STEPS, 1, 2.0 + sum([1 / 16] * 8))
    assert not is_due(STEPS, 1, 2.0 + sum([1 / 16] * 7))
    assert not is_due(STEPS, 3, 100.0)


def test_the_phase_names_dense_training_then_the_step_retrained_after():
    assert training_phase(0, 3) == "dense training"
    assert training_phase(2, 3) == "retraining after pruning step 2 of 3"


def test_the_non_finite_loss_message_names_value_epoch_phase_and_fixes():
    message = non_finite_loss_message(float("nan"), 5, training_phase(1, 2))
    assert "(nan) at epoch 5, during retraining after pruning step 1 of 2" in message
    assert "criterion=torch.nn.CrossEntropyLoss" in message and "(lr)" in message


def test_count_and_sparsity_are_of_the_prunable_weights_only():
    module = mlp()
    granularity = weight_granularity(module)
    params = dict(module.named_parameters())
    (first,) = granularity.prunable
    n = params[first].numel()
    assert count_kept(params, granularity) == (n, n)
    with torch.no_grad():
        params[first][:2] = 0  # two rows of 8 of the (12, 8) first layer
        params["layers.1.weight"].zero_()  # the output layer is not prunable
    assert count_kept(params, granularity) == (n, n - 16)
    assert sparsity(params, granularity) == pytest.approx(16 / n, rel=1e-12)


def test_learning_rates_are_set_per_group_and_a_count_mismatch_is_refused():
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.SGD([{"params": [a], "lr": 9.0}, {"params": [b]}], lr=7.0)
    set_learning_rates(optimizer, [0.5, 0.25], factor=0.5)
    assert [g["lr"] for g in optimizer.param_groups] == [0.25, 0.125]
    with pytest.raises(ValueError):
        set_learning_rates(optimizer, [0.5])


def test_the_cursor_counts_batches_once_and_makes_a_mid_epoch_step_due_at_its_batch():
    counted = []
    cursor = ScheduleCursor([PruningStep(1.5, 0.5), PruningStep(2.0, 0.8)])
    cursor.start_epoch(lambda: counted.append(1) or 4)
    # The epoch's last batch hands its steps to the epoch's end: None.
    assert [cursor.end_batch() for _ in range(4)] == [0.25, 0.5, 0.75, None]
    cursor.end_epoch()
    assert not cursor.is_due() and cursor.phase == "dense training"
    cursor.start_epoch(lambda: pytest.fail("batches counted twice"))
    assert not cursor.is_due(cursor.end_batch())  # 1.25 epochs
    assert cursor.is_due(cursor.end_batch())  # 1.5 epochs
    assert not cursor.at_last_step
    assert cursor.advance() == PruningStep(1.5, 0.5)
    assert cursor.phase == "retraining after pruning step 1 of 2"
    assert cursor.at_last_step and not cursor.is_due(0.75)
    cursor.end_batch(), cursor.end_batch()
    cursor.end_epoch()
    assert cursor.is_due() and cursor.advance() == PruningStep(2.0, 0.8)
    assert cursor.pending is None and not cursor.is_due(100.0)
    assert (cursor.taken, cursor.epochs_done, counted) == (2, 2, [1])


def test_the_cursor_reads_the_step_list_it_is_given():
    steps = [PruningStep(1.0, 0.5)]
    cursor = ScheduleCursor(steps, taken=1, epochs_done=3, batches_per_epoch=2)
    assert cursor.steps is steps and cursor.pending is None
    steps.append(PruningStep(4.0, 0.9))
    assert cursor.pending == steps[1] and cursor.is_due(1.0)


def test_the_rewind_snapshot_is_taken_once_at_its_epoch_and_restored_exactly():
    module = mlp()
    params = dict(module.named_parameters())
    snapshot = RewindSnapshot(1)
    snapshot.offer(0, module)
    assert snapshot.values is None and not snapshot.restore(params)
    snapshot.offer(1, module)
    taken = {n: v.clone() for n, v in snapshot.values.items()}
    with torch.no_grad():
        params["layers.0.weight"].add_(1.0)
    snapshot.offer(1, module)  # once only: the moved weights are not taken
    optimizer = torch.optim.Adam(module.parameters(), lr=0.1)
    module(torch.randn(4, 12)).sum().backward()
    optimizer.step()
    assert snapshot.restore(params, optimizer) and len(optimizer.state) == 0
    for name, value in taken.items():
        assert torch.equal(params[name], value)


def test_a_rewind_snapshot_without_an_epoch_or_dropped_takes_nothing():
    module = mlp()
    off = RewindSnapshot(None)
    off.offer(0, module)
    assert off.values is None
    dropped = RewindSnapshot(0)
    dropped.offer(0, module)
    dropped.drop()
    dropped.offer(0, module)
    assert dropped.values is None and not dropped.restore({})


def _open_logged(log, number, evaluate_after):
    return log.open(
        number=number,
        epoch=float(number),
        target_ratio=0.5,
        sparsity=0.5,
        evaluated_on="training",
        before=log.evaluate_before_step(evaluate_after),
        evaluate_after=evaluate_after,
    )


def test_the_round_log_evaluates_once_before_a_step_and_closes_the_round_before():
    values = iter([(1.0, 0.5), (2.0, 0.25), (0.5, 0.75), (0.4, 0.8)])
    calls = []

    def evaluate():
        calls.append(1)
        return next(values)

    log = RoundLog(n_rounds=2)
    first = _open_logged(log, 1, evaluate)
    assert log.closed_since(0) == [] and len(calls) == 2
    second = _open_logged(log, 2, evaluate)
    # One evaluation is both the first round's close and the second's before.
    assert (first["loss_retrained"], second["loss_before"]) == (0.5, 0.5)
    assert second["loss_after"] == 0.4 and len(calls) == 4
    assert log.closed_since(0) == [first]


def test_a_round_log_without_evaluations_calls_none_and_still_closes_its_rows():
    log = RoundLog(n_rounds=2, evaluations=False)
    never = lambda: pytest.fail("evaluated")  # noqa: E731
    first = _open_logged(log, 1, never)
    assert is_retraining(first) and log.closed_since(0) == []
    second = _open_logged(log, 2, never)
    log.close(never)
    assert log.closed_since(0) == [first, second]
    for row in (first, second):
        assert row["evaluated_on"] is None
        for when in ("before", "after", "retrained"):
            assert (row[f"loss_{when}"], row[f"score_{when}"]) == NOT_EVALUATED


def test_a_closed_row_whose_values_are_none_is_not_retraining():
    history = []
    row = _open(history, 1)
    close_round(history, lambda: (None, None))
    assert not is_retraining(row)
    close_round(history, lambda: pytest.fail("closed twice"))

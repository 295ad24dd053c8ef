"""Tests for skprune.masks: finding prunable layers, choosing and applying masks."""

import pytest
import torch
from torch import nn

from skprune.masks import (
    PrunableLayer,
    apply_masks,
    find_prunable_layers,
    mask_sparse_gradient,
    matching_names,
    reachable_ratio,
    select_masks,
)
from skprune.modules import MLPModule, SparseLinear
from skprune.optim import LazyAdam

SHAPES = {"a": (4, 3), "b": (3, 4), "c": (6,)}  # 12 + 12 + 6 = 30 entries


def distinct_scores(seed=0, shapes=SHAPES):
    """Scores with no ties: a random permutation of 0..n-1 split across tensors."""
    generator = torch.Generator().manual_seed(seed)
    n = sum(torch.Size(shape).numel() for shape in shapes.values())
    values = torch.randperm(n, generator=generator).to(torch.float32)
    scores, offset = {}, 0
    for name, shape in shapes.items():
        size = torch.Size(shape).numel()
        scores[name] = values[offset : offset + size].reshape(shape)
        offset += size
    return scores


def n_pruned(masks):
    return sum(int((~mask).sum()) for mask in masks.values())


# select_masks: counts -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("ratio", "expected"),
    [
        (0.0, 0),
        (0.1, 3),
        (0.33, 10),  # 9.9 rounds up
        (0.34, 10),  # 10.2 rounds down
        (0.5, 15),
        (0.71, 21),  # 21.3
        (0.9, 27),
        (0.98, 29),  # 29.4
    ],
)
def test_global_scope_prunes_exact_number_of_entries(ratio, expected):
    scores = distinct_scores()
    masks = select_masks(scores, ratio, scope="global")
    assert n_pruned(masks) == expected


@pytest.mark.parametrize(
    ("ratio", "expected"),
    [
        (0.0, {"a": 0, "b": 0, "c": 0}),
        (0.33, {"a": 4, "b": 4, "c": 2}),  # 3.96 -> 4, 1.98 -> 2
        (0.7, {"a": 8, "b": 8, "c": 4}),  # 8.4 -> 8, 4.2 -> 4
        (0.9, {"a": 11, "b": 11, "c": 5}),  # 10.8 -> 11, 5.4 -> 5
    ],
)
def test_layer_scope_prunes_exact_number_in_each_tensor(ratio, expected):
    scores = distinct_scores()
    masks = select_masks(scores, ratio, scope="layer")
    assert {name: int((~m).sum()) for name, m in masks.items()} == expected


def test_global_scope_prunes_the_lowest_scores_across_tensors():
    scores = distinct_scores(seed=3)
    masks = select_masks(scores, 0.4, scope="global")
    kept = torch.cat([scores[n][masks[n]] for n in scores])
    pruned = torch.cat([scores[n][~masks[n]] for n in scores])
    assert len(pruned) == 12
    assert kept.min() > pruned.max()


def test_layer_scope_prunes_the_lowest_scores_within_each_tensor():
    scores = distinct_scores(seed=4)
    masks = select_masks(scores, 0.5, scope="layer")
    for name, score in scores.items():
        assert score[masks[name]].min() > score[~masks[name]].max()


def test_masks_are_boolean_with_the_shape_of_the_scores():
    scores = distinct_scores()
    masks = select_masks(scores, 0.5)
    assert set(masks) == set(scores)
    for name, score in scores.items():
        assert masks[name].dtype == torch.bool
        assert masks[name].shape == score.shape


def test_unknown_scope_raises():
    with pytest.raises(ValueError, match="scope"):
        select_masks(distinct_scores(), 0.5, scope="unit")


def test_nan_scores_raise_naming_the_tensor():
    scores = distinct_scores()
    scores["b"] = scores["b"].clone()
    scores["b"][1, 2] = float("nan")
    with pytest.raises(ValueError, match="'b'.*NaN"):
        select_masks(scores, 0.5)


# select_masks: previous masks ---------------------------------------------------------


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_previously_pruned_entries_stay_pruned_and_count_is_exact(scope):
    scores = distinct_scores(seed=1)
    # Prune the highest-scoring entries before: a fresh ranking would keep them.
    previous = {n: s < s.flatten().sort().values[-2] for n, s in scores.items()}
    masks = select_masks(scores, 0.5, scope=scope, previous=previous)
    for name in scores:
        assert not (masks[name] & ~previous[name]).any()
    if scope == "global":
        assert n_pruned(masks) == 15
    else:
        assert {n: int((~m).sum()) for n, m in masks.items()} == {
            "a": 6,
            "b": 6,
            "c": 3,
        }


def test_previous_masks_only_constrain_the_tensors_they_name():
    scores = distinct_scores(seed=2)
    previous = {"a": torch.zeros(4, 3, dtype=torch.bool)}  # "a" pruned entirely
    masks = select_masks(scores, 0.5, previous=previous)
    assert not masks["a"].any()
    assert n_pruned(masks) == 15


def test_lower_ratio_than_before_never_revives_pruned_entries():
    # Half of "a" was pruned before; a target of 30% must not bring any back.
    scores = {"a": torch.arange(10.0)}
    previous = {"a": torch.arange(10) >= 5}
    masks = select_masks(scores, 0.3, previous=previous)
    assert not (masks["a"] & ~previous["a"]).any()


# select_masks: ties -------------------------------------------------------------------


def test_ties_are_broken_by_position_earlier_entries_kept():
    scores = {"a": torch.ones(10)}
    masks = select_masks(scores, 0.3)
    assert masks["a"].tolist() == [True] * 7 + [False] * 3


def test_ties_around_the_threshold_keep_the_earliest_tied_entries():
    scores = {"a": torch.tensor([1.0, 2.0, 2.0, 3.0, 2.0])}
    masks = select_masks(scores, 0.4)  # keep 3: the 3.0 and the first two 2.0s
    assert masks["a"].tolist() == [False, True, True, True, False]


def test_global_ties_across_tensors_keep_the_earlier_tensor():
    scores = {"first": torch.ones(2, 2), "second": torch.ones(4)}
    masks = select_masks(scores, 0.5, scope="global")
    assert masks["first"].all()
    assert not masks["second"].any()


def test_selection_with_ties_is_deterministic():
    generator = torch.Generator().manual_seed(0)
    scores = {
        "a": torch.randint(0, 3, (20, 10), generator=generator).float(),
        "b": torch.randint(0, 3, (50,), generator=generator).float(),
    }
    first = select_masks(scores, 0.55)
    for _ in range(3):
        again = select_masks({n: s.clone() for n, s in scores.items()}, 0.55)
        for name in scores:
            assert torch.equal(first[name], again[name])
    assert n_pruned(first) == round(0.55 * 250)


# select_masks: floors -----------------------------------------------------------------


def test_floor_keeps_top_entries_when_global_ranking_would_cut_the_layer():
    scores = {
        "small": torch.tensor([0.1, 0.4, 0.2, 0.3]),
        "large": torch.arange(10.0, 18.0),
    }
    without_floor = select_masks(scores, 0.5)
    assert not without_floor["small"].any()  # the layer would be cut entirely

    masks = select_masks(scores, 0.5, min_keep={"small": 2})
    assert masks["small"].tolist() == [False, True, False, True]
    assert n_pruned(masks) == 6  # still exact
    assert int(masks["large"].sum()) == 4
    assert masks["large"][4:].all()  # the four highest of "large"


def test_floor_keeps_top_entries_in_layer_scope():
    scores = {"a": torch.tensor([5.0, 1.0, 4.0, 2.0, 3.0])}
    masks = select_masks(scores, 0.6, scope="layer", min_keep={"a": 2})
    assert masks["a"].tolist() == [True, False, True, False, False]


def test_floor_larger_than_tensor_keeps_the_whole_tensor():
    scores = {"a": torch.tensor([0.1, 0.2]), "b": torch.arange(1.0, 9.0)}
    masks = select_masks(scores, 0.5, min_keep={"a": 10})
    assert masks["a"].all()
    assert n_pruned(masks) == 5


def test_floor_is_taken_among_surviving_entries_when_previous_masks_exist():
    # Entry 0 of "a" scores highest but was pruned before. The floor of one must
    # then keep the best surviving entry of "a", not be spent on a dead entry.
    scores = {
        "a": torch.tensor([9.0, 1.0, 3.0, 2.0]),
        "b": torch.arange(10.0, 18.0),
    }
    previous = {"a": torch.tensor([False, True, True, True])}
    masks = select_masks(scores, 0.5, min_keep={"a": 1}, previous=previous)
    assert not masks["a"][0]
    assert masks["a"].tolist() == [False, False, True, False]
    assert n_pruned(masks) == 6


# select_masks / reachable_ratio: unreachable ratios -----------------------------------


def test_unreachable_global_ratio_raises_stating_reachable_ratio():
    scores = {"a": torch.arange(10.0), "b": torch.arange(10.0)}
    floors = {"a": 5, "b": 5}
    with pytest.raises(ValueError, match=r"highest reachable ratio is 0\.5000"):
        select_masks(scores, 0.6, min_keep=floors)
    masks = select_masks(scores, 0.5, min_keep=floors)  # the limit itself works
    assert n_pruned(masks) == 10


def test_unreachable_layer_ratio_raises_naming_the_tensor_and_reachable_ratio():
    scores = {"a": torch.arange(10.0), "b": torch.arange(10.0)}
    floors = {"a": 2, "b": 5}
    with pytest.raises(ValueError, match=r"in b; the highest reachable ratio is 0\.5"):
        select_masks(scores, 0.6, scope="layer", min_keep=floors)
    masks = select_masks(scores, 0.5, scope="layer", min_keep=floors)
    assert int((~masks["a"]).sum()) == 5
    assert int((~masks["b"]).sum()) == 5


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_select_masks_reaches_exactly_the_reachable_ratio(scope):
    sizes = {"a": 7, "b": 13, "c": 10}
    floors = {"a": 2, "b": 1, "c": 4}
    ratio = reachable_ratio(sizes, floors, scope=scope)
    scores = {n: torch.arange(float(s)) for n, s in sizes.items()}
    select_masks(scores, ratio, scope=scope, min_keep=floors)  # no error
    with pytest.raises(ValueError, match="reachable"):
        select_masks(scores, ratio + 0.1, scope=scope, min_keep=floors)


def test_reachable_ratio_global():
    sizes = {"a": 10, "b": 30}
    assert reachable_ratio(sizes, {"a": 2, "b": 6}) == pytest.approx(1 - 8 / 40)
    assert reachable_ratio(sizes, {}) == 1.0
    # A floor larger than the tensor keeps the whole tensor, no more.
    assert reachable_ratio(sizes, {"a": 50}) == pytest.approx(0.75)


def test_reachable_ratio_layer_is_limited_by_the_tightest_tensor():
    sizes = {"a": 10, "b": 30}
    floors = {"a": 2, "b": 15}
    assert reachable_ratio(sizes, floors, scope="layer") == pytest.approx(0.5)
    assert reachable_ratio(sizes, {"a": 4}, scope="layer") == pytest.approx(0.6)
    assert reachable_ratio(sizes, {"a": 20}, scope="layer") == 0.0


# apply_masks --------------------------------------------------------------------------


def _net_after_one_step(optimizer_cls, **kwargs):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2))
    optimizer = optimizer_cls(net.parameters(), **kwargs)
    net(torch.randn(5, 4)).pow(2).sum().backward()
    optimizer.step()
    return net, optimizer


@pytest.mark.parametrize(
    ("optimizer_cls", "kwargs", "state_keys"),
    [
        (torch.optim.Adam, {"lr": 0.1}, ("exp_avg", "exp_avg_sq")),
        (torch.optim.SGD, {"lr": 0.1, "momentum": 0.9}, ("momentum_buffer",)),
    ],
)
def test_apply_masks_zeroes_parameter_and_its_optimizer_state(
    optimizer_cls, kwargs, state_keys
):
    net, optimizer = _net_after_one_step(optimizer_cls, **kwargs)
    params = dict(net.named_parameters())
    weight = params["0.weight"]
    before = {n: p.detach().clone() for n, p in params.items()}
    state_before = {
        n: {k: v.clone() for k, v in optimizer.state[p].items()}
        for n, p in params.items()
    }
    for key in state_keys:  # the state is non-zero to begin with
        assert (state_before["0.weight"][key] != 0).all()
    mask = torch.ones(3, 4, dtype=torch.bool)
    mask[0, 1] = mask[2, 3] = mask[1, 0] = False

    apply_masks(params, {"0.weight": mask}, optimizer)

    assert torch.equal(weight.detach() == 0, ~mask)
    assert torch.equal(weight.detach()[mask], before["0.weight"][mask])
    state = optimizer.state[weight]
    for key in state_keys:
        assert torch.equal(state[key][~mask], torch.zeros(3))
        assert torch.equal(state[key][mask], state_before["0.weight"][key][mask])
    if "step" in state:  # a scalar tensor in Adam's state, left alone
        assert torch.equal(state["step"], state_before["0.weight"]["step"])
    for name in ("0.bias", "2.weight", "2.bias"):
        assert torch.equal(params[name].detach(), before[name])
        for key, value in optimizer.state[params[name]].items():
            assert torch.equal(value, state_before[name][key])


def test_apply_masks_without_optimizer_zeroes_only_the_parameter():
    net, optimizer = _net_after_one_step(torch.optim.Adam, lr=0.1)
    params = dict(net.named_parameters())
    exp_avg = optimizer.state[params["2.weight"]]["exp_avg"].clone()
    mask = torch.tensor([[True, False, True], [False, True, True]])
    apply_masks(params, {"2.weight": mask})
    assert torch.equal(params["2.weight"].detach() == 0, ~mask)
    assert torch.equal(optimizer.state[params["2.weight"]]["exp_avg"], exp_avg)


def test_apply_masks_with_unknown_name_raises():
    net = nn.Linear(2, 2)
    with pytest.raises(KeyError):
        apply_masks(dict(net.named_parameters()), {"nope": torch.ones(2, 2).bool()})


# mask_sparse_gradient -----------------------------------------------------------------


def _sparse_grad_param():
    param = nn.Parameter(torch.arange(1.0, 19.0).reshape(6, 3))
    # Rows 4 and 1 touched, row 4 twice (duplicates sum when coalesced).
    indices = torch.tensor([[4, 1, 4]])
    values = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [1.0, 1.0, 1.0]])
    param.grad = torch.sparse_coo_tensor(indices, values, (6, 3))
    return param


def test_mask_sparse_gradient_zeroes_pruned_entries_of_touched_rows_only():
    param = _sparse_grad_param()
    pruned = torch.zeros(6, 3, dtype=torch.bool)
    pruned[1, 0] = pruned[2, 2] = pruned[4, 1] = True
    mask_sparse_gradient(param, pruned)
    expected = torch.zeros(6, 3)
    expected[1] = torch.tensor([0.0, 5.0, 6.0])
    expected[4] = torch.tensor([2.0, 0.0, 4.0])
    assert param.grad.is_sparse and param.grad.is_coalesced()
    assert torch.equal(param.grad.to_dense(), expected)


def test_masked_sparse_gradient_keeps_pruned_weights_zero_through_lazy_adam():
    param = _sparse_grad_param()
    pruned = torch.zeros(6, 3, dtype=torch.bool)
    pruned[4, 1] = True
    optimizer = LazyAdam([param], lr=0.1)
    with torch.no_grad():
        param[4, 1] = 0.0
    for _ in range(3):
        param.grad = _sparse_grad_param().grad
        mask_sparse_gradient(param, pruned)
        optimizer.step()
    assert param.detach()[4, 1] == 0.0
    assert param.detach()[4, 0] != 15.0  # the kept neighbour did move


# find_prunable_layers / matching_names ------------------------------------------------


def test_find_prunable_layers_on_mlp_module():
    module = MLPModule(n_features=10, n_classes=3, hidden_layer_sizes=(8, 5))
    layers = find_prunable_layers(module)
    assert layers == [
        PrunableLayer("layers.0", "layers.0.weight", "layers.0.bias", 0, 10, 8),
        PrunableLayer("layers.1", "layers.1.weight", "layers.1.bias", 1, 8, 5),
        PrunableLayer("layers.2", "layers.2.weight", "layers.2.bias", 1, 5, 3),
    ]
    assert [layer.out_axis for layer in layers] == [1, 0, 0]
    params = dict(module.named_parameters())
    for layer in layers:
        shape = params[layer.weight].shape
        assert shape[layer.in_axis] == layer.in_features
        assert shape[layer.out_axis] == layer.out_features


def test_find_prunable_layers_on_a_plain_sequential():
    module = nn.Sequential(
        nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2, bias=False), nn.Softmax(dim=1)
    )
    layers = find_prunable_layers(module)
    assert layers == [
        PrunableLayer("0", "0.weight", "0.bias", 1, 4, 5),
        PrunableLayer("2", "2.weight", None, 1, 5, 2),
    ]


def test_find_prunable_layers_on_bare_layers():
    assert find_prunable_layers(nn.Linear(3, 2)) == [
        PrunableLayer("", "weight", "bias", 1, 3, 2)
    ]
    assert find_prunable_layers(SparseLinear(3, 2, bias=False)) == [
        PrunableLayer("", "weight", None, 0, 3, 2)
    ]


def test_find_prunable_layers_without_linear_layers_is_empty():
    module = nn.Sequential(nn.Embedding(5, 3), nn.Conv1d(3, 3, 2), nn.ReLU())
    assert find_prunable_layers(module) == []


def test_matching_names_keeps_order_and_matches_any_pattern():
    names = ["layers.0.weight", "layers.0.bias", "layers.1.weight", "out.weight"]
    assert matching_names(names, ["*.weight"]) == [
        "layers.0.weight",
        "layers.1.weight",
        "out.weight",
    ]
    assert matching_names(names, ["out.*", "layers.0.*"]) == [
        "layers.0.weight",
        "layers.0.bias",
        "out.weight",
    ]
    assert matching_names(names, []) == []


# select_masks: the same masks as the full-sort selection it replaced -----------------


def reference_select_masks(scores, ratio, scope="global", min_keep=None, previous=None):
    """The selection before blockwise thresholds: a full copy of every score,
    ``topk`` for floors, ``kthvalue`` over the concatenation, ties by position."""
    min_keep, previous, ranked = min_keep or {}, previous or {}, {}
    for name, score in scores.items():
        score = score.detach().reshape(-1).to(torch.float32, copy=True)
        if name in previous:
            score.masked_fill_(~previous[name].reshape(-1), -torch.inf)
        floor = min(int(min_keep.get(name, 0)), int((~torch.isneginf(score)).sum()))
        if floor:
            score[torch.topk(score, floor).indices] = torch.inf
        ranked[name] = score
    groups = [list(ranked)] if scope == "global" else [[name] for name in ranked]
    keep = {}
    for names in groups:
        flat = torch.cat([ranked[name] for name in names])
        n_keep = flat.numel() - round(ratio * flat.numel())
        if n_keep < int(torch.isposinf(flat).sum()):
            raise ValueError("prune_ratio cannot be reached")
        flat_keep = torch.zeros(flat.numel(), dtype=torch.bool)
        if n_keep >= flat.numel():
            flat_keep[:] = True
        elif n_keep > 0:
            threshold = torch.kthvalue(flat, flat.numel() - n_keep + 1).values
            flat_keep = flat > threshold
            ties = torch.nonzero(flat == threshold).squeeze(1)
            flat_keep[ties[: n_keep - int(flat_keep.sum())]] = True
        flat_keep &= ~torch.isneginf(flat)
        sizes = [ranked[name].numel() for name in names]
        for name, part in zip(names, torch.split(flat_keep, sizes), strict=True):
            keep[name] = part.reshape(scores[name].shape)
    return keep


class FiniteRows:
    """Scores handed over a block of rows at a time, known to be finite."""

    finite = True

    def __init__(self, values):
        self.values, self.shape = values, values.shape

    def rows(self, start, stop):
        return self.values[start:stop]


def _random_case(seed):
    """Scores with many ties (few distinct values) or none, previous masks, floors."""
    generator = torch.Generator().manual_seed(seed)
    shapes = {"w0": (37, 11), "w1": (9, 23), "b": (13,)}
    tied = seed % 2 == 0
    scores = {}
    for name, shape in shapes.items():
        if tied:
            scores[name] = torch.randint(0, 5, shape, generator=generator).float()
        else:
            scores[name] = torch.rand(shape, generator=generator)
    previous = None
    if seed % 3:
        previous = {
            name: torch.rand(shape, generator=generator) > 0.3
            for name, shape in list(shapes.items())[: 1 + seed % 3]
        }
    # Floors only on tie-free scores: topk's choice among equal scores is not
    # specified, the blockwise selection takes the earliest.
    min_keep = None if tied else {"w1": 1 + seed % 7, "b": 2}
    return scores, previous, min_keep


@pytest.mark.parametrize("block_entries", [1 << 22, 16])
@pytest.mark.parametrize("sample_size", [1 << 16, 4])
@pytest.mark.parametrize("small_floor", [64, 0])
@pytest.mark.parametrize("scope", ["global", "layer"])
@pytest.mark.parametrize("as_rows", [False, True])
def test_select_masks_equals_the_full_sort_selection(
    monkeypatch, block_entries, sample_size, small_floor, scope, as_rows
):
    # Tiny blocks and samples exercise the carry of ties across blocks and the
    # widening of a bracket that missed; small_floor=0 the path of large floors.
    monkeypatch.setattr("skprune._core.masks._BLOCK_ENTRIES", block_entries)
    monkeypatch.setattr("skprune._core.masks._SAMPLE_SIZE", sample_size)
    monkeypatch.setattr("skprune._core.masks._SMALL_FLOOR", small_floor)
    for seed in range(6):
        scores, previous, min_keep = _random_case(seed)
        for ratio in (0.0, 0.05, 0.5, 0.77, 0.95):
            args = {"scope": scope, "min_keep": min_keep, "previous": previous}
            try:
                expected = reference_select_masks(scores, ratio, **args)
            except ValueError:  # floors make the ratio unreachable: same error
                with pytest.raises(ValueError, match="cannot be reached"):
                    select_masks(scores, ratio, **args)
                continue
            # Finite scores made a row block at a time take the sampled path.
            given = {n: FiniteRows(v) for n, v in scores.items()} if as_rows else scores
            masks = select_masks(given, ratio, **args)
            for name in scores:
                assert torch.equal(masks[name], expected[name]), (seed, ratio, name)


def test_select_masks_accepts_scores_made_a_block_of_rows_at_a_time():
    scores = distinct_scores(seed=5)

    class RowScores:
        def __init__(self, values):
            self.values, self.shape, self.calls = values, values.shape, []

        def rows(self, start, stop):
            self.calls.append((start, stop))
            return self.values[start:stop]

    lazy = {name: RowScores(score) for name, score in scores.items()}
    masks = select_masks(lazy, 0.6, min_keep={"a": 2})
    expected = reference_select_masks(scores, 0.6, min_keep={"a": 2})
    for name in scores:
        assert torch.equal(masks[name], expected[name])
    assert all(score.calls for score in lazy.values())


def test_select_masks_leaves_the_scores_unchanged():
    scores = distinct_scores(seed=6)
    before = {name: score.clone() for name, score in scores.items()}
    previous = {"a": torch.rand(4, 3) > 0.5}
    select_masks(scores, 0.7, min_keep={"b": 3}, previous=previous)
    for name in scores:
        assert torch.equal(scores[name], before[name])


def test_apply_masks_block_by_block_zeroes_the_same_entries(monkeypatch):
    monkeypatch.setattr("skprune._core.masks._BLOCK_ENTRIES", 2)  # several blocks
    net, optimizer = _net_after_one_step(torch.optim.Adam, lr=0.1)
    params = dict(net.named_parameters())
    generator = torch.Generator().manual_seed(0)
    masks = {
        name: torch.rand(param.shape, generator=generator) > 0.5
        for name, param in params.items()
    }
    expected = {name: param.detach() * masks[name] for name, param in params.items()}
    apply_masks(params, masks, optimizer)
    for name, param in params.items():
        assert torch.equal(param.detach(), expected[name])
        state = optimizer.state[param]
        assert not state["exp_avg"][~masks[name]].any()
        assert state["exp_avg"][masks[name]].all()


def test_mask_sparse_gradient_takes_the_kept_mask_instead():
    pruned = torch.zeros(6, 3, dtype=torch.bool)
    pruned[1, 0] = pruned[2, 2] = pruned[4, 1] = True
    by_pruned, by_kept = _sparse_grad_param(), _sparse_grad_param()
    mask_sparse_gradient(by_pruned, pruned)
    mask_sparse_gradient(by_kept, kept=~pruned)
    assert torch.equal(by_kept.grad.to_dense(), by_pruned.grad.to_dense())


def test_apply_masks_zeroes_a_sparse_momentum_buffer_on_pruned_entries():
    # SGD with momentum keeps a sparse buffer for a row-sparse gradient; masking
    # it in place would fail (masked_fill_ has no sparse kernel).
    weight = torch.nn.Parameter(torch.ones(6, 3))
    optimizer = torch.optim.SGD([weight], lr=0.1, momentum=0.9)
    weight.grad = torch.sparse_coo_tensor(
        torch.tensor([[1, 4]]), torch.ones(2, 3), (6, 3)
    )
    optimizer.step()
    mask = torch.ones(6, 3, dtype=torch.bool)
    mask[1, 0] = False
    mask[4] = False
    apply_masks({"w": weight}, {"w": mask}, optimizer)
    buffer = optimizer.state[weight]["momentum_buffer"]
    assert buffer.is_sparse
    expected = torch.zeros(6, 3)
    expected[1, 1:] = 1.0
    torch.testing.assert_close(buffer.to_dense(), expected)
    assert weight[1, 0] == 0.0 and bool((weight[4] == 0).all())


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_a_ratio_that_rounds_to_every_entry_prunes_all_without_a_floor(scope):
    # 34 entries at 0.99 round to 34 pruned: there is no k-th largest to find
    # (this searched for one forever). Run in a thread so a hang fails.
    import threading

    scores = {"a": torch.rand(30, generator=torch.Generator().manual_seed(0))}
    scores["b"] = torch.rand(4, generator=torch.Generator().manual_seed(1))
    result = {}
    thread = threading.Thread(
        target=lambda: result.update(select_masks(scores, 0.99, scope=scope)),
        daemon=True,
    )
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive(), "select_masks did not return"
    # Together 34 - round(33.66) = 0 kept; alone 30 - round(29.7), 4 - round(3.96).
    assert int(result["a"].sum()) == int(result["b"].sum()) == 0
    assert result["a"].shape == (30,) and result["b"].dtype == torch.bool

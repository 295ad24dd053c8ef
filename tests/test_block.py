"""granularity="block": runs of block_size outputs of one input, pruned whole.

Exact expectations on hand-made tensors first, then small fits through every
schedule, scope, estimator, compress() and save/load. Whole blocks are checked
here by slicing, independently of the granularity's own reshaping.
"""

import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import small_net
from sklearn.base import clone
from skorch.callbacks import Callback
from torch import nn

import skprune
from skprune import (
    PrunedClassifier,
    PrunedClassifierCV,
    PrunedRegressor,
    default_regressor_net,
)
from skprune._core import importance as importance_lib
from skprune._core.maskset import choose_masks, prepare_granularity
from skprune.granularity import (
    DEFAULT_BLOCK_SIZE,
    BlockGranularity,
    make_granularity,
)
from skprune.masks import PrunableLayer, find_prunable_layers, select_masks

T, F = True, False
DATA = Path(__file__).parent / "data"


def chain(*sizes):
    """Layers, shapes and module of torch.nn.Linear layers named "0", "1", ..."""
    module = nn.Sequential(
        *(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    )
    shapes = {n: tuple(p.shape) for n, p in module.named_parameters()}
    return find_prunable_layers(module), shapes, module


def blocks_of(mask, out_axis: int, block_size: int):
    """Every block of a 2-d mask as a 1-d array: (input, outputs b*B:(b+1)*B)."""
    by_input = np.moveaxis(np.asarray(mask), out_axis, -1)  # (in, out)
    return [
        row[start : start + block_size]
        for row in by_input
        for start in range(0, by_input.shape[1], block_size)
    ]


def assert_whole_blocks(mask, out_axis, block_size):
    """Every block all kept or all pruned; returns the number of kept blocks."""
    blocks = blocks_of(mask, out_axis, block_size)
    mixed = [b for b in blocks if b.any() and not b.all()]
    assert not mixed, f"{len(mixed)} blocks are partly pruned"
    return sum(bool(b.all()) for b in blocks)


def n_blocks(shape, out_axis, block_size):
    return shape[1 - out_axis] * math.ceil(shape[out_axis] / block_size)


# ------------------------------------------------------------------ granularity


def test_a_block_of_a_linear_weight_is_a_run_of_outputs_of_one_input():
    layers, shapes, _ = chain(3, 5, 2)
    blocks = make_granularity("block", layers, shapes, block_size=2)
    assert type(blocks) is BlockGranularity and not blocks.shrinks
    assert blocks.prunable == blocks.scored == ["0.weight"]
    # Outputs 0-1, 2-3 and the ragged 4, for each of the 3 inputs.
    assert blocks.group_sizes() == {"0.weight": 9}
    kept = {"0.weight": torch.tensor([[T, F, T], [F, T, T], [T, F, F]])}
    mask = blocks.expand(kept)["0.weight"]
    expected = torch.tensor([[T, F, T], [T, F, T], [F, T, T], [F, T, T], [T, F, F]])
    assert torch.equal(mask, expected)
    assert torch.equal(
        blocks.group_masks({"0.weight": mask})["0.weight"], kept["0.weight"]
    )


def test_a_block_of_a_sparse_layer_is_a_run_in_a_row_of_its_weight():
    # SparseLinear stores (inputs, outputs): a block is contiguous in a row.
    first = PrunableLayer("a", "a.weight", "a.bias", 0, 2, 5)
    second = PrunableLayer("b", "b.weight", "b.bias", 1, 5, 2)
    shapes = {"a.weight": (2, 5), "a.bias": (5,), "b.weight": (2, 5), "b.bias": (2,)}
    blocks = make_granularity("block", [first, second], shapes, block_size=2)
    assert blocks.group_sizes() == {"a.weight": 6}
    mask = blocks.expand({"a.weight": torch.tensor([[F, T, T], [T, F, F]])})
    assert torch.equal(
        mask["a.weight"], torch.tensor([[F, F, T, T, T], [T, T, F, F, F]])
    )
    scores = {"a.weight": torch.tensor([[1.0, 3, 4, 6, 9], [2, 2, 0, 8, 5]])}
    # The ragged last block of each row is its one weight.
    pooled = blocks.pool(scores)["a.weight"]
    assert torch.equal(pooled, torch.tensor([[2.0, 5, 9], [2, 4, 5]]))


def test_a_block_score_is_the_mean_of_its_weights_ragged_block_included():
    layers, shapes, _ = chain(2, 7, 2)
    blocks = make_granularity("block", layers, shapes, block_size=3)
    scores = {"0.weight": torch.arange(14, dtype=torch.float32).reshape(7, 2)}
    # Column 0 holds 0, 2, ..., 12: blocks (0, 2, 4), (6, 8, 10), (12,).
    expected = torch.tensor([[2.0, 3.0], [8.0, 9.0], [12.0, 13.0]])
    assert torch.equal(blocks.pool(scores)["0.weight"], expected)


def test_a_block_wider_than_the_layer_is_each_inputs_whole_run():
    layers, shapes, _ = chain(3, 4, 2)
    blocks = make_granularity("block", layers, shapes, block_size=16)
    assert blocks.group_sizes() == {"0.weight": 3}
    mask = blocks.expand({"0.weight": torch.tensor([[F, T, F]])})["0.weight"]
    assert torch.equal(mask, torch.tensor([[F, T, F]]).expand(4, 3))


@pytest.mark.parametrize("scope", ["global", "layer"])
@pytest.mark.parametrize("ratio", [0.3, 0.5, 0.77, 0.9])
def test_block_size_one_prunes_exactly_what_weight_granularity_prunes(scope, ratio):
    layers, shapes, module = chain(6, 5, 4, 3)
    generator = torch.Generator().manual_seed(0)
    scores = {
        name: torch.rand(shapes[name], generator=generator)
        for name in ("0.weight", "1.weight", "2.weight")
    }
    masks = {}
    for name, options in (("weight", {}), ("block", {"block_size": 1})):
        made = make_granularity(name, layers, shapes, prune_output=True, **options)
        kept = select_masks(
            made.pool(scores), ratio, scope=scope, min_keep={"1.weight": 2}
        )
        masks[name] = made.expand(kept)
    assert masks["weight"].keys() == masks["block"].keys()
    for name, mask in masks["weight"].items():
        assert torch.equal(masks["block"][name], mask), name


def test_masks_do_not_depend_on_the_order_of_scores_within_a_block_nor_their_scale():
    layers, shapes, _ = chain(4, 8, 2)
    blocks = make_granularity("block", layers, shapes, block_size=4)
    generator = torch.Generator().manual_seed(1)
    scores = torch.rand(8, 4, generator=generator)
    # Reversing each block's run of 4 outputs keeps every block's members.
    within = torch.cat([scores[:4].flip(0), scores[4:].flip(0)])
    reference = blocks.expand(select_masks(blocks.pool({"0.weight": scores}), 0.5))
    for other in (within, scores * 8.0):
        kept = select_masks(blocks.pool({"0.weight": other}), 0.5)
        assert torch.equal(blocks.expand(kept)["0.weight"], reference["0.weight"])


def test_equal_scores_keep_the_first_blocks_and_exactly_the_block_count():
    layers, shapes, _ = chain(3, 6, 2)
    blocks = make_granularity("block", layers, shapes, block_size=4)  # 2 x 3 blocks
    kept = select_masks(blocks.pool({"0.weight": torch.ones(6, 3)}), 0.5)
    # 3 of 6 equal blocks survive: the first three in row-major block order.
    assert torch.equal(kept["0.weight"], torch.tensor([[T, T, T], [F, F, F]]))
    mask = blocks.expand(kept)["0.weight"]
    assert torch.equal(mask[:4], torch.ones(4, 3, dtype=torch.bool))
    assert not mask[4:].any()


@pytest.mark.parametrize("ratio", [0.1, 0.25, 0.5, 0.6, 0.9, 0.99])
@pytest.mark.parametrize("block_size", [1, 3, 4, 5, 16])
def test_kept_blocks_are_whole_and_exact_to_the_block_count(ratio, block_size):
    layers, shapes, module = chain(7, 10, 9, 3)
    made = make_granularity("block", layers, shapes, block_size=block_size)
    params = dict(module.named_parameters())
    masks = choose_masks(
        params,
        ratio,
        granularity=made,
        criterion=importance_lib.resolve("magnitude"),
        scope="global",
        min_keep=0,
        previous={},
    )
    total = kept = 0
    for layer in layers[:-1]:
        shape = shapes[layer.weight]
        kept += assert_whole_blocks(masks[layer.weight], layer.out_axis, block_size)
        total += n_blocks(shape, layer.out_axis, block_size)
    assert kept == total - round(ratio * total)


@pytest.mark.parametrize("criterion", ["magnitude", "taylor", "random", "callable"])
def test_every_importance_criterion_prunes_whole_blocks(criterion):
    layers, shapes, module = chain(5, 11, 3)
    made = make_granularity("block", layers, shapes, block_size=4)
    params = dict(module.named_parameters())
    grads = {n: torch.rand_like(p) for n, p in params.items()}
    if criterion == "callable":
        criterion = lambda name, weight, grad: weight.detach().abs() ** 3  # noqa: E731
    masks = choose_masks(
        params,
        0.6,
        granularity=made,
        criterion=importance_lib.resolve(criterion, seed=0),
        scope="global",
        min_keep=1,
        previous={},
        grads=grads,
    )
    kept = assert_whole_blocks(masks["0.weight"], 0, 4)
    assert kept == 15 - round(0.6 * 15)


def test_a_later_step_never_revives_a_pruned_block():
    layers, shapes, module = chain(4, 8, 2)
    made = make_granularity("block", layers, shapes, block_size=2)
    params = dict(module.named_parameters())
    magnitude = importance_lib.resolve("magnitude")
    options = dict(granularity=made, scope="global", min_keep=0, criterion=magnitude)
    first = choose_masks(params, 0.25, previous={}, **options)
    with torch.no_grad():  # the pruned blocks become the largest weights
        params["0.weight"].masked_fill_(~first["0.weight"], 100.0)
    second = choose_masks(params, 0.5, previous=first, **options)
    assert not (second["0.weight"] & ~first["0.weight"]).any()
    assert assert_whole_blocks(second["0.weight"], 0, 2) == 8


def test_min_keep_counts_blocks_and_an_unreachable_ratio_is_refused_in_blocks():
    _, _, module = chain(4, 8, 6, 2)
    options = dict(
        patterns=None,
        prune_output=False,
        prune_bias=False,
        scope="layer",
        importance="magnitude",
        block_size=4,
    )
    # Layer 0: 4 inputs x 2 blocks; layer 1: 8 inputs x 2 blocks.
    _, made = prepare_granularity(
        module, "block", prune_ratio=0.75, min_keep=2, **options
    )
    assert made.group_sizes() == {"0.weight": 8, "1.weight": 16}
    with pytest.raises(ValueError, match="highest reachable ratio is 0.7500"):
        prepare_granularity(module, "block", prune_ratio=0.8, min_keep=2, **options)
    masks = choose_masks(
        dict(module.named_parameters()),
        0.75,
        granularity=made,
        criterion=importance_lib.resolve("magnitude"),
        scope="layer",
        min_keep=2,
        previous={},
    )
    assert assert_whole_blocks(masks["0.weight"], 0, 4) == 2
    assert assert_whole_blocks(masks["1.weight"], 0, 4) == 4


@pytest.mark.parametrize("block_size", [0, -3, 2.0, "8", None])
def test_a_bad_block_size_is_refused_naming_it(block_size):
    layers, shapes, _ = chain(3, 4, 2)
    with pytest.raises(ValueError, match="block_size must be an int >= 1"):
        make_granularity("block", layers, shapes, block_size=block_size)
    clf = PrunedClassifier(granularity="block", block_size=block_size)
    with pytest.raises(ValueError, match="'block_size' parameter of PrunedClassifier"):
        clf.fit(np.eye(4), [0, 1, 0, 1])


def test_block_size_default_is_declared_once_and_unused_by_other_granularities():
    assert PrunedClassifier().block_size == DEFAULT_BLOCK_SIZE == 8
    layers, shapes, _ = chain(3, 4, 2)
    # Any block_size (even a bad one) is not the business of other granularities.
    made = make_granularity("weight", layers, shapes, block_size=0)
    assert made.group_sizes() == {"0.weight": 12}


# ------------------------------------------------------------------ fits

HIDDEN = (12, 6)  # not multiples of the block size below: ragged blocks
BLOCK = 5
CHECKS = []


class WholeBlocksChecker(Callback):
    """After every batch and epoch, the masks and weights hold whole blocks."""

    def on_batch_end(self, net, training=True, **kwargs):
        if training:
            self._check(net)

    def on_epoch_end(self, net, **kwargs):
        self._check(net)

    def _check(self, net):
        pruning = dict(net.callbacks_)["pruning"]
        params = dict(net.module_.named_parameters())
        for layer in pruning.layers_[:-1]:
            mask = pruning.masks_.get(layer.weight)
            if mask is None:
                continue
            assert_whole_blocks(mask.cpu(), layer.out_axis, BLOCK)
            pruned = ~mask.to(params[layer.weight].device)
            assert not params[layer.weight].detach()[pruned].any()
            CHECKS.append(len(pruning.history_))


def block_fit(X, y, callbacks=(), **params):
    net = small_net(
        max_epochs=2, module__hidden_layer_sizes=HIDDEN, callbacks=list(callbacks)
    )
    params = {
        "granularity": "block",
        "block_size": BLOCK,
        "prune_ratio": 0.9,
        "retrain_epochs": 1,
        "random_state": 0,
        **params,
    }
    return PrunedClassifier(net, **params).fit(X, y)


def kept_blocks(estimator):
    """Kept and total blocks of each pruned layer of a fitted estimator."""
    pruning = dict(estimator.estimator_.callbacks_)["pruning"]
    counts = {}
    for layer in pruning.layers_[:-1]:
        mask = estimator.masks_[layer.weight]
        kept = assert_whole_blocks(mask, layer.out_axis, estimator.block_size)
        counts[layer.weight] = (
            kept,
            n_blocks(mask.shape, layer.out_axis, estimator.block_size),
        )
    return counts


@pytest.mark.parametrize(
    "schedule",
    [
        {"schedule": "oneshot"},
        {"schedule": "iterative", "n_rounds": 2},
        {"schedule": "gradual", "n_rounds": 3},
        {"schedule": "iterative", "n_rounds": 2, "rewind": True},
    ],
    ids=["oneshot", "iterative", "gradual", "iterative-rewind"],
)
def test_every_schedule_step_leaves_whole_blocks_and_the_exact_block_count(
    text_data, schedule
):
    X, y = text_data
    CHECKS.clear()
    clf = block_fit(X, y, callbacks=[("blocks", WholeBlocksChecker())], **schedule)
    n_steps = len(clf.pruning_history_)
    assert n_steps == schedule.get("n_rounds", 1)
    # Checked after every step, through the end of training.
    assert set(CHECKS) == set(range(1, n_steps + 1))
    counts = kept_blocks(clf)
    kept = sum(k for k, _ in counts.values())
    total = sum(n for _, n in counts.values())
    assert kept == total - round(0.9 * total)
    for name, mask in clf.masks_.items():
        weight = dict(clf.estimator_.module_.named_parameters())[name].detach()
        assert np.array_equal(weight.numpy() != 0, mask)


def test_layer_scope_prunes_each_layer_to_the_ratio_in_blocks(text_data):
    X, y = text_data
    clf = block_fit(X, y, scope="layer", prune_ratio=0.6)
    for kept, total in kept_blocks(clf).values():
        assert kept == total - round(0.6 * total)


def test_compressed_block_model_predicts_what_the_pruned_one_does(text_data):
    X, y = text_data
    clf = block_fit(X, y)
    compressed = clf.compress()
    np.testing.assert_array_equal(compressed.predict(X), clf.predict(X))
    np.testing.assert_allclose(
        compressed.predict_proba(X), clf.predict_proba(X), atol=1e-5
    )


def test_block_size_survives_save_load_clone_pickle_and_get_params(text_data, tmp_path):
    X, y = text_data
    clf = block_fit(X, y, prune_ratio=0.7)
    assert clf.get_params()["block_size"] == BLOCK
    assert clone(clf).block_size == BLOCK
    path = tmp_path / "block.skprune"
    skprune.save(clf, path)
    for loaded in (skprune.load(path), pickle.loads(pickle.dumps(clf))):
        params = loaded.get_params(deep=False)
        assert params.pop("estimator") is not None
        assert params == {
            k: v for k, v in clf.get_params(deep=False).items() if k != "estimator"
        }
        pruning = dict(loaded.estimator_.callbacks_)["pruning"]
        assert pruning.block_size == BLOCK
        assert pruning.granularity_.block_size == BLOCK
        assert pruning.granularity_.group_sizes() == clf_group_sizes(clf)
        for name, mask in clf.masks_.items():
            np.testing.assert_array_equal(loaded.masks_[name], mask)
        np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


def clf_group_sizes(clf):
    return dict(clf.estimator_.callbacks_)["pruning"].granularity_.group_sizes()


@pytest.mark.parametrize("kind", ["pruned", "compressed"])
def test_files_written_before_block_size_existed_load_with_the_default(kind):
    loaded = skprune.load(DATA / f"{kind}_classifier.skprune")
    if kind == "pruned":
        assert loaded.block_size == DEFAULT_BLOCK_SIZE
        pruning = dict(loaded.estimator_.callbacks_)["pruning"]
        assert pruning.block_size == DEFAULT_BLOCK_SIZE
        assert pruning.granularity != "block"
    else:
        assert loaded.predict(np.zeros((1, loaded.n_features_in_))).shape == (1,)


def test_the_cross_validated_search_prunes_whole_blocks_along_its_path(text_data):
    X, y = text_data
    CHECKS.clear()
    net = small_net(
        max_epochs=2,
        module__hidden_layer_sizes=HIDDEN,
        callbacks=[("blocks", WholeBlocksChecker())],
    )
    search = PrunedClassifierCV(
        net,
        prune_ratios=[0.5, 0.8],
        cv=2,
        granularity="block",
        block_size=BLOCK,
        retrain_epochs=1,
        random_state=0,
    ).fit(X, y)
    # Both steps of the path were checked, in the folds and the refit.
    assert set(CHECKS) == {1, 2}
    pruning = dict(search.estimator_.callbacks_)["pruning"]
    assert pruning.block_size == BLOCK and pruning.granularity == "block"


def test_the_regressor_prunes_whole_blocks_and_compresses_to_its_predictions():
    rng = np.random.RandomState(0)
    X = rng.rand(120, 30).astype(np.float32)
    target = X[:, :3].sum(1)
    net = default_regressor_net().set_params(
        max_epochs=2, module__hidden_layer_sizes=(10,)
    )
    reg = PrunedRegressor(
        net,
        granularity="block",
        block_size=4,
        prune_ratio=0.5,
        retrain_epochs=1,
        random_state=0,
    ).fit(X, target)
    mask = reg.masks_["layers.0.weight"]  # (30 inputs, 10 outputs): 30 x 3 blocks
    assert assert_whole_blocks(mask, 1, 4) == 90 - 45
    np.testing.assert_allclose(reg.compress().predict(X), reg.predict(X), atol=1e-5)


class _EpochRecorder(Callback):
    """A user's own callback: counts the epochs it saw."""

    def initialize(self):
        self.epochs_ = 0
        return self

    def on_epoch_end(self, net, **kwargs):
        self.epochs_ += 1


class _UsersNet(nn.Module):
    """A user's own module: probabilities (skorch's NLLLoss takes their log)."""

    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(300, 12)
        self.out = nn.Linear(12, 3)

    def forward(self, X):
        return torch.softmax(self.out(torch.relu(self.hidden(X))), dim=-1)


def test_a_users_own_net_prunes_whole_blocks_with_class_weights_and_reloads(
    text_data, tmp_path
):
    from skorch import NeuralNetClassifier

    X, y = text_data
    X = X[:, :300].toarray().astype(np.float32)
    net = NeuralNetClassifier(
        _UsersNet,
        criterion=torch.nn.NLLLoss,
        optimizer=torch.optim.SGD,
        lr=0.3,
        max_epochs=3,
        batch_size=32,
        train_split=None,
        callbacks=[("recorder", _EpochRecorder())],
        verbose=0,
    )
    clf = PrunedClassifier(
        net,
        granularity="block",
        block_size=4,
        prune_ratio=0.75,
        class_weight="balanced",
        retrain_epochs=1,
        random_state=0,
    ).fit(X, y)
    mask = torch.as_tensor(clf.masks_["hidden.weight"])
    total = n_blocks(tuple(mask.shape), 0, 4)
    assert assert_whole_blocks(mask, 0, 4) == total - round(0.75 * total)
    weight = clf.estimator_.module_.hidden.weight.detach()
    assert not weight[~mask].any()  # pruned blocks hold zeros
    recorder = dict(clf.estimator_.callbacks_)["recorder"]
    assert recorder.epochs_ == len(clf.estimator_.history)  # the user's callback ran
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    path = tmp_path / "users_net.skprune"
    skprune.save(clf, path)
    loaded = skprune.load(path, trusted=[_UsersNet, _EpochRecorder])
    np.testing.assert_array_equal(loaded.predict_proba(X), proba)

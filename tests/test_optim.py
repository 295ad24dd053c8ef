"""Tests for skprune.optim.LazyAdam."""

import ast
import copy
import io
import pickle
from pathlib import Path

import pytest
import torch
from torch import nn

from skprune.optim import LazyAdam

ATOL = 1e-6


def assert_close(actual, expected, atol=ATOL):
    torch.testing.assert_close(actual, expected, atol=atol, rtol=0)


def sparse_rows(rows, values, shape):
    """Sparse COO gradient holding ``values`` at ``rows`` (duplicates kept)."""
    rows = torch.as_tensor(rows, dtype=torch.long)
    return torch.sparse_coo_tensor(rows[None], values, shape, check_invariants=True)


def random_sparse_grad(generator, shape, n_rows):
    rows = torch.randint(0, shape[0], (n_rows,), generator=generator)
    values = torch.randn(n_rows, *shape[1:], generator=generator)
    return sparse_rows(rows, values, shape)


def make_params(shapes, seed=0, dtype=torch.float32):
    generator = torch.Generator().manual_seed(seed)
    return [
        nn.Parameter(torch.randn(*shape, generator=generator, dtype=dtype))
        for shape in shapes
    ]


def clone_params(params):
    return [nn.Parameter(p.detach().clone()) for p in params]


def run_steps(optimizer, params, grads_per_step):
    for grads in grads_per_step:
        for p, g in zip(params, grads, strict=True):
            p.grad = None if g is None else g.clone()
        optimizer.step()


def mixed_grads(generator, n_steps, sparse_shape=(30, 4), dense_shape=(4, 3)):
    return [
        [
            random_sparse_grad(generator, sparse_shape, 8),
            torch.randn(*dense_shape, generator=generator),
        ]
        for _ in range(n_steps)
    ]


# --- dense gradients ---------------------------------------------------------


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
@pytest.mark.parametrize("fused", [None, True, False])
def test_dense_steps_match_torch_adam(weight_decay, fused):
    shapes = [(7, 5), (5,), (3, 2, 4)]
    ours = make_params(shapes)
    ref = clone_params(ours)
    hyper = {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-7}
    hyper["weight_decay"] = weight_decay
    opt = LazyAdam(ours, fused=fused, **hyper)
    ref_opt = torch.optim.Adam(ref, **hyper)
    generator = torch.Generator().manual_seed(1)
    steps = [[torch.randn(*s, generator=generator) for s in shapes] for _ in range(6)]

    run_steps(opt, ours, steps)
    run_steps(ref_opt, ref, steps)

    for p, r in zip(ours, ref, strict=True):
        assert_close(p, r)
        assert_close(opt.state[p]["exp_avg"], ref_opt.state[r]["exp_avg"])
        assert_close(opt.state[p]["exp_avg_sq"], ref_opt.state[r]["exp_avg_sq"])
        assert opt.state[p]["step"].item() == 6


def test_fused_and_unfused_dense_paths_agree():
    shapes = [(20, 6), (6,)]
    fused = make_params(shapes)
    unfused = clone_params(fused)
    generator = torch.Generator().manual_seed(2)
    steps = [[torch.randn(*s, generator=generator) for s in shapes] for _ in range(5)]

    run_steps(LazyAdam(fused, lr=0.05, weight_decay=0.01, fused=True), fused, steps)
    run_steps(
        LazyAdam(unfused, lr=0.05, weight_decay=0.01, fused=False), unfused, steps
    )

    for a, b in zip(fused, unfused, strict=True):
        assert_close(a, b)


def test_dense_complex_parameter_matches_torch_adam():
    ours = make_params([(4, 3)], dtype=torch.complex64)
    ref = clone_params(ours)
    opt, ref_opt = LazyAdam(ours, lr=0.01), torch.optim.Adam(ref, lr=0.01)
    generator = torch.Generator().manual_seed(3)
    steps = [
        [torch.randn(4, 3, generator=generator, dtype=torch.complex64)]
        for _ in range(4)
    ]

    run_steps(opt, ours, steps)
    run_steps(ref_opt, ref, steps)

    assert_close(ours[0], ref[0])


def test_parameter_without_gradient_is_left_alone():
    with_grad, without_grad = make_params([(3, 3), (2,)])
    before = without_grad.detach().clone()
    opt = LazyAdam([with_grad, without_grad], lr=0.1)

    with_grad.grad = torch.ones(3, 3)
    opt.step()

    assert torch.equal(without_grad, before)
    assert len(opt.state[without_grad]) == 0


# --- sparse gradients --------------------------------------------------------


def test_sparse_steps_match_sparse_adam():
    ours = make_params([(40, 6)])
    ref = clone_params(ours)
    hyper = {"lr": 0.02, "betas": (0.85, 0.995), "eps": 1e-6}
    opt, ref_opt = LazyAdam(ours, **hyper), torch.optim.SparseAdam(ref, **hyper)
    generator = torch.Generator().manual_seed(4)
    steps = [[random_sparse_grad(generator, (40, 6), 15)] for _ in range(8)]

    run_steps(opt, ours, steps)
    run_steps(ref_opt, ref, steps)

    assert_close(ours[0], ref[0])
    assert_close(opt.state[ours[0]]["exp_avg"], ref_opt.state[ref[0]]["exp_avg"])
    assert_close(opt.state[ours[0]]["exp_avg_sq"], ref_opt.state[ref[0]]["exp_avg_sq"])
    assert opt.state[ours[0]]["step"].item() == 8


def test_elementwise_sparse_gradient_matches_sparse_adam():
    """A gradient sparse in every dimension (sparse_dim == param.dim())."""
    ours = make_params([(6, 5)])
    ref = clone_params(ours)
    opt, ref_opt = LazyAdam(ours, lr=0.1), torch.optim.SparseAdam(ref, lr=0.1)
    indices = torch.tensor([[0, 2, 2, 5, 0], [1, 4, 4, 0, 1]])
    generator = torch.Generator().manual_seed(5)
    steps = [
        [
            torch.sparse_coo_tensor(
                indices,
                torch.randn(5, generator=generator),
                (6, 5),
                check_invariants=True,
            )
        ]
        for _ in range(3)
    ]

    run_steps(opt, ours, steps)
    run_steps(ref_opt, ref, steps)

    assert_close(ours[0], ref[0])
    untouched = torch.ones(6, 5, dtype=torch.bool)
    untouched[indices[0], indices[1]] = False
    assert torch.equal(ours[0][untouched], make_params([(6, 5)])[0][untouched])


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_untouched_rows_keep_values_and_moments(weight_decay):
    (param,) = make_params([(10, 3)])
    opt = LazyAdam([param], lr=0.1, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(6)
    # Touch every row first so that all moments are non-zero.
    param.grad = sparse_rows(
        range(10), torch.randn(10, 3, generator=generator), (10, 3)
    )
    opt.step()
    state = opt.state[param]
    before = [
        t.detach().clone() for t in (param, state["exp_avg"], state["exp_avg_sq"])
    ]

    touched = [1, 7]
    param.grad = sparse_rows(touched, torch.randn(2, 3, generator=generator), (10, 3))
    opt.step()

    after = (param, state["exp_avg"], state["exp_avg_sq"])
    untouched = [i for i in range(10) if i not in touched]
    for old, new in zip(before, after, strict=True):
        assert torch.equal(new[untouched], old[untouched])
        assert not torch.equal(new[touched], old[touched])


def test_duplicate_sparse_indices_are_summed():
    (duplicated,) = make_params([(5, 2)])
    (summed,) = clone_params([duplicated])
    values = torch.tensor([[1.0, -2.0], [0.5, 0.25], [3.0, 1.0]])
    opt_dup, opt_sum = LazyAdam([duplicated], lr=0.1), LazyAdam([summed], lr=0.1)

    duplicated.grad = sparse_rows([3, 0, 3], values, (5, 2))
    summed.grad = sparse_rows(
        [0, 3], torch.stack([values[1], values[0] + values[2]]), (5, 2)
    )
    opt_dup.step()
    opt_sum.step()

    assert torch.equal(duplicated, summed)
    assert_close(opt_dup.state[duplicated]["exp_avg"][3], 0.1 * values[[0, 2]].sum(0))


def test_sparse_weight_decay_is_added_to_touched_rows_only():
    (param,) = make_params([(8, 3)])
    start = param.detach().clone()
    lr, beta1, beta2, eps, wd = 0.05, 0.9, 0.999, 1e-8, 0.3
    opt = LazyAdam([param], lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=wd)
    rows = torch.tensor([2, 5])
    grad_values = torch.tensor([[1.0, -1.0, 0.5], [0.0, 2.0, -3.0]])

    param.grad = sparse_rows(rows, grad_values, (8, 3))
    opt.step()

    g = grad_values + wd * start[rows]
    m, v = (1 - beta1) * g, (1 - beta2) * g * g
    step_size = lr * (1 - beta2) ** 0.5 / (1 - beta1)
    expected = start.clone()
    expected[rows] -= step_size * m / (v.sqrt() + eps)
    assert_close(param, expected)
    assert_close(opt.state[param]["exp_avg"][rows], m)


def test_empty_sparse_gradient_changes_nothing():
    (param,) = make_params([(4, 2)])
    before = param.detach().clone()
    opt = LazyAdam([param], lr=0.1)

    param.grad = sparse_rows([], torch.zeros(0, 2), (4, 2))
    opt.step()

    assert torch.equal(param, before)
    assert not opt.state[param]["exp_avg"].any()


# --- dense and sparse together -----------------------------------------------


def test_mixed_dense_and_sparse_parameters_in_one_optimizer():
    torch.manual_seed(0)
    n_features, n_hidden, n_samples = 200, 8, 64
    embedding = nn.Parameter(torch.randn(n_features, n_hidden) * 0.1)
    head = nn.Linear(n_hidden, 1)
    # Bags of 5 features per sample, with feature values as per-sample weights.
    features = torch.randint(0, n_features, (n_samples, 5))
    weights = torch.rand(n_samples, 5)
    target = torch.randn(n_samples, 1)

    def loss_fn(emb, linear):
        hidden = nn.functional.embedding_bag(
            features.flatten(),
            emb,
            torch.arange(0, 5 * n_samples, 5),
            mode="sum",
            sparse=True,
            per_sample_weights=weights.flatten(),
        )
        return nn.functional.mse_loss(linear(torch.relu(hidden)), target)

    ref_embedding = nn.Parameter(embedding.detach().clone())
    ref_head = copy.deepcopy(head)
    opt = LazyAdam([embedding, *head.parameters()], lr=0.01)
    ref_sparse = torch.optim.SparseAdam([ref_embedding], lr=0.01)
    ref_dense = torch.optim.Adam(ref_head.parameters(), lr=0.01)

    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = loss_fn(embedding, head)
        loss.backward()
        assert embedding.grad.is_sparse
        assert not head.weight.grad.is_sparse
        opt.step()
        losses.append(loss.item())

        ref_sparse.zero_grad()
        ref_dense.zero_grad()
        loss_fn(ref_embedding, ref_head).backward()
        ref_sparse.step()
        ref_dense.step()

    assert losses[-1] < 0.5 * losses[0]
    assert_close(embedding, ref_embedding, atol=1e-5)
    assert_close(head.weight, ref_head.weight, atol=1e-5)


def test_embedding_bag_module_trains():
    torch.manual_seed(1)
    bag = nn.EmbeddingBag(100, 6, mode="sum", sparse=True)
    linear = nn.Linear(6, 1)
    opt = LazyAdam([*bag.parameters(), *linear.parameters()], lr=0.05)
    x = torch.randint(0, 100, (32, 4))
    y = torch.randn(32, 1)

    losses = []
    for _ in range(40):
        opt.zero_grad()
        loss = nn.functional.mse_loss(linear(bag(x)), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())

    assert losses[-1] < 0.2 * losses[0]


# --- hyper-parameters and groups ---------------------------------------------


@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_lr_change_in_param_groups_takes_effect(kind):
    (param,) = make_params([(6, 2)])
    opt = LazyAdam([param], lr=0.1)
    generator = torch.Generator().manual_seed(7)

    def set_grad():
        if kind == "dense":
            param.grad = torch.randn(6, 2, generator=generator)
        else:
            param.grad = random_sparse_grad(generator, (6, 2), 4)

    set_grad()
    opt.step()
    opt.param_groups[0]["lr"] = 0.0
    before = param.detach().clone()
    set_grad()
    opt.step()

    assert torch.equal(param, before)

    opt.param_groups[0]["lr"] = 0.1
    set_grad()
    opt.step()
    assert not torch.equal(param, before)


def test_several_param_groups_use_their_own_hyperparameters():
    first, second = make_params([(4, 3), (3,)])
    ref_first, ref_second = clone_params([first, second])
    opt = LazyAdam(
        [{"params": [first]}, {"params": [second], "lr": 0.3, "weight_decay": 0.2}],
        lr=0.01,
    )
    ref_a = torch.optim.Adam([ref_first], lr=0.01)
    ref_b = torch.optim.Adam([ref_second], lr=0.3, weight_decay=0.2)
    generator = torch.Generator().manual_seed(8)
    steps = [
        [torch.randn(4, 3, generator=generator), torch.randn(3, generator=generator)]
        for _ in range(4)
    ]

    run_steps(opt, [first, second], steps)
    run_steps(ref_a, [ref_first], [[s[0]] for s in steps])
    run_steps(ref_b, [ref_second], [[s[1]] for s in steps])

    assert_close(first, ref_first)
    assert_close(second, ref_second)
    assert opt.param_groups[1]["betas"] == (0.9, 0.999)


def test_closure_is_called_and_its_loss_is_returned():
    (param,) = make_params([(3,)])
    opt = LazyAdam([param], lr=0.1)
    calls = []

    def closure():
        calls.append(torch.is_grad_enabled())
        opt.zero_grad()
        loss = (param**2).sum()
        loss.backward()
        return loss

    before = param.detach().clone()
    loss = opt.step(closure)

    assert calls == [True]
    assert torch.equal(loss, (before**2).sum())
    assert not torch.equal(param, before)


@pytest.mark.parametrize("set_to_none", [True, False])
def test_zero_grad_clears_dense_and_sparse_gradients(set_to_none):
    dense, sparse = make_params([(3, 2), (5, 2)])
    opt = LazyAdam([dense, sparse])
    dense.grad = torch.ones(3, 2)
    sparse.grad = sparse_rows([1, 4], torch.ones(2, 2), (5, 2))

    opt.zero_grad(set_to_none=set_to_none)

    for p in (dense, sparse):
        if set_to_none:
            assert p.grad is None
        else:
            assert not p.grad.to_dense().any()


# --- state -------------------------------------------------------------------


def test_state_keys_are_exp_avg_and_exp_avg_sq_with_param_shape():
    dense, sparse = make_params([(3, 4), (9, 2)])
    opt = LazyAdam([dense, sparse])
    dense.grad = torch.ones(3, 4)
    sparse.grad = sparse_rows([0, 8], torch.ones(2, 2), (9, 2))
    opt.step()

    for p in (dense, sparse):
        state = opt.state[p]
        assert set(state) == {"step", "exp_avg", "exp_avg_sq"}
        assert state["exp_avg"].shape == p.shape
        assert state["exp_avg_sq"].shape == p.shape
        assert state["exp_avg"].layout == torch.strided
        assert state["step"].shape == ()
    saved = opt.state_dict()["state"]
    assert set(saved) == {0, 1}
    assert saved[1]["exp_avg_sq"].shape == (9, 2)


def mixed_setup(seed=0):
    params = make_params([(30, 4), (4, 3)], seed=seed)
    opt = LazyAdam(params, lr=0.05, weight_decay=0.01)
    return params, opt


def test_state_dict_round_trip_continues_identically():
    generator = torch.Generator().manual_seed(9)
    steps = mixed_grads(generator, 6)
    params, opt = mixed_setup()
    run_steps(opt, params, steps[:3])

    buffer = io.BytesIO()
    torch.save(
        {"params": [p.detach() for p in params], "opt": opt.state_dict()}, buffer
    )
    buffer.seek(0)
    saved = torch.load(buffer)
    restored = [nn.Parameter(p.clone()) for p in saved["params"]]
    restored_opt = LazyAdam(restored, lr=1.0)  # the loaded groups override lr
    restored_opt.load_state_dict(saved["opt"])

    run_steps(opt, params, steps[3:])
    run_steps(restored_opt, restored, steps[3:])

    assert restored_opt.param_groups[0]["lr"] == 0.05
    for p, r in zip(params, restored, strict=True):
        assert torch.equal(p, r)
        for key in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(opt.state[p][key], restored_opt.state[r][key])


def test_loads_a_sparse_adam_state_dict_and_continues_like_it():
    ours = make_params([(20, 3)])
    ref = clone_params(ours)
    ref_opt = torch.optim.SparseAdam(ref, lr=0.05)
    generator = torch.Generator().manual_seed(12)
    steps = [[random_sparse_grad(generator, (20, 3), 6)] for _ in range(5)]
    run_steps(ref_opt, ref, steps[:2])
    with torch.no_grad():
        ours[0].copy_(ref[0])
    opt = LazyAdam(ours)
    opt.load_state_dict(copy.deepcopy(ref_opt.state_dict()))

    run_steps(opt, ours, steps[2:])
    run_steps(ref_opt, ref, steps[2:])

    assert_close(ours[0], ref[0])
    assert opt.state[ours[0]]["step"].item() == 5


@pytest.mark.parametrize("copier", ["deepcopy", "pickle"])
def test_survives_deepcopy_and_pickle(copier):
    generator = torch.Generator().manual_seed(10)
    steps = mixed_grads(generator, 4)
    params, opt = mixed_setup()
    run_steps(opt, params, steps[:2])

    bundle = {"params": params, "opt": opt}
    if copier == "deepcopy":
        copied = copy.deepcopy(bundle)
    else:
        copied = pickle.loads(pickle.dumps(bundle))
    assert all(c is not p for c, p in zip(copied["params"], params, strict=True))

    run_steps(opt, params, steps[2:])
    run_steps(copied["opt"], copied["params"], steps[2:])

    for p, c in zip(params, copied["params"], strict=True):
        assert torch.equal(p, c)
        assert torch.equal(opt.state[p]["exp_avg"], copied["opt"].state[c]["exp_avg"])


@pytest.mark.parametrize("weight_decay", [0.0, 0.5])
@pytest.mark.parametrize("kind", ["dense", "sparse"])
@pytest.mark.parametrize("fused", [None, False])
def test_zero_moments_and_zero_grad_keep_a_zero_weight_zero(weight_decay, kind, fused):
    (param,) = make_params([(6, 4)])
    opt = LazyAdam([param], lr=0.1, weight_decay=weight_decay, fused=fused)
    generator = torch.Generator().manual_seed(11)
    everything = sparse_rows(range(6), torch.randn(6, 4, generator=generator), (6, 4))
    param.grad = everything if kind == "sparse" else everything.to_dense()
    opt.step()

    # Prune: row 2 entirely and entry (4, 1); moments zeroed like a pruning mask.
    mask = torch.ones(6, 4, dtype=torch.bool)
    mask[2] = False
    mask[4, 1] = False
    with torch.no_grad():
        param.mul_(mask)
    opt.state[param]["exp_avg"].mul_(mask)
    # The row-2 moment is zeroed too; entry (4, 1) keeps a non-zero exp_avg_sq.
    opt.state[param]["exp_avg_sq"][2] = 0.0

    for _ in range(3):
        grad = torch.randn(6, 4, generator=generator) * mask
        if kind == "sparse":
            param.grad = sparse_rows(range(6), grad, (6, 4))
        else:
            param.grad = grad
        opt.step()

    assert (param[~mask] == 0.0).all()
    assert (opt.state[param]["exp_avg"][~mask] == 0.0).all()
    assert param[mask].ne(0.0).all()


# --- validation --------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lr": -0.1}, "learning rate"),
        ({"lr": float("nan")}, "learning rate"),
        ({"lr": torch.tensor([0.1, 0.2])}, "lr"),
        ({"betas": (-0.1, 0.999)}, "beta parameter at index 0"),
        ({"betas": (0.9, 1.0)}, "beta parameter at index 1"),
        ({"betas": (1.5, 0.9)}, "beta parameter at index 0"),
        ({"betas": (0.9,)}, "pair"),
        ({"betas": 0.9}, "pair"),
        ({"eps": -1e-8}, "epsilon"),
        ({"weight_decay": -0.01}, "weight_decay"),
        ({"fused": "yes"}, "fused"),
    ],
)
def test_invalid_hyperparameters_raise_value_error(kwargs, match):
    (param,) = make_params([(2,)])
    with pytest.raises(ValueError, match=match):
        LazyAdam([param], **kwargs)


@pytest.mark.parametrize(
    "group_options",
    [{"lr": -1.0}, {"betas": (0.9, 1.2)}, {"eps": -1.0}, {"weight_decay": -1.0}],
)
def test_invalid_hyperparameters_in_a_param_group_raise_value_error(group_options):
    first, second = make_params([(2,), (3,)])
    opt = LazyAdam([first])
    with pytest.raises(ValueError, match="Invalid"):
        opt.add_param_group({"params": [second], **group_options})
    with pytest.raises(ValueError, match="Invalid"):
        LazyAdam([{"params": [second], **group_options}])


@pytest.mark.parametrize("eps", [0.0, -1e-8, 0])
def test_eps_must_be_positive_and_the_error_names_eps(eps):
    (param,) = make_params([(2,)])
    with pytest.raises(ValueError, match="eps"):
        LazyAdam([param], eps=eps)
    opt = LazyAdam([param])
    (other,) = make_params([(3,)])
    with pytest.raises(ValueError, match="eps"):
        opt.add_param_group({"params": [other], "eps": eps})


def test_valid_edge_hyperparameters_are_accepted():
    (param,) = make_params([(2,)])
    LazyAdam([param], lr=0.0, betas=(0.0, 0.0), eps=1e-30, weight_decay=0.0)
    LazyAdam([param], lr=torch.tensor(0.01), betas=[0.5, 0.5])


def test_fused_true_rejects_parameters_fused_adam_cannot_step():
    (param,) = make_params([(2,)], dtype=torch.complex64)
    with pytest.raises(RuntimeError, match="fused"):
        LazyAdam([param], fused=True)


def test_sparse_gradient_of_complex_parameter_is_rejected():
    (param,) = make_params([(3, 2)], dtype=torch.complex64)
    opt = LazyAdam([param])
    param.grad = sparse_rows([0], torch.ones(1, 2, dtype=torch.complex64), (3, 2))
    with pytest.raises(RuntimeError, match="complex"):
        opt.step()


def test_module_does_not_import_sklearn_or_skorch():
    source = Path(__file__).parents[1] / "skprune" / "optim.py"
    imported = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"sklearn", "skorch", "skprune"}


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_row_update_matches_the_torch_path(monkeypatch, weight_decay, dtype):
    from skprune._nn import _kernels

    # numba is a dependency: without it this test must fail, not skip.
    assert _kernels.HAVE_NUMBA, "numba is missing or SKPRUNE_DISABLE_NUMBA=1"
    shape = (50, 9)
    compiled = make_params([shape], dtype=dtype)
    reference = clone_params(compiled)
    generator = torch.Generator().manual_seed(4)
    grads = [[random_sparse_grad(generator, shape, 20).to(dtype)] for _ in range(5)]
    # Uncoalesced, with duplicate rows: the compiled loop sums them itself.
    assert all(g.coalesce()._nnz() < 20 for (g,) in grads)
    hyper = {"lr": 0.05, "betas": (0.8, 0.95), "weight_decay": weight_decay}
    opt = LazyAdam(compiled, **hyper)
    run_steps(opt, compiled, grads)
    monkeypatch.setattr(_kernels, "HAVE_NUMBA", False)
    ref_opt = LazyAdam(reference, **hyper)
    run_steps(ref_opt, reference, grads)

    atol = 1e-6 if dtype == torch.float32 else 1e-12
    assert_close(compiled[0], reference[0], atol=atol)
    for key in ("exp_avg", "exp_avg_sq"):
        assert_close(
            opt.state[compiled[0]][key], ref_opt.state[reference[0]][key], atol=atol
        )

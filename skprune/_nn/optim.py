"""Adam for models that mix sparse and dense gradients.

The first layer of our MLP is an embedding-bag style weight of shape
``(n_features, n_hidden)`` used through
:func:`torch.nn.functional.embedding_bag` with ``sparse=True``. Its gradient
is a sparse COO tensor that holds only the rows (input features) the batch
touched, while every other parameter (later layers, biases) gets an ordinary
dense gradient.

PyTorch has no single optimizer for that mix: :class:`torch.optim.Adam`
refuses sparse gradients, :class:`torch.optim.SparseAdam` refuses dense ones,
and skorch builds one optimizer over all parameters. Densifying the sparse
gradient and stepping it with ``Adam`` makes the optimizer the bottleneck on
wide inputs, because every step then touches all ``n_features * n_hidden``
entries of the weight and of both moment buffers.

:class:`LazyAdam` handles both kinds in one optimizer:

* parameters whose gradient is dense are stepped by torch's own Adam
  implementation (the fused kernel when it is available), so they follow
  :class:`torch.optim.Adam` up to floating-point rounding;
* parameters whose gradient is sparse are stepped lazily, like
  :class:`torch.optim.SparseAdam`: only the touched rows' values and moments
  change. With numba installed a compiled loop steps each touched row in place
  in one pass (:func:`skprune._nn._kernels.adam_rows_`); without it, the rows are
  gathered, stepped by torch's fused Adam and scattered back.

The state layout (``"step"``, ``"exp_avg"``, ``"exp_avg_sq"``) is the same as
``Adam``'s for both kinds, so code that edits the moments of pruned weights
can treat every parameter alike.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.optim import Optimizer
from torch.optim.adam import adam as _functional_adam

from . import _kernels

__all__ = ["LazyAdam"]

# Older torch versions' functional Adam has no ``has_complex`` argument.
_ACCEPTS_HAS_COMPLEX = "has_complex" in inspect.signature(_functional_adam).parameters


def _adam(params, grads, exp_avgs, exp_avg_sqs, steps, *, fused: bool, **hyper):
    """torch's functional Adam (no amsgrad, no maximize) over lists of tensors.

    ``fused=True`` uses the fused kernel; False lets torch choose as
    ``torch.optim.Adam`` would. ``hyper`` holds beta1, beta2, lr, weight_decay
    and eps. Steps in ``steps`` are incremented by this call.
    """
    extra = {}
    if _ACCEPTS_HAS_COMPLEX:
        extra["has_complex"] = any(torch.is_complex(p) for p in params)
    _functional_adam(
        params,
        grads,
        exp_avgs,
        exp_avg_sqs,
        [],
        steps,
        foreach=False if fused else None,
        fused=True if fused else None,
        amsgrad=False,
        maximize=False,
        **hyper,
        **extra,
    )


# (device type, dtype) -> whether torch's fused Adam kernel runs there.
_FUSED_SUPPORT: dict[tuple[str, torch.dtype], bool] = {}


def _fused_supported(device: torch.device, dtype: torch.dtype) -> bool:
    """Tell whether torch's fused Adam kernel works for a device and dtype.

    The answer is found once per ``(device type, dtype)`` pair by stepping a
    one-element tensor with the fused kernel, so it holds for any torch
    version: versions whose fused Adam lacks this device, or that have no
    fused Adam at all, answer False.

    Parameters
    ----------
    device : torch.device
        Device of the parameter.
    dtype : torch.dtype
        Data type of the parameter.

    Returns
    -------
    bool
        True if ``torch.optim.adam.adam(..., fused=True)`` can step such a
        parameter.
    """
    key = (device.type, dtype)
    if key not in _FUSED_SUPPORT:
        supported = False
        if dtype.is_floating_point:
            try:
                param = torch.zeros(1, device=device, dtype=dtype)
                _adam(
                    [param],
                    [torch.ones_like(param)],
                    [torch.zeros_like(param)],
                    [torch.zeros_like(param)],
                    [torch.zeros((), dtype=torch.float32, device=device)],
                    fused=True,
                    beta1=0.9,
                    beta2=0.999,
                    lr=1e-3,
                    weight_decay=0.0,
                    eps=1e-8,
                )
                supported = bool(torch.isfinite(param).all())
            except (RuntimeError, TypeError, NotImplementedError):
                supported = False
        _FUSED_SUPPORT[key] = supported
    return _FUSED_SUPPORT[key]


def _check_hyperparameters(options: dict[str, Any]) -> None:
    """Raise ValueError for invalid Adam hyper-parameters.

    Parameters
    ----------
    options : dict
        Any of the keys ``"lr"``, ``"betas"``, ``"eps"`` and
        ``"weight_decay"``; keys that are absent are not checked.

    Raises
    ------
    ValueError
        If ``lr`` or ``weight_decay`` is negative, ``eps`` is not positive (or
        any of them is not a single number), or if ``betas`` is not a pair of
        numbers in ``[0, 1)``.
    """
    for name in ("lr", "eps", "weight_decay"):
        if name not in options:
            continue
        value = options[name]
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                raise ValueError(f"Tensor {name} must be 1-element, got {value!r}")
            value = value.item()
        label = {"lr": "learning rate", "eps": "epsilon value"}.get(
            name, f"{name} value"
        )
        if not isinstance(value, int | float) or not value >= 0.0:
            raise ValueError(f"Invalid {label}: {options[name]!r}")
        if name == "eps" and value == 0.0:
            # sqrt(v) + eps would be 0 for entries whose moments are zero (pruned
            # weights, rows never touched): 0 / 0 makes them NaN.
            raise ValueError(
                f"Invalid epsilon value: eps={options[name]!r}; eps must be > 0, "
                "otherwise entries with zero moments become NaN."
            )
    if "betas" in options:
        betas = options["betas"]
        if not isinstance(betas, tuple | list) or len(betas) != 2:
            raise ValueError(f"betas must be a pair of floats, got {betas!r}")
        for index, beta in enumerate(betas):
            if isinstance(beta, torch.Tensor):
                if beta.numel() != 1:
                    raise ValueError(f"Tensor betas[{index}] must be 1-element")
                beta = beta.item()
            if not isinstance(beta, int | float) or not 0.0 <= beta < 1.0:
                raise ValueError(
                    f"Invalid beta parameter at index {index}: {betas[index]!r}"
                    " (must be in [0, 1))"
                )


def _as_float(value: float | torch.Tensor) -> float:
    """Return a Python float from a number or a one-element tensor."""
    return value.item() if isinstance(value, torch.Tensor) else float(value)


def _kernel_applies(param: torch.Tensor, *moments: torch.Tensor) -> bool:
    """Whether the compiled row update can step ``param`` (CPU, real, contiguous)."""
    return (
        _kernels.HAVE_NUMBA
        and param.device.type == "cpu"
        and param.dtype in (torch.float32, torch.float64)
        and param.dim() >= 1
        and param.numel() > 0
        and all(t.is_contiguous() and t.dtype == param.dtype for t in (param, *moments))
    )


def _sparse_adam_update(
    param: torch.Tensor,
    grad: torch.Tensor,
    exp_avg: torch.Tensor,
    exp_avg_sq: torch.Tensor,
    step: float,
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
) -> None:
    """Step the rows of one parameter that a sparse COO gradient touches.

    Follows ``torch.optim.SparseAdam``'s formula, ``param -= lr *
    sqrt(1 - beta2**step) / (1 - beta1**step) * m / (sqrt(v) + eps)``, on the
    touched entries only; ``step`` is the parameter's step count after this
    step. Weight decay, if any, is added to the touched entries' gradient.

    Parameters
    ----------
    param, exp_avg, exp_avg_sq : torch.Tensor
        The parameter and its two moment buffers (same shape), updated in
        place.
    grad : torch.Tensor
        Sparse COO gradient of ``param``; need not be coalesced.
    step : float
        Step count of the parameter, counting this step.
    lr, beta1, beta2, eps, weight_decay : float
        Hyper-parameters of the parameter's group.
    """
    if (
        grad.sparse_dim() == 1
        and not grad.is_coalesced()
        and _kernel_applies(param, exp_avg, exp_avg_sq)
    ):
        # The compiled loop sums duplicate rows itself: no coalesced copy.
        coalesced = False
    else:
        grad = grad.coalesce()  # the update is non-linear: duplicates must sum
        coalesced = True
    values = grad._values()
    if values.numel() == 0:
        return
    indices = grad._indices()
    hyper = {
        "lr": lr,
        "beta1": beta1,
        "beta2": beta2,
        "eps": eps,
        "weight_decay": weight_decay,
    }
    state = (param, exp_avg, exp_avg_sq)
    if indices.shape[0] == 1 and _kernel_applies(*state):
        _compiled_rows_step(*state, indices[0], values, step, coalesced, **hyper)
    elif indices.shape[0] == 1 and _fused_supported(param.device, param.dtype):
        _fused_rows_step(*state, indices[0], values, step, **hyper)
    else:
        _indexed_step(*state, indices, values, step, **hyper)


def _compiled_rows_step(
    param, exp_avg, exp_avg_sq, rows, values, step, coalesced, **hyper
):
    """One pass over each touched row of the weight, both moments and the
    gradient, in place: no gathered copies to make and scatter back."""
    n_rows = param.shape[0]
    _kernels.adam_rows_(
        param.view(n_rows, -1),
        exp_avg.view(n_rows, -1),
        exp_avg_sq.view(n_rows, -1),
        rows,
        values.reshape(len(rows), -1),
        beta1=hyper["beta1"],
        beta2=hyper["beta2"],
        step_size=_step_size(step, hyper["lr"], hyper["beta1"], hyper["beta2"]),
        eps=hyper["eps"],
        weight_decay=hyper["weight_decay"],
        coalesced=coalesced,
    )


def _fused_rows_step(
    param,
    exp_avg,
    exp_avg_sq,
    rows,
    values,
    step,
    *,
    lr,
    beta1,
    beta2,
    eps,
    weight_decay,
):
    """Gather the touched rows, step them with torch's fused Adam kernel (one
    pass instead of a dozen), scatter them back: three times faster."""
    gathered = [t.index_select(0, rows) for t in (param, exp_avg, exp_avg_sq)]
    _adam(
        [gathered[0]],
        [values.to(param.dtype)],
        [gathered[1]],
        [gathered[2]],
        # The functional form counts this step itself.
        [torch.tensor(step - 1.0, dtype=torch.float32, device=param.device)],
        fused=True,
        beta1=beta1,
        beta2=beta2,
        lr=lr,
        weight_decay=weight_decay,
        # Adam adds eps to sqrt(v) / sqrt(1 - beta2**step), SparseAdam to
        # sqrt(v): scaling eps keeps SparseAdam's formula.
        eps=eps / math.sqrt(1.0 - beta2**step),
    )
    for tensor, new_rows in zip((param, exp_avg, exp_avg_sq), gathered, strict=True):
        tensor.index_copy_(0, rows, new_rows)


def _indexed_step(
    param,
    exp_avg,
    exp_avg_sq,
    indices,
    values,
    step,
    *,
    lr,
    beta1,
    beta2,
    eps,
    weight_decay,
):
    """SparseAdam's formula in torch operations on the touched entries: whole
    rows for a gradient sparse in its first dimension, single entries
    otherwise."""
    if indices.shape[0] == 1:
        rows = indices[0]

        def gather(tensor: torch.Tensor) -> torch.Tensor:
            return tensor.index_select(0, rows)

        def scatter(tensor: torch.Tensor, new_values: torch.Tensor) -> None:
            tensor.index_copy_(0, rows, new_values)

    else:
        where = tuple(indices)

        def gather(tensor: torch.Tensor) -> torch.Tensor:
            return tensor[where]

        def scatter(tensor: torch.Tensor, new_values: torch.Tensor) -> None:
            tensor.index_put_(where, new_values)

    values = values.to(param.dtype)
    param_rows = gather(param)
    if weight_decay != 0.0:
        values = values.add(param_rows, alpha=weight_decay)

    # Moments of the touched rows: old + (1 - beta) * (new - old), as SparseAdam.
    exp_avg_rows = gather(exp_avg).lerp_(values, 1.0 - beta1)
    exp_avg_sq_rows = gather(exp_avg_sq).lerp_(values * values, 1.0 - beta2)
    scatter(exp_avg, exp_avg_rows)
    scatter(exp_avg_sq, exp_avg_sq_rows)

    denom = exp_avg_sq_rows.sqrt_().add_(eps)
    param_rows.addcdiv_(exp_avg_rows, denom, value=-_step_size(step, lr, beta1, beta2))
    scatter(param, param_rows)


def _step_size(step: float, lr: float, beta1: float, beta2: float) -> float:
    """SparseAdam's bias-corrected step size at step ``step`` (counted from 1)."""
    return lr * math.sqrt(1.0 - beta2**step) / (1.0 - beta1**step)


class LazyAdam(Optimizer):
    """Adam that steps dense gradients fully and sparse gradients lazily.

    One optimizer for models where some parameters get sparse COO gradients
    (e.g. an ``embedding_bag(..., sparse=True)`` weight) and others get dense
    ones. ``torch.optim.Adam`` refuses the former and
    ``torch.optim.SparseAdam`` the latter.

    * A parameter whose gradient is dense is stepped like
      :class:`torch.optim.Adam` with the same hyper-parameters (L2 weight
      decay added to the gradient, not AdamW's decoupled decay), by torch's
      own functional Adam: its fused kernel when available, otherwise the
      implementation ``Adam`` picks by default.
    * A parameter whose gradient is sparse is stepped like
      :class:`torch.optim.SparseAdam`: the gradient is coalesced (duplicate
      indices are summed) and only the touched rows' values and moments
      change; the other rows keep theirs. The bias correction uses the
      parameter's step count, i.e. the number of steps in which it had a
      gradient, and the formula is SparseAdam's, with ``eps`` added to
      ``sqrt(v)`` before the bias correction of the step size.

    Parameters
    ----------
    params : iterable
        Parameters to optimize, or dicts defining parameter groups, as for
        any torch optimizer.
    lr : float or torch.Tensor, default=1e-3
        Learning rate.
    betas : tuple of (float, float), default=(0.9, 0.999)
        Decay rates of the first and second moment estimates, each in
        ``[0, 1)``.
    eps : float, default=1e-8
        Term added to the denominator for numerical stability; must be > 0
        (with 0, entries whose moments are zero would become NaN).
    weight_decay : float, default=0.0
        L2 penalty: ``weight_decay * param`` is added to the gradient. For a
        sparse gradient it is added to the touched rows only (lazy decay):
        rows a batch does not touch are not decayed in that step.
    fused : bool or None, default=None
        Whether to step dense gradients with torch's fused Adam kernel.
        None uses it for each parameter whose device and dtype it supports
        and falls back to torch's default otherwise; True requires it and
        raises RuntimeError for a parameter it does not support; False never
        uses it. Results agree to rounding either way.

    Attributes
    ----------
    state : dict
        Per parameter, ``"step"`` (a 0-d float32 tensor), ``"exp_avg"`` and
        ``"exp_avg_sq"`` (tensors of the parameter's shape), created at the
        parameter's first step, for dense and sparse parameters alike.
    param_groups : list of dict
        The groups, with keys ``"params"``, ``"lr"``, ``"betas"``,
        ``"eps"``, ``"weight_decay"`` and ``"fused"``, read at every step.

    Notes
    -----
    A parameter whose value, ``exp_avg`` and gradient are all zero stays
    exactly zero after a step (with or without weight decay), because
    ``eps > 0``, so masks that zero pruned weights and their moments hold.

    Examples
    --------
    >>> import torch
    >>> from skprune.optim import LazyAdam
    >>> _ = torch.manual_seed(0)
    >>> bag = torch.nn.EmbeddingBag(1000, 8, mode="sum", sparse=True)
    >>> head = torch.nn.Linear(8, 1)
    >>> opt = LazyAdam([*bag.parameters(), *head.parameters()], lr=1e-2)
    >>> before = bag.weight.detach().clone()
    >>> x = torch.tensor([[1, 5], [7, 9]])
    >>> loss = head(bag(x)).pow(2).mean()
    >>> loss.backward()
    >>> bag.weight.grad.is_sparse
    True
    >>> opt.step()
    >>> opt.zero_grad()

    Only the four rows the batch touched moved, and only their moments are set:

    >>> torch.nonzero((bag.weight != before).any(dim=1)).flatten().tolist()
    [1, 5, 7, 9]
    >>> state = opt.state[bag.weight]
    >>> state["step"].item(), torch.count_nonzero(state["exp_avg"].any(dim=1)).item()
    (1.0, 4)
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float | torch.Tensor = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        fused: bool | None = None,
    ) -> None:
        if fused not in (None, True, False):
            raise ValueError(f"fused must be None, True or False, got {fused!r}")
        defaults = {
            "lr": lr,
            "betas": tuple(betas) if isinstance(betas, list) else betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "fused": fused,
        }
        _check_hyperparameters(defaults)
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a parameter group, checking its hyper-parameters.

        Parameters
        ----------
        param_group : dict
            ``"params"`` and optionally any of ``"lr"``, ``"betas"``,
            ``"eps"``, ``"weight_decay"`` and ``"fused"``; missing options
            take the optimizer's defaults.

        Raises
        ------
        ValueError
            If an option is invalid.
        RuntimeError
            If the group uses ``fused=True`` and a parameter's device or
            dtype is not supported by torch's fused Adam.
        """
        if isinstance(param_group, dict):
            _check_hyperparameters(param_group)
            if param_group.get("fused") not in (None, True, False):
                raise ValueError(
                    f"fused must be None, True or False, got {param_group['fused']!r}"
                )
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        if group["fused"]:
            for p in group["params"]:
                self._check_fused(p)

    @staticmethod
    def _check_fused(param: torch.Tensor) -> None:
        """Raise RuntimeError if fused Adam cannot step ``param``."""
        if not _fused_supported(param.device, param.dtype):
            raise RuntimeError(
                "fused=True requires parameters whose device and dtype torch's "
                f"fused Adam supports; got {param.dtype} on {param.device.type}. "
                "Use fused=None to fall back to the unfused implementation."
            )

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore a pickled optimizer, filling in options missing from it."""
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("weight_decay", 0.0)
            group.setdefault("fused", None)

    def _init_state(self, param: torch.Tensor) -> dict[str, Any]:
        """Return the state of ``param``, creating it at its first step."""
        state = self.state[param]
        if len(state) == 0:
            state["step"] = torch.zeros((), dtype=torch.float32, device=param.device)
            state["exp_avg"] = torch.zeros_like(
                param, memory_format=torch.preserve_format
            )
            state["exp_avg_sq"] = torch.zeros_like(
                param, memory_format=torch.preserve_format
            )
        elif not torch.is_tensor(state["step"]):
            # e.g. a SparseAdam state dict, whose steps are Python ints.
            state["step"] = torch.tensor(
                float(state["step"]), dtype=torch.float32, device=param.device
            )
        return state

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform a single optimization step.

        Parameters
        ----------
        closure : callable, optional
            A closure that re-evaluates the model and returns the loss; it is
            called with gradients enabled before the step.

        Returns
        -------
        loss : object or None
            What ``closure`` returned, or None without a closure.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()

        for group in self.param_groups:
            self._step_group(group)
        return loss

    def _step_group(self, group: dict[str, Any]) -> None:
        """Step every parameter of ``group`` that has a gradient."""
        beta1, beta2 = (_as_float(beta) for beta in group["betas"])
        hyper = {
            "lr": _as_float(group["lr"]),
            "beta1": beta1,
            "beta2": beta2,
            "eps": float(group["eps"]),
            "weight_decay": float(group["weight_decay"]),
        }
        # Dense parameters, split by whether the fused kernel steps them.
        dense = {True: ([], [], [], [], []), False: ([], [], [], [], [])}
        for p in group["params"]:
            if p.grad is None:
                continue
            state = self._init_state(p)
            if p.grad.is_sparse:
                self._step_sparse(p, state, hyper)
            else:
                self._queue_dense(p, state, group["fused"], dense)
        for use_fused, tensors in dense.items():
            if tensors[0]:
                _adam(*tensors, fused=use_fused, **hyper)

    @staticmethod
    def _step_sparse(p: torch.Tensor, state: dict[str, Any], hyper: dict) -> None:
        if torch.is_complex(p):
            raise RuntimeError(
                "LazyAdam does not support sparse gradients of complex parameters"
            )
        state["step"] += 1
        _sparse_adam_update(
            p,
            p.grad,
            state["exp_avg"],
            state["exp_avg_sq"],
            state["step"].item(),
            **hyper,
        )

    def _queue_dense(
        self, p: torch.Tensor, state: dict[str, Any], fused, dense: dict
    ) -> None:
        """Add a dense parameter to the batch of the kernel that steps it."""
        if p.grad.layout != torch.strided:
            raise RuntimeError(
                f"LazyAdam supports dense and sparse COO gradients, got a "
                f"gradient with layout {p.grad.layout}"
            )
        use_fused = fused is not False and _fused_supported(p.device, p.dtype)
        if fused and not use_fused:
            self._check_fused(p)
        if use_fused and (
            state["step"].device != p.device or state["step"].dtype != torch.float32
        ):
            state["step"] = state["step"].to(torch.float32).to(p.device)
        tensors = dense[use_fused]
        for tensor, value in zip(
            tensors,
            (p, p.grad, state["exp_avg"], state["exp_avg_sq"], state["step"]),
            strict=True,
        ):
            tensor.append(value)

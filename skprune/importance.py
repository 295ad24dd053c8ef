"""Importance criteria: how much each weight matters, as a tensor of scores.

Pure torch. Every criterion is a function ``(name, weight, grad) -> scores`` with
``scores`` of the weight's shape, higher meaning more important. ``grad`` is the
mean absolute gradient of the training loss with respect to the weight over the
training batches since the previous pruning step, or None where no batch was seen.

- :func:`magnitude`: ``|w|`` (Han et al. 2015).
- :func:`taylor`: ``|w| * mean|dL/dw|``, the first-order Taylor estimate of how
  much the training loss changes when the weight is removed (Molchanov et al.
  2017, 2019), averaged over batches.
- ``"random"``: uniform random scores, the control every comparison needs.

Users may pass their own callable with the same signature.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

__all__ = ["IMPORTANCE_CRITERIA", "compute_scores", "magnitude", "resolve", "taylor"]

Importance = Callable[[str, torch.Tensor, "torch.Tensor | None"], torch.Tensor]


def magnitude(
    name: str, weight: torch.Tensor, grad: torch.Tensor | None
) -> torch.Tensor:
    """Absolute value of each weight."""
    return weight.abs()


def taylor(name: str, weight: torch.Tensor, grad: torch.Tensor | None) -> torch.Tensor:
    """First-order Taylor importance ``|w| * mean|dL/dw|``.

    Raises
    ------
    ValueError
        If no gradient was accumulated (no training batch before pruning).
    """
    if grad is None:
        raise ValueError(
            f"importance='taylor' needs gradients of {name!r}, but no training "
            "batch was seen before pruning."
        )
    return weight.abs() * grad


def _random_criterion(seed: int) -> Importance:
    generator = torch.Generator().manual_seed(seed)

    def random(name: str, weight: torch.Tensor, grad: torch.Tensor | None):
        return torch.rand(weight.shape, generator=generator)

    return random


IMPORTANCE_CRITERIA = ("magnitude", "taylor", "random")


def resolve(importance: str | Importance, seed: int = 0) -> Importance:
    """Turn a criterion name or callable into a callable.

    Parameters
    ----------
    importance : {"magnitude", "taylor", "random"} or callable
    seed : int, default=0
        Seeds ``"random"``; the same seed gives the same scores.

    Returns
    -------
    criterion : callable ``(name, weight, grad) -> scores``
    """
    if callable(importance):
        return importance
    if importance == "magnitude":
        return magnitude
    if importance == "taylor":
        return taylor
    if importance == "random":
        return _random_criterion(seed)
    raise ValueError(
        f"importance must be one of {IMPORTANCE_CRITERIA} or a callable, "
        f"got {importance!r}."
    )


def needs_gradients(importance: str | Importance) -> bool:
    """Whether the criterion may read gradients (callables are assumed to)."""
    return callable(importance) or importance == "taylor"


@torch.no_grad()
def compute_scores(
    criterion: Importance,
    weights: Mapping[str, torch.Tensor],
    grads: Mapping[str, torch.Tensor | None] | None = None,
) -> dict[str, torch.Tensor]:
    """Score every weight tensor and check what the criterion returned.

    Parameters
    ----------
    criterion : callable ``(name, weight, grad) -> scores``
    weights : mapping of str to torch.Tensor
    grads : mapping of str to torch.Tensor or None, optional

    Returns
    -------
    scores : dict of str to torch.Tensor
        Float tensors of the weights' shapes, on the CPU.

    Raises
    ------
    ValueError
        If a score tensor has the wrong shape or holds NaN or infinity.
    """
    grads = grads or {}
    scores = {}
    for name, weight in weights.items():
        score = criterion(name, weight.detach(), grads.get(name))
        score = torch.as_tensor(score)
        if tuple(score.shape) != tuple(weight.shape):
            raise ValueError(
                f"importance returned scores of shape {tuple(score.shape)} for "
                f"{name!r}, whose weight has shape {tuple(weight.shape)}."
            )
        score = score.detach().to("cpu", torch.float32)
        if not torch.isfinite(score).all():
            raise ValueError(
                f"importance returned NaN or infinite scores for {name!r}."
            )
        scores[name] = score
    return scores

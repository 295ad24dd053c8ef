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

import math
from collections.abc import Callable, Mapping

import torch

__all__ = [
    "IMPORTANCE_CRITERIA",
    "RowScores",
    "compute_scores",
    "magnitude",
    "resolve",
    "score_by_rows",
    "taylor",
]

Importance = Callable[[str, torch.Tensor, "torch.Tensor | None"], torch.Tensor]


def magnitude(
    name: str, weight: torch.Tensor, grad: torch.Tensor | None
) -> torch.Tensor:
    """Absolute value of each weight.

    Parameters
    ----------
    name : str
        The weight's name (unused).
    weight : torch.Tensor
    grad : torch.Tensor or None
        Unused.

    Returns
    -------
    scores : torch.Tensor
        ``|weight|``.

    Examples
    --------
    >>> import torch
    >>> from skprune.importance import magnitude
    >>> magnitude("w", torch.tensor([[0.5, -2.0], [1.0, -0.25]]), None).tolist()
    [[0.5, 2.0], [1.0, 0.25]]
    """
    return weight.abs()


def taylor(name: str, weight: torch.Tensor, grad: torch.Tensor | None) -> torch.Tensor:
    """First-order Taylor importance ``|w| * mean|dL/dw|``.

    Parameters
    ----------
    name : str
        The weight's name, for the error message.
    weight : torch.Tensor
    grad : torch.Tensor or None
        Mean absolute gradient of the loss with respect to ``weight``.

    Returns
    -------
    scores : torch.Tensor

    Raises
    ------
    ValueError
        If no gradient was accumulated (no training batch before pruning).

    Examples
    --------
    A large weight with a small gradient can matter less than a small one:

    >>> import torch
    >>> from skprune.importance import taylor
    >>> weight = torch.tensor([[0.5, -2.0], [1.0, -0.25]])
    >>> grad = torch.tensor([[1.0, 0.125], [0.5, 2.0]])
    >>> taylor("w", weight, grad).tolist()
    [[0.5, 0.25], [0.5, 0.5]]
    >>> taylor("w", weight, None)
    Traceback (most recent call last):
    ...
    ValueError: importance='taylor' needs gradients of 'w', but no training batch \
was seen before pruning.
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

    Examples
    --------
    >>> import torch
    >>> from skprune.importance import IMPORTANCE_CRITERIA, magnitude, resolve
    >>> IMPORTANCE_CRITERIA
    ('magnitude', 'taylor', 'random')
    >>> resolve("magnitude") is magnitude
    True
    >>> weight = torch.zeros(2, 3)
    >>> first = resolve("random", seed=0)("w", weight, None)
    >>> first.shape, torch.equal(first, resolve("random", seed=0)("w", weight, None))
    (torch.Size([2, 3]), True)
    >>> resolve("largest")
    Traceback (most recent call last):
    ...
    ValueError: importance must be one of ('magnitude', 'taylor', 'random') or a \
callable, got 'largest'.
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

    Examples
    --------
    >>> import torch
    >>> from skprune.importance import compute_scores, magnitude
    >>> weights = {"w": torch.tensor([[0.5, -2.0]], dtype=torch.float64)}
    >>> scores = compute_scores(magnitude, weights)
    >>> scores["w"].tolist(), scores["w"].dtype
    ([[0.5, 2.0]], torch.float32)

    A criterion's mistakes are caught here, not deep inside the selection:

    >>> compute_scores(lambda name, weight, grad: weight.sum(), weights)
    Traceback (most recent call last):
    ...
    ValueError: importance returned scores of shape () for 'w', whose weight has \
shape (1, 2).
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


# Criteria whose score of an entry depends on that entry alone: they can score a
# block of rows at a time, with the same values as on the whole tensor.
_ELEMENTWISE = (magnitude, taylor)


class RowScores:
    """Scores of one weight tensor, computed a block of rows when asked.

    For elementwise criteria (:func:`magnitude`, :func:`taylor`), so that a
    268M-weight layer is never scored in full: :func:`skprune.masks.select_masks`
    reads the scores a block of rows at a time, and each block is checked as
    :func:`compute_scores` checks a whole tensor.

    Parameters
    ----------
    criterion : callable ``(name, weight, grad) -> scores``
        Elementwise.
    name : str
    weight : torch.Tensor
    grad : torch.Tensor or None

    Attributes
    ----------
    shape : torch.Size
        The weight's shape.
    finite : bool
        True: every score returned is finite (checked the first time its rows
        are made), so readers need not check again.

    Examples
    --------
    >>> import torch
    >>> from skprune.importance import RowScores, magnitude
    >>> weight = torch.tensor([[0.5, -2.0], [1.0, -0.25], [-4.0, 0.0]])
    >>> scores = RowScores(magnitude, "w", weight, None)
    >>> scores.shape, scores.numel()
    (torch.Size([3, 2]), 6)
    >>> scores.rows(1, 3).tolist()
    [[1.0, 0.25], [4.0, 0.0]]
    >>> RowScores(magnitude, "w", torch.tensor([[float("nan")]]), None).rows(0, 1)
    Traceback (most recent call last):
    ...
    ValueError: importance returned NaN or infinite scores for 'w'.
    """

    finite = True

    def __init__(self, criterion: Importance, name: str, weight, grad) -> None:
        self.criterion = criterion
        self.name = name
        self.weight = weight.detach()
        self.grad = grad
        self.shape = self.weight.shape
        self._checked = 0  # rows below this were checked finite
        self.rows(0, 0)  # a criterion that cannot score fails now (taylor)

    def numel(self) -> int:
        """Number of scores, as :meth:`torch.Tensor.numel`."""
        return self.shape.numel()

    @torch.no_grad()
    def rows(self, start: int, stop: int) -> torch.Tensor:
        """Float32 CPU scores of rows ``start:stop``.

        Raises
        ------
        ValueError
            If the scores hold NaN or infinity.
        """
        weight = self.weight.reshape(1) if self.weight.dim() == 0 else self.weight
        grad = self.grad
        if grad is not None:
            grad = grad.reshape(1) if grad.dim() == 0 else grad[start:stop]
        score = self.criterion(self.name, weight[start:stop], grad)
        score = score.detach().to("cpu", torch.float32)
        # Each row is checked once: the first pass over the rows checks them all.
        if stop > self._checked:
            new_rows = score[max(self._checked - start, 0) :].reshape(-1)
            # One reduction: NaN propagates to both ends, infinity reaches one.
            low, high = torch.aminmax(new_rows) if len(new_rows) else (0.0, 0.0)
            if not (math.isfinite(float(low)) and math.isfinite(float(high))):
                raise ValueError(
                    f"importance returned NaN or infinite scores for {self.name!r}."
                )
            if start <= self._checked:
                self._checked = stop
        return score


def score_by_rows(
    criterion: Importance,
    weights: Mapping[str, torch.Tensor],
    grads: Mapping[str, torch.Tensor | None] | None = None,
) -> dict[str, torch.Tensor | RowScores]:
    """Scores for :func:`skprune.masks.select_masks`, made lazily where possible.

    Elementwise criteria give :class:`RowScores`, computed a block of rows at a
    time while the masks are selected; any other criterion (``"random"``, a
    user's callable) is scored in full by :func:`compute_scores`. Either way the
    masks selected are the same.

    Parameters
    ----------
    criterion : callable ``(name, weight, grad) -> scores``
    weights : mapping of str to torch.Tensor
    grads : mapping of str to torch.Tensor or None, optional

    Returns
    -------
    scores : dict of str to torch.Tensor or RowScores

    Examples
    --------
    >>> import torch
    >>> from skprune.importance import RowScores, resolve, score_by_rows
    >>> from skprune.masks import select_masks
    >>> weights = {"w": torch.tensor([[0.5, -2.0], [1.0, -0.25]])}
    >>> lazy = score_by_rows(resolve("magnitude"), weights)
    >>> isinstance(lazy["w"], RowScores)
    True
    >>> select_masks(lazy, 0.5)["w"].tolist()
    [[False, True], [True, False]]
    >>> type(score_by_rows(resolve("random"), weights)["w"]).__name__
    'Tensor'
    """
    if criterion not in _ELEMENTWISE:
        return compute_scores(criterion, weights, grads)
    grads = grads or {}
    return {
        name: RowScores(criterion, name, weight, grads.get(name))
        for name, weight in weights.items()
    }

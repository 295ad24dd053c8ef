"""Per-sample weights on a training loss: :class:`WeightedLoss`.

A torch loss reduces a batch to one number before anyone can weight its samples.
:class:`WeightedLoss` wraps the user's loss, computes it with ``reduction='none'``
(one loss per sample) and reduces ``weight * loss`` itself. It plugs into skorch as
the net's ``criterion`` (``criterion=WeightedLoss, criterion__loss=<the user's
loss>``): batches whose target is a pair ``(y, sample_weight)`` are weighted, plain
targets (validation, scoring) are not. skorch sees the wrapped loss when it infers
what ``predict_proba`` applies to the module's outputs (a softmax for
``CrossEntropyLoss``), so weighting leaves the predictions as they were.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["WeightedLoss", "unweighted_loss"]


class WeightedLoss(nn.Module):
    """A loss whose batch value is the mean (or sum) of weight x per-sample loss.

    With target ``(y, sample_weight)`` the loss of a batch of ``n`` samples is
    ``sum(sample_weight[i] * loss_i) / n`` (``reduction="mean"``, the loss's
    default) or the sum without the division; a weight of 1 everywhere gives the
    unweighted loss. With a plain target ``y`` no weights are applied. A loss
    with several values per sample (``MSELoss`` on several outputs) is averaged
    over them first.

    Parameters
    ----------
    loss : type or torch.nn.Module
        The loss to weight: a class, created with ``reduction="none"`` and
        ``**loss_params``, or an instance, which is copied (never modified).
        It must take ``reduction="none"``, as torch's losses do.
    nll_on_probabilities : bool, default=False
        If the loss is a :class:`torch.nn.NLLLoss`, apply it to
        ``log(y_pred + eps)``: skorch's ``NeuralNetClassifier`` does the same,
        because its modules return probabilities while ``NLLLoss`` takes
        log-probabilities.
    **loss_params
        Keyword arguments of a loss class, for example ``label_smoothing``;
        ``reduction`` (``"mean"`` or ``"sum"``) sets how the batch is reduced.

    Attributes
    ----------
    loss_ : torch.nn.Module
        The wrapped loss, computing one value per sample.
    reduction : {"mean", "sum"}
        How weighted per-sample losses are reduced over the batch.

    Examples
    --------
    >>> import torch
    >>> from skprune.losses import WeightedLoss
    >>> loss = WeightedLoss(torch.nn.CrossEntropyLoss)
    >>> logits, y = torch.zeros(2, 3), torch.tensor([0, 1])
    >>> round(loss(logits, (y, torch.tensor([1.0, 0.0]))).item(), 4)  # log(3) / 2
    0.5493
    >>> round(loss(logits, y).item(), 4)  # plain targets: unweighted
    1.0986
    """

    def __init__(self, loss, nll_on_probabilities: bool = False, **loss_params) -> None:
        super().__init__()
        self.loss_, self.reduction = _per_sample(loss, loss_params)
        self.nll_on_probabilities = nll_on_probabilities

    def forward(self, y_pred: torch.Tensor, y_true) -> torch.Tensor:
        weight = None
        if isinstance(y_true, (tuple, list)):
            y_true, weight = y_true
        if self.nll_on_probabilities and isinstance(self.loss_, nn.NLLLoss):
            y_pred = torch.log(y_pred + torch.finfo(y_pred.dtype).eps)
        losses = self.loss_(y_pred, y_true)
        n = len(y_pred)
        if losses.dim() == 0 or losses.shape[0] != n:
            raise ValueError(
                f"criterion {type(self.loss_).__name__} returned a loss of shape "
                f"{tuple(losses.shape)} with reduction='none' for a batch of {n} "
                "samples; sample weights need one loss per sample."
            )
        if losses.dim() > 1:
            losses = losses.reshape(n, -1).mean(dim=1)
        if weight is not None:
            losses = losses * weight.to(losses.dtype)
        return losses.mean() if self.reduction == "mean" else losses.sum()

    @property
    def _orig_mod(self) -> nn.Module:
        # skorch's predict_nonlinearity="auto" goes by the criterion's type
        # (CrossEntropyLoss: softmax) and looks through torch.compile's wrapper
        # by this name; so it sees the wrapped loss, and weighting changes
        # nothing of what predict_proba returns.
        return self.loss_

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


def unweighted_loss(criterion):
    """The loss a :class:`WeightedLoss` wraps, or ``criterion`` itself.

    Parameters
    ----------
    criterion : torch.nn.Module or type

    Returns
    -------
    loss : torch.nn.Module or type

    Examples
    --------
    >>> import torch
    >>> from skprune.losses import WeightedLoss, unweighted_loss
    >>> loss = unweighted_loss(WeightedLoss(torch.nn.CrossEntropyLoss))
    >>> loss, loss.reduction
    (CrossEntropyLoss(), 'none')
    >>> unweighted_loss(torch.nn.MSELoss) is torch.nn.MSELoss
    True
    """
    return criterion.loss_ if isinstance(criterion, WeightedLoss) else criterion


def _per_sample(loss, loss_params):
    """The loss computing one value per sample, and the reduction it had."""
    if isinstance(loss, nn.Module):
        if loss_params:
            raise TypeError(
                f"criterion is an instance of {type(loss).__name__}; its parameters "
                f"{sorted(loss_params)} can only be given to a class."
            )
        reduction = getattr(loss, "reduction", None)
        if not isinstance(reduction, str):
            raise _no_reduction(type(loss))
        loss = copy.deepcopy(loss)
        loss.reduction = "none"
    elif isinstance(loss, type) and issubclass(loss, nn.Module):
        loss_params = dict(loss_params)
        reduction = loss_params.pop("reduction", "mean")
        try:
            loss = loss(reduction="none", **loss_params)
        except TypeError as exc:
            if "reduction" in str(exc):
                raise _no_reduction(loss) from exc
            raise
    else:
        raise TypeError(
            "criterion must be a torch.nn.Module class or instance, got "
            f"{type(loss).__name__}."
        )
    if reduction not in ("mean", "sum"):
        raise ValueError(
            f"criterion {type(loss).__name__} has reduction={reduction!r}; with "
            "sample weights it must be 'mean' or 'sum' (the training loss is one "
            "number per batch)."
        )
    return loss, reduction


def _no_reduction(loss_class) -> ValueError:
    return ValueError(
        f"criterion {loss_class.__name__} does not take reduction='none': "
        "sample_weight and class_weight need a loss that returns one value per "
        "sample, as torch's losses do with reduction='none'."
    )

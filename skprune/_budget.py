"""The default net's training budget: enough optimizer steps on small data.

A fixed number of epochs is a fixed number of optimizer steps only for a fixed
data size. Six epochs of batches of 64 are about a thousand steps on 10,000
documents, but twenty on scikit-learn's 1,797 digits, far too few for Adam at
its default learning rate. The policy here keeps the default of
``min_epochs`` where the data give many batches per epoch and adds epochs
where they give few, until the dense phase takes at least ``min_steps`` steps,
capped at ``max_epochs``. The retraining after pruning takes its usual share
of these epochs, and the unpruned control (``prune_ratio=0``) gets the same
epochs as a pruned model, since the budget depends on the data only.

The constants were chosen on a validation split of the digits' training part
by ``benchmarks/small_dense.py``, never on the test split it reports.

No scikit-learn here.
"""

from __future__ import annotations

import math

__all__ = ["MAX_EPOCHS", "MIN_STEPS", "default_max_epochs"]

#: Optimizer steps the dense phase of the default net takes at least.
MIN_STEPS = 1000
#: Never more dense epochs than this, however small the data.
MAX_EPOCHS = 50


def default_max_epochs(
    n_samples: int,
    batch_size: int,
    *,
    min_epochs: int = 6,
    min_steps: int | None = None,
    max_epochs: int | None = None,
) -> int:
    """Dense epochs for the default net: ``min_epochs``, more on small data.

    Parameters
    ----------
    n_samples : int
        Number of training samples.
    batch_size : int
        Samples per optimizer step (skorch's ``batch_size``; -1 for all).
    min_epochs : int, default=6
        Epochs on data with many batches per epoch (the default net's).
    min_steps : int, optional
        Optimizer steps to reach at least; :data:`MIN_STEPS` when None.
    max_epochs : int, optional
        Cap on the epochs; :data:`MAX_EPOCHS` when None.

    Returns
    -------
    int
        ``min(max_epochs, max(min_epochs, ceil(min_steps / batches_per_epoch)))``.

    Examples
    --------
    >>> default_max_epochs(100_000, 64)
    6
    >>> default_max_epochs(1_257, 64)
    50
    """
    min_steps = MIN_STEPS if min_steps is None else min_steps
    max_epochs = MAX_EPOCHS if max_epochs is None else max_epochs
    if batch_size is None or batch_size <= 0 or batch_size >= n_samples:
        batches_per_epoch = 1
    else:
        batches_per_epoch = math.ceil(n_samples / batch_size)
    wanted = math.ceil(min_steps / batches_per_epoch)
    return max(min_epochs, min(max_epochs, wanted))

"""torch building blocks: modules, optimizer, losses, sparse batching, compiled
kernels, per-fit random generators and thread budgets.

Nothing here knows about pruning or scikit-learn; the public paths are
:mod:`skprune.modules`, :mod:`skprune.optim`, :mod:`skprune.losses` and
:mod:`skprune.data`.
"""

"""The pruning core, pure torch: importance criteria, masks, granularities,
schedules and reports.

No skorch and no scikit-learn here; the public paths are :mod:`skprune.masks`,
:mod:`skprune.importance`, :mod:`skprune.granularity`, :mod:`skprune.schedules`
and :mod:`skprune.report`.
"""

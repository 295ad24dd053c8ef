"""skprune's skorch callbacks.

- :class:`Pruning`: prunes a net's module while it trains, on a schedule;
  :class:`skprune.PrunedClassifier` drives it, users of a plain skorch net add
  it to ``callbacks`` and train for its ``total_epochs``.
- :class:`~skprune.progress.PruningProgress`: one line per epoch of dense
  training, then one per pruning round.
- The search's path callback (``_path``), private to
  :class:`skprune.PrunedClassifierCV`.
"""

from .._params import default_retrain_epochs
from ._pruning import Pruning
from .progress import PruningProgress

__all__ = ["Pruning", "PruningProgress", "default_retrain_epochs"]

"""``python -m skprune``: cross-validate pruned against unpruned networks.

The command lives in :mod:`skprune._cli`; ``python -m skprune --help`` lists
its options.
"""

from ._cli import main, parse_ratios

__all__ = ["main", "parse_ratios"]

if __name__ == "__main__":
    raise SystemExit(main())

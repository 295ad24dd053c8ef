"""pytest settings for the doctests in this package (``pytest skprune`` on its own)."""

import torch

# One intra-op thread, as tests/conftest.py sets for the test files: the examples'
# tensors are tiny, and on a 2-core machine torch's spinning worker threads slow
# every step many times over. Set here too so that the doctests get it whether or
# not tests/ is collected first.
torch.set_num_threads(1)

"""Shared fixtures: small data and a small, quick net."""

import pytest
import torch

from skprune._classifier import default_classifier_net
from skprune.datasets import make_text_classification

# Two CPU threads at most: the suite must run the same on a 2-core CI machine.
torch.set_num_threads(min(2, torch.get_num_threads()))


def small_net(**params):
    """The default net made small: 32 hidden units, 3 dense epochs."""
    defaults = {"max_epochs": 3, "module__hidden_layer_sizes": (32,), "lr": 0.01}
    return default_classifier_net().set_params(**{**defaults, **params})


@pytest.fixture(scope="session")
def text_data():
    """A 300 x 2,000 text-like CSR matrix with 3 classes."""
    return make_text_classification(300, 2000, n_classes=3, random_state=0)

"""The wrapped net's device is honoured throughout; runs only where CUDA is present."""

import copy

import numpy as np
import pytest
import torch
from conftest import small_net

import skprune
from skprune import PrunedClassifier, PrunedRegressor, default_regressor_net

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device"
)


def cuda_net(**params):
    return small_net(device="cuda", **params)


def on_cpu(clf):
    """A copy of a fitted estimator whose net runs on the CPU."""
    cpu = copy.deepcopy(clf)
    cpu.estimator_.set_params(device="cpu")
    cpu.estimator_.module_.to("cpu")
    return cpu


@pytest.mark.parametrize("granularity", ["weight", "block", "neuron", "feature"])
def test_fit_on_cuda_keeps_masks_weights_and_predictions_there(text_data, granularity):
    X, y = text_data
    clf = PrunedClassifier(
        cuda_net(), prune_ratio=0.8, granularity=granularity, random_state=0
    ).fit(X, y)
    module = clf.estimator_.module_
    assert all(p.device.type == "cuda" for p in module.parameters())
    pruning = dict(clf.estimator_.callbacks_)["pruning"]
    assert all(mask.device.type == "cuda" for mask in pruning.masks_.values())
    for state in clf.estimator_.optimizer_.state.values():
        for value in state.values():
            if torch.is_tensor(value) and value.dim() > 0:
                assert value.device.type == "cuda"
    params = dict(module.named_parameters())
    for name, mask in clf.masks_.items():
        if name in params and params[name].shape == mask.shape:
            assert not params[name].detach().cpu().numpy()[~mask].any()
    assert clf.sparsity_ == pytest.approx(0.8, abs=0.02)
    np.testing.assert_allclose(
        clf.predict_proba(X), on_cpu(clf).predict_proba(X), rtol=1e-4, atol=1e-5
    )
    np.testing.assert_allclose(
        clf.compress().predict_proba(X), clf.predict_proba(X), rtol=1e-4, atol=1e-5
    )


def test_regressor_fits_on_cuda(text_data):
    X, _ = text_data
    y = np.asarray(X.sum(axis=1)).ravel()
    net = default_regressor_net().set_params(
        device="cuda", max_epochs=3, module__hidden_layer_sizes=(16,)
    )
    reg = PrunedRegressor(net, prune_ratio=0.7, random_state=0).fit(X, y)
    assert next(reg.estimator_.module_.parameters()).device.type == "cuda"
    np.testing.assert_allclose(
        reg.predict(X), on_cpu(reg).predict(X), rtol=1e-4, atol=1e-5
    )


def test_saved_on_cuda_loads_on_the_cpu_by_default(text_data, tmp_path):
    X, y = text_data
    clf = PrunedClassifier(
        cuda_net(), prune_ratio=0.9, granularity="neuron", random_state=0
    ).fit(X, y)
    skprune.save(clf, tmp_path / "m.skprune", include_optimizer=True)
    loaded = skprune.load(tmp_path / "m.skprune")
    assert loaded.estimator_.device == "cpu"
    assert loaded.estimator.device == "cpu"
    assert all(p.device.type == "cpu" for p in loaded.estimator_.module_.parameters())
    pruning = dict(loaded.estimator_.callbacks_)["pruning"]
    assert all(mask.device.type == "cpu" for mask in pruning.masks_.values())
    np.testing.assert_allclose(
        loaded.predict_proba(X), clf.predict_proba(X), rtol=1e-4, atol=1e-5
    )
    on_gpu = skprune.load(tmp_path / "m.skprune", device="cuda")
    assert next(on_gpu.estimator_.module_.parameters()).device.type == "cuda"
    np.testing.assert_allclose(
        on_gpu.predict_proba(X), clf.predict_proba(X), rtol=1e-5, atol=1e-6
    )

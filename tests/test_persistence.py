"""skprune.save / skprune.load: files that load without pickle and run no code."""

import copy
import hashlib
import io
import json
import pickle
import sys
import zipfile
from pathlib import Path

import joblib
import numpy as np
import pytest
import scipy.sparse as sp
import scipy.special
import torch
from conftest import small_net
from sklearn.base import clone
from skorch import NeuralNetClassifier
from skorch.callbacks import Callback

import skprune
from skprune import PrunedClassifier, PrunedRegressor, default_regressor_net
from skprune.persistence import ModelFileError, UntrustedTypeError


@pytest.fixture(scope="module")
def fitted(text_data):
    """A default-net classifier pruned to 90%."""
    X, y = text_data
    return PrunedClassifier(prune_ratio=0.9, random_state=0).fit(X, y)


def assert_same_fitted_attributes(original, loaded):
    for name in ("classes_", "support_", "n_features_in_", "sparsity_"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(original, name))
    assert loaded.masks_.keys() == original.masks_.keys()
    for name, mask in original.masks_.items():
        assert loaded.masks_[name].dtype == np.bool_
        np.testing.assert_array_equal(loaded.masks_[name], mask)
    assert loaded.pruning_history_ == original.pruning_history_
    assert loaded.pruning_report_ == original.pruning_report_
    assert loaded.flops_ == original.flops_


def test_default_90_percent_pruned_model_round_trips_bit_for_bit(
    fitted, text_data, tmp_path
):
    X, _ = text_data
    path = tmp_path / "model.skprune"
    skprune.save(fitted, path)
    loaded = skprune.load(path)
    assert type(loaded) is PrunedClassifier
    np.testing.assert_array_equal(loaded.predict_proba(X), fitted.predict_proba(X))
    np.testing.assert_array_equal(
        loaded.decision_function(X), fitted.decision_function(X)
    )
    assert_same_fitted_attributes(fitted, loaded)
    assert loaded.get_params(deep=False).keys() == fitted.get_params(deep=False).keys()
    assert loaded.estimator_.device == "cpu"
    # Masks and the zeros of the weights compress: far smaller than the pickle.
    assert path.stat().st_size < len(pickle.dumps(fitted)) / 5


def test_loaded_estimator_clones_and_refits_to_the_same_model(
    fitted, text_data, tmp_path
):
    X, y = text_data
    skprune.save(fitted, tmp_path / "m.skprune")
    refit = clone(skprune.load(tmp_path / "m.skprune")).fit(X, y)
    np.testing.assert_array_equal(refit.predict_proba(X), fitted.predict_proba(X))


@pytest.mark.parametrize("granularity", ["neuron", "feature"])
def test_physically_shrunk_module_round_trips(text_data, tmp_path, granularity):
    X, y = text_data
    clf = PrunedClassifier(
        small_net(), prune_ratio=0.8, granularity=granularity, random_state=0
    ).fit(X, y)
    if granularity == "neuron":
        assert clf.estimator_.module_.hidden_layer_sizes[0] < 32  # shrunk
    else:
        assert clf.estimator_.module_.layers[0].input_index is not None
    skprune.save(clf, tmp_path / "m.skprune")
    loaded = skprune.load(tmp_path / "m.skprune")
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    assert_same_fitted_attributes(clf, loaded)
    original_state = clf.estimator_.module_.state_dict()
    for name, tensor in loaded.estimator_.module_.state_dict().items():
        assert torch.equal(tensor, original_state[name]), name


def test_compressed_classifier_round_trips(fitted, text_data, tmp_path):
    X, _ = text_data
    compressed = fitted.compress()
    skprune.save(compressed, tmp_path / "c.skprune")
    loaded = skprune.load(tmp_path / "c.skprune")
    assert type(loaded) is skprune.CompressedClassifier
    np.testing.assert_array_equal(loaded.predict_proba(X), compressed.predict_proba(X))
    np.testing.assert_array_equal(loaded.classes_, compressed.classes_)


def test_regressor_and_its_compressed_copy_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 8)).astype(np.float32)
    Y = np.c_[X[:, 0], X[:, 1] - X[:, 2]]
    net = default_regressor_net().set_params(
        max_epochs=3, module__hidden_layer_sizes=(16,)
    )
    reg = PrunedRegressor(net, prune_ratio=0.6, random_state=0).fit(X, Y)
    skprune.save(reg, tmp_path / "r.skprune")
    loaded = skprune.load(tmp_path / "r.skprune")
    assert type(loaded) is PrunedRegressor and loaded.n_outputs_ == 2
    np.testing.assert_array_equal(loaded.predict(X), reg.predict(X))
    compressed = reg.compress()
    skprune.save(compressed, tmp_path / "rc.skprune")
    np.testing.assert_array_equal(
        skprune.load(tmp_path / "rc.skprune").predict(X), compressed.predict(X)
    )


def test_string_labels_and_feature_names_round_trip(tmp_path):
    import pandas  # a test dependency: its absence fails, never skips

    rng = np.random.default_rng(0)
    X = pandas.DataFrame(rng.normal(size=(60, 4)), columns=list("abcd"))
    y = np.where(X["a"] > 0, "up", "down")
    clf = PrunedClassifier(small_net(), random_state=0).fit(X, y)
    skprune.save(clf, tmp_path / "s.skprune")
    loaded = skprune.load(tmp_path / "s.skprune")
    np.testing.assert_array_equal(loaded.feature_names_in_, clf.feature_names_in_)
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))
    assert loaded.classes_.dtype == clf.classes_.dtype


def test_registered_functions_and_callbacks_load_without_trust(text_data, tmp_path):
    """skprune's importance criteria and print are values the registry returns
    (never calls); skorch's side-effect-free callbacks are rebuilt from their
    parameters, a learning-rate policy by name or by class."""
    from skorch.callbacks import EpochScoring, LRScheduler

    from skprune.importance import taylor

    X, y = text_data
    net = small_net(
        callbacks=[
            ("by_name", LRScheduler(policy="StepLR", step_size=2)),
            (
                "by_class",
                LRScheduler(policy=torch.optim.lr_scheduler.ExponentialLR, gamma=0.9),
            ),
            ("accuracy", EpochScoring("accuracy", on_train=True)),
        ]
    )
    clf = PrunedClassifier(net, importance=taylor, verbose=1, random_state=0).fit(X, y)
    skprune.save(clf, tmp_path / "m.skprune")
    loaded = skprune.load(tmp_path / "m.skprune")
    assert loaded.importance is taylor
    callbacks = dict(loaded.estimator_.callbacks_)
    assert callbacks["pruning_progress"].sink is print
    assert callbacks["by_class"].policy is torch.optim.lr_scheduler.ExponentialLR
    assert callbacks["by_name"].policy == "StepLR"
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


def test_unfitted_estimator_round_trips_its_parameters(tmp_path):
    clf = PrunedClassifier(small_net(), prune_ratio=0.7, granularity="neuron")
    skprune.save(clf, tmp_path / "u.skprune")
    loaded = skprune.load(tmp_path / "u.skprune")
    assert not hasattr(loaded, "estimator_")
    assert loaded.get_params(deep=False).keys() == clf.get_params(deep=False).keys()
    assert loaded.prune_ratio == 0.7 and loaded.granularity == "neuron"
    assert loaded.estimator.get_params()["module__hidden_layer_sizes"] == (32,)


# A user's own classes: imported on load only when trusted ---------------------------


class UsersModule(torch.nn.Module):
    def __init__(self, n_features, n_classes, hidden=8):
        super().__init__()
        self.hidden = torch.nn.Linear(n_features, hidden)
        self.out = torch.nn.Linear(hidden, n_classes)

    def forward(self, x):
        return self.out(torch.relu(self.hidden(x)))


class UsersLoss(torch.nn.CrossEntropyLoss):
    pass


class UsersSGD(torch.optim.SGD):
    pass


class UsersCallback(Callback):
    def __init__(self, label="epochs"):
        self.label = label

    def on_epoch_end(self, net, **kwargs):
        net.history.record(self.label, len(net.history))


def users_net():
    return NeuralNetClassifier(
        UsersModule,
        module__hidden=12,
        criterion=UsersLoss,
        optimizer=UsersSGD,
        lr=0.1,
        max_epochs=3,
        train_split=None,
        callbacks=[("mine", UsersCallback(label="seen"))],
        verbose=0,
    )


USERS_NAMES = sorted(
    f"{cls.__module__}.{cls.__qualname__}"
    for cls in (UsersModule, UsersLoss, UsersSGD, UsersCallback)
)


def test_users_own_classes_are_refused_with_the_names_to_trust(text_data, tmp_path):
    X, y = text_data
    clf = PrunedClassifier(users_net(), prune_ratio=0.5, random_state=0).fit(X, y)
    skprune.save(clf, tmp_path / "u.skprune")
    with pytest.raises(UntrustedTypeError) as error:
        skprune.load(tmp_path / "u.skprune")
    assert error.value.names == USERS_NAMES
    assert f"trusted={USERS_NAMES}" in str(error.value)

    loaded = skprune.load(tmp_path / "u.skprune", trusted=USERS_NAMES)
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    assert isinstance(loaded.estimator_.module_, UsersModule)
    assert isinstance(loaded.estimator_.optimizer_, UsersSGD)
    assert loaded.estimator_.history[:, "seen"] == clf.estimator_.history[:, "seen"]
    # Classes themselves are accepted in trusted= too.
    classes = [UsersModule, UsersLoss, UsersSGD, UsersCallback]
    again = skprune.load(tmp_path / "u.skprune", trusted=classes)
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))


def test_untrusted_module_is_not_imported(text_data, tmp_path, monkeypatch):
    X, y = text_data
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "h9_users_module.py").write_text(
        "import torch\n"
        "class Net(torch.nn.Module):\n"
        "    def __init__(self, n_features, n_classes):\n"
        "        super().__init__()\n"
        "        self.linear = torch.nn.Linear(n_features, n_classes)\n"
        "    def forward(self, x):\n"
        "        return self.linear(x)\n"
    )
    monkeypatch.syspath_prepend(str(package))
    import h9_users_module

    net = NeuralNetClassifier(
        h9_users_module.Net,
        criterion=torch.nn.CrossEntropyLoss,
        max_epochs=1,
        train_split=None,
    )
    clf = PrunedClassifier(net, prune_output=True, random_state=0).fit(X, y)
    skprune.save(clf, tmp_path / "m.skprune")
    monkeypatch.delitem(sys.modules, "h9_users_module")

    with pytest.raises(UntrustedTypeError, match=r"\['h9_users_module.Net'\]"):
        skprune.load(tmp_path / "m.skprune")
    assert "h9_users_module" not in sys.modules
    loaded = skprune.load(tmp_path / "m.skprune", trusted=["h9_users_module.Net"])
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


def users_importance(name, weight, grad):
    return weight.abs()


def test_users_importance_function_needs_trust(text_data, tmp_path):
    X, y = text_data
    clf = PrunedClassifier(
        small_net(), importance=users_importance, random_state=0
    ).fit(X, y)
    skprune.save(clf, tmp_path / "i.skprune")
    name = f"{__name__}.users_importance"
    with pytest.raises(UntrustedTypeError, match=name):
        skprune.load(tmp_path / "i.skprune")
    loaded = skprune.load(tmp_path / "i.skprune", trusted=[name])
    assert loaded.importance is users_importance
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


# Hostile and broken files -----------------------------------------------------------


def rewrite(path, change):
    """Rewrite a saved file's parts through ``change(parts) -> parts``."""
    with zipfile.ZipFile(path) as archive:
        parts = {name: archive.read(name) for name in archive.namelist()}
    parts = change(parts)
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in parts.items():
            archive.writestr(name, data)


def with_fixed_checksums(parts):
    manifest = json.loads(parts["manifest.json"])
    for name, record in manifest["parts"].items():
        record["sha256"] = hashlib.sha256(parts[name]).hexdigest()
        record["bytes"] = len(parts[name])
    return {**parts, "manifest.json": json.dumps(manifest).encode()}


def hostile_document(reference):
    """A PrunedClassifier whose state names ``reference`` in the given way."""
    return json.dumps({"state": {"estimator": reference}, "net": None}).encode()


@pytest.mark.parametrize(
    ("reference", "name"),
    [
        ({"__object__": "os.system", "params": {"command": "touch x"}}, "os.system"),
        ({"__ref__": "builtins.eval"}, "builtins.eval"),
        ({"__ref__": "posix.system"}, "posix.system"),
        ({"__ref__": "torch.load"}, "torch.load"),
        ({"__ref__": "torch.nn.modules.module.torch.load"}, "torch.nn"),
        ({"__object__": "subprocess.Popen", "params": {"args": "ls"}}, "subprocess"),
        ({"__ref__": "skprune.__main__.main"}, "skprune.__main__.main"),
    ],
)
def test_file_naming_code_to_run_is_refused_before_anything_runs(
    fitted, tmp_path, reference, name
):
    path = tmp_path / "hostile.skprune"
    skprune.save(fitted.compress(), path)
    rewrite(
        path,
        lambda parts: with_fixed_checksums(
            {**parts, "estimator.json": hostile_document(reference)}
        ),
    )
    with pytest.raises(UntrustedTypeError, match=name):
        skprune.load(path)
    assert not (tmp_path / "x").exists()


def test_tampered_part_fails_its_checksum(fitted, tmp_path):
    path = tmp_path / "m.skprune"
    skprune.save(fitted, path)

    def flip_a_weight(parts):
        data = bytearray(parts["arrays.safetensors"])
        data[-1] ^= 0xFF
        return {**parts, "arrays.safetensors": bytes(data)}

    rewrite(path, flip_a_weight)
    with pytest.raises(ModelFileError, match="checksum of part 'arrays.safetensors'"):
        skprune.load(path)


def test_truncated_file_is_reported(fitted, tmp_path):
    path = tmp_path / "m.skprune"
    skprune.save(fitted, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="truncated"):
        skprune.load(path)


def test_file_from_a_newer_format_version_is_refused(fitted, tmp_path):
    path = tmp_path / "m.skprune"
    skprune.save(fitted, path)

    def newer(parts):
        manifest = json.loads(parts["manifest.json"])
        manifest["format_version"] = 99
        return {**parts, "manifest.json": json.dumps(manifest).encode()}

    rewrite(path, newer)
    with pytest.raises(ModelFileError, match="format version 99 by a newer skprune"):
        skprune.load(path)


def test_paths_that_are_not_skprune_models(tmp_path):
    with pytest.raises(FileNotFoundError, match="No such file"):
        skprune.load(tmp_path / "missing.skprune")
    with pytest.raises(ModelFileError, match="is not a file"):
        skprune.load(tmp_path)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ModelFileError, match="not a skprune model file"):
        skprune.load(text)
    other_zip = tmp_path / "other.zip"
    with zipfile.ZipFile(other_zip, "w") as archive:
        archive.writestr("data.csv", "a,b\n1,2\n")
    with pytest.raises(ModelFileError, match="has no manifest.json"):
        skprune.load(other_zip)
    pickled = tmp_path / "model.pkl"
    pickled.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(ModelFileError, match="not a skprune model file"):
        skprune.load(pickled)


def test_save_refuses_to_overwrite_unless_asked(fitted, text_data, tmp_path):
    X, _ = text_data
    path = tmp_path / "m.skprune"
    path.write_bytes(b"keep me")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        skprune.save(fitted, path)
    assert path.read_bytes() == b"keep me"
    skprune.save(fitted, path, overwrite=True)
    np.testing.assert_array_equal(
        skprune.load(path).predict_proba(X), fitted.predict_proba(X)
    )


def test_save_refuses_what_it_cannot_write_by_name(text_data, tmp_path):
    with pytest.raises(TypeError, match="skprune.save handles"):
        skprune.save(small_net(), tmp_path / "a.skprune")
    X, y = text_data
    net = NeuralNetClassifier(
        UsersModule, criterion=torch.nn.CrossEntropyLoss(), max_epochs=1
    )
    clf = PrunedClassifier(net, random_state=0).fit(X, y)
    with pytest.raises(TypeError, match="pass the class and its parameters"):
        skprune.save(clf, tmp_path / "b.skprune")
    lambda_importance = PrunedClassifier(importance=lambda n, w, g: w.abs())
    with pytest.raises(TypeError, match="lambda"):
        skprune.save(lambda_importance, tmp_path / "c.skprune")
    assert not list(tmp_path.iterdir())  # no partial files left behind


# The optimizer state, continuing training, pickle --------------------------------


def test_optimizer_state_is_saved_only_when_asked(fitted, tmp_path):
    skprune.save(fitted, tmp_path / "light.skprune")
    skprune.save(fitted, tmp_path / "full.skprune", include_optimizer=True)
    light = skprune.load(tmp_path / "light.skprune").estimator_.optimizer_
    full = skprune.load(tmp_path / "full.skprune").estimator_.optimizer_
    assert not light.state_dict()["state"]
    original = fitted.estimator_.optimizer_.state_dict()
    for index, state in original["state"].items():
        for key, value in state.items():
            assert torch.equal(full.state_dict()["state"][index][key], value), key
    for group, saved in zip(light.param_groups, original["param_groups"], strict=True):
        assert group["lr"] == saved["lr"]
    assert (tmp_path / "full.skprune").stat().st_size > (
        tmp_path / "light.skprune"
    ).stat().st_size


def test_training_continues_from_a_loaded_model_as_from_the_original(
    text_data, tmp_path
):
    """With the optimizer saved, one more epoch on the loaded net and on the
    original gives the same weights, and pruned weights stay zero."""
    X, y = text_data
    clf = PrunedClassifier(small_net(), prune_ratio=0.7, random_state=0).fit(X, y)
    skprune.save(clf, tmp_path / "m.skprune", include_optimizer=True)
    loaded = skprune.load(tmp_path / "m.skprune")
    y_encoded = np.searchsorted(clf.classes_, y)
    from skprune._base import _as_batchable

    nets = []
    for net in (copy.deepcopy(clf.estimator_), loaded.estimator_):
        torch.manual_seed(1)
        net.partial_fit(_as_batchable(X), y_encoded, epochs=1)
        nets.append(net)
    first, second = (dict(n.module_.named_parameters()) for n in nets)
    for name, weight in first.items():
        assert torch.equal(weight, second[name]), name
    for name, mask in clf.masks_.items():
        assert not second[name].detach().numpy()[~mask].any()


def test_pickle_and_joblib_keep_working(fitted, text_data, tmp_path):
    X, _ = text_data
    again = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(again.predict_proba(X), fitted.predict_proba(X))
    joblib.dump(fitted, tmp_path / "m.joblib")
    np.testing.assert_array_equal(
        joblib.load(tmp_path / "m.joblib").predict_proba(X), fitted.predict_proba(X)
    )


def test_the_file_is_a_zip_of_a_manifest_json_and_safetensors(fitted, tmp_path):
    skprune.save(fitted, tmp_path / "m.skprune")
    with zipfile.ZipFile(tmp_path / "m.skprune") as archive:
        manifest = json.loads(archive.read("manifest.json"))
        assert sorted(archive.namelist()) == sorted(
            ["manifest.json", *manifest["parts"]]
        )
        from safetensors.numpy import load as load_numpy

        arrays = load_numpy(archive.read("arrays.safetensors"))
        json.load(io.BytesIO(archive.read("estimator.json")))
    assert manifest["format"] == "skprune-model"
    assert manifest["format_version"] == 2
    assert manifest["estimator"] == "skprune.PrunedClassifier"
    assert {"skprune", "torch", "skorch", "scikit-learn"} <= set(manifest["versions"])
    first_layer = fitted.estimator_.module_.layers[0].weight.detach().numpy()
    assert any(np.array_equal(array, first_layer.ravel()) for array in arrays.values())


@pytest.mark.parametrize("scoring", [None, "accuracy"])
def test_pruned_classifier_cv_round_trips_with_its_scorer(text_data, tmp_path, scoring):
    X, y = text_data
    search = skprune.PrunedClassifierCV(
        small_net(), prune_ratios=[0.5, 0.9], cv=2, scoring=scoring, random_state=0
    ).fit(X, y)
    skprune.save(search, tmp_path / "cv.skprune")
    loaded = skprune.load(tmp_path / "cv.skprune")
    assert type(loaded) is skprune.PrunedClassifierCV
    np.testing.assert_array_equal(loaded.predict_proba(X), search.predict_proba(X))
    assert loaded.prune_ratio_ == search.prune_ratio_
    for key, value in search.cv_results_.items():
        np.testing.assert_array_equal(loaded.cv_results_[key], value)
    assert loaded.scorer_(loaded, X, y) == search.scorer_(search, X, y)


def test_load_leaves_the_callers_random_state_alone(fitted, tmp_path):
    skprune.save(fitted, tmp_path / "m.skprune")
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    skprune.load(tmp_path / "m.skprune")
    assert torch.equal(torch.rand(3), expected)


# Files written by an earlier skprune ------------------------------------------------

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("kind", ["pruned", "compressed"])
def test_committed_files_load_and_predict_their_recorded_outputs_exactly(kind):
    """Files saved once (tests/data/make_persistence_fixture.py) keep loading, so
    that moving a class between modules cannot break saved models. Weights in
    eighths and integer inputs make every recorded logit exact on any CPU."""
    record = json.loads((DATA / "persistence_fixture.json").read_text())
    X = sp.csr_matrix(np.array(record["X"], dtype=np.float32))
    loaded = skprune.load(DATA / f"{kind}_classifier.skprune")
    expected = {"pruned": PrunedClassifier, "compressed": skprune.CompressedClassifier}
    assert type(loaded) is expected[kind]
    logits = loaded.decision_function(X)
    np.testing.assert_array_equal(logits, np.array(record[kind]["logits"]))
    np.testing.assert_array_equal(loaded.predict(X), record[kind]["labels"])
    # Probabilities are the softmax of those exact logits, both taken in float64.
    expected_proba = scipy.special.softmax(logits.astype(np.float64), axis=1)
    np.testing.assert_allclose(loaded.predict_proba(X), expected_proba, rtol=1e-12)

"""The registry: every type a file may hold, by a stable name, with its two functions.

One table (:data:`REGISTRY`) maps a registry name (``"skprune.PrunedClassifier"``,
``"skorch.callbacks.EpochTimer"``) to the class and a pair of functions, as in
skops.io: ``fields(obj, options) -> dict`` gives the object's data-only fields
when saving, ``rebuild(fields, decoder, where) -> obj`` takes the decoded fields
back, checks each one's type and how they fit together, and builds the object
from exactly those. Nothing restores an object's ``__dict__``; supporting a new
type is one more entry.

A second table maps registry names to the classes and functions a file may name
as values, each with its role: where skorch expects a module, criterion,
optimizer, dataset or data loader class (or a callback's learning-rate policy),
only a registered class of that role, or one the caller trusts, is accepted. The
functions registered (``print``, skprune's importance criteria) are returned as
parameter values and never called while loading.

Files name registry names, not module paths, so classes can move between
modules without breaking files.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from numbers import Integral

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.model_selection import KFold, StratifiedKFold
from skorch import NeuralNetClassifier, NeuralNetRegressor
from skorch import callbacks as skorch_callbacks
from skorch.callbacks import lr_scheduler as skorch_lr
from skorch.dataset import Dataset as SkorchDataset
from skorch.dataset import ValidSplit
from skorch.utils import to_numpy
from torch.utils.data import DataLoader

from .._classifier import PrunedClassifier
from .._core import importance as importance_lib
from .._core.masks import PrunableLayer
from .._core.schedules import PruningStep
from .._cv import PrunedClassifierCV
from .._nn.data import BatchLoader, SparseDataset
from .._nn.losses import WeightedLoss
from .._nn.modules import MLPModule
from .._nn.optim import LazyAdam
from .._regressor import PrunedRegressor
from ..callbacks._path import _PathPruning
from ..callbacks._pruning import Pruning
from ..callbacks.progress import PruningProgress
from ..compress._compact import CompactMLP
from ..compress._estimators import CompressedClassifier, CompressedRegressor
from ..exceptions import ModelFileError, UntrustedTypeError
from ._checks import (
    array,
    boolean,
    check_values,
    data,
    dict_of,
    fail,
    instance_of,
    integer,
    list_of,
    optional,
    real,
    rows,
    string,
    take,
)
from ._container import REFUSED_FIELDS
from ._nets import (
    LR_POLICIES,
    SKORCH_CALLBACKS,
    net_fields,
    net_rebuild_for,
    params_fields,
    progress_rebuild,
    pruning_rebuild_for,
    skorch_callback_fields,
    skorch_callback_rebuild_for,
)
from ._values import check_finite


@dataclass(frozen=True)
class Entry:
    """One registered type: its class, its fields when saving, its rebuild."""

    name: str
    cls: type
    fields: Callable
    rebuild: Callable
    #: ``"estimator"``, ``"callback"`` or ``""``: where an instance may appear.
    role: str = ""


class Registry:
    """The two tables, and the rebuild of one record."""

    def __init__(self, entries: list[Entry], refs: dict[str, tuple[object, str]]):
        self.types = {entry.name: entry for entry in entries}
        self.by_class = {entry.cls: entry for entry in entries}
        self.refs = refs
        self.roles = {obj: role for obj, role in refs.values()}
        self.ref_names = {obj: name for name, (obj, _) in refs.items()}

    def rebuild(self, name: str, node, decoder, where: str):
        entry = self.types[name]
        fields = decoder.fields(node, where)
        try:
            return entry.rebuild(fields, decoder, where)
        except (ModelFileError, UntrustedTypeError, ImportError):
            raise
        except REFUSED_FIELDS as exc:
            # A constructor's own validation (or torch's) refused the fields.
            raise ModelFileError(f"{where}: {exc}") from exc


# small records ------------------------------------------------------------------


def _dataclass_entry(name, cls, spec):
    def fields(obj, options):
        return {key: getattr(obj, key) for key in spec}

    def rebuild(fields, decoder, where):
        return cls(**take(fields, spec, where))

    return Entry(name, cls, fields, rebuild)


_STEP = _dataclass_entry(
    "skprune.PruningStep", PruningStep, {"epoch": real, "ratio": real}
)


def _axis(value, where):
    if value not in (0, 1) or isinstance(value, bool):
        fail(where, "0 or 1")
    return int(value)


_LAYER = _dataclass_entry(
    "skprune.PrunableLayer",
    PrunableLayer,
    {
        "name": string,
        "weight": string,
        "bias": optional(string),
        "in_axis": _axis,
        "in_features": integer(0),
        "out_features": integer(0),
    },
)


def _splitter_entry(name, cls):
    spec = {
        "n_splits": integer(2),
        "shuffle": boolean,
        "random_state": optional(integer()),
    }

    def fields(obj, options):
        if obj.random_state is not None and not isinstance(obj.random_state, Integral):
            raise TypeError(
                f"cannot save a {cls.__name__} whose random_state is not an int."
            )
        return {key: getattr(obj, key) for key in spec}

    def rebuild(fields, decoder, where):
        return cls(**take(fields, spec, where))

    return Entry(name, cls, fields, rebuild)


def _valid_split_fields(obj, options):
    return {
        "cv": obj.cv,
        "stratified": obj.stratified,
        "random_state": obj.random_state,
    }


def _valid_split_rebuild(fields, decoder, where):
    spec = {"cv": real, "stratified": boolean, "random_state": optional(integer())}
    fields = take(fields, spec, where)
    if fields["cv"].is_integer() and fields["cv"] >= 2:
        fields["cv"] = int(fields["cv"])
    return ValidSplit(**fields)


# the compact network --------------------------------------------------------------

_COMPACT_SPEC = {
    "n_features": integer(1),
    "input_index": array("iu", ndim=1),
    "weights": list_of(lambda w, where: _weight(w, where)),
    "biases": list_of(array("f", ndim=1)),
    "activation": string,
    "layouts": list_of(string),
    "scales": list_of(lambda s, where: _scale(s, where)),
}
_LAYOUTS = ("csr", "block-csr", "row-sparse", "dense")
_ACTIVATIONS = ("relu", "tanh", "logistic")
#: The index dtypes a stored CSR weight may have (what scipy makes).
_WEIGHT_INDEX_DTYPES = (np.dtype(np.int32), np.dtype(np.int64))


def _weight(value, where):
    if sp.issparse(value):
        if value.format != "csr" or (
            value.dtype.kind != "f" and value.dtype != np.int8
        ):
            fail(where, "a float or int8 CSR matrix or array")
        for part in ("indices", "indptr"):
            if getattr(value, part).dtype not in _WEIGHT_INDEX_DTYPES:
                fail(f"{where}.{part}", "int32 or int64")
        check_finite(value, where)  # its indices were checked when decoded
        return value
    if isinstance(value, np.ndarray) and value.dtype == np.int8:
        return array("i", ndim=2)(value, where)
    return array("f", ndim=2)(value, where)


def _scale(value, where):
    value = array("f", ndim=1)(value, where)
    if value.dtype != np.float32 or not (value > 0).all():
        fail(where, "float32 scales, each finite and positive")
    return value


def _compact_fields(network, options):
    # Sequences as lists: the file has one way to write them. A float network
    # has no scales and writes none, as before int8 existed. Weights go in
    # their smaller form (the network holds each in its layout's).
    state = network.__getstate__()
    return {
        name: list(value) if isinstance(value, tuple) else value
        for name, value in ((n, state[n]) for n in _COMPACT_SPEC)
        if not (name == "scales" and value is None)
    }


def _compact_rebuild(fields, decoder, where):
    # CompactMLP's constructor checks the whole structure (shapes that chain,
    # index ranges, layouts, activation, one scale per int8 weight row); its
    # ValueError becomes ModelFileError. Files from before int8 have no scales.
    fields = take(fields, _COMPACT_SPEC, where, optional=("scales",))
    int8 = [getattr(w, "dtype", None) == np.int8 for w in fields["weights"]]
    if any(int8) and not ("scales" in fields and all(int8)):
        fail(f"{where}.weights", "all float, or all int8 with scales")
    if "scales" in fields and not all(int8):
        fail(f"{where}.scales", "absent for float weights")
    return CompactMLP(**fields)


# estimators -----------------------------------------------------------------------

#: The fitted attributes each estimator has, and their checks.
_PRUNED_FITTED = {
    "n_features_in_": integer(1),
    "feature_names_in_": array("UO", ndim=1),
    "masks_": dict_of(array("b")),
    "n_params_": integer(),
    "n_nonzero_params_": integer(),
    "sparsity_": real,
    "pruning_report_": rows,
    "pruning_history_": rows,
    "flops_": dict_of(data),
    "support_": array("b", ndim=1),
}
_FITTED = {
    PrunedClassifier: {
        **_PRUNED_FITTED,
        "classes_": array(ndim=1),
        "estimator_": instance_of(NeuralNetClassifier),
    },
    PrunedRegressor: {
        **_PRUNED_FITTED,
        "n_outputs_": integer(1),
        "estimator_": instance_of(NeuralNetRegressor),
    },
    CompressedClassifier: {"feature_names_in_": array("UO", ndim=1)},
    CompressedRegressor: {"feature_names_in_": array("UO", ndim=1)},
}
_FITTED[PrunedClassifierCV] = {
    **_FITTED[PrunedClassifier],
    "cv_results_": dict_of(data),
    "prune_ratio_": real,
    "best_index_": integer(),
    "best_score_": real,
    "prune_ratios_": array("f", ndim=1),
    "n_splits_": integer(1),
}
#: Fitted attributes that are not saved, but rebuilt on load: the search's
#: scorer from its ``scoring``, its path callback from the fitted net.
_REBUILT = {"scorer_", "_path_pruning"}


def _estimator_fields(estimator, options):
    cls = type(estimator)
    params = estimator.get_params(deep=False)
    fitted = {k: v for k, v in vars(estimator).items() if k not in params}
    unknown = set(fitted) - set(_FITTED[cls]) - _REBUILT
    if unknown:
        raise TypeError(
            f"skprune.save does not know the attributes {sorted(unknown)} of "
            f"{cls.__name__}; add them to skprune.persistence's registry."
        )
    return {
        "params": params,
        "fitted": {k: v for k, v in fitted.items() if k not in _REBUILT},
    }


def _estimator_rebuild_for(cls):
    def rebuild(fields, decoder, where):
        fields = take(
            fields,
            {"params": dict_of(lambda v, w: v), "fitted": dict_of(lambda v, w: v)},
            where,
        )
        params, fitted = fields["params"], fields["fitted"]
        accepted = set(inspect.signature(cls).parameters)
        if not set(params) <= accepted:
            raise ModelFileError(
                f"{where}.params: {sorted(set(params) - accepted)[:8]} are not "
                f"parameters of {cls.__name__}."
            )
        check_values(
            decoder,
            params,
            f"{where}.params",
            {},
            objects=("estimator", "cv", "network"),
        )
        estimator = cls(**params)
        if hasattr(cls, "_parameter_constraints"):
            estimator._validate_params()
        if fitted:
            attributes = take(
                fitted, _FITTED[cls], f"{where}.fitted", optional={"feature_names_in_"}
            )
            _check_fitted(estimator, attributes, f"{where}.fitted")
            vars(estimator).update(attributes)
            _relink(estimator)
        return estimator

    return rebuild


def _check_fitted(estimator, attributes: dict, where: str) -> None:
    """How the fitted attributes fit together and with the fitted net."""
    if isinstance(estimator, CompressedClassifier | CompressedRegressor):
        names = attributes.get("feature_names_in_")
        if names is not None and len(names) != estimator.network.n_features:
            fail(f"{where}.feature_names_in_", "one name per input feature")
        return
    n_features = attributes["n_features_in_"]
    if len(attributes["support_"]) != n_features:
        fail(f"{where}.support_", f"of length n_features_in_={n_features}")
    names = attributes.get("feature_names_in_")
    if names is not None and len(names) != n_features:
        fail(f"{where}.feature_names_in_", f"of length n_features_in_={n_features}")
    pruning = dict(getattr(attributes["estimator_"], "callbacks_", [])).get("pruning")
    if not hasattr(pruning, "granularity_"):
        fail(f"{where}.estimator_", "a fitted net with its pruning callback")
    masks = attributes["masks_"]
    shapes = pruning.granularity_.shapes
    same = set(masks) == set(pruning.masks_) and all(
        np.array_equal(masks[n], pruning.masks_[n].cpu().numpy()) for n in masks
    )
    if pruning.masks_ and not same:
        fail(f"{where}.masks_", "the masks of the net's pruning callback")
    for name, mask in masks.items():
        if name not in shapes or mask.shape != shapes[name]:
            fail(
                f"{where}.masks_[{name!r}]",
                f"of the shape of its weight {shapes.get(name)}, not {mask.shape}",
            )


def _relink(estimator) -> None:
    """Attributes rebuilt rather than stored."""
    if isinstance(estimator, PrunedClassifierCV):
        from sklearn.metrics import check_scoring

        estimator.scorer_ = check_scoring(estimator, scoring=estimator.scoring)
        pruning = dict(estimator.estimator_.callbacks_).get("pruning")
        if isinstance(pruning, _PathPruning):
            estimator._path_pruning = pruning


def _compressed_rebuild_for(cls):
    base = _estimator_rebuild_for(cls)

    def rebuild(fields, decoder, where):
        estimator = base(fields, decoder, where)
        if not isinstance(estimator.network, CompactMLP):
            fail(f"{where}.params.network", "a CompactMLP")
        n_outputs = len(estimator.network.biases[-1])
        if isinstance(estimator, CompressedClassifier):
            classes = np.asarray(estimator.classes)
            if classes.ndim != 1 or len(classes) != n_outputs:
                fail(f"{where}.params.classes", f"{n_outputs} class labels")
        return estimator

    return rebuild


# the tables -----------------------------------------------------------------------


_CRITERIA = """CrossEntropyLoss NLLLoss MSELoss L1Loss SmoothL1Loss HuberLoss BCELoss
BCEWithLogitsLoss KLDivLoss PoissonNLLLoss GaussianNLLLoss SoftMarginLoss
MultiLabelSoftMarginLoss MultiMarginLoss"""
_OPTIMIZERS = """SGD Adam AdamW Adagrad Adadelta Adamax ASGD NAdam RAdam RMSprop Rprop
SparseAdam LBFGS"""


def _refs() -> dict[str, tuple[object, str]]:
    refs = {
        "skprune.MLPModule": (MLPModule, "module"),
        "skprune.WeightedLoss": (WeightedLoss, "criterion"),
        "skprune.LazyAdam": (LazyAdam, "optimizer"),
        "skprune.SparseDataset": (SparseDataset, "dataset"),
        "skprune.BatchLoader": (BatchLoader, "loader"),
        "skorch.dataset.Dataset": (SkorchDataset, "dataset"),
        "torch.utils.data.DataLoader": (DataLoader, "loader"),
        "skorch.utils.to_numpy": (to_numpy, "function"),
        "builtins.print": (print, "function"),
        "skprune.importance.magnitude": (importance_lib.magnitude, "function"),
        "skprune.importance.taylor": (importance_lib.taylor, "function"),
    }
    tables = (
        (torch.nn, "criterion", _CRITERIA),
        (torch.optim, "optimizer", _OPTIMIZERS),
        (torch.optim.lr_scheduler, "lr_policy", LR_POLICIES),
    )
    for module, role, names in tables:
        for name in names.split():
            refs[f"{module.__name__}.{name}"] = (getattr(module, name), role)
    refs["skorch.callbacks.WarmRestartLR"] = (skorch_lr.WarmRestartLR, "lr_policy")
    return refs


def _entries() -> list[Entry]:
    entries = [
        _STEP,
        _LAYER,
        Entry("skprune.CompactMLP", CompactMLP, _compact_fields, _compact_rebuild),
        Entry(
            "skorch.ValidSplit", ValidSplit, _valid_split_fields, _valid_split_rebuild
        ),
        _splitter_entry("sklearn.model_selection.KFold", KFold),
        _splitter_entry("sklearn.model_selection.StratifiedKFold", StratifiedKFold),
        Entry(
            "skprune.Pruning",
            Pruning,
            params_fields,
            pruning_rebuild_for(Pruning),
            "callback",
        ),
        Entry(
            "skprune.PathPruning",
            _PathPruning,
            params_fields,
            pruning_rebuild_for(_PathPruning),
            "callback",
        ),
        Entry(
            "skprune.PruningProgress",
            PruningProgress,
            params_fields,
            progress_rebuild,
            "callback",
        ),
        Entry(
            "skorch.NeuralNetClassifier",
            NeuralNetClassifier,
            net_fields,
            net_rebuild_for(NeuralNetClassifier),
        ),
        Entry(
            "skorch.NeuralNetRegressor",
            NeuralNetRegressor,
            net_fields,
            net_rebuild_for(NeuralNetRegressor),
        ),
    ]
    for name, roles in SKORCH_CALLBACKS.items():
        cls = getattr(skorch_callbacks, name)
        entries.append(
            Entry(
                f"skorch.callbacks.{name}",
                cls,
                skorch_callback_fields,
                skorch_callback_rebuild_for(cls, roles),
                "callback",
            )
        )
    for cls in (PrunedClassifier, PrunedRegressor, PrunedClassifierCV):
        entries.append(
            Entry(
                f"skprune.{cls.__name__}",
                cls,
                _estimator_fields,
                _estimator_rebuild_for(cls),
                "estimator",
            )
        )
    for cls in (CompressedClassifier, CompressedRegressor):
        entries.append(
            Entry(
                f"skprune.{cls.__name__}",
                cls,
                _estimator_fields,
                _compressed_rebuild_for(cls),
                "estimator",
            )
        )
    return entries


REGISTRY = Registry(_entries(), _refs())
#: The estimators save and load handle, by registry name.
ESTIMATORS = tuple(e.name for e in REGISTRY.types.values() if e.role == "estimator")

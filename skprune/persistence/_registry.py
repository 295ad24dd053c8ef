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
from skorch import NeuralNet, NeuralNetClassifier, NeuralNetRegressor
from skorch import callbacks as skorch_callbacks
from skorch.callbacks import lr_scheduler as skorch_lr
from skorch.dataset import Dataset as SkorchDataset
from skorch.dataset import ValidSplit
from skorch.history import History
from skorch.utils import to_numpy
from torch.utils.data import DataLoader

from .. import importance as importance_lib
from .._classifier import PrunedClassifier
from .._compressed import CompressedClassifier
from .._cv import PrunedClassifierCV, _PathPruning
from .._regressor import CompressedRegressor, PrunedRegressor
from ..callbacks import Pruning
from ..compress import CompactMLP, shrink_mlp_
from ..data import BatchLoader, SparseDataset
from ..granularity import make_granularity
from ..losses import WeightedLoss
from ..masks import PrunableLayer
from ..modules import MLPModule
from ..optim import LazyAdam
from ..progress import PruningProgress
from ..schedules import PruningStep
from ._container import ModelFileError, UntrustedTypeError
from ._values import check_finite, parse_device

#: Most pruning rounds a loaded schedule may have; making the schedule allocates
#: one step per round.
MAX_ROUNDS = 100_000


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
        except (
            ValueError,
            TypeError,
            KeyError,
            IndexError,
            RuntimeError,
            OverflowError,
        ) as exc:
            # A constructor's own validation (or torch's) refused the fields.
            raise ModelFileError(f"{where}: {exc}") from exc


# field checks ---------------------------------------------------------------------


def take(fields: dict, spec: dict, where: str, optional=()) -> dict:
    """The fields ``spec`` lists, each passed through its check; no others."""
    unknown = set(fields) - set(spec)
    missing = set(spec) - set(fields) - set(optional)
    if unknown or missing:
        raise ModelFileError(
            f"{where}: unexpected fields {sorted(unknown)[:8]}, missing "
            f"{sorted(missing)[:8]}."
        )
    return {
        name: check(fields[name], f"{where}.{name}")
        for name, check in spec.items()
        if name in fields
    }


def _fail(where: str, what: str):
    raise ModelFileError(f"{where} must be {what}.")


def integer(low=0):
    def check(value, where):
        if not isinstance(value, Integral) or isinstance(value, bool) or value < low:
            _fail(where, f"an integer >= {low}")
        return int(value)

    return check


def real(value, where):
    if not isinstance(value, int | float | np.floating | np.integer) or isinstance(
        value, bool
    ):
        _fail(where, "a number")
    return float(value)


def boolean(value, where):
    if not isinstance(value, bool | np.bool_):
        _fail(where, "a bool")
    return bool(value)


def string(value, where):
    if not isinstance(value, str):
        _fail(where, "a string")
    return value


def optional(check):
    return lambda value, where: None if value is None else check(value, where)


def list_of(check):
    def checked(value, where):
        if not isinstance(value, list | tuple):
            _fail(where, "a list")
        return [check(item, f"{where}[{i}]") for i, item in enumerate(value)]

    return checked


def dict_of(check):
    def checked(value, where):
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            _fail(where, "a dict with string keys")
        return {k: check(v, f"{where}[{k!r}]") for k, v in value.items()}

    return checked


def array(kinds="biufUO", ndim=None):
    def check(value, where):
        if not isinstance(value, np.ndarray) or value.dtype.kind not in kinds:
            _fail(where, f"an array of kind {kinds!r}")
        if ndim is not None and value.ndim != ndim:
            _fail(where, f"{ndim}-dimensional")
        check_finite(value, where)
        return value

    return check


def tensor(kinds=None):
    def check(value, where):
        if not isinstance(value, torch.Tensor):
            _fail(where, "a tensor")
        if kinds == "bool" and value.dtype != torch.bool:
            _fail(where, "a tensor of bools")
        check_finite(value, where)
        return value

    return check


_DATA_TYPES = (
    bool | int | float | str | np.generic | np.ndarray,
    torch.Tensor | torch.dtype | torch.device | np.dtype,
)


def data(value, where):
    """Plain data: scalars, strings, arrays, and containers of them."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list | tuple | set):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif not (item is None or isinstance(item, _DATA_TYPES)):
            _fail(where, f"plain data, not a {type(item).__name__}")
    return value


def rows(value, where):
    """A list of dicts of plain data (history rows, reports)."""
    return list_of(dict_of(data))(value, where)


def instance_of(cls):
    def check(value, where):
        if not isinstance(value, cls):
            _fail(where, f"a {cls.__name__}")
        return value

    return check


def callable_value(decoder, roles=("function",)):
    """A class or function the registry gives one of ``roles``, or a trusted one."""

    def check(value, where):
        if decoder.role(value) not in (*roles, "trusted"):
            _fail(where, f"a registered {' or '.join(roles)} or a trusted name")
        return value

    return check


def _leaves(value):
    """What a parameter value holds, containers opened."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list | tuple | set):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        else:
            yield item


def check_values(decoder, params: dict, where: str, roles: dict, objects=()) -> None:
    """Parameters hold data, trusted objects, and classes or functions that are
    trusted or registered with the role their key calls for (``roles``, by key;
    other keys: functions only). Only the keys in ``objects`` may hold instances
    of registered types (a net's callbacks, an estimator's net)."""
    for key, value in params.items():
        allowed = roles.get(key, ("function",))
        for leaf in _leaves(value):
            if isinstance(leaf, type) or inspect.isroutine(leaf):
                if decoder.role(leaf) not in (*allowed, "trusted"):
                    raise ModelFileError(
                        f"{where}.{key}: {getattr(leaf, '__name__', leaf)!r:.80} is "
                        f"not a registered {' or '.join(allowed)}; trust it to load it."
                    )
            elif not (
                key in objects
                or leaf is None
                or isinstance(leaf, _DATA_TYPES)
                or id(leaf) in decoder.trusted_instances
            ):
                raise ModelFileError(
                    f"{where}.{key}: a {type(leaf).__name__} where data is expected."
                )


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
        _fail(where, "0 or 1")
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
}
_LAYOUTS = ("csr", "row-sparse", "dense")
_ACTIVATIONS = ("relu", "tanh", "logistic")


def _weight(value, where):
    if sp.issparse(value):
        if value.format != "csr" or value.dtype.kind != "f":
            _fail(where, "a float CSR matrix or array")
        check_finite(value, where)  # its indices were checked when decoded
        return value
    return array("f", ndim=2)(value, where)


def _compact_fields(network, options):
    return {name: getattr(network, name) for name in _COMPACT_SPEC}


def _compact_rebuild(fields, decoder, where):
    fields = take(fields, _COMPACT_SPEC, where)
    weights, biases = fields["weights"], fields["biases"]
    index = fields["input_index"]
    if (
        not weights
        or len(biases) != len(weights)
        or len(fields["layouts"]) != len(weights)
    ):
        _fail(where, "one bias and one layout per weight, at least one layer")
    if fields["activation"] not in _ACTIVATIONS or not set(fields["layouts"]) <= set(
        _LAYOUTS
    ):
        _fail(where, f"an activation in {_ACTIVATIONS} and layouts in {_LAYOUTS}")
    if len(index) and (index.min() < 0 or index.max() >= fields["n_features"]):
        _fail(f"{where}.input_index", f"indices in [0, {fields['n_features']})")
    if len(np.unique(index)) != len(index):
        _fail(f"{where}.input_index", "without repeated indices")
    inputs = len(index)
    for i, (weight, bias) in enumerate(zip(weights, biases, strict=True)):
        if weight.shape != (inputs, len(bias)):
            _fail(
                f"{where}.weights[{i}]",
                f"of shape ({inputs}, {len(bias)}) to fit the layers around it, "
                f"not {weight.shape}",
            )
        inputs = len(bias)
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
            _fail(f"{where}.feature_names_in_", "one name per input feature")
        return
    n_features = attributes["n_features_in_"]
    if len(attributes["support_"]) != n_features:
        _fail(f"{where}.support_", f"of length n_features_in_={n_features}")
    names = attributes.get("feature_names_in_")
    if names is not None and len(names) != n_features:
        _fail(f"{where}.feature_names_in_", f"of length n_features_in_={n_features}")
    pruning = dict(getattr(attributes["estimator_"], "callbacks_", [])).get("pruning")
    if not hasattr(pruning, "granularity_"):
        _fail(f"{where}.estimator_", "a fitted net with its pruning callback")
    masks = attributes["masks_"]
    shapes = pruning.granularity_.shapes
    same = set(masks) == set(pruning.masks_) and all(
        np.array_equal(masks[n], pruning.masks_[n].cpu().numpy()) for n in masks
    )
    if pruning.masks_ and not same:
        _fail(f"{where}.masks_", "the masks of the net's pruning callback")
    for name, mask in masks.items():
        if name not in shapes or mask.shape != shapes[name]:
            _fail(
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
            _fail(f"{where}.params.network", "a CompactMLP")
        n_outputs = len(estimator.network.biases[-1])
        if isinstance(estimator, CompressedClassifier):
            classes = np.asarray(estimator.classes)
            if classes.ndim != 1 or len(classes) != n_outputs:
                _fail(f"{where}.params.classes", f"{n_outputs} class labels")
        return estimator

    return rebuild


# skorch nets ----------------------------------------------------------------------

#: Where skorch calls the parameter's class while initialising the net.
_NET_ROLES = {
    "module": ("module",),
    "criterion": ("criterion",),
    "criterion__loss": ("criterion",),
    "optimizer": ("optimizer",),
    "dataset": ("dataset",),
    "iterator_train": ("loader",),
    "iterator_valid": ("loader",),
    "callbacks": (),
    "train_split": (),
}
_NET_PREFIXES = (
    "module",
    "criterion",
    "optimizer",
    "iterator_train",
    "iterator_valid",
    "dataset",
    "callbacks",
)


def _net_fields(net, options):
    params = {
        k: v for k, v in net.get_params(deep=False).items() if not k.startswith("_")
    }
    params.pop("iterator_train__sample_weight", None)  # data: never kept
    if params.get("compile"):
        raise TypeError(
            "skprune.save cannot save a net with compile=True; save it with "
            "compile=False and compile the loaded net."
        )
    if not getattr(net, "initialized_", False):
        return {"params": params, "fitted": None}
    optimizer = net.optimizer_.state_dict()
    if not options.get("include_optimizer"):
        optimizer = {"state": {}, "param_groups": optimizer["param_groups"]}
    fitted = {
        "module_state": net.module_.state_dict(),
        "optimizer": optimizer,
        "callback_states": {
            name: _CALLBACK_STATES[type(cb)][0](cb)
            for name, cb in net.callbacks_
            if type(cb) in _CALLBACK_STATES
        },
        "history": list(net.history_),
    }
    if hasattr(net, "classes_inferred_"):
        fitted["classes_inferred_"] = net.classes_inferred_
    return {"params": params, "fitted": fitted}


def _net_rebuild_for(cls):
    def rebuild(fields, decoder, where):
        fields = take(
            fields, {"params": dict_of(lambda v, w: v), "fitted": lambda v, w: v}, where
        )
        params = _check_net_params(cls, fields["params"], decoder, f"{where}.params")
        if decoder.device is not None:
            params["device"] = str(decoder.device)
        net = cls(**params)
        if fields["fitted"] is not None:
            _rebuild_fitted_net(net, fields["fitted"], decoder, f"{where}.fitted")
        return net

    return rebuild


def _check_net_params(cls, params: dict, decoder, where: str) -> dict:
    # skorch's classifier and regressor take NeuralNet's parameters as **kwargs.
    init = {
        *inspect.signature(cls).parameters,
        *inspect.signature(NeuralNet).parameters,
    }
    init -= {"args", "kwargs"}
    for key in params:
        prefix, dunder, rest = key.partition("__")
        if key.endswith("_") or not (
            key in init or (dunder and rest and prefix in _NET_PREFIXES)
        ):
            raise ModelFileError(
                f"{where}: {key!r:.80} is not a parameter of {cls.__name__}."
            )
    if params.get("compile", False) is not False:
        raise ModelFileError(f"{where}.compile: only compile=False nets are loaded.")
    if "device" in params:
        parse_device(params["device"], f"{where}.device")
    check_values(
        decoder, params, where, _NET_ROLES, objects=("callbacks", "train_split")
    )
    callbacks = params.get("callbacks")
    if callbacks not in (None, "disable"):
        if not isinstance(callbacks, list):
            _fail(f"{where}.callbacks", "a list")
        for i, item in enumerate(callbacks):
            callback = item[1] if isinstance(item, tuple) and len(item) == 2 else item
            if isinstance(item, tuple) and not isinstance(item[0], str):
                _fail(
                    f"{where}.callbacks[{i}]", "a callback or a (name, callback) pair"
                )
            _check_callback(callback, decoder, f"{where}.callbacks[{i}]")
    split = params.get("train_split")
    if not (
        split is None
        or isinstance(split, ValidSplit)
        or id(split) in decoder.trusted_instances
        or decoder.role(split) == "trusted"
    ):
        _fail(f"{where}.train_split", "None, a ValidSplit or trusted")
    return params


def _check_callback(callback, decoder, where: str) -> None:
    entry = REGISTRY.by_class.get(type(callback))
    if entry is not None and entry.role == "callback":
        return
    if id(callback) in decoder.trusted_instances:
        return
    _fail(where, "an instance of a registered callback or of a trusted class")


def _rebuild_fitted_net(net, fitted: dict, decoder, where: str) -> None:
    """Initialise the net from checked parts, without training, and restore it."""
    spec = {
        "module_state": dict_of(tensor()),
        "optimizer": dict_of(lambda v, w: v),
        "callback_states": dict_of(dict_of(lambda v, w: v)),
        "history": rows,
        "classes_inferred_": array(ndim=1),
    }
    fitted = take(fitted, spec, where, optional={"classes_inferred_"})
    state = fitted["module_state"]
    callbacks_with_state = _skprune_callbacks(net)
    if set(fitted["callback_states"]) != set(callbacks_with_state):
        _fail(
            f"{where}.callback_states",
            f"the states of the callbacks {sorted(callbacks_with_state)}",
        )
    device = torch.device(net.device)
    cuda = [device.index or 0] if device.type == "cuda" else []
    # Initialising draws random weights that the saved ones replace: the
    # caller's random state is left as it was.
    with torch.random.fork_rng(devices=cuda):
        net._initialize_virtual_params()
        net._initialize_callbacks()
        if decoder.role(net.module) == "module":
            _check_fresh_module(net, state, decoder.max_bytes, f"{where}.module_state")
        net._initialize_module()
    module = net.module_
    if isinstance(module, MLPModule):
        _shrink_to(module, state, f"{where}.module_state")
    own = module.state_dict()
    for name in sorted(set(own) | set(state)):
        if name not in own or name not in state or own[name].shape != state[name].shape:
            raise ModelFileError(
                f"{where}.module_state[{name!r}]: its shape "
                f"{tuple(state[name].shape) if name in state else None} does not fit "
                f"the net's module ({tuple(own[name].shape) if name in own else None})."
            )
    module.load_state_dict(state, assign=True)
    net.module_ = module.to(net.device)
    net._initialize_criterion()
    net._initialize_optimizer()
    _load_optimizer_state(net, fitted["optimizer"], f"{where}.optimizer")
    callbacks = dict(net.callbacks_)
    for name, record in fitted["callback_states"].items():
        _CALLBACK_STATES[type(callbacks[name])][1](
            callbacks[name], record, net, f"{where}.callback_states[{name!r}]"
        )
    net.history_ = History(fitted["history"])
    if "classes_inferred_" in fitted:
        net.classes_inferred_ = fitted["classes_inferred_"]
    net._validate_params()
    net.initialized_ = True


def _skprune_callbacks(net) -> list[str]:
    """Names of the net's callbacks whose state is saved."""
    named = []
    for item in net.callbacks or []:
        name, callback = (
            item if isinstance(item, tuple) else (type(item).__name__, item)
        )
        if type(callback) in _CALLBACK_STATES:
            named.append(name)
    return named


def _check_fresh_module(net, state: dict, max_bytes: int, where: str) -> None:
    """Build the module on the meta device first: its size from the file's
    parameters, before any memory is taken for it. Its layers are counted
    first, from the saved state: each one built takes Python objects."""
    default = inspect.signature(MLPModule).parameters["hidden_layer_sizes"].default
    sizes = net.get_params_for("module").get("hidden_layer_sizes", default)
    n_hidden = 1 if isinstance(sizes, Integral) else len(sizes)
    n_layers = sum(1 for name in state if name.endswith(".weight"))
    if net.module is MLPModule and n_hidden + 1 != n_layers:
        raise ModelFileError(
            f"{where}: {n_layers} weights for a module of {n_hidden + 1} layers."
        )
    with torch.device("meta"):
        probe = net.initialized_instance(net.module, net.get_params_for("module"))
    tensors = [*probe.parameters(), *probe.buffers()]
    size = sum(t.numel() * t.element_size() for t in tensors)
    if size > max_bytes:
        raise ModelFileError(
            f"{where}: the module's parameters make {size} bytes of weights, more "
            f"than max_bytes={max_bytes}."
        )


def _shrink_to(module: MLPModule, state: dict, where: str) -> None:
    """Shrink a fresh MLPModule to the saved shapes (structured pruning physically
    removed units and input features); the net builds it at its original sizes."""
    own = module.state_dict()
    if set(own) == set(state) and all(own[n].shape == state[n].shape for n in own):
        return
    hidden_layers = list(module.layers)[:-1]
    biases = [state.get(f"layers.{i}.bias") for i in range(len(hidden_layers))]
    index, weight = state.get("layers.0.input_index"), state.get("layers.0.weight")
    if index is None and weight is not None and weight.dim() == 2:
        index = torch.arange(weight.shape[0])
    width = own["layers.0.weight"].shape[0]
    fits = (
        index is not None
        and index.dtype == torch.int64
        and index.dim() == 1
        and len(torch.unique(index)) == len(index)
        and (not len(index) or 0 <= int(index.min()) <= int(index.max()) < width)
        and all(
            bias is not None and bias.dim() == 1 and len(bias) <= len(layer.bias)
            for bias, layer in zip(biases, hidden_layers, strict=True)
        )
    )
    if not fits:
        raise ModelFileError(
            f"{where}: its input index or sizes do not fit the module."
        )
    shrink_mlp_(module, index.cpu(), [torch.arange(len(bias)) for bias in biases])


def _load_optimizer_state(net, state: dict, where: str) -> None:
    groups, per_param = state.get("param_groups"), state.get("state")
    if set(state) != {"state", "param_groups"} or not isinstance(per_param, dict):
        _fail(where, "an optimizer state dict")
    rows(groups, f"{where}.param_groups")
    params = [p for group in net.optimizer_.param_groups for p in group["params"]]
    for key, values in per_param.items():
        if (
            not isinstance(key, int)
            or not 0 <= key < len(params)
            or not isinstance(values, dict)
        ):
            _fail(f"{where}.state", "per-parameter states by parameter index")
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                check_finite(value, f"{where}.state[{key}][{name!r}]")
                if value.dim() and value.shape != params[key].shape:
                    _fail(f"{where}.state[{key}][{name!r}]", "of its parameter's shape")
            else:
                data(value, f"{where}.state[{key}][{name!r}]")
    net.optimizer_.load_state_dict(state)


# skprune's callbacks ----------------------------------------------------------------


def _params_fields(obj, options):
    return obj.get_params(deep=False)


def _pruning_rebuild_for(cls):
    def rebuild(fields, decoder, where):
        accepted = set(cls._get_param_names())
        if not set(fields) <= accepted:
            raise ModelFileError(
                f"{where}: {sorted(set(fields) - accepted)[:8]} are not parameters "
                f"of {cls.__name__}."
            )
        check_values(decoder, fields, where, {})
        callback = cls(**fields)
        callback._validate_params()
        if getattr(callback, "n_rounds", 1) > MAX_ROUNDS:
            _fail(f"{where}.n_rounds", f"at most {MAX_ROUNDS}")
        return callback

    return rebuild


_PRUNING_STATE = {
    "steps_": list_of(instance_of(PruningStep)),
    "masks_": dict_of(tensor("bool")),
    "shrunk_": boolean,
    "history_": rows,
    "epochs_done_": integer(),
    "_next_step": integer(),
    "_snapshot": optional(dict_of(tensor())),
    "_initial_lrs": optional(list_of(real)),
    "_grad_sums": dict_of(tensor()),
    "_grad_batches": integer(),
    "_batches_in_epoch": integer(),
    "_batches_per_epoch": optional(integer(1)),
    "layers_": list_of(instance_of(PrunableLayer)),
    "granularity_shapes": dict_of(list_of(integer())),
    "initial_sparsity_": real,
}
_PREPARED = ("layers_", "granularity_shapes", "initial_sparsity_")
_PATH_STATE = {
    "scores_": list_of(real),
    "times_": list_of(real),
    "start_time_": optional(real),
}


def _pruning_state(callback) -> dict:
    state = {
        name: getattr(callback, name)
        for name in _PRUNING_STATE
        if name not in _PREPARED and name != "granularity_shapes"
    }
    if hasattr(callback, "granularity_"):
        state["layers_"] = callback.layers_
        state["granularity_shapes"] = callback.granularity_.shapes
        state["initial_sparsity_"] = callback.initial_sparsity_
    if isinstance(callback, _PathPruning):
        state.update({name: getattr(callback, name) for name in _PATH_STATE})
    return state


def _restore_pruning(callback, state: dict, net, where: str) -> None:
    spec = dict(_PRUNING_STATE)
    if isinstance(callback, _PathPruning):
        spec.update(_PATH_STATE)
    state = take(state, spec, where, optional=_PREPARED)
    if state["steps_"] != callback.steps_ or state["_next_step"] > len(state["steps_"]):
        _fail(f"{where}.steps_", "the steps of the callback's schedule")
    params = dict(net.module_.named_parameters())
    if "layers_" in state:
        shapes = {n: tuple(s) for n, s in state.pop("granularity_shapes").items()}
        callback.granularity_ = make_granularity(
            callback.granularity,
            state["layers_"],
            shapes,
            patterns=callback.layers,
            prune_output=callback.prune_output,
            prune_bias=callback.prune_bias,
        )
        callback.prunable_ = callback.granularity_.prunable
    elif state["masks_"] or state["_next_step"]:
        _fail(where, "the state of a callback that prepared its layers")
    shapes = getattr(callback, "granularity_", None)
    shapes = shapes.shapes if shapes is not None else {}
    for name, shape in shapes.items():
        if not state["shrunk_"] and name in params and params[name].shape != shape:
            _fail(f"{where}.granularity_shapes[{name!r}]", "its parameter's shape")
    for name, mask in state["masks_"].items():
        if name not in shapes or tuple(mask.shape) != shapes[name]:
            _fail(
                f"{where}.masks_[{name!r}]", f"of its weight's shape {shapes.get(name)}"
            )
        if not state["shrunk_"]:
            weight = params.get(name)
            if weight is None or weight.shape != mask.shape:
                _fail(f"{where}.masks_[{name!r}]", "of the module's weight's shape")
            if bool((weight.detach()[~mask.to(weight.device)] != 0).any()):
                _fail(
                    f"{where}.masks_[{name!r}]", "False only where the weight is zero"
                )
    for key in ("_snapshot", "_grad_sums"):
        for name, value in (state[key] or {}).items():
            if name not in params or params[name].shape != value.shape:
                _fail(f"{where}.{key}[{name!r}]", "of the module's parameter's shape")
    lrs = state["_initial_lrs"]
    if lrs is not None and len(lrs) != len(net.optimizer_.param_groups):
        _fail(f"{where}._initial_lrs", "one learning rate per parameter group")
    vars(callback).update(state)
    callback.masks_ = {n: m.to(net.device) for n, m in state["masks_"].items()}
    callback._eval_dataset = None
    callback._activate(params)


def _progress_rebuild(fields, decoder, where):
    fields = take(fields, {"prefix": string, "sink": callable_value(decoder)}, where)
    return PruningProgress(**fields)


def _progress_state(callback) -> dict:
    return {"printed_": callback.printed_, "last_time_": callback.last_time_}


def _restore_progress(callback, state, net, where) -> None:
    state = take(state, {"printed_": integer(), "last_time_": optional(real)}, where)
    vars(callback).update(state)


#: Callbacks whose fitted state is saved: (state of a callback, restore it).
_CALLBACK_STATES = {
    Pruning: (_pruning_state, _restore_pruning),
    _PathPruning: (_pruning_state, _restore_pruning),
    PruningProgress: (_progress_state, _restore_progress),
}


# skorch's callbacks ---------------------------------------------------------------

#: skorch callbacks whose construction and ``initialize`` touch nothing outside
#: the object (no Checkpoint, LoadInitState, TensorBoard, loggers: they create
#: files and directories), and the roles of their callable parameters.
_SKORCH_CALLBACKS = {
    "EpochTimer": {},
    "PrintLog": {"sink": ("function",)},
    "PassthroughScoring": {},
    "EpochScoring": {"scoring": ("function",), "target_extractor": ("function",)},
    "BatchScoring": {"scoring": ("function",), "target_extractor": ("function",)},
    "LRScheduler": {"policy": ("lr_policy",), "monitor": ("function",)},
    "GradientNormClipping": {},
}


def _skorch_callback_fields(callback, options):
    params = {
        k: v
        for k, v in callback.get_params(deep=False).items()
        if not k.startswith("_")
    }
    init = inspect.signature(type(callback)).parameters.values()
    if not any(p.kind == p.VAR_KEYWORD for p in init):
        params = {k: v for k, v in params.items() if k in {p.name for p in init}}
    return params


def _skorch_callback_rebuild_for(cls, roles):
    init = inspect.signature(cls).parameters.values()
    named = {p.name for p in init if p.kind != p.VAR_KEYWORD}
    var_keyword = any(p.kind == p.VAR_KEYWORD for p in init)

    def rebuild(fields, decoder, where):
        if cls is skorch_callbacks.EpochTimer and fields:
            _fail(where, "EpochTimer without parameters")
        if not var_keyword and not set(fields) <= named:
            _fail(where, f"parameters among {sorted(named)}")
        check_values(decoder, fields, where, roles)
        policy = fields.get("policy")
        if isinstance(policy, str) and policy not in _LR_POLICY_NAMES:
            _fail(
                f"{where}.policy",
                f"a registered learning-rate policy, not {policy!r:.80}",
            )
        return cls(**fields)

    return rebuild


# the tables -----------------------------------------------------------------------


_CRITERIA = """CrossEntropyLoss NLLLoss MSELoss L1Loss SmoothL1Loss HuberLoss BCELoss
BCEWithLogitsLoss KLDivLoss PoissonNLLLoss GaussianNLLLoss SoftMarginLoss
MultiLabelSoftMarginLoss MultiMarginLoss"""
_OPTIMIZERS = """SGD Adam AdamW Adagrad Adadelta Adamax ASGD NAdam RAdam RMSprop Rprop
SparseAdam LBFGS"""
_LR_POLICIES = """StepLR MultiStepLR ExponentialLR CosineAnnealingLR
CosineAnnealingWarmRestarts ReduceLROnPlateau CyclicLR OneCycleLR LinearLR ConstantLR
PolynomialLR"""


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
        (torch.optim.lr_scheduler, "lr_policy", _LR_POLICIES),
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
            _params_fields,
            _pruning_rebuild_for(Pruning),
            "callback",
        ),
        Entry(
            "skprune.PathPruning",
            _PathPruning,
            _params_fields,
            _pruning_rebuild_for(_PathPruning),
            "callback",
        ),
        Entry(
            "skprune.PruningProgress",
            PruningProgress,
            _params_fields,
            _progress_rebuild,
            "callback",
        ),
        Entry(
            "skorch.NeuralNetClassifier",
            NeuralNetClassifier,
            _net_fields,
            _net_rebuild_for(NeuralNetClassifier),
        ),
        Entry(
            "skorch.NeuralNetRegressor",
            NeuralNetRegressor,
            _net_fields,
            _net_rebuild_for(NeuralNetRegressor),
        ),
    ]
    for name, roles in _SKORCH_CALLBACKS.items():
        cls = getattr(skorch_callbacks, name)
        entries.append(
            Entry(
                f"skorch.callbacks.{name}",
                cls,
                _skorch_callback_fields,
                _skorch_callback_rebuild_for(cls, roles),
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
#: Learning-rate policies by class name, as skorch's LRScheduler takes them.
_LR_POLICY_NAMES = {
    name.rpartition(".")[2]
    for name, (_, role) in REGISTRY.refs.items()
    if role == "lr_policy"
}
#: The estimators save and load handle, by registry name.
ESTIMATORS = tuple(e.name for e in REGISTRY.types.values() if e.role == "estimator")

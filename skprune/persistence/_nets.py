"""skorch nets and callbacks in the registry: rebuilt from data, initialised
without training, with the module sized on the meta device first.

Where skorch calls a class while initialising a net (its module, criterion,
optimizer; a callback's learning-rate policy) only a registered class of that
role, or a trusted one, is accepted. The skorch callbacks registered are those
whose construction and ``initialize`` touch nothing outside the object.
"""

from __future__ import annotations

import inspect
from numbers import Integral

import torch
from skorch import NeuralNet
from skorch import callbacks as skorch_callbacks
from skorch.dataset import ValidSplit
from skorch.history import History

from .._core.granularity import make_granularity
from .._core.masks import PrunableLayer
from .._core.maskset import GradientSums
from .._core.schedules import PruningStep
from .._core.training import RewindSnapshot, ScheduleCursor
from .._nn._random import fit_random_state
from .._nn.modules import MLPModule
from ..callbacks._path import _PathPruning
from ..callbacks._pruning import Pruning
from ..callbacks.progress import PruningProgress
from ..compress._shrink import shrink_mlp_
from ..exceptions import ModelFileError
from ._checks import (
    array,
    boolean,
    callable_value,
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
    tensor,
)
from ._values import check_finite, parse_device

#: Most pruning rounds a loaded schedule may have; making the schedule allocates
#: one step per round.
MAX_ROUNDS = 100_000
#: torch's learning-rate schedulers in the registry, by class name.
LR_POLICIES = """StepLR MultiStepLR ExponentialLR CosineAnnealingLR
CosineAnnealingWarmRestarts ReduceLROnPlateau CyclicLR OneCycleLR LinearLR ConstantLR
PolynomialLR"""
#: Learning-rate policies by class name, as skorch's LRScheduler takes them.
_LR_POLICY_NAMES = {*LR_POLICIES.split(), "WarmRestartLR"}

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


def net_fields(net, options):
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


def net_rebuild_for(cls):
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
            fail(f"{where}.callbacks", "a list")
        for i, item in enumerate(callbacks):
            callback = item[1] if isinstance(item, tuple) and len(item) == 2 else item
            if isinstance(item, tuple) and not isinstance(item[0], str):
                fail(f"{where}.callbacks[{i}]", "a callback or a (name, callback) pair")
            _check_callback(callback, decoder, f"{where}.callbacks[{i}]")
    split = params.get("train_split")
    if not (
        split is None
        or isinstance(split, ValidSplit)
        or id(split) in decoder.trusted_instances
        or decoder.role(split) == "trusted"
    ):
        fail(f"{where}.train_split", "None, a ValidSplit or trusted")
    return params


def _check_callback(callback, decoder, where: str) -> None:
    entry = decoder.registry.by_class.get(type(callback))
    if entry is not None and entry.role == "callback":
        return
    if id(callback) in decoder.trusted_instances:
        return
    fail(where, "an instance of a registered callback or of a trusted class")


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
        fail(
            f"{where}.callback_states",
            f"the states of the callbacks {sorted(callbacks_with_state)}",
        )
    # Initialising draws random weights that the saved ones replace: from a
    # generator of the load's own, leaving the caller's random state as it was
    # (and a load in one thread drawing nothing from a fit in another).
    with fit_random_state(0, net.device):
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
        fail(where, "an optimizer state dict")
    rows(groups, f"{where}.param_groups")
    params = [p for group in net.optimizer_.param_groups for p in group["params"]]
    for key, values in per_param.items():
        if (
            not isinstance(key, int)
            or not 0 <= key < len(params)
            or not isinstance(values, dict)
        ):
            fail(f"{where}.state", "per-parameter states by parameter index")
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                check_finite(value, f"{where}.state[{key}][{name!r}]")
                if value.dim() and value.shape != params[key].shape:
                    fail(f"{where}.state[{key}][{name!r}]", "of its parameter's shape")
            else:
                data(value, f"{where}.state[{key}][{name!r}]")
    net.optimizer_.load_state_dict(state)


# skprune's callbacks ----------------------------------------------------------------


def params_fields(obj, options):
    return obj.get_params(deep=False)


def pruning_rebuild_for(cls):
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
            fail(f"{where}.n_rounds", f"at most {MAX_ROUNDS}")
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
    """The file's fields of a callback's state (named as in format 2's files)."""
    cursor, gradients = callback._cursor, callback._gradients
    state = {
        "steps_": callback.steps_,
        "masks_": callback.masks_,
        "shrunk_": callback.shrunk_,
        "history_": callback.history_,
        "epochs_done_": cursor.epochs_done,
        "_next_step": cursor.taken,
        "_snapshot": callback._rewind.values,
        "_initial_lrs": callback._initial_lrs,
        "_grad_sums": gradients.sums,
        "_grad_batches": gradients.batches,
        "_batches_in_epoch": cursor.batches_in_epoch,
        "_batches_per_epoch": cursor.batches_per_epoch,
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
        fail(f"{where}.steps_", "the steps of the callback's schedule")
    params = dict(net.module_.named_parameters())
    if "layers_" in state:
        shapes = {n: tuple(s) for n, s in state.pop("granularity_shapes").items()}
        callback.granularity_ = make_granularity(
            callback.granularity,
            state["layers_"],
            shapes,
            block_size=callback.block_size,
            patterns=callback.layers,
            prune_output=callback.prune_output,
            prune_bias=callback.prune_bias,
        )
        callback.prunable_ = callback.granularity_.prunable
    elif state["masks_"] or state["_next_step"]:
        fail(where, "the state of a callback that prepared its layers")
    _check_masks(callback, state, params, where)
    for key in ("_snapshot", "_grad_sums"):
        for name, value in (state[key] or {}).items():
            if name not in params or params[name].shape != value.shape:
                fail(f"{where}.{key}[{name!r}]", "of the module's parameter's shape")
    lrs = state["_initial_lrs"]
    if lrs is not None and len(lrs) != len(net.optimizer_.param_groups):
        fail(f"{where}._initial_lrs", "one learning rate per parameter group")
    _set_pruning_state(callback, state, net)


def _check_masks(callback, state: dict, params: dict, where: str) -> None:
    """Masks of the prepared weights' shapes, False only on zeros of the module."""
    shapes = getattr(callback, "granularity_", None)
    shapes = shapes.shapes if shapes is not None else {}
    for name, shape in shapes.items():
        if not state["shrunk_"] and name in params and params[name].shape != shape:
            fail(f"{where}.granularity_shapes[{name!r}]", "its parameter's shape")
    for name, mask in state["masks_"].items():
        if name not in shapes or tuple(mask.shape) != shapes[name]:
            fail(
                f"{where}.masks_[{name!r}]", f"of its weight's shape {shapes.get(name)}"
            )
        if not state["shrunk_"]:
            weight = params.get(name)
            if weight is None or weight.shape != mask.shape:
                fail(f"{where}.masks_[{name!r}]", "of the module's weight's shape")
            if bool((weight.detach()[~mask.to(weight.device)] != 0).any()):
                fail(f"{where}.masks_[{name!r}]", "False only where the weight is zero")


def _set_pruning_state(callback, state: dict, net) -> None:
    """Put the checked fields into the callback's pure-torch pieces."""
    callback.steps_ = state["steps_"]
    callback.shrunk_ = state["shrunk_"]
    callback.history_ = state["history_"]
    callback.masks_ = {n: m.to(net.device) for n, m in state["masks_"].items()}
    callback._cursor = ScheduleCursor(
        callback.steps_,
        taken=state["_next_step"],
        epochs_done=state["epochs_done_"],
        batches_in_epoch=state["_batches_in_epoch"],
        batches_per_epoch=state["_batches_per_epoch"],
    )
    callback._rewind = RewindSnapshot(
        callback.rewind_epoch if callback.rewind else None, state["_snapshot"]
    )
    callback._gradients = GradientSums(state["_grad_sums"], state["_grad_batches"])
    callback._initial_lrs = state["_initial_lrs"]
    for name in ("layers_", "initial_sparsity_", *_PATH_STATE):
        if name in state:
            setattr(callback, name, state[name])
    callback._eval_dataset = None
    callback._activate(dict(net.module_.named_parameters()))


def progress_rebuild(fields, decoder, where):
    spec = {
        "prefix": string,
        "sink": callable_value(decoder),
        "pruning": optional(string),
    }
    # Files saved before ``pruning`` existed name no ``pruning``: None.
    return PruningProgress(**take(fields, spec, where, optional=("pruning",)))


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
SKORCH_CALLBACKS = {
    "EpochTimer": {},
    "PrintLog": {"sink": ("function",)},
    "PassthroughScoring": {},
    "EpochScoring": {"scoring": ("function",), "target_extractor": ("function",)},
    "BatchScoring": {"scoring": ("function",), "target_extractor": ("function",)},
    "LRScheduler": {"policy": ("lr_policy",), "monitor": ("function",)},
    "GradientNormClipping": {},
}


def skorch_callback_fields(callback, options):
    params = {
        k: v
        for k, v in callback.get_params(deep=False).items()
        if not k.startswith("_")
    }
    init = inspect.signature(type(callback)).parameters.values()
    if not any(p.kind == p.VAR_KEYWORD for p in init):
        params = {k: v for k, v in params.items() if k in {p.name for p in init}}
    return params


def skorch_callback_rebuild_for(cls, roles):
    init = inspect.signature(cls).parameters.values()
    named = {p.name for p in init if p.kind != p.VAR_KEYWORD}
    var_keyword = any(p.kind == p.VAR_KEYWORD for p in init)

    def rebuild(fields, decoder, where):
        if cls is skorch_callbacks.EpochTimer and fields:
            fail(where, "EpochTimer without parameters")
        if not var_keyword and not set(fields) <= named:
            fail(where, f"parameters among {sorted(named)}")
        check_values(decoder, fields, where, roles)
        policy = fields.get("policy")
        if isinstance(policy, str) and policy not in _LR_POLICY_NAMES:
            fail(
                f"{where}.policy",
                f"a registered learning-rate policy, not {policy!r:.80}",
            )
        return cls(**fields)

    return rebuild

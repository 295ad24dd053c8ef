"""Save and load fitted skprune estimators without pickle: loading runs no code.

:func:`save` writes one file, a zip container (``ZIP_DEFLATED``) of three kinds
of parts:

- ``manifest.json``: the format name and version, the estimator's public class
  name, the versions of skprune, torch, skorch, scikit-learn, numpy and
  safetensors that wrote it, and the SHA-256 checksum and size of every other
  part;
- ``estimator.json``: everything but numbers in bulk, as JSON: the estimator's
  parameters (the wrapped skorch net's parameters among them), its fitted
  attributes, the fitted net's history, the pruning callback's state;
- ``arrays.safetensors`` (and ``tensors.safetensors`` for torch dtypes numpy
  lacks): every array and tensor, weights and masks included, stored once per
  distinct content; boolean masks packed to bits. Pruned weights are zeros, which
  the container's compression all but removes.

In the JSON, a class or function is only ever a name (``"torch.nn.modules.loss.
MSELoss"``). :func:`load` checks every name before it imports or builds
anything: names from skprune, torch's layers, losses, optimizers and learning-rate
schedulers, skorch's nets, callbacks and datasets, and a few numpy and builtin
types are allowed; any other name (a user's own module, criterion, optimizer,
callback or importance function) is refused unless the caller lists it in
``trusted=``, and the error lists exactly the names to trust. Allowed names are
looked up among modules already imported: nothing is imported for them.

The fitted net is rebuilt without training: the skorch net is constructed from
its saved parameters and initialised (under a private random state), its module
is shrunk to the saved shapes when structured pruning shrank it, then the saved
weights are loaded into it and the pruning callback's state, the history and the
fitted attributes are restored. The optimizer starts from its saved
hyper-parameters (learning rates) with an empty state, unless the file was saved
with ``include_optimizer=True``.

The checksums detect truncated and corrupted files; they are not signatures: a
file's safety comes from the allowlist, not from them.

scikit-learn is used only to rebuild a search's ``scorer_`` from its ``scoring``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import inspect
import json
import math
import os
import sys
import tempfile
import zipfile
from collections.abc import Iterable

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator

__all__ = ["ModelFileError", "UntrustedTypeError", "load", "save"]

FORMAT = "skprune-model"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
STATE_PART = "estimator.json"
ARRAYS_PART = "arrays.safetensors"
TENSORS_PART = "tensors.safetensors"

#: The estimators :func:`save` and :func:`load` handle, by their public names in
#: :mod:`skprune`. Supporting another one (with plain attributes) is adding it here.
ESTIMATORS = (
    "PrunedClassifier",
    "PrunedRegressor",
    "PrunedClassifierCV",
    "CompressedClassifier",
    "CompressedRegressor",
)

_BUILTIN_TYPES = {"builtins.int", "builtins.float", "builtins.bool", "builtins.str"}


class ModelFileError(ValueError):
    """The file is not a skprune model, or is truncated, corrupted or too new."""


class UntrustedTypeError(TypeError):
    """The file names classes or functions that are not trusted.

    Attributes
    ----------
    names : list of str
        The names to pass in ``trusted=`` to load the file anyway.
    """

    def __init__(self, names: list[str]) -> None:
        self.names = names
        super().__init__(
            f"The file names classes or functions that are not trusted by default: "
            f"{names}. Nothing was imported. If you trust them, load it with "
            f"trusted={names}."
        )


# saving ---------------------------------------------------------------------------


def save(
    estimator,
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    include_optimizer: bool = False,
) -> None:
    """Save a skprune estimator to a file that :func:`load` reads without pickle.

    Parameters
    ----------
    estimator : PrunedClassifier, PrunedClassifierCV, PrunedRegressor, \
            CompressedClassifier or CompressedRegressor
        Fitted or not; the classes in :data:`ESTIMATORS`, not subclasses.
    path : str or path-like
        The file to write (the ``.skprune`` suffix is a convention).
    overwrite : bool, default=False
        Replace an existing file; otherwise an existing ``path`` raises
        ``FileExistsError``.
    include_optimizer : bool, default=False
        Also save the optimizer's state (Adam's moments: twice the size of the
        weights), to continue training exactly where it stopped. Without it the
        optimizer's learning rates are kept and its state starts empty.

    Raises
    ------
    TypeError
        For an estimator of another class, or a parameter value that cannot be
        written by name (a lambda, a module or criterion instance).
    FileExistsError
        When ``path`` exists and ``overwrite`` is False.
    """
    path = os.fspath(path)
    kind = _public_name(estimator)
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path!r} exists; pass overwrite=True to replace it.")
    encoder = _Encoder()
    state = dict(vars(estimator))
    net = state.pop("estimator_", None)
    scoring = None
    if "scorer_" in state and _scorer_is_derived(estimator):
        # check_scoring's result for scoring=None or a name: rebuilt on load
        # rather than stored (a pass-through scorer holds the estimator itself).
        del state["scorer_"]
        scoring = {"scoring": estimator.scoring}
    document = {
        "scorer": scoring,
        "state": encoder.encode(state, "estimator"),
        "net": None
        if net is None
        else _encode_net(net, encoder, include_optimizer=include_optimizer),
    }
    parts = {STATE_PART: _dumps(document)}
    parts.update(encoder.parts())
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "estimator": kind,
        "versions": _versions(),
        "include_optimizer": bool(include_optimizer),
        "parts": {
            name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
            for name, data in parts.items()
        },
    }
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".skprune-", dir=directory)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)  # as open() would create it, not 0600
        with (
            os.fdopen(fd, "wb") as file,
            zipfile.ZipFile(
                file, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6
            ) as archive,
        ):
            archive.writestr(MANIFEST, _dumps(manifest))
            for name, data in parts.items():
                archive.writestr(name, data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _scorer_is_derived(estimator) -> bool:
    scoring = getattr(estimator, "scoring", None)
    return scoring is None or isinstance(scoring, str)


def _public_name(estimator) -> str:
    import skprune

    for name in ESTIMATORS:
        if type(estimator) is getattr(skprune, name, None):
            return name
    supported = [name for name in ESTIMATORS if hasattr(skprune, name)]
    raise TypeError(
        f"skprune.save handles {supported}, got {type(estimator).__name__}; "
        "use pickle or joblib for other objects."
    )


def _encode_net(net, encoder: _Encoder, *, include_optimizer: bool) -> dict:
    """The fitted skorch net: its parameters and what training left in it."""
    if not getattr(net, "initialized_", False):
        return {
            "class": _name_of(type(net)),
            "params": encoder.encode(net.get_params(deep=False), "estimator_"),
        }
    optimizer = net.optimizer_.state_dict()
    if not include_optimizer:
        optimizer = {"state": {}, "param_groups": optimizer["param_groups"]}
    callback_states = {
        name: encoder.encode(_state(callback), f"callback {name!r}")
        for name, callback in net.callbacks_
        if type(callback).__module__.startswith("skprune.")
    }
    attributes = {
        name: getattr(net, name)
        for name in ("classes_inferred_",)
        if hasattr(net, name)
    }
    return {
        "class": _name_of(type(net)),
        "params": encoder.encode(net.get_params(deep=False), "estimator_"),
        "module_state": encoder.encode(net.module_.state_dict(), "module_"),
        "optimizer": encoder.encode(optimizer, "optimizer_"),
        "callback_states": callback_states,
        "history": encoder.encode(list(net.history_), "history_"),
        "attributes": encoder.encode(attributes, "estimator_"),
    }


def _state(obj) -> dict:
    state = obj.__getstate__() if hasattr(obj, "__getstate__") else None
    return dict(vars(obj) if state is None else state)


class _Encoder:
    """Turns Python values into JSON, collecting arrays and tensors by content."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}
        self.tensors: dict[str, torch.Tensor] = {}

    def parts(self) -> dict[str, bytes]:
        from safetensors.numpy import save as save_numpy
        from safetensors.torch import save as save_torch

        parts = {ARRAYS_PART: save_numpy(self.arrays)}
        if self.tensors:
            parts[TENSORS_PART] = save_torch(self.tensors)
        return parts

    def encode(self, value, where: str):
        if value is None or isinstance(value, bool | str):
            return value
        if isinstance(value, int) and not isinstance(value, np.generic):
            return int(value)
        if isinstance(value, float):
            return value if math.isfinite(value) else {"__float__": repr(value)}
        if isinstance(value, np.generic):
            return {
                "__scalar__": self.encode(value.item(), where),
                "dtype": value.dtype.str,
            }
        if isinstance(value, np.ndarray):
            return self._array(value, where)
        if sp.issparse(value):
            csr = value.tocsr()
            return {
                "__sparse__": type(value)
                .__name__.replace("coo", "csr")
                .replace("csc", "csr"),
                "shape": list(csr.shape),
                "data": self._array(csr.data, where),
                "indices": self._array(csr.indices, where),
                "indptr": self._array(csr.indptr, where),
            }
        if isinstance(value, torch.Tensor):
            return self._tensor(value, where)
        if isinstance(value, torch.device):
            return {"__device__": str(value)}
        if isinstance(value, torch.dtype):
            return {"__torch_dtype__": str(value).removeprefix("torch.")}
        if isinstance(value, np.dtype):
            return {"__dtype__": value.str}
        if isinstance(value, list):
            return [self.encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, tuple) and not hasattr(value, "_asdict"):
            return {"__tuple__": [self.encode(v, where) for v in value]}
        if isinstance(value, set | frozenset):
            return {"__set__": [self.encode(v, where) for v in sorted(value, key=repr)]}
        if isinstance(value, dict):
            if all(isinstance(k, str) and not k.startswith("__") for k in value):
                return {k: self.encode(v, f"{where}.{k}") for k, v in value.items()}
            return {
                "__dict__": [
                    [self.encode(k, where), self.encode(v, f"{where}[{k!r}]")]
                    for k, v in value.items()
                ]
            }
        if isinstance(value, type) or inspect.isroutine(value):
            return {"__ref__": _name_of(value, where)}
        return self._object(value, where)

    def _object(self, value, where: str) -> dict:
        cls = type(value)
        if isinstance(value, torch.nn.Module):
            raise TypeError(
                f"{where} is a {cls.__name__} instance, which cannot be saved by "
                "name: pass the class and its parameters instead (for example "
                "criterion=torch.nn.CrossEntropyLoss, criterion__weight=...)."
            )
        name = _name_of(cls, where)
        if dataclasses.is_dataclass(value):
            fields = {
                f.name: getattr(value, f.name)
                for f in dataclasses.fields(value)
                if f.init
            }
        elif hasattr(value, "_asdict"):  # a named tuple
            fields = value._asdict()
        elif cls.__module__.startswith("skprune.") and not isinstance(
            value, BaseEstimator
        ):
            # skprune's own callbacks: their whole state, as pickle would keep
            # it, restored on load without calling their constructor.
            return {"__instance__": name, "state": self.encode(_state(value), where)}
        elif hasattr(value, "get_params"):  # scikit-learn and skorch objects
            fields = value.get_params(deep=False)
            init = inspect.signature(cls).parameters.values()
            if not any(p.kind == p.VAR_KEYWORD for p in init):
                # Only constructor arguments: skorch callbacks also list their
                # private state here.
                accepted = {p.name for p in init}
                fields = {k: v for k, v in fields.items() if k in accepted}
        else:
            init = inspect.signature(cls).parameters.values()
            names = [
                p.name for p in init if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
            ]
            missing = [n for n in names if not hasattr(value, n)]
            if missing:
                raise TypeError(
                    f"{where}: cannot save a {name} instance: its constructor "
                    f"arguments {missing} are not attributes of it."
                )
            fields = {n: getattr(value, n) for n in names}
        return {"__object__": name, "params": self.encode(fields, where)}

    def _array(self, array: np.ndarray, where: str) -> dict:
        if array.dtype.kind in "US":
            return {"__ndarray__": array.tolist(), "dtype": array.dtype.str}
        if array.dtype.kind == "O":
            return {
                "__objects__": [self.encode(v, where) for v in array.ravel().tolist()],
                "shape": list(array.shape),
            }
        if array.dtype.kind not in "biuf":
            raise TypeError(f"{where}: cannot save an array of dtype {array.dtype}.")
        return {
            "__array__": self._store(array),
            "dtype": array.dtype.str,
            "shape": list(array.shape),
        }

    def _tensor(self, tensor: torch.Tensor, where: str) -> dict:
        tensor = tensor.detach()
        if tensor.layout != torch.strided:
            raise TypeError(f"{where}: cannot save a {tensor.layout} tensor.")
        tensor = tensor.cpu()
        record = {
            "__tensor__": None,
            "dtype": str(tensor.dtype).removeprefix("torch."),
            "shape": list(tensor.shape),
        }
        try:
            record["__tensor__"] = self._store(tensor.numpy())
        except TypeError:  # a dtype numpy lacks (bfloat16, float8, ...)
            flat = tensor.contiguous().reshape(-1)
            key = "t" + _digest(
                str(flat.dtype).encode(), flat.view(torch.uint8).numpy()
            )
            self.tensors[key] = flat
            record["__tensor__"] = key
            record["torch"] = True
        return record

    def _store(self, array: np.ndarray) -> str:
        """Store a numeric array flat, once per content; booleans packed to bits."""
        flat = np.ascontiguousarray(array).reshape(-1)
        if flat.dtype == np.bool_:
            flat = np.packbits(flat)
        # Native byte order, so that equal values share one entry.
        flat = flat.astype(flat.dtype.newbyteorder("="), copy=False)
        key = "a" + _digest(flat.dtype.str.encode(), flat)
        self.arrays.setdefault(key, flat)
        return key


def _digest(prefix: bytes, array: np.ndarray) -> str:
    digest = hashlib.sha256(prefix)
    digest.update(memoryview(np.ascontiguousarray(array)).cast("B"))
    return digest.hexdigest()[:32]


def _name_of(obj, where: str = "value") -> str:
    module, qualname = (
        getattr(obj, "__module__", None),
        getattr(obj, "__qualname__", ""),
    )
    if not module or "<" in qualname:
        raise TypeError(
            f"{where}: {obj!r} cannot be saved by name (a lambda or a local "
            "function or class); define it at the top level of a module."
        )
    return f"{module}.{qualname}"


def _dumps(document) -> bytes:
    return json.dumps(document, allow_nan=False, separators=(",", ":")).encode()


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    import skprune

    versions = {"skprune": skprune.__version__}
    for package in ("torch", "skorch", "scikit-learn", "numpy", "safetensors"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:  # pragma: no cover
            versions[package] = None
    return versions


# loading --------------------------------------------------------------------------


def load(
    path: str | os.PathLike,
    *,
    trusted: Iterable[str | type] | None = None,
    device: str | torch.device | None = "cpu",
):
    """Load an estimator saved by :func:`save`, without pickle and running no code.

    Parameters
    ----------
    path : str or path-like
    trusted : list of str, classes or functions, default=None
        Names (``"mypkg.MyModule"``) of classes and functions outside skprune,
        torch and skorch that the file may use: a user's own module, criterion,
        optimizer, callback or importance function. Only these are imported.
    device : str or torch.device or None, default="cpu"
        Device the fitted net (and the ``estimator`` parameter's net) is put on;
        None keeps the device it was saved from.

    Returns
    -------
    estimator
        The saved estimator, predicting exactly as it did.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ModelFileError
        When the file is not a skprune model, is truncated or corrupted (a
        checksum does not match), or was written by a newer format version.
    UntrustedTypeError
        When the file names classes or functions neither allowed nor trusted;
        nothing is imported then.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        if not os.path.exists(path):
            raise FileNotFoundError(f"No such file: {path!r}.")
        raise ModelFileError(f"{path!r} is not a file.")
    manifest, parts = _read_container(path)
    try:
        document = json.loads(parts[STATE_PART])
    except (ValueError, RecursionError) as exc:
        raise ModelFileError(f"{path!r}: {STATE_PART} is not valid JSON.") from exc
    trusted_names = {_trusted_name(t) for t in (trusted or ())}
    names = _referenced_names(document)
    if isinstance(document.get("net"), dict):
        names.add(document["net"].get("class"))
    untrusted = sorted(
        str(name)
        for name in names
        if name not in trusted_names and not _allowed(str(name))
    )
    if untrusted:
        raise UntrustedTypeError(untrusted)

    import skprune

    cls = getattr(skprune, manifest["estimator"], None)
    if manifest["estimator"] not in ESTIMATORS or cls is None:
        raise ModelFileError(
            f"{path!r} holds a {manifest['estimator']!r}, which this skprune "
            "cannot load."
        )
    decoder = _Decoder(parts, trusted_names, device)
    try:
        state = decoder.decode(document["state"])
        estimator = cls.__new__(cls)
        estimator.__dict__.update(state)
        if document["net"] is not None:
            estimator.estimator_ = decoder.net(document["net"])
        if document.get("scorer") is not None:
            from sklearn.metrics import check_scoring

            scoring = document["scorer"]["scoring"]
            if not (scoring is None or isinstance(scoring, str)):
                raise TypeError(f"scoring must be None or a name, got {scoring!r}")
            estimator.scorer_ = check_scoring(estimator, scoring=scoring)
        if device is not None and hasattr(
            estimator.__dict__.get("estimator"), "device"
        ):
            estimator.estimator.set_params(device=str(device))
    except (UntrustedTypeError, FileNotFoundError):
        raise
    except (KeyError, IndexError, ValueError, TypeError, RecursionError) as exc:
        raise ModelFileError(f"{path!r} is malformed: {exc}") from exc
    return estimator


def _read_container(path: str) -> tuple[dict, dict[str, bytes]]:
    """The manifest and every part, each checked against its checksum."""
    not_model = f"{path!r} is not a skprune model file"
    try:
        with zipfile.ZipFile(path) as archive:
            members = {info.filename: info for info in archive.infolist()}
            if MANIFEST not in members:
                raise ModelFileError(f"{not_model} (it has no {MANIFEST}).")
            manifest = json.loads(archive.read(MANIFEST))
            if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
                raise ModelFileError(f"{not_model} (its manifest is not skprune's).")
            version = manifest.get("format_version")
            if not isinstance(version, int) or version > FORMAT_VERSION:
                raise ModelFileError(
                    f"{path!r} was written in format version {version!r} by a newer "
                    f"skprune (versions {manifest.get('versions')}); this skprune "
                    f"reads format versions up to {FORMAT_VERSION}. Upgrade skprune."
                )
            expected = manifest["parts"]
            if set(members) != {MANIFEST, *expected} or STATE_PART not in expected:
                raise ModelFileError(
                    f"{path!r} is corrupted: it holds the parts {sorted(members)}, "
                    f"its manifest lists {sorted(expected)}."
                )
            parts = {}
            for name, record in expected.items():
                if members[name].file_size != record["bytes"]:
                    raise ModelFileError(
                        f"{path!r} is corrupted: part {name!r} has "
                        f"{members[name].file_size} bytes, its manifest says "
                        f"{record['bytes']}."
                    )
                data = archive.read(name)
                if hashlib.sha256(data).hexdigest() != record["sha256"]:
                    raise ModelFileError(
                        f"{path!r} is corrupted or was modified: the checksum of "
                        f"part {name!r} does not match its manifest."
                    )
                parts[name] = data
    except zipfile.BadZipFile as exc:
        raise ModelFileError(
            f"{not_model}, or it is truncated or corrupted: {exc}."
        ) from exc
    except (ValueError, KeyError, TypeError, EOFError) as exc:
        if isinstance(exc, ModelFileError):
            raise
        raise ModelFileError(f"{not_model}, or it is corrupted: {exc!r}.") from exc
    return manifest, parts


def _trusted_name(item) -> str:
    return item if isinstance(item, str) else _name_of(item)


def _referenced_names(node) -> set[str]:
    names = set()
    stack = [node]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key in ("__ref__", "__object__", "__instance__"):
                if isinstance(node.get(key), str):
                    names.add(node[key])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return names


def _allowed(name: str) -> bool:
    """Whether a name is on the allowlist, judged without importing anything."""
    try:
        obj = _lookup(name, importing=False)
    except (LookupError, AttributeError):
        return False
    module = obj.__module__
    if name in _BUILTIN_TYPES:
        return True
    if module == "numpy":
        return isinstance(obj, type) and issubclass(obj, np.generic)
    if module.startswith("skprune."):
        return module != "skprune.__main__" and (
            isinstance(obj, type) or inspect.isfunction(obj)
        )
    if module.startswith("skorch."):
        return isinstance(obj, type)
    if module.startswith(("torch.nn.functional", "torch.nn.init")):
        return inspect.isroutine(obj)
    if isinstance(obj, type) and module.startswith("torch."):
        from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau
        from torch.utils.data import DataLoader

        return obj is DataLoader or issubclass(
            obj,
            torch.nn.Module | torch.optim.Optimizer | LRScheduler | ReduceLROnPlateau,
        )
    return False


def _lookup(name: str, *, importing: bool):
    """The object a dotted name refers to, checked to carry that very name.

    Without ``importing``, only modules already imported are looked at.
    """
    parts = name.split(".")
    for split in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:split])
        module = sys.modules.get(module_name)
        if module is None and importing:
            try:
                module = importlib.import_module(module_name)
            except ImportError:
                continue
        if module is None:
            continue
        obj = module
        for attribute in parts[split:]:
            obj = getattr(obj, attribute)
        if (
            f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', '')}"
            != name
        ):
            raise LookupError(name)
        return obj
    raise LookupError(name)


class _Decoder:
    """Turns the JSON back into values; classes come only from checked names."""

    def __init__(self, parts: dict[str, bytes], trusted: set[str], device) -> None:
        from safetensors.numpy import load as load_numpy

        self.arrays = load_numpy(parts[ARRAYS_PART])
        self.tensors = {}
        if TENSORS_PART in parts:
            from safetensors.torch import load as load_torch

            self.tensors = load_torch(parts[TENSORS_PART])
        self.trusted = trusted
        self.device = None if device is None else torch.device(device)

    def resolve(self, name: str):
        if name in self.trusted:
            return _lookup(name, importing=True)
        if not _allowed(name):  # the names were checked up front; stay safe
            raise UntrustedTypeError([name])
        return _lookup(name, importing=False)

    def decode(self, node):
        if isinstance(node, list):
            return [self.decode(v) for v in node]
        if not isinstance(node, dict):
            return node
        if "__float__" in node:
            return float(node["__float__"])
        if "__scalar__" in node:
            return np.array(self.decode(node["__scalar__"]), dtype=node["dtype"])[()]
        if "__array__" in node:
            return self._array(node["__array__"], node["dtype"], node["shape"])
        if "__ndarray__" in node:
            return np.array(node["__ndarray__"], dtype=node["dtype"])
        if "__objects__" in node:
            array = np.empty(len(node["__objects__"]), dtype=object)
            array[:] = [self.decode(v) for v in node["__objects__"]]
            return array.reshape(node["shape"])
        if "__sparse__" in node:
            make = {"csr_matrix": sp.csr_matrix, "csr_array": sp.csr_array}[
                node["__sparse__"]
            ]
            return make(
                (
                    self.decode(node["data"]),
                    self.decode(node["indices"]),
                    self.decode(node["indptr"]),
                ),
                shape=tuple(node["shape"]),
            )
        if "__tensor__" in node:
            return self._tensor(node)
        if "__device__" in node:
            return torch.device(node["__device__"])
        if "__torch_dtype__" in node:
            dtype = getattr(torch, node["__torch_dtype__"])
            if not isinstance(dtype, torch.dtype):
                raise ValueError(f"unknown torch dtype {node['__torch_dtype__']!r}")
            return dtype
        if "__dtype__" in node:
            return np.dtype(node["__dtype__"])
        if "__tuple__" in node:
            return tuple(self.decode(v) for v in node["__tuple__"])
        if "__set__" in node:
            return {self.decode(v) for v in node["__set__"]}
        if "__dict__" in node:
            return {self.decode(k): self.decode(v) for k, v in node["__dict__"]}
        if "__ref__" in node:
            return self.resolve(node["__ref__"])
        if "__instance__" in node:
            cls = self.resolve(node["__instance__"])
            if not (isinstance(cls, type) and cls.__module__.startswith("skprune.")):
                raise TypeError(f"{node['__instance__']} is not a skprune class")
            instance = cls.__new__(cls)
            instance.__dict__.update(self.decode(node["state"]))
            return instance
        if "__object__" in node:
            cls = self.resolve(node["__object__"])
            if not isinstance(cls, type):
                raise TypeError(f"{node['__object__']} is not a class")
            return cls(**self.decode(node["params"]))
        return {k: self.decode(v) for k, v in node.items()}

    def _array(self, key: str, dtype: str, shape) -> np.ndarray:
        flat = self.arrays[key]
        count = math.prod(shape)
        if np.dtype(dtype) == np.bool_:
            return np.unpackbits(flat, count=count).astype(bool).reshape(shape)
        return flat.astype(np.dtype(dtype), copy=True).reshape(shape)

    def _tensor(self, node) -> torch.Tensor:
        dtype = getattr(torch, node["dtype"])
        if node.get("torch"):
            tensor = self.tensors[node["__tensor__"]].reshape(node["shape"])
        else:
            numpy_dtype = torch.empty(0, dtype=dtype).numpy().dtype.str
            tensor = torch.from_numpy(
                self._array(node["__tensor__"], numpy_dtype, node["shape"])
            )
        tensor = tensor.to(dtype)
        return tensor if self.device is None else tensor.to(self.device)

    def net(self, record: dict):
        """Rebuild a fitted skorch net, without training it."""
        cls = self.resolve(record["class"])
        net = cls(**self.decode(record["params"]))
        if self.device is not None:
            net.set_params(device=str(self.device))
        if "module_state" not in record:  # saved before it was initialised
            return net
        device = torch.device(net.device)
        cuda = [device.index or 0] if device.type == "cuda" else []
        # Initialising draws random weights that the saved ones replace: the
        # caller's random state is left as it was.
        with torch.random.fork_rng(devices=cuda):
            net.initialize()
        module_state = self.decode(record["module_state"])
        shrunk = _fit_shapes(net.module_, module_state)
        net.module_.load_state_dict(module_state)
        net.module_.to(net.device)
        if shrunk:
            net.initialize_optimizer()
        net.optimizer_.load_state_dict(self.decode(record["optimizer"]))
        callbacks = dict(net.callbacks_)
        for name, state in record["callback_states"].items():
            callbacks[name].__dict__.update(self.decode(state))
        from skorch.history import History

        net.history_ = History(self.decode(record["history"]))
        for name, value in self.decode(record["attributes"]).items():
            setattr(net, name, value)
        return net


def _fit_shapes(module: torch.nn.Module, state: dict) -> bool:
    """Shrink a fresh MLPModule to the saved shapes; whether it had to be shrunk.

    Structured pruning physically removes units and input features from an
    :class:`~skprune.MLPModule`; the module the net builds from its parameters
    has the original sizes.
    """
    from .compress import shrink_mlp_
    from .modules import MLPModule

    own = module.state_dict()
    if set(own) == set(state) and all(
        own[name].shape == state[name].shape for name in own
    ):
        return False
    if not isinstance(module, MLPModule):
        return False  # load_state_dict reports the mismatch
    hidden = [state[f"layers.{i}.bias"].shape[0] for i in range(len(module.layers) - 1)]
    index = state.get("layers.0.input_index")
    if index is None:
        index = torch.arange(state["layers.0.weight"].shape[0])
    # Indices on the CPU: they only select rows and columns of the fresh weights.
    shrink_mlp_(module, index.cpu(), [torch.arange(size) for size in hidden])
    return True

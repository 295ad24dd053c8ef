"""Data values in the JSON document, and the arrays they point to.

A value is JSON (numbers, strings, booleans, null, lists, objects) or one of a
few tagged objects, each a dict with one ``"__tag__"`` key and a fixed set of
other keys:

- ``__float__`` (a non-finite float), ``__scalar__`` (a numpy scalar),
  ``__tuple__``, ``__set__``, ``__dict__`` (a dict whose keys are not all plain
  strings), ``__dtype__`` and ``__torch_dtype__`` (from fixed sets of names),
  ``__device__``;
- ``__array__`` and ``__tensor__``: an entry of the safetensors part with the
  dtype and shape it has (booleans packed to bits); ``__strings__`` and
  ``__objects__``: arrays of strings and of plain scalars, in the JSON;
  ``__sparse__``: a CSR matrix of three arrays;
- ``__ref__``: a class or function, by its registry name (or, for a trusted
  one, its module path): only ever returned as a value, never called here;
- ``__type__``: an object of a registered type, rebuilt by the registry from
  its data-only ``fields``; ``__object__``: an instance of a trusted class,
  called with the file's keyword arguments.

:func:`survey` walks a document once before anything is built: it lists the
names that are neither registered nor trusted and adds up the bytes every array
will take, each checked against the stored entry it claims.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import inspect
import math

import numpy as np
import scipy.sparse as sp
import torch

from ..exceptions import ModelFileError, UntrustedTypeError
from ._container import is_count

#: The numpy dtypes arrays and scalars may have, by the names the file uses.
NUMPY_DTYPES = {
    name: np.dtype(name)
    for name in (
        "bool",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float16",
        "float32",
        "float64",
    )
}
#: The torch dtypes tensors may have, and the numpy dtype each is stored as
#: (bfloat16 as its bits).
TORCH_DTYPES = {
    "bool": (torch.bool, "bool"),
    "uint8": (torch.uint8, "uint8"),
    "int8": (torch.int8, "int8"),
    "int16": (torch.int16, "int16"),
    "int32": (torch.int32, "int32"),
    "int64": (torch.int64, "int64"),
    "float16": (torch.float16, "float16"),
    "bfloat16": (torch.bfloat16, "int16"),
    "float32": (torch.float32, "float32"),
    "float64": (torch.float64, "float64"),
}
_TORCH_NAMES = {dtype: name for name, (dtype, _) in TORCH_DTYPES.items()}
_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
MAX_NDIM = 32

#: Each tag and the keys its object has besides the tag.
TAGS = {
    "__float__": set(),
    "__scalar__": {"dtype"},
    "__tuple__": set(),
    "__set__": set(),
    "__dict__": set(),
    "__dtype__": set(),
    "__torch_dtype__": set(),
    "__device__": set(),
    "__array__": {"dtype", "shape"},
    "__tensor__": {"dtype", "shape"},
    "__strings__": {"shape"},
    "__objects__": {"shape"},
    "__sparse__": {"shape", "data", "indices", "indptr"},
    "__ref__": set(),
    "__type__": {"fields"},
    "__object__": {"params"},
}
_SPARSE_KINDS = {"csr_matrix": sp.csr_matrix, "csr_array": sp.csr_array}
_DEVICE_TYPES = ("cpu", "cuda", "mps", "xpu")
#: Tags whose value holds no further tagged nodes.
_LEAF_TAGS = {
    "__float__",
    "__scalar__",
    "__dtype__",
    "__torch_dtype__",
    "__device__",
    "__array__",
    "__tensor__",
    "__strings__",
    "__objects__",
    "__ref__",
}


def tag_of(node: dict, where: str) -> str | None:
    """The node's tag, after checking its keys; None for a plain dict."""
    tags = [key for key in node if key.startswith("__")]
    if not tags:
        return None
    if len(tags) != 1 or tags[0] not in TAGS or set(node) != {tags[0], *TAGS[tags[0]]}:
        raise ModelFileError(f"{where}: malformed object with keys {sorted(node)[:8]}.")
    return tags[0]


def name_of(obj, where: str = "value") -> str:
    """``module.qualname`` of a class or function defined at a module's top level."""
    module, qualname = (
        getattr(obj, "__module__", None),
        getattr(obj, "__qualname__", ""),
    )
    if not module or not qualname or "<" in qualname:
        raise TypeError(
            f"{where}: {obj!r} cannot be saved by name (a lambda or a local "
            "function or class); define it at the top level of a module."
        )
    return f"{module}.{qualname}"


# saving -------------------------------------------------------------------------


class Encoder:
    """Turns Python values into JSON, storing arrays once per content.

    Parameters
    ----------
    types : dict of type to (str, callable)
        Registered types: their registry name and their fields function.
    refs : dict of object to str
        Registered classes and functions, by registry name.
    options : dict
        Passed to the fields functions (``include_optimizer``).
    """

    def __init__(self, types: dict, refs: dict, options: dict) -> None:
        self.types = types
        self.refs = refs
        self.options = options
        self.arrays: dict[str, np.ndarray] = {}

    def arrays_part(self) -> bytes:
        from safetensors.numpy import save as save_numpy

        return save_numpy(self.arrays)

    def encode(self, value, where: str):
        if value is None or isinstance(value, bool | str):
            return value
        if isinstance(value, int) and not isinstance(value, np.generic):
            return int(value)
        if isinstance(value, float):
            return value if math.isfinite(value) else {"__float__": repr(value)}
        if isinstance(value, np.generic):
            return self._scalar(value, where)
        if isinstance(value, np.ndarray):
            return self.array(value, where)
        if sp.issparse(value):
            csr = value.tocsr()
            return {
                "__sparse__": "csr_array"
                if isinstance(value, sp.sparray)
                else "csr_matrix",
                "shape": list(csr.shape),
                "data": self.array(csr.data, where),
                "indices": self.array(csr.indices, where),
                "indptr": self.array(csr.indptr, where),
            }
        if isinstance(value, torch.Tensor):
            return self._tensor(value, where)
        if isinstance(value, torch.device):
            return {"__device__": str(value)}
        if isinstance(value, torch.dtype):
            if value not in _TORCH_NAMES:
                raise TypeError(f"{where}: cannot save the torch dtype {value}.")
            return {"__torch_dtype__": _TORCH_NAMES[value]}
        if isinstance(value, np.dtype):
            return {"__dtype__": _numpy_name(value, where)}
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
        if type(value) in self.types:
            name, fields = self.types[type(value)]
            return {
                "__type__": name,
                "fields": self.encode(fields(value, self.options), f"{where}<{name}>"),
            }
        if isinstance(value, type) or inspect.isroutine(value):
            try:
                return {"__ref__": self.refs.get(value) or name_of(value, where)}
            except TypeError:  # an unhashable routine: never registered
                return {"__ref__": name_of(value, where)}
        return self._object(value, where)

    def _scalar(self, value: np.generic, where: str) -> dict:
        if value.dtype.kind == "U":
            return {"__scalar__": str(value), "dtype": "str"}
        return {"__scalar__": value.item(), "dtype": _numpy_name(value.dtype, where)}

    def _object(self, value, where: str) -> dict:
        """An instance of an unregistered class: loads only if its class is trusted."""
        cls = type(value)
        if isinstance(value, torch.nn.Module):
            raise TypeError(
                f"{where} is a {cls.__name__} instance, which cannot be saved by "
                "name: pass the class and its parameters instead (for example "
                "criterion=torch.nn.CrossEntropyLoss, criterion__weight=...)."
            )
        name = name_of(cls, where)
        if dataclasses.is_dataclass(value):
            fields = {
                f.name: getattr(value, f.name)
                for f in dataclasses.fields(value)
                if f.init
            }
        elif hasattr(value, "_asdict"):  # a named tuple
            fields = value._asdict()
        elif hasattr(value, "get_params"):  # scikit-learn and skorch objects
            fields = value.get_params(deep=False)
            init = inspect.signature(cls).parameters.values()
            if not any(p.kind == p.VAR_KEYWORD for p in init):
                accepted = {p.name for p in init}  # skorch lists private state too
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

    def array(self, array: np.ndarray, where: str) -> dict:
        if array.dtype.kind == "U":
            return {"__strings__": array.ravel().tolist(), "shape": list(array.shape)}
        if array.dtype.kind == "O":
            items = array.ravel().tolist()
            if not all(
                item is None or isinstance(item, bool | int | float | str)
                for item in items
            ):
                raise TypeError(f"{where}: cannot save an object array of non-scalars.")
            return {
                "__objects__": [self.encode(v, where) for v in items],
                "shape": list(array.shape),
            }
        return {
            "__array__": self._store(array, where),
            "dtype": _numpy_name(array.dtype, where),
            "shape": list(array.shape),
        }

    def _tensor(self, tensor: torch.Tensor, where: str) -> dict:
        tensor = tensor.detach()
        if tensor.layout != torch.strided or tensor.dtype not in _TORCH_NAMES:
            raise TypeError(
                f"{where}: cannot save a {tensor.layout} tensor of {tensor.dtype}."
            )
        tensor = tensor.cpu().contiguous()
        name = _TORCH_NAMES[tensor.dtype]
        if tensor.dtype == torch.bfloat16:
            tensor = tensor.view(torch.int16)
        return {
            "__tensor__": self._store(tensor.numpy(), where),
            "dtype": name,
            "shape": list(tensor.shape),
        }

    def _store(self, array: np.ndarray, where: str) -> str:
        """Store a numeric array flat, once per content; booleans packed to bits."""
        _numpy_name(array.dtype, where)
        flat = np.ascontiguousarray(array).reshape(-1)
        if flat.dtype == np.bool_:
            flat = np.packbits(flat)
        flat = flat.astype(flat.dtype.newbyteorder("<"), copy=False)
        digest = hashlib.sha256(flat.dtype.str.encode())
        digest.update(memoryview(flat).cast("B"))
        key = "a" + digest.hexdigest()[:32]
        self.arrays.setdefault(key, flat)
        return key


def _numpy_name(dtype: np.dtype, where: str) -> str:
    name = dtype.name
    if name not in NUMPY_DTYPES:
        raise TypeError(f"{where}: cannot save an array of dtype {dtype}.")
    return name


# the survey: names and sizes, before anything is built ---------------------------


def _shape(node: dict, where: str) -> list[int]:
    shape = node["shape"]
    if (
        not isinstance(shape, list)
        or len(shape) > MAX_NDIM
        or not all(is_count(n) for n in shape)
    ):
        raise ModelFileError(f"{where}: malformed shape {shape!r:.80}.")
    return shape


def stored_array(node: dict, arrays: dict, where: str):
    """The flat stored entry of an ``__array__``/``__tensor__`` node, checked to
    hold exactly what its dtype and shape declare; with the dtype it becomes and
    its shape."""
    tag = "__array__" if "__array__" in node else "__tensor__"
    dtype_name, key = node["dtype"], node[tag]
    table = NUMPY_DTYPES if tag == "__array__" else TORCH_DTYPES
    if not isinstance(dtype_name, str) or dtype_name not in table:
        raise ModelFileError(f"{where}: unknown dtype {dtype_name!r:.80}.")
    storage = np.dtype(dtype_name if tag == "__array__" else table[dtype_name][1])
    shape = _shape(node, where)
    if not isinstance(key, str) or key not in arrays:
        raise ModelFileError(f"{where}: no stored array {key!r:.80}.")
    flat, count = arrays[key], math.prod(shape)
    expected_dtype, expected_size = storage, count
    if storage == np.bool_:
        expected_dtype, expected_size = np.dtype(np.uint8), -(-count // 8)
    if flat.dtype != expected_dtype.newbyteorder("<") or flat.size != expected_size:
        raise ModelFileError(
            f"{where}: declares shape {shape} of {dtype_name}, but its stored array "
            f"holds {flat.size} values of {flat.dtype.name}."
        )
    return flat, storage, shape


def survey(document, arrays: dict, known, where: str) -> tuple[list[str], int]:
    """The names the document uses that ``known`` does not accept, and the bytes
    its arrays will take once rebuilt; every node's tag and shape checked."""
    unknown: set[str] = set()
    total = 0
    stack = [(document, where)]
    while stack:
        node, at = stack.pop()
        if isinstance(node, list):
            stack.extend((value, at) for value in node)
            continue
        if not isinstance(node, dict):
            continue
        tag = tag_of(node, at)
        if tag in ("__ref__", "__object__", "__type__"):
            name = node[tag]
            if not isinstance(name, str):
                raise ModelFileError(f"{at}: a {tag} that is not a name.")
            if tag == "__type__" and not known.is_type(name):
                raise ModelFileError(
                    f"{at}: unknown type {name!r:.200}; written by a newer skprune?"
                )
            if tag != "__type__" and not known.accepts(name, tag):
                unknown.add(name)
        if tag in ("__array__", "__tensor__"):
            _, storage, shape = stored_array(node, arrays, at)
            total += math.prod(shape) * storage.itemsize
        if tag in ("__strings__", "__objects__"):
            items = node[tag]
            shape = _shape(node, at)
            if not isinstance(items, list) or len(items) != math.prod(shape):
                raise ModelFileError(f"{at}: {tag} does not hold its shape {shape}.")
            if tag == "__strings__":
                if not all(isinstance(item, str) for item in items):
                    raise ModelFileError(f"{at}: __strings__ holds a non-string.")
                total += len(items) * 4 * max((len(item) for item in items), default=1)
            else:
                total += 8 * len(items)
        if tag in _LEAF_TAGS:
            continue
        for key, value in node.items():
            if tag is None:
                stack.append((value, f"{at}.{key}"))
            elif key != tag or tag in ("__tuple__", "__set__", "__dict__"):
                stack.append((value, f"{at}<{node[tag]}>" if tag == "__type__" else at))
    return sorted(unknown), total


# loading ------------------------------------------------------------------------


class Decoder:
    """Turns JSON back into values; classes and functions only from the registry
    or from names the caller trusts, and no function called.

    Parameters
    ----------
    arrays : dict of str to ndarray
        The stored flat arrays (read-only views).
    registry : Registry
        Registered types (name to entry) and references (name to object, role).
    trusted : dict of str to object or None
        Trusted names; None until imported, on first use.
    device : torch.device or None
        Where tensors go.
    max_bytes : int
        The cap on what the file may make the loader allocate.
    """

    def __init__(self, arrays, registry, trusted: dict, device, max_bytes: int):
        self.arrays = arrays
        self.registry = registry
        self.trusted = trusted
        self.device = device
        self.max_bytes = max_bytes
        #: ids of the instances of trusted classes built so far.
        self.trusted_instances: set[int] = set()

    # references --------------------------------------------------------------

    def accepts(self, name: str, tag: str) -> bool:
        """Whether a name may be used, judged by a dict lookup: nothing imported."""
        return (tag == "__ref__" and name in self.registry.refs) or name in self.trusted

    def is_type(self, name: str) -> bool:
        return name in self.registry.types

    def resolve(self, name: str, where: str):
        if name in self.registry.refs:
            return self.registry.refs[name][0]
        if name not in self.trusted:  # survey() refused it already; stay safe
            raise UntrustedTypeError([name])
        if self.trusted[name] is None:
            self.trusted[name] = import_trusted(name)
        return self.trusted[name]

    def role(self, obj) -> str | None:
        """``"trusted"``, a registered reference's role, or None."""
        if any(obj is value for value in self.trusted.values()):
            return "trusted"
        try:
            return self.registry.roles.get(obj)
        except TypeError:  # unhashable
            return None

    # values ------------------------------------------------------------------

    def decode(self, node, where: str):
        if isinstance(node, list):
            return [self.decode(v, f"{where}[{i}]") for i, v in enumerate(node)]
        if not isinstance(node, dict):
            return node
        tag = tag_of(node, where)
        if tag is None:
            return {k: self.decode(v, f"{where}.{k}") for k, v in node.items()}
        value = node[tag]
        if tag == "__float__":
            if value not in _NON_FINITE:
                raise ModelFileError(f"{where}: {value!r:.80} is not a float.")
            return _NON_FINITE[value]
        if tag == "__scalar__":
            return self._scalar(value, node["dtype"], where)
        if tag in ("__array__", "__tensor__"):
            return (
                self._array(node, where)
                if tag == "__array__"
                else self._tensor(node, where)
            )
        if tag == "__strings__":
            return np.array(value, dtype=str).reshape(node["shape"])
        if tag == "__objects__":
            array = np.empty(len(value), dtype=object)
            if not all(
                v is None or isinstance(v, bool | int | float | str) for v in value
            ):
                raise ModelFileError(f"{where}: __objects__ holds a non-scalar.")
            array[:] = value
            return array.reshape(node["shape"])
        if tag == "__sparse__":
            return self._sparse(node, where)
        if tag == "__device__":
            return parse_device(value, where)
        if tag == "__torch_dtype__":
            if not isinstance(value, str) or value not in TORCH_DTYPES:
                raise ModelFileError(f"{where}: unknown torch dtype {value!r:.80}.")
            return TORCH_DTYPES[value][0]
        if tag == "__dtype__":
            if not isinstance(value, str) or value not in NUMPY_DTYPES:
                raise ModelFileError(f"{where}: unknown dtype {value!r:.80}.")
            return NUMPY_DTYPES[value]
        if tag in ("__tuple__", "__set__", "__dict__"):
            return self._collection(tag, value, where)
        if tag == "__ref__":
            return self.resolve(value, where)
        if tag == "__type__":
            return self.registry.rebuild(
                value, node["fields"], self, f"{where}<{value}>"
            )
        return self._trusted_object(value, node["params"], where)

    def fields(self, node, where: str) -> dict:
        """A decoded dict of fields (str keys)."""
        fields = self.decode(node, where)
        if not isinstance(fields, dict):
            raise ModelFileError(f"{where}: fields are not an object.")
        return fields

    def _collection(self, tag: str, value, where: str):
        if not isinstance(value, list):
            raise ModelFileError(f"{where}: {tag} is not a list.")
        items = self.decode(value, where)
        try:
            if tag == "__tuple__":
                return tuple(items)
            if tag == "__set__":
                return set(items)
            if not all(isinstance(pair, list) and len(pair) == 2 for pair in items):
                raise ModelFileError(f"{where}: __dict__ is not a list of pairs.")
            return {key: item for key, item in items}
        except TypeError as exc:  # an unhashable key or member
            raise ModelFileError(f"{where}: {exc}") from exc

    def _scalar(self, value, dtype: str, where: str):
        if dtype == "str" and isinstance(value, str):
            return np.str_(value)
        if (
            not isinstance(dtype, str)
            or dtype not in NUMPY_DTYPES
            or not isinstance(value, bool | int | float)
        ):
            raise ModelFileError(f"{where}: malformed numpy scalar.")
        try:
            with np.errstate(all="ignore"):
                return np.array(value, dtype=NUMPY_DTYPES[dtype])[()]
        except (OverflowError, ValueError) as exc:
            raise ModelFileError(f"{where}: {exc}") from exc

    def _array(self, node: dict, where: str) -> np.ndarray:
        flat, storage, shape = stored_array(node, self.arrays, where)
        count = math.prod(shape)
        if storage == np.bool_:
            return np.unpackbits(flat, count=count).view(bool).reshape(shape)
        return flat.astype(storage, copy=True).reshape(shape)

    def _tensor(self, node: dict, where: str) -> torch.Tensor:
        tensor = torch.from_numpy(self._array(_as_array_node(node), where))
        dtype = TORCH_DTYPES[node["dtype"]][0]
        if dtype == torch.bfloat16:
            tensor = tensor.view(torch.bfloat16)
        return tensor if self.device is None else tensor.to(self.device)

    def _sparse(self, node: dict, where: str):
        kind = node["__sparse__"]
        if kind not in _SPARSE_KINDS:
            raise ModelFileError(f"{where}: unknown sparse kind {kind!r:.80}.")
        shape = node["shape"]
        if not (
            isinstance(shape, list)
            and len(shape) == 2
            and all(is_count(n) for n in shape)
        ):
            raise ModelFileError(f"{where}: malformed sparse shape {shape!r:.80}.")
        parts = {}
        for part in ("data", "indices", "indptr"):
            parts[part] = self.decode(node[part], f"{where}.{part}")
            if not isinstance(parts[part], np.ndarray) or parts[part].ndim != 1:
                raise ModelFileError(f"{where}.{part} is not a 1-d array.")
        check_csr(parts["data"], parts["indices"], parts["indptr"], shape, where)
        return _SPARSE_KINDS[kind](
            (parts["data"], parts["indices"], parts["indptr"]), shape=tuple(shape)
        )

    def _trusted_object(self, name: str, params, where: str):
        cls = self.resolve(name, where)
        if not isinstance(cls, type):
            raise ModelFileError(f"{where}: {name} is not a class.")
        params = self.fields(params, f"{where}<{name}>")
        instance = cls(**params)
        self.trusted_instances.add(id(instance))
        return instance


def _as_array_node(node: dict) -> dict:
    """An ``__tensor__`` node as the ``__array__`` node of its storage."""
    return {
        "__array__": node["__tensor__"],
        "dtype": TORCH_DTYPES[node["dtype"]][1],
        "shape": node["shape"],
    }


def check_csr(data, indices, indptr, shape, where: str) -> None:
    """A CSR structure that indexes only inside its shape."""
    n_rows, n_columns = shape
    if indices.dtype.kind not in "iu" or indptr.dtype.kind not in "iu":
        raise ModelFileError(f"{where}: CSR indices are not integers.")
    if data.dtype.kind not in "biuf":
        raise ModelFileError(f"{where}: CSR data of dtype {data.dtype} is not numeric.")
    if len(indptr) != n_rows + 1 or indptr[0] != 0:
        raise ModelFileError(
            f"{where}: CSR indptr must have {n_rows + 1} entries starting at 0."
        )
    if np.any(np.diff(indptr.astype(np.int64)) < 0) or not (
        indptr[-1] == len(indices) == len(data)
    ):
        raise ModelFileError(
            f"{where}: CSR indptr must increase to the number of stored values."
        )
    if len(indices) and (indices.min() < 0 or indices.max() >= n_columns):
        raise ModelFileError(
            f"{where}: CSR column indices must lie in [0, {n_columns})."
        )


def parse_device(value, where: str) -> torch.device:
    """A device name of a known type (``"cpu"``, ``"cuda:1"``)."""
    if isinstance(value, str) and len(value) < 32:
        kind, _, index = value.partition(":")
        if kind in _DEVICE_TYPES and (not index or index.isdigit()):
            return torch.device(value)
    raise ModelFileError(f"{where}: {value!r:.80} is not a device.")


def import_trusted(name: str):
    """The object a trusted dotted name refers to, importing its module."""
    module_name, attributes = name, []
    module = None
    while "." in module_name:
        module_name, _, attribute = module_name.rpartition(".")
        attributes.insert(0, attribute)
        try:
            module = importlib.import_module(module_name)
            break
        except ImportError:
            continue
    problem = f"no importable module in {name!r}"
    if module is not None:
        obj = module
        try:
            for attribute in attributes:
                obj = getattr(obj, attribute)
        except AttributeError:
            problem = f"{module_name!r} has no attribute {'.'.join(attributes)!r}"
        else:
            found = (
                f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', '')}"
            )
            if found == name:
                return obj
            problem = f"it refers to {found!r}, defined elsewhere"
    raise ImportError(f"The trusted name {name!r} cannot be loaded: {problem}.")


def check_finite(value, where: str) -> None:
    """Refuse NaN or infinite values in an array, tensor or sparse matrix."""
    if sp.issparse(value):
        value = value.data
    if isinstance(value, torch.Tensor):
        ok = not value.is_floating_point() or bool(torch.isfinite(value).all())
    else:
        ok = np.asarray(value).dtype.kind != "f" or bool(np.isfinite(value).all())
    if not ok:
        raise ModelFileError(f"{where} holds NaN or infinite values.")

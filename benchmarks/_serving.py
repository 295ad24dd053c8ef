"""What serving a model costs, measured the same way for every model.

Shared by ``benchmarks/deploy.py`` and ``benchmarks/onnx_export.py``:

- :func:`resident_bytes`: the bytes of every numpy array, torch tensor and
  bytes buffer reachable from a model, each buffer once, walked after the
  model has predicted (so that caches made at the first prediction count).
  The walk follows attributes, containers, ``functools.partial`` and closures,
  never a function's globals, a module or a class. Memory held in C++ (a
  fastText model, an onnxruntime session) cannot be walked: callers say what
  they report instead.
- :func:`batch_seconds` and :func:`row_seconds`: the whole test set in one
  call, repeated; one row at a time over ``n_rows`` rows, each timed alone.
  Both after one untimed call, so that compiling and caching are excluded.
- :func:`spread`: median and range of repeated timings, as the tables show them.
- :func:`model_specs`: the granularities and compress dtypes the installed
  skprune declares, read from its parameter declarations and the signature of
  ``compress`` (never by trying values).
"""

from __future__ import annotations

import functools
import gc
import inspect
import statistics
import time
import types

import numpy as np

try:
    import torch
except ImportError:  # pragma: no cover - skprune needs torch
    torch = None

_SKIPPED = (types.ModuleType, type, types.BuiltinFunctionType)


def _buffer_key_and_size(obj) -> tuple[int, int] | None:
    """A key naming ``obj``'s memory (shared by views) and its size, if a buffer."""
    if isinstance(obj, np.ndarray):
        root = obj
        while isinstance(root.base, np.ndarray):
            root = root.base
        if root.base is not None and not isinstance(root.base, np.ndarray):
            # A view of foreign memory (torch, bytes): count what the view spans.
            return (obj.__array_interface__["data"][0], obj.nbytes)
        return (id(root), root.nbytes)
    if torch is not None and isinstance(obj, torch.Tensor):
        if obj.layout != torch.strided:
            return None  # a sparse tensor's parts are tensors the walk reaches
        storage = obj.untyped_storage()
        return (storage.data_ptr(), storage.nbytes())
    if isinstance(obj, bytes | bytearray) and len(obj) > 1024:
        return (id(obj), len(obj))
    return None


def _children(obj):
    """What a model's data can hide behind; never globals, modules or classes."""
    if isinstance(obj, dict):
        return list(obj.values())
    if isinstance(obj, list | tuple | set | frozenset):
        return list(obj)
    if isinstance(obj, functools.partial):
        return [obj.func, *obj.args, *obj.keywords.values()]
    if isinstance(obj, types.FunctionType | types.MethodType):
        func = getattr(obj, "__func__", obj)
        cells = [c.cell_contents for c in (func.__closure__ or ()) if _filled(c)]
        return [*cells, *(func.__defaults__ or ()), getattr(obj, "__self__", None)]
    if torch is not None and isinstance(obj, torch.Tensor):
        if obj.layout == torch.strided:
            return []
        if obj.layout == torch.sparse_coo:
            return [obj._indices(), obj._values()]
        return [obj.crow_indices(), obj.col_indices(), obj.values()]
    if torch is not None and isinstance(obj, torch.nn.Module):
        return [*obj.parameters(), *obj.buffers(), obj.__dict__]
    if hasattr(obj, "__dict__"):
        return list(vars(obj).values()) + _slots(obj)
    return _slots(obj)


def _filled(cell) -> bool:
    try:
        cell.cell_contents  # noqa: B018 - an empty cell raises
    except ValueError:
        return False
    return True


def _slots(obj) -> list:
    names = [n for cls in type(obj).__mro__ for n in getattr(cls, "__slots__", ())]
    return [getattr(obj, n) for n in names if isinstance(n, str) and hasattr(obj, n)]


def resident_bytes(model) -> int:
    """Bytes of the distinct array buffers reachable from ``model`` (see module)."""
    seen_objects, seen_buffers, total = set(), set(), 0
    stack = [model]
    while stack:
        obj = stack.pop()
        if obj is None or id(obj) in seen_objects or isinstance(obj, _SKIPPED):
            continue
        if type(obj).__module__.startswith("numba"):
            continue  # compiled kernels: code, not the model's data
        if isinstance(obj, str | int | float | bool | complex):
            continue
        seen_objects.add(id(obj))
        buffer = _buffer_key_and_size(obj)
        if buffer is not None:
            key, size = buffer
            if key not in seen_buffers:
                seen_buffers.add(key)
                total += size
            continue
        stack.extend(_children(obj))
    return total


def batch_seconds(predict, X, repeats: int) -> list[float]:
    """Seconds of ``predict(X)`` over ``repeats`` calls, after one untimed call."""
    predict(X)
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        predict(X)
        times.append(time.perf_counter() - start)
    return times


def row_seconds(predict, rows) -> list[float]:
    """Seconds of ``predict(row)`` for each row of ``rows``, each timed alone."""
    predict(rows[0])
    times = []
    for row in rows:
        start = time.perf_counter()
        predict(row)
        times.append(time.perf_counter() - start)
    return times


def spread(times: list[float], scale: float = 1e3) -> dict:
    """Median, min and max of ``times`` times ``scale`` (milliseconds by default)."""
    scaled = [t * scale for t in times]
    return {
        "median": statistics.median(scaled),
        "min": min(scaled),
        "max": max(scaled),
        "n": len(scaled),
    }


def quartiles(times: list[float], scale: float = 1e6) -> dict:
    """Median and interquartile range (microseconds by default), for row timings."""
    q1, median, q3 = np.percentile(np.asarray(times) * scale, [25, 50, 75])
    return {"median": float(median), "q1": float(q1), "q3": float(q3), "n": len(times)}


def model_specs() -> tuple[list[str], list[str]]:
    """The granularities and compress dtypes the installed skprune declares.

    Granularities from the ``granularity`` entry of
    :data:`skprune._params.PRUNING_PARAMETERS`; dtypes ``["float32"]``, plus
    ``"int8"`` when :meth:`skprune.PrunedClassifier.compress` takes ``dtype``.
    """
    from skprune import PrunedClassifier
    from skprune._params import PRUNING_PARAMETERS

    (granularity,) = [p for p in PRUNING_PARAMETERS if p.name == "granularity"]
    (options,) = [c.options for c in granularity.constraints if hasattr(c, "options")]
    order = ["weight", "block", "neuron", "feature"]
    granularities = [g for g in order if g in options]
    granularities += sorted(set(options) - set(order))
    dtypes = ["float32"]
    if "dtype" in inspect.signature(PrunedClassifier.compress).parameters:
        dtypes.append("int8")
    return granularities, dtypes


def compressed(estimator, dtype: str):
    """``estimator.compress()``; ``dtype`` passed only for int8 (float32: default)."""
    if dtype == "float32":
        return estimator.compress()
    return estimator.compress(dtype=dtype)


def markdown_table(header: list[str], rows: list[list]) -> str:
    """A GitHub markdown table, first column left-aligned, the others right."""
    align = [":--"] + ["--:"] * (len(header) - 1)
    lines = [header, align, *rows]
    return "\n".join("| " + " | ".join(map(str, line)) + " |" for line in lines)

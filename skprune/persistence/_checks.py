"""Checks of the fields a record holds: each returns the value or raises.

A rebuild passes its fields through :func:`take` with one check per field, so a
wrong type anywhere is a :class:`ModelFileError` naming the field.
"""

from __future__ import annotations

import inspect
from numbers import Integral

import numpy as np
import torch

from ..exceptions import ModelFileError
from ._values import check_finite

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


def fail(where: str, what: str):
    raise ModelFileError(f"{where} must be {what}.")


def integer(low=0):
    def check(value, where):
        if not isinstance(value, Integral) or isinstance(value, bool) or value < low:
            fail(where, f"an integer >= {low}")
        return int(value)

    return check


def real(value, where):
    if not isinstance(value, int | float | np.floating | np.integer) or isinstance(
        value, bool
    ):
        fail(where, "a number")
    return float(value)


def boolean(value, where):
    if not isinstance(value, bool | np.bool_):
        fail(where, "a bool")
    return bool(value)


def string(value, where):
    if not isinstance(value, str):
        fail(where, "a string")
    return value


def optional(check):
    return lambda value, where: None if value is None else check(value, where)


def list_of(check):
    def checked(value, where):
        if not isinstance(value, list | tuple):
            fail(where, "a list")
        return [check(item, f"{where}[{i}]") for i, item in enumerate(value)]

    return checked


def dict_of(check):
    def checked(value, where):
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            fail(where, "a dict with string keys")
        return {k: check(v, f"{where}[{k!r}]") for k, v in value.items()}

    return checked


def array(kinds="biufUO", ndim=None):
    def check(value, where):
        if not isinstance(value, np.ndarray) or value.dtype.kind not in kinds:
            fail(where, f"an array of kind {kinds!r}")
        if ndim is not None and value.ndim != ndim:
            fail(where, f"{ndim}-dimensional")
        check_finite(value, where)
        return value

    return check


def tensor(kinds=None):
    def check(value, where):
        if not isinstance(value, torch.Tensor):
            fail(where, "a tensor")
        if kinds == "bool" and value.dtype != torch.bool:
            fail(where, "a tensor of bools")
        check_finite(value, where)
        return value

    return check


DATA_TYPES = (
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
        elif not (item is None or isinstance(item, DATA_TYPES)):
            fail(where, f"plain data, not a {type(item).__name__}")
    return value


def rows(value, where):
    """A list of dicts of plain data (history rows, reports)."""
    return list_of(dict_of(data))(value, where)


def instance_of(cls):
    def check(value, where):
        if not isinstance(value, cls):
            fail(where, f"a {cls.__name__}")
        return value

    return check


def callable_value(decoder, roles=("function",)):
    """A class or function the registry gives one of ``roles``, or a trusted one."""

    def check(value, where):
        if decoder.role(value) not in (*roles, "trusted"):
            fail(where, f"a registered {' or '.join(roles)} or a trusted name")
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
                or isinstance(leaf, DATA_TYPES)
                or id(leaf) in decoder.trusted_instances
            ):
                raise ModelFileError(
                    f"{where}.{key}: a {type(leaf).__name__} where data is expected."
                )

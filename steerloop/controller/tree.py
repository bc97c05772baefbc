"""Estimator snapshots as plain trees, for JSON snapshots and store wire formats.

Every estimator's snapshot is a frozen dataclass of numpy float arrays, numbers, strings,
``None``, tuples, mappings and nested snapshots. :func:`to_tree` turns one into a tree of
dicts, lists and scalars; :func:`from_tree` rebuilds it from the dataclass's own type hints,
so no estimator repeats its fields in a second schema. Float arrays become either the arrays
themselves (``arrays="raw"``, for a binary codec) or ``{"shape": [...], "f8": base64}``
(``arrays="base64"``): the standard base64 of the little-endian IEEE-754 float64 bytes, so
every bit survives JSON, NaN and −0.0 included.

Examples
--------
>>> import numpy as np
>>> from steerloop.estimators.kalman import KalmanState
>>> state = KalmanState(np.array([0.5, -0.0]), np.eye(2), 3)
>>> tree = to_tree(state)
>>> tree["mean"]
{'shape': [2], 'f8': 'AAAAAAAA4D8AAAAAAAAAgA=='}
>>> again = from_tree(KalmanState, tree)
>>> again.count, again.mean.tobytes() == state.mean.tobytes()
(3, True)
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, Union

import numpy as np

__all__ = ["TreeError", "from_tree", "to_tree"]

_T = TypeVar("_T")
_FLOAT64 = np.dtype("<f8")


class TreeError(ValueError):
    """A tree does not describe the snapshot type it is read as (message: where and why)."""


def to_tree(value: Any, *, arrays: Literal["base64", "raw"] = "base64") -> Any:
    """``value`` (a snapshot dataclass or a part of one) as a tree (module docstring)."""
    names = _dataclass_names(type(value))
    if names is not None:
        return {name: to_tree(getattr(value, name), arrays=arrays) for name in names}
    if isinstance(value, np.ndarray):
        array = np.asarray(value, dtype=_FLOAT64, order="C")  # 0-d stays 0-d
        if arrays == "raw":
            return array
        return {"shape": list(array.shape), "f8": base64.b64encode(array.tobytes()).decode("ascii")}
    if isinstance(value, Mapping):
        return {str(key): to_tree(item, arrays=arrays) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return [to_tree(item, arrays=arrays) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


_NAMES: dict[type, tuple[str, ...] | None] = {}


def _dataclass_names(kind: type) -> tuple[str, ...] | None:
    """Field names of a dataclass type (``None`` for any other type), once per type."""
    try:
        return _NAMES[kind]
    except KeyError:
        names = None
        if dataclasses.is_dataclass(kind):
            names = tuple(f.name for f in dataclasses.fields(kind))
        _NAMES[kind] = names
        return names


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_tree(cls: type[_T], tree: Any, where: str = "") -> _T:
    """Rebuild a snapshot of type ``cls`` from :func:`to_tree` output (either array form).

    Raises
    ------
    TreeError
        When the tree does not fit the type (names the path of the first problem).
    """
    return typing.cast(_T, _read(cls, tree, where or cls.__name__))


_Reader = typing.Callable[[Any, str], Any]


def _read(kind: Any, tree: Any, where: str) -> Any:
    return _reader(kind)(tree, where)


@functools.cache
def _reader(kind: Any) -> _Reader:
    """The function that reads a tree as ``kind``, built once per type (from its hints)."""
    origin = typing.get_origin(kind)
    if origin in (Union, types.UnionType):
        return _union_reader(kind)
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        return _dataclass_reader(kind)
    if origin is np.ndarray or kind is np.ndarray:
        return _array
    if origin in (Mapping, dict, typing.Mapping):
        return _mapping_reader(typing.get_args(kind)[1])
    if origin is tuple:
        return _tuple_reader(typing.get_args(kind)[0])
    return functools.partial(_scalar, kind)


def _union_reader(kind: Any) -> _Reader:
    options = typing.get_args(kind)
    optional = type(None) in options

    def read(tree: Any, where: str) -> Any:
        if tree is None and optional:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _reader(option)(tree, where)
            except TreeError:
                continue
        raise TreeError(f"{where}: {type(tree).__name__} fits none of {options}")

    return read


def _dataclass_reader(kind: type) -> _Reader:
    names = [f.name for f in dataclasses.fields(kind)]
    known = frozenset(names)
    fields: list[tuple[str, _Reader]] = []

    def read(tree: Any, where: str) -> Any:
        if not isinstance(tree, Mapping):
            raise TreeError(f"{where}: expected an object, got {type(tree).__name__}")
        if len(tree) != len(names) or not known.issuperset(tree):
            unknown = set(tree) - known
            if unknown:
                raise TreeError(f"{where}: unknown field(s) {sorted(unknown)}")
            missing = [name for name in names if name not in tree]
            if missing:
                raise TreeError(f"{where}: missing field(s) {missing}")
        if not fields:  # resolved on first use (a type may refer to itself)
            hints = _hints(kind)
            fields.extend((name, _reader(hints[name])) for name in names)
        return kind(
            **{name: read_field(tree[name], f"{where}.{name}") for name, read_field in fields}
        )

    return read


def _mapping_reader(item: Any) -> _Reader:
    def read(tree: Any, where: str) -> Any:
        if not isinstance(tree, Mapping):
            raise TreeError(f"{where}: expected an object, got {type(tree).__name__}")
        read_item = _reader(item)
        return {str(key): read_item(value, f"{where}.{key}") for key, value in tree.items()}

    return read


def _tuple_reader(item: Any) -> _Reader:
    def read(tree: Any, where: str) -> Any:
        if not isinstance(tree, list | tuple):
            raise TreeError(f"{where}: expected a list, got {type(tree).__name__}")
        read_item = _reader(item)
        return tuple(read_item(value, f"{where}[{i}]") for i, value in enumerate(tree))

    return read


def _scalar(kind: Any, tree: Any, where: str) -> Any:
    if kind is float:
        if isinstance(tree, bool) or not isinstance(tree, int | float):
            raise TreeError(f"{where}: expected a number, got {type(tree).__name__}")
        return float(tree)
    if kind is int or kind is bool or kind is str:
        if type(tree) is not kind:
            raise TreeError(f"{where}: expected {kind.__name__}, got {type(tree).__name__}")
        return tree
    if kind is Any:
        return tree
    raise TreeError(f"{where}: cannot read type {kind!r}")


def _array(tree: Any, where: str) -> np.ndarray[Any, np.dtype[np.float64]]:
    if isinstance(tree, np.ndarray):
        return np.array(tree, dtype=np.float64)
    if not (isinstance(tree, Mapping) and set(tree) == {"shape", "f8"}):
        raise TreeError(f"{where}: expected {{'shape': [...], 'f8': base64}}")
    shape = tree["shape"]
    if not (isinstance(shape, list) and all(type(n) is int and n >= 0 for n in shape)):
        raise TreeError(f"{where}.shape: expected a list of sizes")
    try:
        raw = base64.b64decode(str(tree["f8"]).encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as error:
        raise TreeError(f"{where}.f8: not base64 ({error})") from None
    if len(raw) != 8 * int(np.prod(shape, dtype=np.int64)):
        raise TreeError(f"{where}.f8: {len(raw)} bytes do not fill shape {shape}")
    return np.frombuffer(raw, dtype=_FLOAT64).astype(np.float64).reshape(shape)

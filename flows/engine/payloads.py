"""Reading and filling a row's payload: a field by its dotted path, run values, a request path's placeholders."""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote

from ..mapping.model import RunValue
from ..mapping.paths import dig

__all__ = ["PathValues", "Shape", "fill_run_values", "pack_payload", "unpack_payload"]


class PathValues(dict[str, str]):
    """A payload as ``str.format_map`` reads it for a request path: ``{a.b}`` is that field, URL-quoted;
    an empty or missing field raises KeyError (the caller says which)."""

    def __init__(self, payload: dict[str, Any]) -> None:
        super().__init__()
        self._payload = payload

    def __missing__(self, key: str) -> str:
        value = dig(self._payload, key)
        if value in (None, ""):
            raise KeyError(key)
        return _quote(str(value))


def _quote(value: str) -> str:
    return quote(value, safe="")


def fill_run_values(value: Any, values: Mapping[str, str | None]) -> Any:
    """A copy of a payload with each RunValue placeholder replaced; a placeholder whose value is None is left out."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            v = fill_run_values(v, values)
            if not isinstance(v, RunValue):
                out[k] = v
        return out
    if isinstance(value, list):
        return [v for v in (fill_run_values(v, values) for v in value) if not isinstance(v, RunValue)]
    if isinstance(value, RunValue) and values.get(value.name) is not None:
        return values[value.name]
    return value


# --- a payload kept compact until it is sent -----------------------------------------------------------
#
# A million-row plan held each row's payload as a dict tree: ~400 bytes a row on top of the sheet's cells
# (issue 16). A payload is kept instead as its *shape* (the dict keys and list lengths, shared by every
# row with the same fields) and a tuple of its *leaves* (the values, mostly the very str objects the
# sheet's cells hold), and built again when it is read: ~1.5 µs for a flat ten-field payload.


class Shape:
    """The structure of a payload without its values: a dict's keys in order, or a list's length, each
    with the shape of its value (None: a leaf, i.e. anything but a plain dict or list)."""

    __slots__ = ("flat", "keys", "parts")

    def __init__(self, keys: tuple[str, ...] | None, parts: tuple[Shape | None, ...]) -> None:
        self.keys = keys  # None: a list
        self.parts = parts
        self.flat = all(p is None for p in parts)

    def build(self, leaves: Iterator[Any]) -> Any:
        if self.flat:
            values = [next(leaves) for _ in self.parts]
        else:
            values = [next(leaves) if p is None else p.build(leaves) for p in self.parts]
        return values if self.keys is None else dict(zip(self.keys, values, strict=True))


#: one Shape per distinct structure, shared by every row that has it (at most _MAX_SHAPES kept)
_SHAPES: dict[tuple[Any, ...], Shape] = {}
_MAX_SHAPES = 4096
#: flat payloads' shapes by their keys (the outline needs nothing more)
_FLAT: dict[tuple[str, ...], Shape] = {}


def _signature(value: Any, leaves: list[Any]) -> Any:
    """The hashable outline of ``value`` (None for a leaf); appends its leaves, depth first, to ``leaves``."""
    cls = value.__class__
    if cls is dict:
        return (True, *((k, _signature(v, leaves)) for k, v in value.items()))
    if cls is list:
        return (False, *(_signature(v, leaves) for v in value))
    leaves.append(value)
    return None


def _shape_of(signature: tuple[Any, ...]) -> Shape:
    shape = _SHAPES.get(signature)
    if shape is None:
        if signature[0]:
            keys: tuple[str, ...] | None = tuple(k for k, _ in signature[1:])
            inner = [s for _, s in signature[1:]]
        else:
            keys, inner = None, list(signature[1:])
        shape = Shape(keys, tuple(None if s is None else _shape_of(s) for s in inner))
        if len(_SHAPES) < _MAX_SHAPES:  # a pathological sheet gets a Shape per row, not a growing table
            _SHAPES[signature] = shape
    return shape


def pack_payload(payload: dict[str, Any]) -> tuple[Shape, tuple[Any, ...]]:
    """``payload`` as (its shared shape, its leaves): :func:`unpack_payload` gives back an equal dict, keys in
    the same order, every leaf the same object (so the ledger's payload hash cannot change)."""
    values = tuple(payload.values())
    for v in values:
        if v.__class__ is dict or v.__class__ is list:
            break
    else:  # the usual case, one level of fields: the keys are the whole outline
        keys = tuple(payload)
        shape = _FLAT.get(keys)
        if shape is None:
            shape = Shape(keys, (None,) * len(keys))
            if len(_FLAT) < _MAX_SHAPES:
                _FLAT[keys] = shape
        return shape, values
    leaves: list[Any] = []
    signature = _signature(payload, leaves)
    return _shape_of(signature), tuple(leaves)


def unpack_payload(shape: Shape, leaves: tuple[Any, ...]) -> dict[str, Any]:
    """A new dict tree equal to the payload :func:`pack_payload` was given."""
    if shape.flat and shape.keys is not None:  # the usual case: one level of fields
        return dict(zip(shape.keys, leaves, strict=True))
    built: dict[str, Any] = shape.build(iter(leaves))
    return built

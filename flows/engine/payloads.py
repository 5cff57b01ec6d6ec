"""Reading and filling a row's payload: a field by its dotted path, run values, a request path's placeholders."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from ..mapping.model import RunValue
from ..mapping.paths import dig

__all__ = ["PathValues", "fill_run_values"]


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

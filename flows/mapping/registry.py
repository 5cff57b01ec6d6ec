"""The transform registry and what every transform uses: the problem a cell raises, a cell's text,
quoting a cell in a message, and the closest known names for a hint."""
from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = [
    "REGISTRY",
    "Fn",
    "TransformDoc",
    "TransformProblem",
    "Value",
    "cell_text",
    "closest",
    "quoted",
    "register",
    "to_text",
]

Value = Any
Fn = Callable[[Value], Value]


class TransformProblem(ValueError):
    """A cell's value cannot be transformed; the message is shown next to the column."""


@dataclass(frozen=True)
class TransformDoc:
    name: str
    param: str | None  # what the parameter is, or None for a bare name
    summary: str
    examples: tuple[tuple[str, str], ...]  # (In, Out) as shown to users
    factory: Callable[..., Fn]


REGISTRY: dict[str, TransformDoc] = {}


Factory = TypeVar("Factory", bound=Callable[..., Fn])


def register(name: str, summary: str, examples: list[tuple[str, str]],
             param: str | None = None) -> Callable[[Factory], Factory]:
    def deco(factory: Factory) -> Factory:
        REGISTRY[name] = TransformDoc(name, param, summary, tuple(examples), factory)
        return factory

    return deco


def to_text(value: Value) -> str | None:
    """The text form of a cell: dates as ISO, everything else ``str``; empty -> None."""
    if value is None:
        return None
    return cell_text(value)


def cell_text(value: Value) -> str:
    """The text form of a cell that holds something: dates as ISO, everything else ``str``."""
    if isinstance(value, str):
        return value
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    return str(value)


def closest(value: str, choices: list[str] | tuple[str, ...] | set[str], n: int = 3) -> list[str]:
    """Up to ``n`` choices that look like ``value`` (case-insensitive)."""
    lowered = {c.lower(): c for c in choices}
    value = value[:200]  # a megabyte-long cell must not cost difflib minutes
    hits = difflib.get_close_matches(value.lower(), list(lowered), n=n, cutoff=0.5)
    return [lowered[h] for h in hits]



def quoted(text: object, limit: int = 60) -> str:
    """A cell value quoted in a message: repr (control characters escaped), capped at ``limit`` characters."""
    s = str(text)
    if len(s) > limit:
        return repr(s[:limit]) + f"… ({len(s) - limit:,} more characters)"
    return repr(s)

"""Payload paths: ``Location.Contacts[0].PhoneNum`` split into parts, and values set along them."""
from __future__ import annotations

import functools
import re
from typing import Any

__all__ = ["dig", "path_text", "prune", "set_path", "split_path"]

_SEGMENT = re.compile(r"^([A-Za-z_][\w-]*)((?:\[\d+\])*)$")


@functools.cache
def split_path(path: str) -> tuple[str | int, ...]:
    """'Location.Contacts[0].Phones[1].PhoneNum' -> ('Location', 'Contacts', 0, 'Phones', 1, 'PhoneNum')."""
    parts: list[str | int] = []
    for seg in path.split("."):
        m = _SEGMENT.match(seg)
        if not m:
            raise ValueError(f"{path!r} is not a field path (use names joined by dots, with [n] for list items)")
        parts.append(m.group(1))
        parts.extend(int(i) for i in re.findall(r"\[(\d+)\]", m.group(2)))
    return tuple(parts)


def path_text(parts: tuple[str | int, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else p) for i, p in enumerate(parts))


def set_path(target: dict[str, Any], parts: tuple[str | int, ...], value: Any) -> None:
    cur: Any = target
    for i, part in enumerate(parts[:-1]):
        nxt = parts[i + 1]
        empty: Any = [] if isinstance(nxt, int) else {}
        if isinstance(part, int):
            while len(cur) <= part:
                cur.append(None)
            if cur[part] is None:
                cur[part] = empty
            cur = cur[part]
        else:
            cur = cur.setdefault(part, empty)
    last = parts[-1]
    if isinstance(last, int):
        while len(cur) <= last:
            cur.append(None)
        cur[last] = value
    else:
        cur[last] = value


def prune(value: Any) -> Any:
    """Drop list items that ended up empty (all their fields were empty and omitted)."""
    if isinstance(value, dict):
        return {k: prune(v) for k, v in value.items()}
    if isinstance(value, list):
        items = [prune(v) for v in value]
        return [v for v in items if v not in (None, {}, [])]
    return value


def dig(data: Any, path: str | None) -> Any:
    """The value at dotted ``path`` in ``data`` (``a.0.b``: list items by index); None where a step is missing.

    The one reader of dotted paths in answers and payloads: provider ids, lookups, read-back listings and
    masked fields all read through it."""
    if data is None or not path:
        return None
    cur = data
    for part in path.split("."):
        if isinstance(cur, dict):
            cur = cur.get(part)
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return None
    return cur

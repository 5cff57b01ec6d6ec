"""Load YAML with line numbers, so config errors can say where they are.

``load_yaml(path)`` returns the plain data and a ``Locator`` that maps a location
(a tuple of keys and list indexes, as pydantic reports them) to ``line N`` of the file.
Duplicate keys, which PyYAML would silently overwrite, are errors here. So are aliases that expand
without bound: a "billion laughs" file (aliases of aliases of lists) composes in microseconds but
would build billions of values; expansion stops at :data:`MAX_NODES` values or :data:`MAX_DEPTH`
levels, and an alias inside its own anchor is refused, each with one line, before anything is built.
"""
from __future__ import annotations

import errno
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError

#: where a node sits: its keys and list indexes from the top of the file
Key = tuple[Hashable, ...]

__all__ = ["MAX_DEPTH", "MAX_NODES", "Locator", "load_yaml"]

#: values a mapping file may expand to, aliases counted every time they are used (the bundled mappings
#: have a few hundred); far beyond any real mapping, far below what takes memory or time to build
MAX_NODES = 100_000
#: nesting a mapping file may have (the bundled ones have under 10)
MAX_DEPTH = 64


class _Budget:
    def __init__(self, source: str) -> None:
        self.left = MAX_NODES
        self.source = source
        self.open: set[int] = set()  # ids of the collections being built: an alias to one of them is a cycle

    def spend(self, node: yaml.Node, depth: int) -> None:
        self.left -= 1
        if self.left < 0:
            raise ConfigError(f"{self.source}, line {node.start_mark.line + 1}: the file expands to more than "
                              f"{MAX_NODES:,} values (aliases of aliases?); write the values out, or use fewer aliases")
        if depth > MAX_DEPTH:
            raise ConfigError(f"{self.source}, line {node.start_mark.line + 1}: nested more than {MAX_DEPTH} levels "
                              f"deep; a mapping file needs far fewer")


class Locator:
    def __init__(self, lines: dict[Key, int]) -> None:
        self._lines = lines

    def line(self, loc: Key) -> int | None:
        """The 1-based line of the deepest known node on the way to ``loc``."""
        loc = tuple(loc)
        while loc:
            if loc in self._lines:
                return self._lines[loc]
            loc = loc[:-1]
        return self._lines.get((), None)


def _construct(node: yaml.Node, path: Key, lines: dict[Key, int], source: str, budget: _Budget | None = None) -> Any:
    budget = budget or _Budget(source)
    budget.spend(node, len(path))
    lines[path] = node.start_mark.line + 1
    if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
        if id(node) in budget.open:
            raise ConfigError(f"{source}, line {node.start_mark.line + 1}: an alias refers to the value it is "
                              f"inside of, which would never end; write the value out")
        budget.open.add(id(node))
        try:
            return _construct_collection(node, path, lines, source, budget)
        finally:
            budget.open.discard(id(node))
    return _scalar(node, source)


def _construct_collection(node: yaml.Node, path: Key, lines: dict[Key, int], source: str, budget: _Budget) -> Any:
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node, source)  # scalar keys only
            if isinstance(key, (dict, list)):
                raise ConfigError(f"{source}, line {key_node.start_mark.line + 1}: a key must be plain text")
            if key in out:
                raise ConfigError(
                    f"{source}, line {key_node.start_mark.line + 1}: the key {key!r} appears twice "
                    f"(first on line {lines.get((*path, key), '?')}); keep one"
                )
            lines[(*path, key)] = key_node.start_mark.line + 1
            out[key] = _construct(value_node, (*path, key), lines, source, budget)
            lines[(*path, key)] = key_node.start_mark.line + 1
        return out
    return [_construct(item, (*path, i), lines, source, budget) for i, item in enumerate(node.value)]


def _scalar(node: yaml.Node, source: str) -> Any:
    """A scalar's value; an unknown tag (``!!python/...``) or an impossible date is a ConfigError."""
    try:
        return yaml.SafeLoader.construct_object(_LOADER_STUB, node)
    except (yaml.YAMLError, ValueError, TypeError) as exc:
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{source}, line {node.start_mark.line + 1}: not a valid value: {problem}") from None


_LOADER_STUB = yaml.SafeLoader("")  # a loader used only for its scalar constructors


def load_yaml(path: Path | str) -> tuple[Any, Locator]:
    path = Path(path)
    source = path.name
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"mapping file {path} does not exist; see mappings/ for examples") from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a folder; give the path of a mapping .yaml file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text; save the mapping file as UTF-8") from None
    except OSError as exc:  # a symlink loop, a folder without permission, an unreadable device...
        if exc.errno == errno.ELOOP:
            raise ConfigError(f"mapping file {path} is a symbolic link that leads back to itself; point it at a "
                              f"mapping .yaml file") from None
        raise ConfigError(f"cannot read the mapping file {path} ({exc.strerror or exc}); check the path and "
                          f"its permissions") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f", line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{source}{where}: not valid YAML: {exc.problem}") from None
    except yaml.reader.ReaderError as exc:  # a control character: not a MarkedYAMLError
        line = text.count("\n", 0, max(exc.position, 0)) + 1
        char = exc.character if isinstance(exc.character, int) else 0
        raise ConfigError(f"{source}, line {line}: not valid YAML: {exc.reason} (character #x{char:04x}); "
                          f"remove it") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if node is None:
        raise ConfigError(f"{source} is empty; see mappings/jicoo.yaml for an example")
    lines: dict[Key, int] = {}
    data = _construct(node, (), lines, source)
    return data, Locator(lines)

"""Load YAML with line numbers, so config errors can say where they are.

``load_yaml(path)`` returns the plain data and a ``Locator`` that maps a location
(a tuple of keys and list indexes, as pydantic reports them) to ``line N`` of the file.
Duplicate keys, which PyYAML would silently overwrite, are errors here.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

__all__ = ["load_yaml", "Locator"]


class Locator:
    def __init__(self, lines: dict[tuple, int]) -> None:
        self._lines = lines

    def line(self, loc: tuple) -> int | None:
        """The 1-based line of the deepest known node on the way to ``loc``."""
        loc = tuple(loc)
        while loc:
            if loc in self._lines:
                return self._lines[loc]
            loc = loc[:-1]
        return self._lines.get((), None)


def _construct(node: yaml.Node, path: tuple, lines: dict[tuple, int], source: str) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node, source)  # scalar keys only
            if isinstance(key, (dict, list)):
                raise ConfigError(f"{source}, line {key_node.start_mark.line + 1}: a key must be plain text")
            if key in out:
                raise ConfigError(
                    f"{source}, line {key_node.start_mark.line + 1}: the key {key!r} appears twice "
                    f"(first on line {lines.get(path + (key,), '?')}); keep one"
                )
            lines[path + (key,)] = key_node.start_mark.line + 1
            out[key] = _construct(value_node, path + (key,), lines, source)
            lines[path + (key,)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, path + (i,), lines, source) for i, item in enumerate(node.value)]
    return _scalar(node, source)


def _scalar(node: yaml.Node, source: str) -> Any:
    """A scalar's value; an unknown tag (``!!python/...``) or an impossible date is a ConfigError."""
    try:
        return yaml.SafeLoader.construct_object(_LOADER_STUB, node)
    except (yaml.YAMLError, ValueError, TypeError) as exc:
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{source}, line {node.start_mark.line + 1}: not a valid value: {problem}") from None


class _Stub(yaml.SafeLoader):
    def __init__(self) -> None:  # a loader used only for its scalar constructors
        yaml.SafeLoader.__init__(self, "")


_LOADER_STUB = _Stub()


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
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f", line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{source}{where}: not valid YAML: {exc.problem}") from None
    except yaml.reader.ReaderError as exc:  # a control character: not a MarkedYAMLError
        line = text.count("\n", 0, max(exc.position, 0)) + 1
        char = exc.character if isinstance(exc.character, int) else 0
        raise ConfigError(f"{source}, line {line}: not valid YAML: {exc.reason} (character #x{char:04x}); remove it") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if node is None:
        raise ConfigError(f"{source} is empty; see mappings/jicoo.yaml for an example")
    lines: dict[tuple, int] = {}
    data = _construct(node, (), lines, source)
    return data, Locator(lines)

"""Which mapping imports a file dropped into the inbox: ``routes.yaml`` globs, else the file's top folder."""
from __future__ import annotations

import fnmatch
from pathlib import Path

from ..errors import ConfigError
from ..mapping.yamlfile import load_yaml

__all__ = ["ROUTES_FILE", "load_routes", "mapping_for"]

ROUTES_FILE = "routes.yaml"


# --- routing -----------------------------------------------------------------------------------------


def load_routes(inbox: Path, mappings: Path) -> list[tuple[str, Path]]:
    """``routes.yaml`` in the inbox root: ``glob: mapping`` pairs, first match wins.

    A value with a .yaml/.yml suffix is a path (absolute, or relative to the inbox root); a bare
    name such as ``jicoo`` means ``<mappings>/jicoo.yaml``. Globs match the file's path inside the
    inbox with / separators (``*`` also matches across folders)."""
    path = inbox / ROUTES_FILE
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    if not any(line.strip() and not line.lstrip().startswith("#") for line in lines):
        return []  # an empty routes file: the folder rule alone
    data, _ = load_yaml(path)
    if data is None:
        return []
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) and v.strip()
                                             for k, v in data.items()):
        raise ConfigError(f"{path}: write one `glob: mapping` pair per line, e.g. "
                          f"'\"partners/*.csv\": jicoo' or '\"*.xlsx\": mappings/jicoo.yaml'")
    routes = []
    for pattern, target in data.items():
        target = target.strip()
        if target.endswith((".yaml", ".yml")):
            p = Path(target).expanduser()
            routes.append((pattern, p if p.is_absolute() else (inbox / p).resolve()))
        else:
            routes.append((pattern, mappings / f"{target}.yaml"))
    return routes


def mapping_for(rel: str, routes: list[tuple[str, Path]], mappings: Path) -> tuple[Path | None, str]:
    """The mapping for a file at ``rel`` inside the inbox, and how it was chosen (or why there is none)."""
    for pattern, target in routes:
        if fnmatch.fnmatchcase(rel, pattern):
            if target.is_file():
                return target, f"{ROUTES_FILE}: {pattern}"
            return None, f"{ROUTES_FILE} sends it ({pattern!r}) to {target}, which does not exist"
    parts = rel.split("/")
    if len(parts) > 1:
        candidate = mappings / f"{parts[0]}.yaml"
        if candidate.is_file():
            return candidate, f"folder {parts[0]}/"
        return None, (f"no route in {ROUTES_FILE} matches it and there is no {candidate.name} in {mappings} for its "
                      f"folder {parts[0]}/; add the mapping or a route")
    return None, (f"it is in the inbox root and no route in {ROUTES_FILE} matches it; put it in a folder named "
                  f"after its mapping (e.g. jicoo/) or add a route")

"""What the mapping files in ``mappings/`` say about the providers: ids, callback readers, secrets, demos.

Nothing here is kept by hand: a provider exists because a mapping names it (``provider: acme``), so a
provider that needs no code is one mapping file (plus, when it ships with the project, a sample
sheet in ``sample_data/<id>/``, lines in ``.env.example`` and a row in the README). The files are read
as plain YAML (cheap, no provider code imported); ``mapping.load_mapping`` is what checks them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "ROOT",
    "Demo",
    "callback_readers",
    "demos",
    "mapping_files",
    "mappings_dir",
    "provider_ids",
    "secret_names",
]

#: the checkout this package sits in (mappings/ and sample_data/ beside flows/)
ROOT = Path(__file__).resolve().parent.parent.parent
SHEET_SUFFIXES = (".xlsx", ".xlsm", ".xls", ".csv")


def mappings_dir(folder: Path | str | None = None) -> Path:
    """``folder``, else $BOOKING_IMPORTER_MAPPINGS, else the checkout's mappings/."""
    return Path(folder or os.environ.get("BOOKING_IMPORTER_MAPPINGS") or ROOT / "mappings")


def _read(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}  # load_mapping reports what is wrong with it when it is used
    return data if isinstance(data, dict) else {}


def _section(data: dict[str, Any], key: str) -> dict[str, Any]:
    """``data[key]`` when it is a mapping, else an empty one (plain YAML may say anything)."""
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def mapping_files(folder: Path | str | None = None) -> dict[Path, dict[str, Any]]:
    """Every ``*.yaml`` mapping in the folder (sorted), read as plain YAML."""
    here = mappings_dir(folder)
    return {p: _read(p) for p in sorted(here.glob("*.yaml")) if p.is_file()}


def provider_ids(folder: Path | str | None = None) -> tuple[str, ...]:
    """The providers the mappings name, in file order, each once."""
    ids: dict[str, None] = {}
    for data in mapping_files(folder).values():
        if isinstance(data.get("provider"), str):
            ids.setdefault(data["provider"], None)
    return tuple(ids)


def callback_readers(folder: Path | str | None = None) -> dict[str, str]:
    """provider id -> the ``request.callback`` reference its mapping names (for the callback receiver)."""
    out: dict[str, str] = {}
    for data in mapping_files(folder).values():
        request = _section(data, "request")
        if isinstance(data.get("provider"), str) and isinstance(request.get("callback"), str):
            out.setdefault(data["provider"], request["callback"])
    return out


def secret_names(folder: Path | str | None = None) -> dict[str, list[str]]:
    """provider id -> the environment variables its mappings' ``connection.auth`` reads (for help texts)."""
    out: dict[str, list[str]] = {}
    for data in mapping_files(folder).values():
        provider = data.get("provider")
        auth = _section(_section(data, "connection"), "auth")
        names = [v for k, v in auth.items() if k in ("secret", "client_id", "client_secret", "username", "password")]
        names += list(_section(auth, "headers").values())
        if isinstance(provider, str):
            have = out.setdefault(provider, [])
            have += [n for n in names if isinstance(n, str) and n not in have]
    return out


@dataclass(frozen=True)
class Demo:
    provider: str
    sheet: str  # relative to the checkout
    mapping: str  # relative to the checkout
    #: run a callback receiver in-process and wait up to this long for accepted rows to be confirmed
    wait_callbacks: float = 0.0


def _uses_callbacks(data: dict[str, Any]) -> bool:
    fields = _section(data, "fields")
    return any(isinstance(f, dict) and f.get("run_value") == "callback_url" for f in fields.values())


def demos(root: Path | None = None) -> tuple[Demo, ...]:
    """One demo per mapping that has a sample sheet: ``sample_data/<provider>/<name>.<ext>`` where the
    mapping is ``<provider>_<name>.yaml``, or the folder's one sheet for ``<provider>.yaml`` (an .xlsx
    before a .csv of the same name)."""
    root = root or ROOT
    out = []
    for path, data in mapping_files(root / "mappings").items():
        provider = data.get("provider")
        if not isinstance(provider, str):
            continue
        folder = root / "sample_data" / provider
        sheets = sorted((p for p in folder.glob("*") if p.suffix in SHEET_SUFFIXES),
                        key=lambda p: (p.stem, SHEET_SUFFIXES.index(p.suffix)))
        wanted = path.stem.removeprefix(provider).lstrip("_")
        chosen = [p for p in sheets if p.stem == wanted] if wanted else sheets
        if not chosen or (not wanted and len({p.stem for p in sheets}) != 1):
            continue
        out.append(Demo(provider, chosen[0].relative_to(root).as_posix(), path.relative_to(root).as_posix(),
                        wait_callbacks=10.0 if _uses_callbacks(data) else 0.0))
    return tuple(out)

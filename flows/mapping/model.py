"""Mapping files: the declarative description of a provider request and of how sheet columns
become its payload.

``load_mapping(path)`` validates a YAML file against :class:`MappingFile` (unknown keys are
errors, messages carry line numbers) and ``MappingFile.json_schema()`` is what
``mappings/mapping.schema.json`` is generated from. ``compile_mapping(mapping, columns)``
checks the sheet has every column the mapping names and returns a :class:`RowMapper` that turns
one row of cells into a payload plus the list of its problems, each naming its sheet column.

The parts live beside this module (fields.py, request.py, rows.py, paths.py); this one holds the
file as a whole and its loading, and exports the names callers use (``__all__``), so
``flows.mapping.model`` stays the one import for them.
"""
from __future__ import annotations

from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, BeforeValidator, Field, ValidationError, field_validator

from ..errors import ConfigError
from ..hooks import resolve
from .base import Strict
from .fields import DateTimeSource, FieldSpec, RunValue
from .paths import path_text, set_path, split_path
from .request import (
    ApiKeyBody,
    ApiKeyHeader,
    Connection,
    JwtLogin,
    LookupSpec,
    NoAuth,
    OAuth2ClientCredentials,
    RequestSpec,
    RetrySpec,
)
from .rows import MappedRow, Problem, RowMapper, compile_mapping
from .yamlfile import Locator, load_yaml

__all__ = [
    "ApiKeyBody",
    "ApiKeyHeader",
    "DateTimeSource",
    "FieldSpec",
    "JwtLogin",
    "MappedRow",
    "MappingFile",
    "NoAuth",
    "OAuth2ClientCredentials",
    "Problem",
    "RowMapper",
    "RunValue",
    "SourceSpec",
    "compile_mapping",
    "load_mapping",
    "set_path",
    "split_path",
]


class SourceSpec(Strict):
    sheet: str | None = Field(default=None, description="Worksheet to read by default (--sheet overrides).")
    encoding: str | None = Field(default=None, description="CSV encoding; detected when empty (UTF-8, UTF-8 BOM, then "
                                                           "cp1252).")
    delimiter: str | None = Field(default=None, description="CSV delimiter; detected when empty (a `sep=;` first line, "
                                                            "else comma, semicolon, tab or pipe).")
    header_row: int | None = Field(default=None, ge=1,
                                   description="Row number (as Excel shows it) of the header row, when title rows sit "
                                               "above it; found from the mapping's column names when empty.")


def _as_list(v: Any) -> Any:
    return [v] if isinstance(v, str) else v


class MappingFile(Strict):
    """A mapping file: which provider, how to call it, and how columns become the payload."""

    provider: str = Field(pattern=r"^[a-z][a-z0-9_]*$",
                          description="Provider id: jicoo, bigchange, systemsx_bridge, servicemobility.")
    description: str = ""
    source: SourceSpec = SourceSpec()
    key: Annotated[list[str], BeforeValidator(_as_list, json_schema_input_type=str | list[str]),
                   Field(min_length=1, description="Column(s) that identify a row across runs.")]
    key_scope: str | None = Field(None, description="Ledger namespace for the key; defaults to the provider id.")
    connection: Connection
    request: RequestSpec
    retry: RetrySpec = RetrySpec()
    lookups: dict[str, LookupSpec] = Field(default_factory=dict,
                                           description="Provider lists fetched once per run, used by the remote_lookup "
                                                       "transform.")
    fields: dict[str, FieldSpec] = Field(min_length=1, description="Payload fields by path (a.b, a[0].b), in order.")

    @field_validator("fields")
    @classmethod
    def _paths(cls, v: dict[str, FieldSpec]) -> dict[str, FieldSpec]:
        # path prefix -> (value | list | object, field that made it so)
        shapes: dict[tuple[str | int, ...], tuple[str, str]] = {}
        for path in v:
            parts = split_path(path)  # raises ValueError on a malformed path
            for i in range(len(parts)):
                shape = "value" if i == len(parts) - 1 else "list" if isinstance(parts[i + 1], int) else "object"
                first = shapes.setdefault(parts[:i + 1], (shape, path))
                where = path_text(parts[:i + 1])
                if first[0] == shape == "value" and first[1] != path:
                    raise ValueError(f"fields {first[1]!r} and {path!r} both fill '{where}'; keep one")
                if first[0] != shape:
                    kinds = {"value": "a value", "list": "a list", "object": "an object"}
                    raise ValueError(f"fields {first[1]!r} and {path!r} clash: one makes '{where}' "
                                     f"{kinds[first[0]]}, the other {kinds[shape]}")
        return v

    @property
    def scope(self) -> str:
        return self.key_scope or self.provider

    @property
    def env_prefix(self) -> str:
        return self.provider.upper()

    def sensitive_paths(self) -> set[str]:
        return {p for p, f in self.fields.items() if f.sensitive}

    def run_value_paths(self) -> dict[str, str]:
        """Payload path -> run value name (``run_value:`` fields), e.g. {'return_url': 'callback_url'}."""
        return {p: f.run_value for p, f in self.fields.items() if f.run_value is not None}

    def sensitive_columns(self) -> set[str]:
        return {c for f in self.fields.values() if f.sensitive for c in f.columns()}

    def columns(self) -> list[str]:
        seen: dict[str, None] = {}
        for c in self.key:
            seen[c] = None
        for f in self.fields.values():
            for c in f.columns():
                seen[c] = None
        return list(seen)

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        schema = cls.model_json_schema()
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["title"] = "booking-importer mapping file"
        return schema


# --- loading ---------------------------------------------------------------------------------------


def _loc_text(loc: Loc) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def load_mapping(path: Path | str) -> MappingFile:
    """Read and validate a mapping file. Raises ConfigError listing every problem with its line."""
    path = Path(path)
    data, locator = load_yaml(path)
    try:
        mapping = MappingFile.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = file_loc(MappingFile, err["loc"])
            line = locator.line(loc)
            where = f"line {line}, " if line else ""
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key (check the spelling; mappings/mapping.schema.json lists the keys)"
            elif err["type"] == "string_pattern_mismatch" and loc and loc[-1] == "secret":
                # never echo the value: it may be the key itself
                msg = ("must be the NAME of the environment variable that holds the secret, in capitals "
                       "(e.g. JICOO_API_KEY), never the secret itself")
            lines.append(f"  {where}{_loc_text(loc)}: {msg}")
        raise ConfigError(f"{path.name} is not a valid mapping file:\n" + "\n".join(lines)) from None
    _check_contract(mapping, path, locator)
    return mapping


Loc = tuple[int | str, ...]


def file_loc(model: type[BaseModel], loc: Loc) -> Loc:
    """An error's ``loc`` (pydantic's documented error shape) as keys and indexes of the file: the tag
    pydantic adds after a discriminated union (``connection.auth.api_key_header.secret``: the member
    the ``kind`` chose) is left out, found from the model's own fields (``FieldInfo.discriminator``)."""
    out: list[int | str] = []
    node: Any = model
    member_of: tuple[Any, str] | None = None  # (the union, its discriminator) when the next part is a tag
    for part in loc:
        if member_of is not None:
            node, member_of = _member(*member_of, part), None
            continue
        out.append(part)
        node, member_of = _step(node, part)
    return tuple(out)


def _unwrapped(annotation: Any) -> Any:
    """``X | None`` -> ``X``; anything else as it is."""
    args = [a for a in get_args(annotation) if a is not type(None)]
    return args[0] if get_origin(annotation) in (Union, UnionType) and len(args) == 1 else annotation


def _step(node: Any, part: int | str) -> tuple[Any, tuple[Any, str] | None]:
    """The annotation one loc part below ``node``, and (union, discriminator) when it is a discriminated union."""
    node = _unwrapped(node)
    if isinstance(node, type) and issubclass(node, BaseModel):
        info = node.model_fields.get(str(part))
        if info is None:
            return None, None
        key = info.discriminator
        return info.annotation, ((info.annotation, key) if isinstance(key, str) else None)
    if get_origin(node) in (dict, list):
        return get_args(node)[-1], None
    return None, None


def _member(union: Any, discriminator: str, tag: int | str) -> Any:
    """The member of a discriminated ``union`` whose discriminator is the literal ``tag``."""
    for member in get_args(union):
        if not (isinstance(member, type) and issubclass(member, BaseModel)):
            continue
        info = member.model_fields.get(discriminator)
        if info is not None and tag in get_args(info.annotation):
            return member
    return None


def _check_contract(mapping: MappingFile, path: Path, locator: Locator) -> None:
    for path_name, spec in mapping.fields.items():
        for i, t in enumerate(spec.transforms):
            if isinstance(t, dict) and "remote_lookup" in t and t["remote_lookup"] not in mapping.lookups:
                line = locator.line(("fields", path_name, "transforms", i))
                known = ", ".join(mapping.lookups) or "none declared"
                raise ConfigError(f"{path.name}, line {line}: fields.{path_name}: remote_lookup {t['remote_lookup']!r} "
                                  f"is not declared under lookups: ({known})")
    for attr in ("contract", "readback", "handler", "callback"):
        ref = getattr(mapping.request, attr)
        if ref is None:
            continue
        try:
            obj = resolve(ref)
        except LookupError as exc:
            line = locator.line(("request", attr))
            raise ConfigError(f"{path.name}, line {line}: request.{attr}: {exc}") from None
        if attr == "contract":
            required = [n for n, f in obj.model_fields.items() if f.is_required()]
            top = {split_path(p)[0] for p in mapping.fields}
            missing = [n for n in required if n not in top]
            if missing:
                line = locator.line(("fields",))
                raise ConfigError(
                    f"{path.name}{f', line {line}' if line else ''}: fields: the provider requires "
                    f"{', '.join(missing)} but the mapping does not fill {'it' if len(missing) == 1 else 'them'}; "
                    f"add a field for each (a column, a const or a template)"
                )

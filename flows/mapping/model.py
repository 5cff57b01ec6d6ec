"""Mapping files: the declarative description of a provider request and of how sheet columns
become its payload.

``load_mapping(path)`` validates a YAML file against :class:`MappingFile` (unknown keys are
errors, messages carry line numbers) and ``MappingFile.json_schema()`` is what
``mappings/mapping.schema.json`` is generated from. ``compile_mapping(mapping, columns)``
checks the sheet has every column the mapping names and returns a :class:`RowMapper` that turns
one row of cells into a payload plus the list of its problems, each naming its sheet column.
"""
from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from ..errors import ConfigError, InputError
from ..hooks import resolve
from ..outcomes import Action, Reason, Rule, rule_for
from .transforms import (
    REGISTRY,
    LookupTable,
    TransformProblem,
    build_transform,
    closest,
    format_problem,
    is_iana_zone,
    parse_date,
    parse_datetime,
    parse_time,
    to_text,
    zone_problem,
)
from .yamlfile import load_yaml

__all__ = [
    "FieldSpec",
    "MappedRow",
    "MappingFile",
    "Problem",
    "RowMapper",
    "RunValue",
    "compile_mapping",
    "load_mapping",
    "set_path",
    "split_path",
]

_ENV_NAME = r"^[A-Z][A-Z0-9_]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- transforms as a schema type ---------------------------------------------------------------


def _check_transform(value: Any) -> Any:
    build_transform(value)  # raises ValueError with a readable message
    return value


def _transform_schema() -> dict[str, Any]:
    options: list[dict[str, Any]] = []
    bare = [name for name, doc in REGISTRY.items() if not doc.param or doc.param.startswith("optional")]
    options.append({"type": "string", "enum": sorted(bare), "description": "a transform without a parameter"})
    for name, doc in sorted(REGISTRY.items()):
        if doc.param:
            options.append({
                "type": "object",
                "properties": {name: {"description": f"{doc.summary} Parameter: {doc.param}."}},
                "required": [name],
                "additionalProperties": False,
            })
    return {"anyOf": options, "description": "a named transform (see README, 'Transforms')"}


TransformRef = Annotated[Any, BeforeValidator(_check_transform), WithJsonSchema(_transform_schema())]


# --- field sources ------------------------------------------------------------------------------


#: which kind of format each DateTimeSource field holds, for format_problem
_FORMAT_KINDS = {"format": "date", "time_format": "time", "output": "output"}


class DateTimeSource(_Strict):
    """A local date (and time) from one or two columns, converted to UTC."""

    date: str = Field(description="Column holding the date (or the date and time together).")
    time: str | None = Field(None, description="Column holding the time, when it is separate from the date.")
    format: str = Field(description="strftime format of the date column, e.g. '%d/%m/%Y' (day first) or, without a time column, '%d/%m/%Y %H:%M'. Checked when the mapping loads.")
    time_format: str = Field("%H:%M", description="strftime format of the time column: '%H:%M' (24-hour; also accepts 17:45:30, 17.45 and 5:45 PM) or '%I:%M %p' (12-hour: AM/PM required up to 12:59). See README, 'Dates and times'.")
    timezone: str | None = Field(None, description="Fixed IANA zone of the sheet's times, or the default when timezone_column is empty.")
    timezone_column: str | None = Field(None, description="Column holding each row's IANA zone.")
    output: str = Field("%Y-%m-%dT%H:%M:%S.000Z", description="strftime format of the UTC result (ISO 8601 with Z by default).")
    ambiguous: Literal["refuse", "earlier", "later"] = Field("refuse", description="A local time that happens twice (the hour the clocks go back): refuse the row, naming both UTC instants (default), or take the earlier or the later one.")

    @field_validator("format", "time_format", "output")
    @classmethod
    def _checked_format(cls, v: str, info: ValidationInfo) -> str:
        """Each format is checked for the kind of value it reads or writes (flows/mapping/transforms.format_problem)."""
        problem = format_problem(v, _FORMAT_KINDS[info.field_name])
        if problem:
            raise ValueError(problem)
        return v

    @model_validator(mode="after")
    def _zone_given(self) -> DateTimeSource:
        if not self.timezone and not self.timezone_column:
            raise ValueError("give `timezone` (an IANA zone such as Europe/London) or `timezone_column`, or both")
        if self.timezone and not is_iana_zone(self.timezone):
            raise ValueError(f"timezone {self.timezone!r} is not an IANA time zone such as Europe/London")
        if self.time is None:  # one column holds the date and the time: the format must read both
            problem = format_problem(self.format, "datetime")
            if problem:
                raise ValueError(problem)
        return self


class RunValue(str):
    """Stands in a payload for a ``run_value`` until the run fills it in (render shows ``{callback_url}``).

    The payload hash covers the placeholder, not the per-run value, so a rerun sees the same payload.
    """

    def __new__(cls, name: str) -> RunValue:
        return super().__new__(cls, "{" + name + "}")

    @property
    def name(self) -> str:
        return self[1:-1]

    def __getnewargs__(self) -> tuple[str]:
        return (self.name,)


class FieldSpec(_Strict):
    """One payload field. Exactly one of column / const / template / datetime / run_value."""

    column: str | None = Field(None, description="Sheet column the value comes from (header text).")
    const: Any = Field(None, description="A fixed value for every row.")
    template: str | None = Field(None, description="Text with {Column Name} placeholders, e.g. '{First name} {Last name}'.")
    datetime: DateTimeSource | None = Field(None, description="A date and time in local time, converted to UTC.")
    run_value: Literal["callback_url"] | None = Field(None, description="A value the run supplies when it starts, the same for every row: callback_url (this run's return address with an unguessable token, served by `booking-import callbacks`; set <PROVIDER>_CALLBACK_URL or run with --wait-callbacks). No transforms.")
    transforms: list[TransformRef] = Field(default_factory=list, description="Named transforms applied in order.")
    required: bool = Field(False, description="An empty value makes the row invalid.")
    when_empty: Literal["omit", "null"] = Field("omit", description="What to send when the value is empty: leave the field out, or send null (e.g. to clear it).")
    sensitive: bool = Field(False, description="Mask the value wherever a payload is shown (render, results, logs).")
    description: str | None = Field(None, description="Free text for people reading the mapping.")

    @model_validator(mode="after")
    def _one_source(self) -> FieldSpec:
        given = [k for k in ("column", "const", "template", "datetime", "run_value") if k in self.model_fields_set]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of column, const, template, datetime or run_value"
                + (f" (found {', '.join(given)})" if given else "")
            )
        if self.template is not None and not _PLACEHOLDER.search(self.template):
            raise ValueError("a template needs at least one {Column Name} placeholder; use const for fixed text")
        if self.run_value is not None and self.transforms:
            raise ValueError("a run_value is used as the run supplies it: remove its transforms")
        return self

    def columns(self) -> list[str]:
        if self.column is not None:
            return [self.column]
        if self.template is not None:
            return _PLACEHOLDER.findall(self.template)
        if self.datetime is not None:
            d = self.datetime
            return [c for c in (d.date, d.time, d.timezone_column) if c]
        return []


_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")


# --- connection, auth, request -------------------------------------------------------------------

EnvName = Annotated[str, Field(pattern=_ENV_NAME, description="Name of an environment variable (never the secret itself).")]


class ApiKeyHeader(_Strict):
    kind: Literal["api_key_header"]
    header: str = Field(description="Header that carries the key, e.g. X-Jicoo-Api-Key.")
    secret: EnvName


class ApiKeyBody(_Strict):
    kind: Literal["api_key_body"]
    field: str = Field(description="Body field that carries the key, e.g. api_key.")
    secret: EnvName


class NoAuth(_Strict):
    kind: Literal["none"]


class OAuth2ClientCredentials(_Strict):
    """OAuth2 client credentials: a token from token_url, sent as `Authorization: Bearer`."""

    kind: Literal["oauth2_client_credentials"]
    token_url: str = Field(description="Absolute token URL; <PROVIDER>_TOKEN_URL in the environment overrides it.")
    client_id: EnvName
    client_secret: EnvName
    scope: str | list[str] | None = Field(None, description="Scopes the token request asks for (sent as `scope`), a list or one "
                                                           "space-separated string, e.g. [jobs:read, jobs:write] for BigChange.")
    headers: dict[str, EnvName] = Field(default_factory=dict, description="Extra headers on every call, each from an environment variable, e.g. Customer-Id: BIGCHANGE_CUSTOMER_ID.")
    refresh_margin_seconds: float = Field(60.0, ge=0, description="Refresh the token this long before it expires.")

    @field_validator("token_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^https?://[^\s/]+", v):
            raise ValueError(f"{v!r} is not an http(s) URL")
        return v

    @field_validator("scope")
    @classmethod
    def _scopes(cls, v: str | list[str] | None) -> str | None:
        words = (v.split() if isinstance(v, str) else [w.strip() for w in v]) if v is not None else []
        if v is not None and (not words or any(not w or " " in w for w in words)):
            raise ValueError("give scope names, e.g. [jobs:read, jobs:write] (none empty, none with a space)")
        return " ".join(dict.fromkeys(words)) or None


class JwtLogin(_Strict):
    """A login call that returns a JWT, sent in a header on every call."""

    kind: Literal["jwt_login"]
    path: str = Field("/createjwt", description="Login path after base_url.")
    username: EnvName
    password: EnvName
    token_field: str = Field("token", description="Field of the login response holding the token.")
    header: str = Field("x-access-token", description="Header that carries the token.")
    refresh_margin_seconds: float = Field(60.0, ge=0, description="Log in again this long before the token's exp.")


AuthSpec = Annotated[ApiKeyHeader | ApiKeyBody | NoAuth | OAuth2ClientCredentials | JwtLogin, Field(discriminator="kind")]


class Paging(_Strict):
    page_param: str = Field(description="Query parameter with the page number, e.g. pageNumber.")
    size_param: str = Field(description="Query parameter with the page size, e.g. pageSize.")
    size: int = Field(100, ge=1, le=10000, description="Items per page to ask for.")
    first_page: int = Field(1, description="Number of the first page.")
    max_pages: int = Field(1000, ge=1, description="Safety stop.")


class LookupSpec(_Strict):
    """A provider list fetched once per run that turns names from the sheet into provider ids."""

    path: str = Field(description="List endpoint after base_url, e.g. /jobTypes.")
    params: dict[str, Any] = Field(default_factory=dict, description="Extra query parameters.")
    items: str = Field("", description="Dotted path of the list in the response; empty when the body is the list.")
    match: str = Field(description="Item field compared with the sheet value (after trimming and case-folding).")
    value: str = Field(description="Item field sent to the provider, e.g. id.")
    paging: Paging | None = None


class Connection(_Strict):
    base_url: str = Field(description="Provider base URL; <PROVIDER>_BASE_URL in the environment overrides it.")
    auth: AuthSpec
    timeout_seconds: float = Field(30.0, gt=0, description="Seconds to wait for a response before the row becomes `unknown`.")
    connect_timeout_seconds: float = Field(10.0, gt=0, description="Seconds to wait for a connection (safe to retry).")
    concurrency: int = Field(8, ge=1, le=500, description="Requests in flight at once (--concurrency overrides).")
    rate: float | None = Field(10.0, gt=0, allow_inf_nan=False, description="Requests per second the provider publishes, never exceeded in any second (shared by every run using the ledger); null when it publishes none: start at the concurrency bound and adapt to its 429s (--rate overrides, 0 = null).")

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^https?://[^\s/]+", v):
            raise ValueError(f"{v!r} is not an http(s) URL")
        return v.rstrip("/")


class ResponseReason(_Strict):
    """Phrases that, found in an answer's body, decide it (e.g. a 500 whose text says the row was refused)."""

    action: Action = Field(description="success, reject, retry, unknown, stop or fail, for a body with one of the phrases.")
    text: list[str] = Field(min_length=1, description="Phrases as the provider writes them, e.g. 'Account * does not exist': "
                                                      "case and spacing ignored, * is any text within one sentence.")
    message: str = Field("", description="Message put in _message (the body's own text follows it); defaults to the status's.")

    @field_validator("text")
    @classmethod
    def _phrases(cls, v: list[str]) -> list[str]:
        for phrase in v:
            if not phrase.replace("*", "").strip():
                raise ValueError(f"{phrase!r} matches any text: give words from the provider's answer")
        return v


class ResponseRule(_Strict):
    action: Action | None = Field(None, description="success, reject, retry, unknown, stop or fail; defaults to the status table's.")
    message: str = Field("", description="Message put in _message for rows that get this status.")
    reasons: list[ResponseReason] = Field(default_factory=list, description="Checked in order against the body's text; the first "
                                                                              "with a matching phrase decides, else `action`.")


class RequestSpec(_Strict):
    method: Literal["POST", "PUT", "PATCH"] = "POST"
    path: str = Field(description="Path after base_url; {field} placeholders take values from the payload, e.g. /WorkOrder/{WorkOrderNum}.")
    body: Literal["json", "form"] = Field("json", description="json, or form (application/x-www-form-urlencoded, nested fields as a[b] keys).")
    contract: str | None = Field(None, description="Provider request model the payload must satisfy, e.g. jicoo.CreateBooking.")
    idempotent: bool = Field(False, description="True only when resending the same request cannot create a second booking (e.g. a PUT upsert keyed by your own number).")
    success: Literal["created", "accepted"] = Field("created", description="Status of a row the provider answered with success: created, or accepted when the provider only queues it.")
    provider_id: str | None = Field(None, description="Dotted path of the provider's id in the success response, e.g. uid or data.id.")
    responses: dict[int, ResponseRule] = Field(default_factory=dict, description="Overrides of the default status table, by HTTP status.")
    readback: str | None = Field(None, description="Named check that finds a row at the provider after an unknown outcome, e.g. jicoo.find_booking.")
    handler: str | None = Field(None, description="Named code that sends a row when one request is not enough (lookups of slots, a second call), e.g. bigchange.create_and_schedule.")
    callback: str | None = Field(None, description="Named code that reads the provider's callback for a row (a run_value: callback_url field), e.g. systemsx_bridge.read_callback.")

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError("path must start with /")
        return v

    def status_rules(self) -> dict[int, Rule]:
        rules = {}
        for code, r in self.responses.items():
            default = rule_for(code)
            reasons = tuple(Reason(x.action, tuple(x.text), x.message) for x in r.reasons)
            if r.action is None:
                rules[code] = Rule(default.action, r.message or default.message, reasons)
            else:
                rules[code] = Rule(r.action, r.message, reasons)
        return rules


class RetrySpec(_Strict):
    attempts: int = Field(5, ge=1, le=20, description="Most tries of one request when a resend is safe.")
    backoff_seconds: float = Field(0.5, ge=0, description="First backoff; doubles each time, with full jitter.")
    max_backoff_seconds: float = Field(30.0, ge=0, description="Longest single backoff.")
    max_retry_after_seconds: float = Field(120.0, ge=0, description="Longest Retry-After honoured; longer ones give up the row as failed.")


class SourceSpec(_Strict):
    sheet: str | None = Field(None, description="Worksheet to read by default (--sheet overrides).")
    encoding: str | None = Field(None, description="CSV encoding; detected when empty (UTF-8, UTF-8 BOM, then cp1252).")
    delimiter: str | None = Field(None, description="CSV delimiter; detected when empty (a `sep=;` first line, else comma, semicolon, tab or pipe).")
    header_row: int | None = Field(None, ge=1, description="Row number (as Excel shows it) of the header row, when title rows sit above it; found from the mapping's column names when empty.")


def _as_list(v: Any) -> Any:
    return [v] if isinstance(v, str) else v


class MappingFile(_Strict):
    """A mapping file: which provider, how to call it, and how columns become the payload."""

    provider: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="Provider id: jicoo, bigchange, systemsx_bridge, servicemobility.")
    description: str = ""
    source: SourceSpec = SourceSpec()
    key: Annotated[list[str], BeforeValidator(_as_list, json_schema_input_type=str | list[str]),
                   Field(min_length=1, description="Column(s) that identify a row across runs.")]
    key_scope: str | None = Field(None, description="Ledger namespace for the key; defaults to the provider id.")
    connection: Connection
    request: RequestSpec
    retry: RetrySpec = RetrySpec()
    lookups: dict[str, LookupSpec] = Field(default_factory=dict, description="Provider lists fetched once per run, used by the remote_lookup transform.")
    fields: dict[str, FieldSpec] = Field(min_length=1, description="Payload fields by path (a.b, a[0].b), in order.")

    @field_validator("fields")
    @classmethod
    def _paths(cls, v: dict[str, FieldSpec]) -> dict[str, FieldSpec]:
        shapes: dict[tuple, tuple[str, str]] = {}  # path prefix -> (value | list | object, field that made it so)
        for path in v:
            parts = split_path(path)  # raises ValueError on a malformed path
            for i in range(len(parts)):
                shape = "value" if i == len(parts) - 1 else "list" if isinstance(parts[i + 1], int) else "object"
                first = shapes.setdefault(parts[:i + 1], (shape, path))
                where = _path_text(parts[:i + 1])
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


def _loc_text(loc: tuple) -> str:
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
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p in _UNION_TAGS))
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


_UNION_TAGS = {"api_key_header", "api_key_body", "none", "oauth2_client_credentials", "jwt_login",
               "function-after[_one_source(), FieldSpec]"}


def _check_contract(mapping: MappingFile, path: Path, locator) -> None:
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
                    f"{path.name}{f', line {line}' if line else ''}: fields: the provider requires {', '.join(missing)} but the mapping does not fill "
                    f"{'it' if len(missing) == 1 else 'them'}; add a field for each (a column, a const or a template)"
                )


# --- payload paths ----------------------------------------------------------------------------------

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


def _path_text(parts: tuple[str | int, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else p) for i, p in enumerate(parts))


def set_path(target: dict, parts: tuple[str | int, ...], value: Any) -> None:
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


def _prune(value: Any) -> Any:
    """Drop list items that ended up empty (all their fields were empty and omitted)."""
    if isinstance(value, dict):
        return {k: _prune(v) for k, v in value.items()}
    if isinstance(value, list):
        items = [_prune(v) for v in value]
        return [v for v in items if v not in (None, {}, [])]
    return value


# --- compiling against a sheet ---------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one row; ``column`` names the sheet column (None: the row as a whole)."""

    column: str | None
    message: str

    def __str__(self) -> str:
        return f"{self.column}: {self.message}" if self.column else self.message


@dataclass
class MappedRow:
    payload: dict[str, Any]
    problems: list[Problem] = field(default_factory=list)


_SHOWN_MISSING = 10


def _resolve_columns(mapping: MappingFile, columns: list[str], source: str) -> dict[str, int]:
    index = {c: i for i, c in enumerate(columns)}
    folded: dict[str, list[str]] = {}
    for c in columns:
        folded.setdefault(c.casefold(), []).append(c)
    resolved: dict[str, int] = {}
    missing: list[str] = []
    for name in mapping.columns():
        if name in index:
            resolved[name] = index[name]
        elif len(folded.get(name.casefold(), [])) == 1:
            resolved[name] = index[folded[name.casefold()][0]]
        else:
            missing.append(name)
    if missing:
        from ..workbooks.sheets import shown, shown_list

        wanted = mapping.columns()
        if len(missing) == len(wanted) and len(wanted) > 1:
            raise InputError(
                f"{source} lacks the columns the mapping needs, 0 of {len(wanted)} columns found: is this the right "
                f"mapping? It is a {mapping.provider} "
                f"mapping and needs {shown_list([repr(c) for c in wanted], 8)}; the sheet's columns are: "
                f"{shown_list([repr(c) for c in columns], 8) or 'none'}"
            )
        parts = []
        for name in missing[:_SHOWN_MISSING]:
            near = closest(name, columns[:2000], n=1)
            parts.append(f"'{shown(name)}'" + (f" (closest: '{shown(near[0])}')" if near else ""))
        if len(missing) > _SHOWN_MISSING:
            parts.append(f"… and {len(missing) - _SHOWN_MISSING} more")
        found = shown_list([f"'{c}'" for c in columns]) or "none"
        raise InputError(
            f"{source} lacks the column{'s' if len(missing) > 1 else ''} {', '.join(parts)} that the mapping needs "
            f"({len(wanted) - len(missing)} of {len(wanted)} found); "
            f"columns found: {found}. Rename the sheet's header or change the mapping."
        )
    return resolved


Getter = Callable[[list], Any]


def _chain(fns: list[Callable[[Any], Any]]) -> Callable[[Any], Any]:
    if not fns:
        return lambda v: v
    if len(fns) == 1:
        return fns[0]

    def run(v: Any) -> Any:
        for fn in fns:
            v = fn(v)
        return v

    return run


def _blank_to_none(v: Any) -> Any:
    if isinstance(v, str) and (not v or v.isspace()):
        return None
    return v


def _datetime_getter(spec: DateTimeSource, idx: dict[str, int], field_name: str) -> tuple[Getter, str]:
    di = idx[spec.date]
    ti = idx[spec.time] if spec.time else None
    zi = idx[spec.timezone_column] if spec.timezone_column else None
    time_format = spec.time_format
    combined_fmt = spec.format
    default_zone = spec.timezone
    out_fmt = spec.output
    blame = spec.date
    choose = spec.ambiguous

    @functools.lru_cache(maxsize=65536)
    def convert(dv: Any, tv: Any, zone: str) -> str:
        if ti is None:
            local = parse_datetime(dv, combined_fmt)
        else:
            day = parse_date(dv, combined_fmt)
            if tv is None:
                raise _ColumnProblem(spec.time, "is empty; a start time is needed")
            try:
                clock = parse_time(tv, time_format)
            except TransformProblem as exc:
                raise _ColumnProblem(spec.time, str(exc)) from None
            local = dt.datetime.combine(day, clock)
        if not is_iana_zone(zone):
            raise _ColumnProblem(spec.timezone_column or blame, zone_problem(zone))
        return to_utc(local, zone, choose, field_name).strftime(out_fmt)

    def get(row: list) -> Any:
        dv = _blank_to_none(row[di])
        if dv is None:
            return None
        tv = _blank_to_none(row[ti]) if ti is not None else None
        zone = default_zone
        if zi is not None:
            zv = _blank_to_none(row[zi])
            if zv is not None:
                zone = to_text(zv).strip()
        if zone is None:
            raise _ColumnProblem(spec.timezone_column, "is empty and the mapping has no default timezone")
        return convert(dv, tv, zone)

    return get, blame


def to_utc(local: dt.datetime, zone: str, ambiguous: str = "refuse", field_name: str = "the field") -> dt.datetime:
    """A wall-clock time in ``zone`` as a UTC instant. A time the clocks skip (they go forward) is a
    problem; a time that happens twice (they go back) is a problem naming both instants unless
    ``ambiguous`` is "earlier" or "later"."""
    tz = ZoneInfo(zone)
    local = local.replace(tzinfo=None)
    first = local.replace(tzinfo=tz, fold=0).astimezone(dt.UTC)
    second = local.replace(tzinfo=tz, fold=1).astimezone(dt.UTC)
    if first == second:
        return first
    if first.astimezone(tz).replace(tzinfo=None) != local:  # the wall clock never shows it
        raise TransformProblem(f"{local:%Y-%m-%d %H:%M} does not exist in {zone} (the clocks go forward then)")
    earlier, later = sorted((first, second))
    if ambiguous == "earlier":
        return earlier
    if ambiguous == "later":
        return later
    names = [earlier.astimezone(tz).tzname(), later.astimezone(tz).tzname()]
    raise TransformProblem(
        f"{local:%Y-%m-%d %H:%M} happens twice in {zone} (the clocks go back then): it is either "
        f"{earlier:%Y-%m-%dT%H:%MZ} ({names[0]}) or {later:%Y-%m-%dT%H:%MZ} ({names[1]}); "
        f"set `ambiguous: earlier` or `ambiguous: later` on the mapping's {field_name} datetime to choose")


class _ColumnProblem(TransformProblem):
    def __init__(self, column: str | None, message: str) -> None:
        super().__init__(message)
        self.column = column


@dataclass
class _CompiledField:
    path: str
    parts: tuple[str | int, ...]
    get: Getter
    blame: str | None  # column named in problems
    required: bool
    send_null: bool
    const: bool
    #: every list-item prefix of the path: ('Contacts', 0) and ('Contacts', 0, 'Phones', 1) for Contacts[0].Phones[1].X
    items: tuple[tuple[str | int, ...], ...] = ()
    remote: bool = False  # uses remote_lookup


class RowMapper:
    """Turns rows of cells into payloads. Build with :func:`compile_mapping`."""

    def __init__(self, mapping: MappingFile, columns: list[str], source: str = "the sheet",
                 tables: dict[str, LookupTable] | None = None) -> None:
        self.mapping = mapping
        self.tables = tables
        self.index = _resolve_columns(mapping, columns, source)
        self.key_indexes = [self.index[c] for c in mapping.key]
        self.fields = [self._compile(path, spec) for path, spec in mapping.fields.items()]
        self.flat = all(len(f.parts) == 1 for f in self.fields)
        #: payload paths whose value needs a provider list (left as names while offline)
        self.unresolved = {f.path for f in self.fields if f.remote} if tables is None else set()
        #: run_value fields hold a placeholder until sending: the contract does not judge them
        self.unresolved |= set(mapping.run_value_paths())
        #: payload path (top-level name or full path) -> sheet columns, for contract errors
        self.columns_for: dict[str, list[str]] = {p: s.columns() for p, s in mapping.fields.items()}

    def _compile(self, path: str, spec: FieldSpec) -> _CompiledField:
        fns = [build_transform(t, self.tables)[1] for t in spec.transforms]
        post = _chain(fns)
        if spec.column is not None:
            i = self.index[spec.column]

            chain = tuple(fns)  # inlined rather than through _chain: this runs for every cell mapped

            def get(row: list, i=i, chain=chain) -> Any:
                v = row[i]
                if v.__class__ is str and (not v or v.isspace()):
                    v = None
                for fn in chain:
                    v = fn(v)
                return v

            blame = spec.column
        elif spec.template is not None:
            names = _PLACEHOLDER.findall(spec.template)
            idxs = [self.index[n] for n in names]
            pieces = _PLACEHOLDER.split(spec.template)  # text, name, text, name, ...

            def get(row: list, idxs=idxs, pieces=pieces, post=post) -> Any:
                vals = [to_text(_blank_to_none(row[i])) for i in idxs]
                if all(v is None for v in vals):
                    return post(None)
                out = []
                for j, piece in enumerate(pieces):
                    out.append((vals[j // 2] or "") if j % 2 else piece)
                return post(" ".join("".join(out).split()) or None)

            blame = names[0] if len(names) == 1 else " + ".join(names)
        elif spec.datetime is not None:
            dget, blame = _datetime_getter(spec.datetime, self.index, path)

            def get(row: list, dget=dget, post=post) -> Any:
                return post(dget(row))
        elif spec.run_value is not None:
            placeholder = RunValue(spec.run_value)  # the run fills it in just before sending

            def get(row: list, placeholder=placeholder) -> Any:
                return placeholder

            blame = None
        else:
            value = spec.const

            def get(row: list, value=value, post=post) -> Any:
                return post(value)

            blame = None
        parts = split_path(path)
        items = tuple(parts[:i + 1] for i, p in enumerate(parts) if isinstance(p, int))
        remote = any(isinstance(t, dict) and "remote_lookup" in t for t in spec.transforms)
        return _CompiledField(path, parts, get, blame, spec.required, spec.when_empty == "null",
                              bool({"const", "run_value"} & spec.model_fields_set), items, remote)

    def key_of(self, row: list) -> tuple[str, ...]:
        return tuple((to_text(row[i]) or "").strip() for i in self.key_indexes)

    def _values(self, row: list, problems: list[Problem]) -> list[tuple[_CompiledField, Any]]:
        """(field, value) for every field that yields something to send (a value, or an explicit null);
        each field's problem is added to ``problems`` once."""
        out: list[tuple[_CompiledField, Any]] = []
        for f in self.fields:
            try:
                value = f.get(row)
            except TransformProblem as exc:
                problem = Problem(exc.column if isinstance(exc, _ColumnProblem) else f.blame, str(exc))
                if problem not in problems:
                    problems.append(problem)
                continue
            if value is None or value == "":
                if f.required:
                    problems.append(Problem(f.blame, "is empty; a value is required"))
                    continue
                if not f.send_null:
                    continue
                value = None
            out.append((f, value))
        return out

    def map_row(self, row: list) -> MappedRow:
        problems: list[Problem] = []
        values = self._values(row, problems)
        if self.flat:
            return MappedRow({f.path: value for f, value in values}, problems)
        # nested: a list item is kept only when a column gave one of its fields a value (or an explicit
        # null, "clear it"), so a Phones item built from an empty phone column disappears with its
        # constant PhoneType
        filled: set[tuple] = set()
        for f, _ in values:
            if not f.const:
                filled.update(f.items)
        payload: dict[str, Any] = {}
        for f, value in values:
            if f.items and f.items[-1] not in filled:
                continue
            set_path(payload, f.parts, value)
        return MappedRow(_prune(payload), problems)


def compile_mapping(mapping: MappingFile, columns: list[str], source: str = "the sheet",
                    tables: dict[str, LookupTable] | None = None) -> RowMapper:
    """``tables``: lookup tables fetched from the provider (None offline: remote_lookup leaves names)."""
    return RowMapper(mapping, columns, source, tables)

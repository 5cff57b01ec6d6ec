"""The BigChange API as the simulator (flows/sandbox/bigchange.py) serves it: OAuth2 clients and
scopes, reference data (job types, contacts, people, resources, custom fields), instants, RFC 7807
problem bodies and paging.
"""
from __future__ import annotations

import base64
import json
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from .server import json_response

DEFAULT_CLIENT_ID = "sandbox-client"
DEFAULT_CLIENT_SECRET = "sandbox-secret-not-real"
DEFAULT_CUSTOMER_ID = "4242"
#: scopes the default client may ask for
DEFAULT_CLIENT_SCOPES = frozenset({"jobs:read", "jobs:write"})
TOKEN_PATH = "/auth/tokens"
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
_PROBLEM_TYPES = {
    400: "https://tools.ietf.org/html/rfc9110#section-15.5.1",
    401: "https://tools.ietf.org/html/rfc9110#section-15.5.2",
    403: "https://tools.ietf.org/html/rfc9110#section-15.5.4",
    404: "https://tools.ietf.org/html/rfc9110#section-15.5.5",
    422: "https://tools.ietf.org/html/rfc4918#section-11.2",
}
_TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           422: "One or more validation errors occurred.", 429: "Too Many Requests",
           500: "Internal Server Error", 503: "Service Unavailable"}


def _needed_scope(method: str, path: str) -> str | None:
    """The scope a /v1 call needs: jobs:write to create or schedule a job [C for create], jobs:read to read jobs [I]."""
    if path == "/v1/jobs" or path.startswith("/v1/jobs/"):
        return "jobs:read" if method in ("GET", "HEAD") else "jobs:write"
    return None


@dataclass(frozen=True)
class JobType:
    id: int
    name: str
    default_duration: int  # minutes
    requires_order_number: bool = False
    auto_reference: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "defaultDuration": self.default_duration,
                "autoReference": self.auto_reference}


@dataclass(frozen=True)
class Contact:
    id: int
    name: str
    postcode: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "postcode": self.postcode}


@dataclass(frozen=True)
class Person:
    id: str  # uuid
    contact_id: int
    first_name: str
    last_name: str
    email: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "contactId": self.contact_id, "firstName": self.first_name,
                "lastName": self.last_name, "email": self.email}


@dataclass(frozen=True)
class Resource:
    id: int
    name: str
    type: str = "engineer"

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "type": self.type}


@dataclass(frozen=True)
class CustomFieldDefinition:
    id: int
    name: str
    entity_type: str  # job | contact
    field_type: str = "text"

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "entityType": self.entity_type, "type": self.field_type}


DEFAULT_JOB_TYPES: tuple[JobType, ...] = (
    JobType(101, "Boiler Service", 60),
    JobType(102, "Boiler Repair", 90, requires_order_number=True),
    JobType(103, "Gas Safety Certificate", 45, requires_order_number=True),
    JobType(104, "Landlord Inspection", 30),
    JobType(105, "Boiler Installation", 480, requires_order_number=True),
    JobType(106, "Powerflush", 240),
    JobType(107, "Breakdown Callout", 120, auto_reference=True),
)

_NAMED_CONTACTS = (
    Contact(5001, "Acme Ltd", "LS1 4AP"),
    Contact(5002, "Bright Homes Lettings", "LS6 2QB"),  # two branches with one name: ambiguous
    Contact(5003, "Bright Homes Lettings", "YO1 7HH"),
    Contact(5004, "Harbour View Flats", "HU1 2BN"),
    Contact(5005, "Pennine Housing Association", "HX1 1UJ"),
    Contact(5006, "Oakridge Lettings", "HG1 1AA"),
    Contact(5007, "Thistle Property Management", "BD1 5AH"),
    Contact(5008, "Kestrel Facilities Ltd", "WF1 2SQ"),
    Contact(5009, "Mrs Joan Whitaker", "LS17 6PD"),
    Contact(5010, "Mr Ade Okafor", "S1 2HE"),
)
#: the named customers, then 1,200 more so a full contact list takes two pages of 1,000
DEFAULT_CONTACTS: tuple[Contact, ...] = _NAMED_CONTACTS + tuple(
    Contact(6000 + i, f"Sandbox Customer {i:04d}") for i in range(1, 1201))


def _person(contact_id: int, first: str, last: str, email: str) -> Person:
    return Person(str(uuid.uuid5(uuid.NAMESPACE_URL, f"bigchange-sandbox:{email}")), contact_id, first, last, email)


DEFAULT_PEOPLE: tuple[Person, ...] = (
    _person(5001, "Dana", "Reeves", "dana.reeves@acme.example"),
    _person(5001, "Marcus", "Lee", "facilities@acme.example"),
    _person(5004, "Helen", "Brook", "helen.brook@harbourview.example"),
    _person(5005, "Imran", "Qureshi", "repairs@pennine-ha.example"),
    _person(5006, "Sophie", "Turner", "sophie@oakridge.example"),
    _person(5007, "Angus", "Reid", "maintenance@thistlepm.example"),
)
DEFAULT_RESOURCES: tuple[Resource, ...] = (
    Resource(301, "Sam Patel"),
    Resource(302, "Priya Shah"),
    Resource(303, "Tom Evans"),
    Resource(304, "Grace Hughes"),
    Resource(305, "Callum MacLeod"),
    Resource(390, "Van 12 (YX21 KLM)", "vehicle"),
)
DEFAULT_CUSTOM_FIELDS: tuple[CustomFieldDefinition, ...] = (
    CustomFieldDefinition(71, "Boiler Make", "job"),
    CustomFieldDefinition(72, "Gate Code", "job"),
    CustomFieldDefinition(73, "Gate Code", "contact"),  # same name on contacts: the lookup filters entityType
    CustomFieldDefinition(74, "Access Notes", "job"),
)


# --- values ---------------------------------------------------------------------------------------


def _now() -> datetime:
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _format(when: datetime) -> str:
    """Times as BigChange's .NET API writes a DateTimeOffset [I]: seconds and an offset, never the
    ``...000Z`` clients send (``2027-03-29T08:00:00+00:00``), so a client must compare instants."""
    return when.astimezone(UTC).isoformat(timespec="seconds")


def parse_instant(text: Any) -> datetime | None:
    """ISO 8601 with Z, an offset, or none (taken as UTC) -> aware datetime; None if unreadable."""
    if not isinstance(text, str) or not text.strip():
        return None
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def access_token(client_id: str, scopes: list[str], lifetime: float) -> str:
    """A JWT-looking access token as the token endpoint returns it: readable claims (issuer, client, scopes,
    issued and expiry times), a random signature."""
    now = time.time()
    claims = {"iss": "https://sandbox.bigchange.invalid/auth", "sub": client_id, "scope": " ".join(scopes),
              "iat": int(now), "exp": int(now + lifetime) + 1, "jti": secrets.token_hex(8)}
    return ".".join((_b64(b'{"alg":"HS256","typ":"JWT"}'), _b64(json.dumps(claims).encode()),
                     _b64(secrets.token_bytes(32))))


def problem(status: int, detail: str, errors: Mapping[str, list[str]] | None = None, *,
            instance: str | None = None, headers: Mapping[str, str] | None = None) -> web.Response:
    """An RFC 7807 answer (``application/problem+json``), with an ``errors`` map for validation."""
    body: dict[str, Any] = {}
    if errors is not None:
        body["errors"] = dict(errors)
    body.update(type=_PROBLEM_TYPES.get(status, "about:blank"), title=_TITLES.get(status, "Error"), status=status,
                detail=detail, instance=instance)
    return web.Response(body=json.dumps(body, ensure_ascii=False).encode(), status=status, headers=headers,
                        content_type="application/problem+json", charset="utf-8")


def _fault_body(status: int, code: str, message: str) -> dict[str, Any]:
    return {"type": _PROBLEM_TYPES.get(status, "about:blank"), "title": _TITLES.get(status, message),
            "status": status, "detail": message, "instance": None}


class _Errors:
    """Collects ``{property: [messages]}``; a wrong JSON type makes the answer 400, anything else 422."""

    def __init__(self) -> None:
        self.errors: dict[str, list[str]] = {}
        self.bad_request = False

    def type(self, prop: str, message: str) -> None:
        self.errors.setdefault(prop, []).append(message)
        self.bad_request = True

    def add(self, prop: str, message: str) -> None:
        self.errors.setdefault(prop, []).append(message)

    def response(self, instance: str) -> web.Response:
        if self.bad_request:
            return problem(400, "The request body has values of the wrong type.", self.errors, instance=instance)
        return problem(422, "See the errors property for details.", self.errors, instance=instance)


def _public(job: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in job.items() if not k.startswith("_")}


def _paging(request: web.Request) -> tuple[int, int] | web.Response:
    q = request.query
    e = _Errors()
    values = []
    for name, default, high in (("pageNumber", 1, 2147483), ("pageSize", DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)):
        raw = q.get(name)
        try:
            value = default if raw is None else int(raw)
        except ValueError:
            value = 0
        if not 1 <= value <= high:
            e.add(name, f"must be between 1 and {high}")
        values.append(value)
    if e.errors:
        return problem(400, "The paging parameters are out of range.", e.errors, instance=request.path)
    return values[0], values[1]


def _page(items: list[Any], page: int, size: int) -> web.Response:
    first = (page - 1) * size
    return json_response({"items": items[first:first + size], "pageNumber": page, "pageSize": size,
                          "totalCount": len(items)})

"""A BigChange API simulator (``https://api.bigchange.com``), served on loopback.

What it implements, from BigChange's REST reference and public client code (see
shared/providers.md, "2. BigChange"):

* ``POST /auth/tokens``: OAuth2 client credentials (form ``grant_type=client_credentials``,
  ``client_id``, ``client_secret``) -> ``{"access_token": <JWT-looking>, "token_type": "Bearer",
  "expires_in": <seconds>, "scope"}``; **401** ``{"error": "invalid_client"}`` for a bad id or secret.
  ``scope`` (space-separated) asks for scopes: the token gets exactly those; one the client was not
  granted (:attr:`~BigChangeSimulator.client_scopes`) is **400** ``{"error": "invalid_scope"}``
  (RFC 6749 5.2). Without ``scope`` the token gets ``default_scope`` [I: BigChange documents no
  default; RFC 6749 3.3 leaves it to the server], by default none: reference lists work, jobs do not.
* Create Job needs ``jobs:write`` [C: "Create a new job (required scope jobs:write)"]; scheduling is
  taken to need it too and reading jobs ``jobs:read`` [I]. A token without the scope is **403**
  problem+json naming it, with ``WWW-Authenticate: Bearer error="insufficient_scope",
  scope="jobs:write"`` (RFC 6750 3.1), whatever the body.
  Tokens live ``token_lifetime`` seconds on ``clock`` (a test may pass its own); :meth:`expire_tokens` revokes
  every token issued so far (a rotation mid-run).
* every ``/v1`` call needs ``Authorization: Bearer <valid, unexpired token>`` (**401**) and a
  ``Customer-Id`` header (**400** when missing or not a number, **403** for a customer the client
  may not use);
* paged lists (``pageNumber`` >= 1, ``pageSize`` 1..1000, answer ``{"items", "pageNumber",
  "pageSize", "totalCount"}``): ``GET /v1/jobTypes``, ``/v1/contacts``, ``/v1/persons``,
  ``/v1/resources``, ``/v1/customFieldDefinitions`` (``entityType`` filter: job or contact) and
  ``/v1/jobs`` (filters ``contactId``, ``typeId``, ``resourceId``, ``orderNumber``,
  ``reference``, ``createdAtFrom``/``createdAtTo``);
* ``POST /v1/jobs``: **201** ``{"id"}``; **400** RFC 7807 for a body that is not a JSON object or
  has a value of the wrong type; **422** ``{"errors": {property: [messages]}, type, title, status,
  detail, instance}`` for unknown ids, a missing ``orderNumber`` when the job type requires one
  (``"orderNumber": ["required for this job type"]``) or a custom field definition that is not a
  job field (reported ASP.NET-style as ``"CustomFields[0].DefinitionId"``);
* ``PUT /v1/jobs/{id}/schedule`` ``{"resourceId", "plannedStartAt"}`` [I] (null for both
  unschedules): **204**; **404** for no such job; **422** for an unknown resource or one in
  :attr:`BigChangeSimulator.busy_resources`; **503** while :attr:`~BigChangeSimulator.schedule_outage`
  is set; ``GET /v1/jobs/{id}``.

Errors are ``application/problem+json``. Sandbox-only control routes (no token):
``GET /_sandbox/state``, ``POST /_sandbox/faults``, ``POST /_sandbox/reset``. The fault knobs
act on ``/v1`` writes only; the token endpoint is never faulted.
"""
from __future__ import annotations

import collections
import itertools
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import Any

from aiohttp import web

from .bigchange_api import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SCOPES,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_CONTACTS,
    DEFAULT_CUSTOM_FIELDS,
    DEFAULT_CUSTOMER_ID,
    DEFAULT_JOB_TYPES,
    DEFAULT_PEOPLE,
    DEFAULT_RESOURCES,
    TOKEN_PATH,
    Contact,
    CustomFieldDefinition,
    JobType,
    Person,
    Resource,
    _Errors,
    _fault_body,
    _format,
    _is_int,
    _needed_scope,
    _now,
    _page,
    _paging,
    _public,
    access_token,
    parse_instant,
    problem,
)
from .faults import FaultInjector, Faults
from .server import SANDBOX_PREFIX, Simulator, create_app, json_response, read_json

__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "DEFAULT_CONTACTS",
    "DEFAULT_CUSTOMER_ID",
    "DEFAULT_CUSTOM_FIELDS",
    "DEFAULT_JOB_TYPES",
    "DEFAULT_PEOPLE",
    "DEFAULT_RESOURCES",
    "TOKEN_PATH",
    "BigChangeSimulator",
    "Contact",
    "CustomFieldDefinition",
    "JobType",
    "Person",
    "Resource",
]

# --- the simulator -----------------------------------------------------------------------------------


class BigChangeSimulator(Simulator):
    """In-memory BigChange: reference data, jobs, OAuth2 clients and tokens, fault knobs.

    State is only changed on the server's event loop (and by the few methods documented as safe
    to call from a test's thread); tests may read :attr:`jobs`, :attr:`logins`, :attr:`requests`
    and :attr:`create_requests` once requests are done.
    """

    provider = "bigchange"

    @classmethod
    def sandbox_env(cls, url: str) -> dict[str, str]:
        """The environment that points a run at this simulator serving at ``url`` (demo, `booking-import sandbox`)."""
        return {"BIGCHANGE_BASE_URL": f"{url}/v1", "BIGCHANGE_TOKEN_URL": f"{url}{TOKEN_PATH}",
                "BIGCHANGE_CLIENT_ID": DEFAULT_CLIENT_ID, "BIGCHANGE_CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
                "BIGCHANGE_CUSTOMER_ID": DEFAULT_CUSTOMER_ID}

    def __init__(
        self,
        clients: Mapping[str, str] | None = None,
        customer_ids: Iterable[str] = (DEFAULT_CUSTOMER_ID,),
        faults: Faults | None = None,
        *,
        token_lifetime: float = 3600.0,
        job_types: Iterable[JobType] = DEFAULT_JOB_TYPES,
        contacts: Iterable[Contact] = DEFAULT_CONTACTS,
        people: Iterable[Person] = DEFAULT_PEOPLE,
        resources: Iterable[Resource] = DEFAULT_RESOURCES,
        custom_fields: Iterable[CustomFieldDefinition] = DEFAULT_CUSTOM_FIELDS,
        client_scopes: Iterable[str] = DEFAULT_CLIENT_SCOPES,
        default_scope: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clients = dict(clients) if clients is not None else {DEFAULT_CLIENT_ID: DEFAULT_CLIENT_SECRET}
        self.customer_ids = frozenset(str(c) for c in customer_ids)
        self.token_lifetime = token_lifetime
        #: the clock tokens expire by (seconds, monotonic); a test passes its own to let a token expire without
        #: waiting for it
        self.clock = clock
        #: scopes a client may ask for, and what a token request without ``scope`` gets
        self.client_scopes = frozenset(client_scopes)
        self.default_scope = default_scope
        self.job_types = {t.id: t for t in job_types}
        self.contacts = {c.id: c for c in contacts}
        self.people = {p.id: p for p in people}
        self.resources = {r.id: r for r in resources}
        self.custom_fields = {d.id: d for d in custom_fields}
        #: resources that refuse any schedule (422), e.g. an engineer on holiday; a test may change it
        self.busy_resources: set[int] = set()
        #: when True, every schedule call answers 503 (creates still work); a test may change it
        self.schedule_outage = False
        self._initial_faults = faults or Faults()
        self.injector = FaultInjector(self._initial_faults)
        #: "METHOD /route" -> number of /v1 requests received (including refused ones)
        self.requests: collections.Counter[str] = collections.Counter()
        self._clear()

    def _clear(self) -> None:
        self._jobs: dict[int, dict[str, Any]] = {}
        self._ids = itertools.count(900001)
        self._tokens: dict[str, float] = {}  # token -> expiry on self.clock
        self._token_scopes: dict[str, frozenset[str]] = {}  # token -> scopes granted
        #: /v1 requests refused with 403 insufficient_scope
        self.insufficient_scope = 0
        self.logins = 0
        #: /v1 requests refused with 401 (no, unknown, expired or revoked token)
        self.unauthorized = 0
        #: every JSON object POSTed to /v1/jobs, accepted or not, in arrival order
        self.create_requests: list[dict[str, Any]] = []
        #: (job id, body) of every PUT /v1/jobs/{id}/schedule that was applied
        self.schedule_requests: list[tuple[int, dict[str, Any]]] = []

    # -- public, for tests and the CLI --------------------------------------------------------

    @property
    def jobs(self) -> list[dict[str, Any]]:
        """Every stored job, oldest first."""
        return list(self._jobs.values())

    @property
    def bookings(self) -> list[dict[str, Any]]:
        """The jobs, under the name the demo counts."""
        return self.jobs

    def expire_tokens(self) -> None:
        """Revoke every token issued so far (safe from another thread): the next /v1 call with one is a 401."""
        self._tokens = {}

    def reset(self) -> None:
        """Forget jobs, tokens and counts, and restore the faults given to the constructor."""
        super().reset()
        self.busy_resources = set()
        self.schedule_outage = False

    def state(self) -> dict[str, Any]:
        jobs = self.jobs
        return {
            "provider": self.provider,
            "counts": {
                "jobs": len(jobs),
                "scheduled": sum(1 for j in jobs if j["status"] == "scheduled"),
                "logins": self.logins,
                "unauthorized": self.unauthorized,
                "requests": dict(self.requests),
                "faults": dict(self.injector.counts),
            },
            "faults": self.faults.to_dict(),
            "jobs": [_public(j) for j in jobs],  # JSON: without the simulator's own _created
        }

    def app(self) -> web.Application:
        """A fresh aiohttp application over this simulator's state."""
        return create_app(
            self.injector,
            self.requests,
            routes=[
                web.post(TOKEN_PATH, self._token),
                web.get("/v1/jobTypes", self._lister(lambda q: self.job_types.values())),
                web.get("/v1/contacts", self._lister(lambda q: self.contacts.values())),
                web.get("/v1/persons", self._lister(lambda q: self.people.values())),
                web.get("/v1/resources", self._lister(lambda q: self.resources.values())),
                web.get("/v1/customFieldDefinitions", self._lister(self._definitions)),
                web.get("/v1/jobs", self._list_jobs),
                web.post("/v1/jobs", self._create_job),
                web.get("/v1/jobs/{id}", self._get_job),
                web.put("/v1/jobs/{id}/schedule", self._schedule_job),
                web.get("/_sandbox/state", self._sandbox_state),
                web.post("/_sandbox/faults", self._sandbox_faults),
                web.post("/_sandbox/reset", self._sandbox_reset),
            ],
            middlewares=[self._auth_middleware],
            error_body=_fault_body,
            exempt_prefix=(SANDBOX_PREFIX, TOKEN_PATH),
        )

    # -- OAuth2 ------------------------------------------------------------------------------------

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("grant_type") != "client_credentials":
            return json_response({"error": "unsupported_grant_type",
                                  "error_description": "grant_type must be client_credentials"}, status=400)
        client_id, secret = str(form.get("client_id") or ""), str(form.get("client_secret") or "")
        if not client_id or self.clients.get(client_id) != secret:
            return json_response({"error": "invalid_client", "error_description": "Client authentication failed"},
                                 status=401)
        asked = str(form.get("scope") if form.get("scope") is not None else self.default_scope).split()
        unknown = [x for x in asked if x not in self.client_scopes]
        if unknown:
            return json_response({"error": "invalid_scope",
                                  "error_description": f"The client may not ask for {' '.join(unknown)}"},
                                 status=400)
        token = access_token(client_id, asked, self.token_lifetime)
        self._tokens[token] = self.clock() + self.token_lifetime
        self._token_scopes[token] = frozenset(asked)
        self.logins += 1
        return json_response({"access_token": token, "token_type": "Bearer", "expires_in": self.token_lifetime,
                              "scope": " ".join(asked)})

    @web.middleware
    async def _auth_middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if not request.path.startswith("/v1/"):
            return await handler(request)
        auth = request.headers.get("Authorization", "")
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        expires = self._tokens.get(token) if token else None
        if expires is None or self.clock() >= expires:
            reason = "missing" if not token else "invalid or expired"
            self.unauthorized += 1
            return problem(401, f"The access token is {reason}.", instance=request.path,
                           headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        customer = request.headers.get("Customer-Id", "").strip()
        if not customer or not customer.isdigit():
            return problem(400, "The Customer-Id header is required and must be a number.", instance=request.path)
        if customer not in self.customer_ids:
            return problem(403, f"The client is not authorised for customer {customer}.", instance=request.path)
        needed = _needed_scope(request.method, request.path)
        if needed and needed not in self._token_scopes.get(token, frozenset()):
            self.insufficient_scope += 1
            return problem(403, f"The access token lacks the required scope {needed}.", instance=request.path,
                           headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{needed}"'})
        try:
            return await handler(request)
        except web.HTTPNotFound:
            return problem(404, "No such resource.", instance=request.path)
        except web.HTTPMethodNotAllowed as exc:
            return problem(exc.status, "Method not allowed.", instance=request.path)

    # -- lists -------------------------------------------------------------------------------------

    def _definitions(self, query: Mapping[str, str]) -> Iterable[CustomFieldDefinition]:
        entity = query.get("entityType", "").strip().casefold()
        return [d for d in self.custom_fields.values() if not entity or d.entity_type == entity]

    def _lister(self, source: Any) -> Any:
        async def handler(request: web.Request) -> web.Response:
            paging = _paging(request)
            if isinstance(paging, web.Response):
                return paging
            return _page([x.to_json() for x in source(request.query)], *paging)

        return handler

    async def _list_jobs(self, request: web.Request) -> web.Response:
        paging = _paging(request)
        if isinstance(paging, web.Response):
            return paging
        q = request.query
        errors = _Errors()
        filters: dict[str, int] = {}
        for name in ("contactId", "typeId", "resourceId"):
            if name in q:
                try:
                    filters[name] = int(q[name])
                except ValueError:
                    errors.type(name, f"The value '{q[name]}' is not valid.")
        window = {}
        for name in ("createdAtFrom", "createdAtTo"):
            if name in q:
                window[name] = parse_instant(q[name])
                if window[name] is None:
                    errors.type(name, f"The value '{q[name]}' is not a valid date-time.")
        if errors.errors:
            return errors.response(request.path)
        found = []
        lo, hi = window.get("createdAtFrom"), window.get("createdAtTo")
        for job in self._jobs.values():
            if any(job[k] != v for k, v in filters.items()):
                continue
            if "orderNumber" in q and job["orderNumber"] != q["orderNumber"]:
                continue
            if "reference" in q and job["reference"] != q["reference"]:
                continue
            created = job["_created"]
            if (lo is not None and created < lo) or (hi is not None and created > hi):
                continue
            found.append(_public(job))
        return _page(found, *paging)

    # -- jobs --------------------------------------------------------------------------------------

    async def _create_job(self, request: web.Request) -> web.Response:
        ok, body = await read_json(request)
        if not ok or not isinstance(body, dict):
            return problem(400, "The request body must be a JSON object.", instance=request.path)
        self.create_requests.append(body)
        e = _Errors()
        for name in ("typeId", "contactId", "plannedDuration"):
            v = body.get(name)
            if v is not None and not _is_int(v):
                e.type(name, "The JSON value could not be converted to System.Int64.")
        for name in ("reference", "description", "orderNumber", "personId"):
            v = body.get(name)
            if v is not None and not isinstance(v, str):
                e.type(name, "The JSON value could not be converted to System.String.")
        fields = body.get("customFields")
        if fields is not None and (not isinstance(fields, list) or not all(isinstance(f, dict) for f in fields)):
            e.type("customFields", "The JSON value could not be converted to a list of custom fields.")
            fields = None
        for i, f in enumerate(fields or []):
            if not _is_int(f.get("definitionId")):
                e.type(f"CustomFields[{i}].DefinitionId", "The JSON value could not be converted to System.Int64.")
            if f.get("value") is not None and not isinstance(f.get("value"), str):
                e.type(f"CustomFields[{i}].Value", "The JSON value could not be converted to System.String.")
        if e.bad_request:
            return e.response(request.path)

        job_type = self.job_types.get(body.get("typeId")) if body.get("typeId") is not None else None
        if body.get("typeId") is None:
            e.add("typeId", "is required")
        elif job_type is None:
            e.add("typeId", f"job type {body['typeId']} does not exist")
        contact = self.contacts.get(body.get("contactId")) if body.get("contactId") is not None else None
        if body.get("contactId") is None:
            e.add("contactId", "is required")
        elif contact is None:
            e.add("contactId", f"contact {body['contactId']} does not exist")
        duration = body.get("plannedDuration")
        if duration is not None and not 1 <= duration <= 10080:
            e.add("plannedDuration", "must be between 1 and 10080 minutes")
        person_id = body.get("personId")
        if person_id is not None:
            try:
                person_id = str(uuid.UUID(person_id))
            except ValueError:
                e.add("personId", "is not a valid uuid")
            else:
                person = self.people.get(person_id)
                if person is None:
                    e.add("personId", f"person {person_id} does not exist")
                elif contact is not None and person.contact_id != contact.id:
                    e.add("personId", f"person {person_id} is not a contact person of {contact.name}")
        for i, f in enumerate(fields or []):
            d = self.custom_fields.get(f["definitionId"])
            if d is None:
                e.add(f"CustomFields[{i}].DefinitionId", f"custom field definition {f['definitionId']} does not exist")
            elif d.entity_type != "job":
                e.add(f"CustomFields[{i}].DefinitionId",
                      f"custom field definition {d.id} ({d.name}) is not a job field")
        if job_type is not None and job_type.requires_order_number and not (body.get("orderNumber") or "").strip():
            e.add("orderNumber", "required for this job type")
        if e.errors:
            return e.response(request.path)

        assert job_type is not None and contact is not None
        job_id = next(self._ids)
        reference = body.get("reference")
        if not reference and job_type.auto_reference:
            reference = f"AUTO-{job_id}"
        created = _now()
        self._jobs[job_id] = {
            "id": job_id,
            "reference": reference,
            "typeId": job_type.id,
            "typeName": job_type.name,
            "contactId": contact.id,
            "contactName": contact.name,
            "personId": person_id,
            "description": body.get("description"),
            "orderNumber": body.get("orderNumber"),
            "plannedDuration": duration if duration is not None else job_type.default_duration,
            "customFields": [{"definitionId": f["definitionId"], "name": self.custom_fields[f["definitionId"]].name,
                              "value": f.get("value")} for f in fields or []],
            "status": "new",
            "resourceId": None,
            "resourceName": None,
            "plannedStartAt": None,
            "plannedEndAt": None,
            "createdAt": _format(created),
            "_created": created,
        }
        return json_response({"id": job_id}, status=201, headers={"Location": f"/v1/jobs/{job_id}"})

    def _job(self, request: web.Request) -> dict[str, Any] | None:
        try:
            return self._jobs.get(int(request.match_info["id"]))
        except ValueError:
            return None

    async def _get_job(self, request: web.Request) -> web.Response:
        job = self._job(request)
        if job is None:
            return problem(404, f"Job {request.match_info['id']} was not found.", instance=request.path)
        return json_response(_public(job))

    async def _schedule_job(self, request: web.Request) -> web.Response:
        if self.schedule_outage:
            return problem(503, "Scheduling is temporarily unavailable.", instance=request.path)
        job = self._job(request)
        if job is None:
            return problem(404, f"Job {request.match_info['id']} was not found.", instance=request.path)
        ok, body = await read_json(request)
        if not ok or not isinstance(body, dict):
            return problem(400, "The request body must be a JSON object.", instance=request.path)
        e = _Errors()
        resource_id, start = body.get("resourceId"), body.get("plannedStartAt")
        if resource_id is not None and not _is_int(resource_id):
            e.type("resourceId", "The JSON value could not be converted to System.Int64.")
        if start is not None and not isinstance(start, str):
            e.type("plannedStartAt", "The JSON value could not be converted to System.DateTimeOffset.")
        if e.bad_request:
            return e.response(request.path)
        if resource_id is None and start is None:  # unschedule
            job.update(status="new", resourceId=None, resourceName=None, plannedStartAt=None, plannedEndAt=None)
            self.schedule_requests.append((job["id"], body))
            return web.Response(status=204)
        resource = self.resources.get(resource_id) if resource_id is not None else None
        if resource_id is None:
            e.add("resourceId", "is required to schedule a job")
        elif resource is None:
            e.add("resourceId", f"resource {resource_id} does not exist")
        elif resource_id in self.busy_resources:
            e.add("resourceId", f"{resource.name} is not available at that time")
        when = parse_instant(start) if start is not None else None
        if start is None:
            e.add("plannedStartAt", "is required to schedule a job")
        elif when is None:
            e.add("plannedStartAt", f"'{start}' is not a valid date-time")
        if e.errors:
            return e.response(request.path)
        assert resource is not None and when is not None
        job.update(status="scheduled", resourceId=resource.id, resourceName=resource.name,
                   plannedStartAt=_format(when), plannedEndAt=_format(when + timedelta(minutes=job["plannedDuration"])))
        self.schedule_requests.append((job["id"], body))
        return web.Response(status=204)

    # -- sandbox control ---------------------------------------------------------------------------

    def _control_error(self, message: str) -> web.Response:
        return problem(400, message)

    def _emptied(self) -> dict[str, Any]:
        return {"jobs": 0}

"""How a provider is called: the connection and its auth, the request, how answers are read
(status rules and reasons), retries, and the provider lists fetched for lookups."""
from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from ..outcomes import Action, Reason, Rule, rule_for
from .base import Strict

__all__ = [
    "ApiKeyBody",
    "ApiKeyHeader",
    "AuthSpec",
    "Connection",
    "EnvName",
    "JwtLogin",
    "LookupSpec",
    "NoAuth",
    "OAuth2ClientCredentials",
    "Paging",
    "RequestSpec",
    "ResponseReason",
    "ResponseRule",
    "RetrySpec",
]

_ENV_NAME = r"^[A-Z][A-Z0-9_]*$"


# --- connection, auth, request -------------------------------------------------------------------

EnvName = Annotated[str, Field(pattern=_ENV_NAME,
                               description="Name of an environment variable (never the secret itself).")]


class ApiKeyHeader(Strict):
    kind: Literal["api_key_header"]
    header: str = Field(description="Header that carries the key, e.g. X-Jicoo-Api-Key.")
    secret: EnvName


class ApiKeyBody(Strict):
    kind: Literal["api_key_body"]
    field: str = Field(description="Body field that carries the key, e.g. api_key.")
    secret: EnvName


class NoAuth(Strict):
    kind: Literal["none"]


class OAuth2ClientCredentials(Strict):
    """OAuth2 client credentials: a token from token_url, sent as `Authorization: Bearer`."""

    kind: Literal["oauth2_client_credentials"]
    token_url: str = Field(description="Absolute token URL; <PROVIDER>_TOKEN_URL in the environment overrides it.")
    client_id: EnvName
    client_secret: EnvName
    scope: str | list[str] | None = Field(None, description="Scopes the token request asks for (sent as `scope`), a "
                                                            "list or one space-separated string, e.g. [jobs:read, "
                                                            "jobs:write] for BigChange.")
    headers: dict[str, EnvName] = Field(default_factory=dict,
                                        description="Extra headers on every call, each from an environment variable, "
                                                    "e.g. Customer-Id: BIGCHANGE_CUSTOMER_ID.")
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


class JwtLogin(Strict):
    """A login call that returns a JWT, sent in a header on every call."""

    kind: Literal["jwt_login"]
    path: str = Field("/createjwt", description="Login path after base_url.")
    username: EnvName
    password: EnvName
    token_field: str = Field("token", description="Field of the login response holding the token.")
    header: str = Field("x-access-token", description="Header that carries the token.")
    refresh_margin_seconds: float = Field(60.0, ge=0, description="Log in again this long before the token's exp.")


AuthSpec = Annotated[ApiKeyHeader | ApiKeyBody | NoAuth | OAuth2ClientCredentials | JwtLogin,
                     Field(discriminator="kind")]


class Paging(Strict):
    page_param: str = Field(description="Query parameter with the page number, e.g. pageNumber.")
    size_param: str = Field(description="Query parameter with the page size, e.g. pageSize.")
    size: int = Field(100, ge=1, le=10000, description="Items per page to ask for.")
    first_page: int = Field(1, description="Number of the first page.")
    max_pages: int = Field(1000, ge=1, description="Safety stop.")


class LookupSpec(Strict):
    """A provider list fetched once per run that turns names from the sheet into provider ids."""

    path: str = Field(description="List endpoint after base_url, e.g. /jobTypes.")
    params: dict[str, Any] = Field(default_factory=dict, description="Extra query parameters.")
    items: str = Field("", description="Dotted path of the list in the response; empty when the body is the list.")
    match: str = Field(description="Item field compared with the sheet value (after trimming and case-folding).")
    value: str = Field(description="Item field sent to the provider, e.g. id.")
    paging: Paging | None = None


class Connection(Strict):
    base_url: str = Field(description="Provider base URL; <PROVIDER>_BASE_URL in the environment overrides it.")
    auth: AuthSpec
    timeout_seconds: float = Field(30.0, gt=0, description="Seconds to wait for a response before the row becomes "
                                                           "`unknown`.")
    connect_timeout_seconds: float = Field(10.0, gt=0, description="Seconds to wait for a connection (safe to retry).")
    concurrency: int = Field(8, ge=1, le=500, description="Requests in flight at once (--concurrency overrides).")
    rate: float | None = Field(10.0, gt=0, allow_inf_nan=False,
                               description="Requests per second the provider publishes, never exceeded in any second "
                                           "(shared by every run using the ledger); null when it publishes none: start "
                                           "at the concurrency bound and adapt to its 429s (--rate overrides, 0 = "
                                           "null).")

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^https?://[^\s/]+", v):
            raise ValueError(f"{v!r} is not an http(s) URL")
        return v.rstrip("/")


class ResponseReason(Strict):
    """Phrases that, found in an answer's body, decide it (e.g. a 500 whose text says the row was refused)."""

    action: Action = Field(description="success, reject, retry, unknown, stop or fail, for a body with one of the "
                                       "phrases.")
    text: list[str] = Field(min_length=1, description="Phrases as the provider writes them, e.g. 'Account * does not "
                                                      "exist': case and spacing ignored, * is any text within one "
                                                      "sentence.")
    message: str = Field("", description="Message put in _message (the body's own text follows it); defaults to the "
                                         "status's.")

    @field_validator("text")
    @classmethod
    def _phrases(cls, v: list[str]) -> list[str]:
        for phrase in v:
            if not phrase.replace("*", "").strip():
                raise ValueError(f"{phrase!r} matches any text: give words from the provider's answer")
        return v


class ResponseRule(Strict):
    action: Action | None = Field(None, description="success, reject, retry, unknown, stop or fail; defaults to the "
                                                    "status table's.")
    message: str = Field("", description="Message put in _message for rows that get this status.")
    reasons: list[ResponseReason] = Field(default_factory=list,
                                          description="Checked in order against the body's text; the first with a "
                                                      "matching phrase decides, else `action`.")


class RequestSpec(Strict):
    method: Literal["POST", "PUT", "PATCH"] = "POST"
    path: str = Field(description="Path after base_url; {field} placeholders take values from the payload, e.g. "
                                  "/WorkOrder/{WorkOrderNum}.")
    body: Literal["json", "form"] = Field("json", description="json, or form (application/x-www-form-urlencoded, "
                                                              "nested fields as a[b] keys).")
    contract: str | None = Field(None, description="Provider request model the payload must satisfy, e.g. "
                                                   "jicoo.CreateBooking.")
    idempotent: bool = Field(False, description="True only when resending the same request cannot create a second "
                                                "booking (e.g. a PUT upsert keyed by your own number).")
    success: Literal["created", "accepted"] = Field("created",
                                                    description="Status of a row the provider answered with success: "
                                                                "created, or accepted when the provider only queues "
                                                                "it.")
    provider_id: str | None = Field(None, description="Dotted path of the provider's id in the success response, e.g. "
                                                      "uid or data.id.")
    responses: dict[int, ResponseRule] = Field(default_factory=dict,
                                               description="Overrides of the default status table, by HTTP status.")
    readback: str | None = Field(None, description="Named check that finds a row at the provider after an unknown "
                                                   "outcome, e.g. jicoo.find_booking.")
    handler: str | None = Field(None, description="Named code that sends a row when one request is not enough (lookups "
                                                  "of slots, a second call), e.g. bigchange.create_and_schedule.")
    callback: str | None = Field(None, description="Named code that reads the provider's callback for a row (a "
                                                   "run_value: callback_url field), e.g. "
                                                   "systemsx_bridge.read_callback.")

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


class RetrySpec(Strict):
    attempts: int = Field(default=5, ge=1, le=20, description="Most tries of one request when a resend is safe.")
    backoff_seconds: float = Field(default=0.5, ge=0, description="First backoff; doubles each time, with full jitter.")
    max_backoff_seconds: float = Field(default=30.0, ge=0, description="Longest single backoff.")
    max_retry_after_seconds: float = Field(default=120.0, ge=0,
                                           description="Longest Retry-After honoured; longer ones give up the row as "
                                                       "failed.")

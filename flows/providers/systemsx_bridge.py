"""Systems X Bridge: the Create Booking Job contract and how its ``return_url`` callback reads.

Everything else (URL, ``api_key`` in the body, form encoding, accepted-not-created) is data in
mappings/systemsx_bridge.yaml. Facts: ../shared/providers.md, section "1. Systems X Bridge",
and ../shared/specs/systemsx-bridge-create-job.txt.

* ``POST /external/deploy/booking``: form (``bookingFields[username]`` literal bracket keys) or
  JSON (a nested ``bookingFields`` object). ``api_key`` goes in the body too, added by the
  ``api_key_body`` auth at send time, so it is not part of the contract below.
* 200 ``{"hash"}`` means queued: the row is ``accepted`` with the hash as its provider id.
  400 ``{"hash", "errors": ["X field is Missing or Empty."]}``: ``rejected``.
* Later Bridge POSTs the "return_url Response" to the row's ``return_url``;
  :func:`read_callback` (the mapping's ``request.callback``) reads it for flows/http/callbacks.py, which
  settles the row ``created``.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from ..hooks import Callback
from ..outcomes import Status
from .types import Email

__all__ = ["TYPES", "BookingFields", "CreateBooking", "read_callback"]

#: operator portals Bridge imports from: P&O Cruises, MSC Cruises, TUI (providers.md: "very likely")
TYPES = ("po", "msc", "tui")


def _http_url(v: str) -> str:
    if not v.startswith(("https://", "http://")):
        raise ValueError("must be an http(s) URL")
    return v


class BookingFields(BaseModel):
    """The customer's login at the operator's portal: a username **or** an e-mail address, and a password."""

    model_config = ConfigDict(extra="forbid")

    username: str | None = Field(None, min_length=1, max_length=255)
    email_address: Email | None = Field(None, max_length=255)
    password: str = Field(min_length=1, max_length=255)

    @model_validator(mode="after")
    def _one_login(self) -> BookingFields:
        if self.username and self.email_address:
            raise ValueError("both username and email_address are filled in: give only one (the portal login is one or "
                             "the other)")
        if not self.username and not self.email_address:
            raise ValueError("username or email_address is needed (the customer's portal login): both are empty")
        return self


class CreateBooking(BaseModel):
    """POST /external/deploy/booking, as documented (api_key excluded: the auth adds it)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["po", "msc", "tui"]
    bookingReference: str = Field(min_length=1, max_length=255)
    organisationName: str = Field(min_length=1, max_length=255)
    agentName: str = Field(min_length=1, max_length=255)
    return_url: Annotated[str, AfterValidator(_http_url)] | None = None
    bookingFields: BookingFields


def read_callback(body: Any) -> Callback:
    """The documented "return_url Response", JSON or form (bracket keys already nested)::

        {"hash": "…", "ImportDetail": {"importRequest": {"sourceReference", "bookingReference",
                                                        "bookingFields", "returnUrl", "api_key", "type"}}}

    The documents give no outcome field, so a callback means Bridge imported the booking: the row
    becomes ``created``. An ``errors`` list (not documented; read defensively, at the top level or
    in ``ImportDetail``) makes it ``rejected`` with those messages. The row is matched by ``hash``;
    ``(type, bookingReference)`` also finds a row left ``unknown`` (sent, no answer) whose hash was
    never learned. Raises ValueError when the body is not a callback at all.
    """
    if not isinstance(body, dict):
        raise ValueError("the body is not an object")
    provider_id = str(body.get("hash") or "").strip()
    if not provider_id:
        raise ValueError("the body has no hash")
    detail = _section(body, "ImportDetail")
    request = _section(detail, "importRequest")
    reference = str(request.get("bookingReference") or "").strip() or None
    kind = str(request.get("type") or "").strip() or None
    errors = body.get("errors") or detail.get("errors")
    if isinstance(errors, str):
        errors = [errors]
    elif isinstance(errors, dict):  # a form body's errors[0]=…&errors[1]=… arrives as {"0": …, "1": …}
        errors = list(errors.values())
    if isinstance(errors, list) and errors:
        message = "Systems X Bridge could not import it: " + "; ".join(map(str, errors))
        return Callback(provider_id, Status.REJECTED, message,
                        reference, tuple(v for v in (kind, reference) if v) if reference else ())
    return Callback(provider_id, Status.CREATED, "imported: confirmed by Systems X Bridge's callback", reference,
                    tuple(v for v in (kind, reference) if v) if reference else ())


def _section(data: dict[str, Any], key: str) -> dict[str, Any]:
    """``data[key]`` when it is an object, else an empty one (a callback body is read defensively)."""
    value = data.get(key)
    return value if isinstance(value, dict) else {}

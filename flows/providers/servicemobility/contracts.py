"""ServiceMobility's request contracts (the objects a sheet fills, as its docs describe them) and its
UTC time form. Labels as in the package docstring: [C] the ServicePower docs say so, [I] our reading."""
from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from ..types import Email, UtcDateTime

__all__ = [
    "Account",
    "AccountLoc",
    "Address",
    "AppointmentSearch",
    "BookJob",
    "Contact",
    "Dispatch",
    "Location",
    "Period",
    "Phone",
    "TimeConstraint",
    "WorkOrder",
    "format_utc",
    "parse_utc",
]

_Email = Email  # field names equal to type names need another name for the type


# --- contracts ---------------------------------------------------------------------------------------


class _Obj(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Account(_Obj):
    """Only AccountNum: a managed account, which must exist. Any other property: ad-hoc, passed through [C]."""

    AccountNum: str | None = Field(None, min_length=1, max_length=50)
    AccountType: str | None = None
    Name: str | None = Field(None, max_length=100)
    Notes: str | None = None
    Website: str | None = None

    @model_validator(mode="after")
    def _identified(self) -> Account:
        if not self.AccountNum and not self.Name:
            raise ValueError("needs an AccountNum (a managed account) or a Name (an ad-hoc one)")
        return self


_Account = Account


class Address(_Obj):
    AddrLine1: str | None = Field(None, max_length=100)
    AddrLine2: str | None = Field(None, max_length=100)
    AddrLine3: str | None = Field(None, max_length=100)
    AddrLine4: str | None = Field(None, max_length=100)
    AddrType: str | None = None
    City: str | None = Field(None, max_length=60)
    Country: str | None = None
    Intersection: str | None = None
    Lat: str | None = None
    Lon: str | None = None
    Region: str | None = None
    Zip: str | None = Field(None, max_length=20)


_Address = Address


class Phone(_Obj):
    PhoneNum: str = Field(min_length=1, max_length=30)
    PhoneType: str | None = None


class Contact(_Obj):
    Email: _Email | None = None
    FirstName: str | None = Field(None, max_length=50)
    IsPrimary: bool | None = None
    LastName: str | None = Field(None, max_length=50)
    Phones: list[Phone] | None = None


class Location(_Obj):
    """Where the visit happens (Book Job and Appointment Search objects) [C]."""

    Address: _Address | None = None
    Contacts: list[Contact] | None = None
    Email: _Email | None = None
    LanguageID: str | None = None
    LocationNum: str | None = None
    Name: str | None = Field(None, max_length=100)
    Notes: str | None = Field(None, max_length=2000)
    POReq: bool | None = None
    ServiceAreaID: str | None = None
    SigReq: bool | None = None
    StorageLocationID: str | None = None


_Location = Location


class Period(_Obj):
    Start: UtcDateTime
    End: UtcDateTime

    @field_validator("End")
    @classmethod
    def _after_start(cls, end: str, info: ValidationInfo) -> str:
        start_at, end_at = parse_utc(info.data.get("Start")), parse_utc(end)
        if start_at is not None and end_at is not None and end_at <= start_at:
            raise ValueError("must be after the start of the window")
        return end


_Period = Period


class TimeConstraint(_Obj):
    """TimeConstraints object [C]; Period times are UTC ``YYYY-MM-DDTHH:mm:SS.sssZ``."""

    ID: str | None = None
    Desc: str | None = None
    Type: str | None = None
    Period: _Period
    Delete: bool | None = None


class AppointmentSearch(_Obj):
    """A follow-up row, as the Appointment Search object [C]: TimeConstraints are the customer's
    preferred window(s). The request contract of ``servicemobility_followups.yaml``."""

    Account: _Account
    Assets: list[dict[str, Any]] | None = None
    FlexAttrs: dict[str, Any] | None = None
    FlexForms: list[str] | None = None
    Location: _Location
    OrderType: str = Field(min_length=1)
    OriginalOrderNum: str = Field(min_length=1, max_length=50)
    RequiredParts: list[dict[str, Any]] | None = None
    TimeConstraints: list[TimeConstraint] = Field(min_length=1, max_length=10)
    UserName: str | None = None


class BookJob(AppointmentSearch):
    """Book Job object [C] (its documented JSON is cut off after RequiredParts; TimeConstraints and
    UserName as in the Appointment Search object [I]): TimeConstraints holds the one chosen slot."""

    TimeConstraints: list[TimeConstraint] = Field(min_length=1, max_length=1)


class Dispatch(_Obj):
    """Work Order Dispatch object [C]: dispatched to the mobile worker once UserName and PlannedStartDate are set."""

    DispatchStatus: int | None = None
    PlannedDur: int | None = Field(None, ge=1, le=24 * 60)
    PlannedEndDate: UtcDateTime | None = None
    PlannedStartDate: UtcDateTime | None = None
    PrimaryUserName: str | None = None
    UserName: str | None = None


_Dispatch = Dispatch


class AccountLoc(_Obj):
    """The work order's location [C: "AccountLoc ... LocNum"]; the other properties as in Location [I]."""

    LocNum: str | None = None
    Name: str | None = Field(None, max_length=100)
    Address: _Address | None = None
    Contacts: list[Contact] | None = None
    Email: _Email | None = None
    Notes: str | None = Field(None, max_length=2000)


_AccountLoc = AccountLoc


class WorkOrder(_Obj):
    """The part of the Work Order object [C] a sheet fills, for ``PUT /seiapi/v3/trans/WorkOrder/{WorkOrderNum}``.

    ``WorkOrderNum`` is the URL's key, repeated in the body [I]; the PUT inserts or updates by it [C]."""

    WorkOrderNum: str = Field(min_length=1, max_length=50, pattern=r"^[^/?#\s]+$")
    OrderType: str = Field(min_length=1)
    Account: _Account
    AccountLoc: _AccountLoc | None = None
    Desc: str | None = Field(None, max_length=2000)
    PONum: str | None = Field(None, max_length=50)
    Dispatch: _Dispatch | None = None


# --- times --------------------------------------------------------------------------------------------


def parse_utc(text: Any) -> dt.datetime | None:
    """``2027-03-09T14:00:00.000Z`` (or with an offset) -> aware UTC datetime; None when unreadable."""
    if not isinstance(text, str) or not text.strip():
        return None
    try:
        value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if value.tzinfo is None:
        return None
    return value.astimezone(dt.UTC)


def format_utc(value: dt.datetime) -> str:
    """Aware datetime -> ``YYYY-MM-DDTHH:mm:SS.sssZ``, as ServiceMobility writes UTC [C]."""
    value = value.astimezone(dt.UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"

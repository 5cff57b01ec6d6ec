"""BigChange: the Create Job contract, the create-then-schedule handler and the read-back.

Everything else (OAuth2 login, Customer-Id header, base URL, the name lookups for job types,
contacts, people, resources and custom field definitions, the columns) is data in
mappings/bigchange.yaml. Facts: ../shared/providers.md, section BigChange, and
../shared/specs/bigchange-create-job.txt.

A row becomes one job in up to two calls:

1. ``POST /jobs`` with :class:`CreateJob` -> ``201 {"id"}``. The id is checkpointed in the
   ledger at once (stage ``created``), before anything else happens.
2. When the row has a planned start and a resource, ``PUT /jobs/{id}/schedule`` with
   :class:`ScheduleJob` -> ``204`` (stage ``scheduled``).

The mapping puts the schedule under the payload key ``schedule`` (the PUT body, verbatim); the
handler takes it out of the create body. If the schedule call fails, the row says so with the
job id kept, and a rerun schedules that job instead of creating another (the engine hands the
handler the ledger entry: ``stage`` and ``provider_id``). Scheduling is a PUT of the same
resource and time, so resending it cannot book twice: it is sent as idempotent.

What was not retrieved from BigChange's docs and is an assumption [I], to check against the
real API: the schedule body (``resourceId`` + ``plannedStartAt`` in UTC, the job's planned
duration giving the end; job lists elsewhere show ``resourceId``/``plannedStartAt``/
``plannedEndAt``), and the job list filter names ``createdAtFrom``/``createdAtTo``.
"""
from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from ..hooks import RowContext
from ..http.readback import Listing, ReadbackError, read_all, the_one
from ..outcomes import Action, Outcome, Status
from .types import UtcDateTime

if TYPE_CHECKING:  # pragma: no cover
    from ..http.sender import Sender
    from ..ledger.ledger import Entry

__all__ = [
    "SCHEDULE_KEY",
    "SCHEDULE_PATH",
    "CreateJob",
    "CustomField",
    "JobRow",
    "ScheduleJob",
    "create_and_schedule",
    "find_job",
    "split_payload",
]

#: payload key holding the body of the schedule call (never sent to POST /jobs)
SCHEDULE_KEY = "schedule"
SCHEDULE_PATH = "/jobs/{id}/schedule"
#: how far before the earlier run's ledger time the read-back looks for the job (clock skew, slow answers)
LOOKBACK = dt.timedelta(days=1)
#: the window when the earlier run's time is not known
DEFAULT_WINDOW = dt.timedelta(days=30)
PAGE_SIZE = 1000  # BigChange's maximum
MAX_PAGES = 100


class CustomField(BaseModel):
    """One custom field value: ``value`` null clears it (the mapping's ``when_empty: null``)."""

    model_config = ConfigDict(extra="forbid")
    definitionId: int
    value: str | None = None


class CreateJob(BaseModel):
    """``POST /v1/jobs`` (JSON), as documented: only typeId and contactId are required."""

    model_config = ConfigDict(extra="forbid")

    typeId: int
    contactId: int
    plannedDuration: int | None = Field(None, ge=1, description="minutes; empty: the job type's default")
    reference: str | None = None
    description: str | None = None
    personId: uuid.UUID | None = None
    orderNumber: str | None = None
    customFields: list[CustomField] | None = None


class ScheduleJob(BaseModel):
    """``PUT /v1/jobs/{id}/schedule`` [I]: a resource and a planned start; both or no schedule at all."""

    model_config = ConfigDict(extra="forbid")

    resourceId: int
    plannedStartAt: UtcDateTime


class JobRow(CreateJob):
    """What a mapped row holds (the mapping's contract): the create body plus the schedule body."""

    schedule: ScheduleJob | None = None


def split_payload(payload: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """A mapped row -> (create body, schedule body or None)."""
    create = {k: v for k, v in payload.items() if k != SCHEDULE_KEY}
    schedule = payload.get(SCHEDULE_KEY) or None
    return create, schedule


async def create_and_schedule(ctx: RowContext) -> Outcome:
    """Create the job (unless an earlier run did), then schedule it when the row has a planned start."""
    create, schedule = split_payload(ctx.payload)
    entry = ctx.entry
    attempts = 0
    if entry is not None and entry.provider_id and entry.stage:
        job_id = entry.provider_id
        if entry.stage == "found":
            origin = f"job {job_id} found at BigChange (run {entry.run_id} created it but its answer was lost)"
            ctx.checkpoint(job_id, "created")
        else:
            origin = f"job {job_id}, created by an earlier run (last run on this row: {entry.run_id}),"
        http_status = None
    else:
        req = ctx.mapping.request
        result = await ctx.call(req.method, req.path, json_body=create, idempotent=req.idempotent)
        created = ctx.outcome_from(result)
        if created.status is not Status.CREATED:
            return created  # rejected (422 per column), failed, unknown (checked before any resend) or skipped
        attempts, http_status = created.attempts, created.http_status
        if not created.provider_id:
            return Outcome(Status.UNKNOWN, "BigChange answered 201 without the new job's id; find the job by its "
                                           "reference before resending", http_status=http_status, attempts=attempts)
        job_id = created.provider_id
        ctx.checkpoint(job_id, "created")  # a crash from here on resumes with the schedule, never a second job
        origin = f"job {job_id} created"
    if not schedule:
        return Outcome(Status.CREATED, f"{origin}; not scheduled: the row has no planned start",
                       provider_id=job_id, stage="created", http_status=http_status, attempts=attempts)

    result = await ctx.call("PUT", SCHEDULE_PATH.format(id=job_id), json_body=schedule, idempotent=True)
    attempts += result.attempts
    if result.action is Action.SUCCESS:
        return Outcome(Status.CREATED, f"{origin} and scheduled", provider_id=job_id, stage="scheduled",
                       http_status=http_status or result.status_code, attempts=attempts)  # 201, or 204 on a resume
    failed = ctx.outcome_from(result)
    status = Status.REJECTED if failed.status is Status.REJECTED else Status.FAILED
    return Outcome(status, f"{origin} but NOT scheduled: {failed.message}; a rerun schedules this job "
                           f"(it does not create another)",
                   provider_id=job_id, stage="created", http_status=result.status_code, attempts=attempts,
                   column_messages=failed.column_messages)


async def find_job(sender: Sender, payload: dict[str, Any], *, entry: Entry | None = None) -> str | None:
    """The id of the job an earlier, uncertain run created for this row, or None when BigChange has none.

    Lists ``GET /jobs?contactId=…&createdAtFrom=…&createdAtTo=…`` (every page, by ``totalCount``) from a
    day before the earlier run's ledger time (30 days back when unknown) to a day from now, and matches
    the row's ``reference`` (its key) and customer, compared without regard to case or spacing.
    Raises ``ReadbackError`` when it cannot be sure (an error, a list not read whole, two jobs with the
    reference, a job showing no reference); the row then stays ``unknown``.
    """
    reference = str(payload.get("reference") or "").strip()
    contact = payload.get("contactId")
    if not reference or contact is None:
        raise ReadbackError("the row has no reference or customer to look for")
    now = dt.datetime.now(dt.UTC)
    since = (_ledger_time(entry.updated_at) - LOOKBACK if entry is not None and entry.updated_at
             else now - DEFAULT_WINDOW)
    window = {"contactId": contact, "createdAtFrom": _iso(since), "createdAtTo": _iso(now + LOOKBACK)}
    items = await read_all(sender, Listing("/jobs", params=window, items="items", total="totalCount",
                                           page="pageNumber", size="pageSize", page_size=PAGE_SIZE,
                                           max_items=MAX_PAGES * PAGE_SIZE))
    return the_one(items, id_field="id", same={"reference": reference, "contactId": contact},
                   absent_is_other=("reference",), what="job")


def _ledger_time(text: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        return dt.datetime.now(dt.UTC) - DEFAULT_WINDOW
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

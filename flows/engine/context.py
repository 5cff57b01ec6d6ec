"""What a provider handler (``request.handler``) is given for one row: :class:`RowContext`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..http.sender import CallResult, Sender
from ..ledger.ledger import Entry
from ..mapping.model import MappingFile
from ..outcomes import Outcome
from .payloads import PathValues
from .plan import PreparedRow

if TYPE_CHECKING:  # types only: the run module imports this one
    from .run import ImportRun

__all__ = [
    "RowContext",
]


@dataclass
class RowContext:
    """What a provider handler (``request.handler``) gets for one row.

    A handler sends the row with :meth:`call` (retries, rate limit, auth and the stop rule
    included), turns answers into outcomes with :meth:`outcome_from`, and records part-way
    progress with :meth:`checkpoint` so a rerun resumes instead of repeating a step.
    ``entry`` is the ledger's record from an earlier run (``provider_id`` and ``stage`` set when
    that run got part-way), or None.
    """

    run: ImportRun
    row: PreparedRow
    entry: Entry | None

    @property
    def payload(self) -> dict[str, Any]:
        return self.run.with_run_values(self.row.payload or {})

    @property
    def mapping(self) -> MappingFile:
        return self.run.plan.mapping

    @property
    def sender(self) -> Sender:
        assert self.run._sender is not None
        return self.run._sender

    async def call(self, method: str, path: str, **kwargs: Any) -> CallResult:
        return await self.sender.call(method, path, **kwargs)

    def outcome_from(self, result: CallResult) -> Outcome:
        return self.run.outcome_from(result)

    def checkpoint(self, provider_id: str | None, stage: str) -> None:
        self.run.ledger.checkpoint(self.mapping.scope, self.row.ledger_key, self.run.run_id,
                                   provider_id=provider_id, stage=stage)

    async def send_default(self) -> Outcome:
        return await self.run.send_default(self.row)

    @property
    def run_state(self) -> dict[str, Any]:
        """A dict every row's handler shares for the length of the run, e.g. the slots other rows are booking."""
        return self.run.handler_state

    def secrets(self) -> list[str]:
        """The run's credentials, to mask in messages."""
        return self.run.auth.secrets()

    def cell(self, column: str) -> Any:
        """The row's value in this sheet column as read (None when the sheet has no such column)."""
        try:
            return self.run.plan.sheet.rows[self.row.index][self.run.plan.mapper.index[column]]
        except (IndexError, KeyError, AttributeError):
            return None

    def request_path(self, payload: dict[str, Any] | None = None) -> str | None:
        """The mapping's ``request.path`` with its ``{placeholders}`` filled from the payload; None when one is
        empty."""
        try:
            return self.mapping.request.path.format_map(PathValues(self.payload if payload is None else payload))
        except KeyError:
            return None

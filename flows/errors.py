"""Every exception the importer raises, grouped by who must act.

    ImporterError                 base; carries a one-line, user-facing message
    ├── UsageError                the command line is wrong            -> exit 2
    ├── ConfigError               a mapping file or setting is wrong   -> exit 2
    │   └── MissingSecretError    an environment variable is not set   -> exit 2
    ├── InputError                the sheet cannot be read or lacks columns -> exit 2
    ├── CredentialsError          the provider refused the login before anything was sent -> exit 2
    └── LedgerError               the ledger database cannot be used   -> exit 2

    InboxRunFailed                an inbox run finished, but rows failed or are unknown, or a file
                                  had no mapping or could not be imported: raised last, after the
                                  files are archived and reported, so the Prefect flow run fails

Row-level problems are *not* exceptions: they are values (``flows.outcomes.Outcome``,
``flows.mapping.model.Problem``) so that one bad row never stops the good ones. Transient
HTTP failures are handled inside the sender and end as a row outcome as well.
"""
from __future__ import annotations

from typing import Any

__all__ = [
    "ConfigError",
    "CredentialsError",
    "ImporterError",
    "InboxRunFailed",
    "InputError",
    "LedgerError",
    "MissingSecretError",
    "RowsNeedAttention",
    "UsageError",
]


class ImporterError(Exception):
    """Base class. ``str(err)`` is a complete sentence telling the user what to fix."""

    exit_code = 2


class UsageError(ImporterError):
    """The command was called with arguments that cannot work together."""


class ConfigError(ImporterError):
    """A mapping file (or another setting) is invalid."""


class MissingSecretError(ConfigError):
    """A secret the mapping names is not set in the environment."""

    def __init__(self, variable: str, purpose: str) -> None:
        self.variable = variable
        super().__init__(
            f"the environment variable {variable} is not set ({purpose}); "
            f"set it, e.g. `export {variable}=...`, or put it in a .env file you do not commit"
        )


class InputError(ImporterError):
    """The input sheet cannot be read, or does not have what the mapping needs."""


class CredentialsError(ImporterError):
    """The provider refused the credentials (or could not be reached) at login, before any row was sent."""


class LedgerError(ImporterError):
    """The ledger database cannot be opened or written."""


class InboxRunFailed(Exception):
    """An inbox run needs a person (see flows/inbox/); the message lists what, file by file."""


class RowsNeedAttention(Exception):
    """An ``import_sheet`` flow run that ended Failed on purpose (rows failed or unknown, or the run stopped on
    refused credentials), so Prefect automations fire. An expected outcome, not a crash: no traceback is logged;
    ``result`` is what the flow would have returned (counts, results workbook)."""

    def __init__(self, message: str, result: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.result = result or {}

    def __reduce__(self) -> tuple[Any, ...]:  # Prefect may pickle a state's data
        return (type(self), (str(self), self.result))

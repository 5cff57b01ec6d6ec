"""The provider contract: what a mapping's code references may name, and what they are given.

A mapping names every piece of provider code explicitly (no naming conventions)::

    request:
      contract: jicoo.CreateBooking            # a pydantic model the payload must satisfy
      readback: jicoo.find_booking             # Readback: find a row after an unknown outcome
      handler: bigchange.create_and_schedule   # Handler: send a row that needs more than one request
      callback: systemsx_bridge.read_callback  # CallbackReader: read the provider's callback body

A reference is ``<module>.<Name>`` for a module shipped in ``flows/providers/``, or
``package.module:Name`` for code kept anywhere importable (a user's own module). :func:`resolve`
is the only way the core reaches provider code; provider modules import from this module and
from modules below it (outcomes, http.sender, http.readback, providers.types, redact), never from the engine.
"""
from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .outcomes import Outcome, Status

if TYPE_CHECKING:  # types only: the contract must not pull the engine (or the wire) into a provider module
    from .http.sender import CallResult, Sender
    from .ledger.ledger import Entry
    from .mapping.model import MappingFile

__all__ = [
    "PROVIDERS_PACKAGE",
    "Callback",
    "CallbackReader",
    "Handler",
    "Readback",
    "RowContext",
    "resolve",
    "shipped_modules",
]

#: where ``<module>.<Name>`` references look
PROVIDERS_PACKAGE = "flows.providers"


def shipped_modules() -> list[str]:
    """Names of the provider modules shipped in flows/providers/ (for messages)."""
    package = importlib.import_module(PROVIDERS_PACKAGE)
    return sorted(m.name for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("_"))


def resolve(ref: str) -> Any:
    """``'jicoo.CreateBooking'`` or ``'my_company.hooks:find_job'`` -> the object.

    A shipped module must list the name in ``__all__`` (what it offers); a module of your own is taken
    at its word. Raises LookupError with a readable message."""
    if ":" in ref:
        module_name, _, attr = ref.partition(":")
        if not attr.isidentifier() or not all(p.isidentifier() for p in module_name.split(".")):
            raise LookupError(f"{ref!r} is not of the form package.module:Name, e.g. my_hooks.booking:find_booking")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            raise LookupError(f"cannot import {module_name!r} ({exc}); is it on PYTHONPATH?") from None
        if not hasattr(module, attr):
            raise LookupError(f"module {module_name!r} has no {attr!r}")
        return getattr(module, attr)
    module_name, _, attr = ref.partition(".")
    if not attr or not module_name.isidentifier():
        raise LookupError(f"{ref!r} is not of the form <provider>.<Name>, e.g. jicoo.CreateBooking "
                          f"(or package.module:Name for code of your own)")
    try:
        module = importlib.import_module(f"{PROVIDERS_PACKAGE}.{module_name}")
    except ModuleNotFoundError:
        raise LookupError(f"no provider module {module_name!r} (known: {', '.join(shipped_modules())}; "
                          f"code of your own is named package.module:Name)") from None
    exported = getattr(module, "__all__", [])
    if attr not in exported:
        raise LookupError(f"provider {module_name!r} has no {attr!r} (it offers: {', '.join(exported)})")
    return getattr(module, attr)


@dataclass(frozen=True)
class Callback:
    """What a provider's callback says about one row (from the mapping's ``request.callback`` reader)."""

    provider_id: str  # the id the provider gave the row (Bridge: hash)
    status: Status  # created, or rejected when the provider says the row failed
    message: str
    reference: str | None = None  # the provider's echo of the row's reference, for people
    match_key: tuple[str, ...] = ()  # values of the row's key, to find a row whose provider id was never learned


class RowContext(Protocol):
    """What a handler (``request.handler``) gets for one row (the engine's implementation: engine.RowContext).

    ``entry`` is the ledger's record from an earlier run (``provider_id`` and ``stage`` set when that run
    got part-way), or None."""

    entry: Entry | None

    @property
    def payload(self) -> dict[str, Any]: ...

    @property
    def mapping(self) -> MappingFile: ...

    @property
    def sender(self) -> Sender: ...

    @property
    def run_state(self) -> dict[str, Any]: ...

    async def call(self, method: str, path: str, **kwargs: Any) -> CallResult: ...

    def outcome_from(self, result: CallResult) -> Outcome: ...

    def checkpoint(self, provider_id: str | None, stage: str) -> None: ...

    async def send_default(self) -> Outcome: ...

    def request_path(self, payload: dict[str, Any] | None = None) -> str | None: ...

    def secrets(self) -> list[str]: ...

    def cell(self, column: str) -> Any: ...


#: ``request.handler``: sends one row (all its requests) and says how it ended
Handler = Callable[[RowContext], Awaitable[Outcome]]


class Readback(Protocol):
    """``request.readback``: the provider id of a booking an earlier, uncertain attempt made for this row, or
    None when the provider has none; raises http.sender.ReadbackError when it cannot be sure. Always given the
    ledger's ``entry`` for the row (None when there is none), e.g. to search around the time it was sent."""

    def __call__(self, sender: Sender, payload: dict[str, Any], *, entry: Entry | None) -> Awaitable[str | None]: ...


#: ``request.callback``: the body of a provider's callback (parsed JSON or form fields) -> what it says
CallbackReader = Callable[[Any], Callback]

#: lookups (``lookups:`` in a mapping) need no code: a provider list is fetched and read as the YAML says
Lookups = Mapping[str, Any]

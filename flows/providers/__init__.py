"""What a provider's YAML cannot say, by name.

Mapping files refer to code here as ``<provider>.<Name>`` (``request.contract:
jicoo.CreateBooking``, ``request.readback: jicoo.find_booking``). Each provider module holds
only its request contract (a pydantic model of the provider's documented request) and the few
behaviours that need code: reading back a row after an unknown outcome, lookups, second calls.
"""
from __future__ import annotations

import importlib
from typing import Any

__all__ = ["resolve", "PROVIDER_IDS"]

#: one id names a provider's mapping, module, sample folder, env-var prefix and simulator
PROVIDER_IDS = ("jicoo", "bigchange", "systemsx_bridge", "servicemobility")


def resolve(ref: str) -> Any:
    """``'jicoo.CreateBooking'`` -> the object. Raises LookupError with a readable message."""
    module_name, _, attr = ref.partition(".")
    if not attr or not module_name.isidentifier():
        raise LookupError(f"{ref!r} is not of the form <provider>.<Name>, e.g. jicoo.CreateBooking")
    try:
        module = importlib.import_module(f"{__name__}.{module_name}")
    except ModuleNotFoundError:
        raise LookupError(f"no provider module {module_name!r} (known: {', '.join(PROVIDER_IDS)})") from None
    exported = getattr(module, "__all__", [])
    if attr not in exported:
        raise LookupError(f"provider {module_name!r} has no {attr!r} (it offers: {', '.join(exported)})")
    return getattr(module, attr)

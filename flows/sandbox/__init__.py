"""Provider simulators served on loopback, with fault knobs, for tests, demos and benchmarks.

>>> from flows.sandbox import JicooSimulator, SimulatorServer, Faults
>>> sim = JicooSimulator(faults=Faults(latency_ms=5))
>>> with SimulatorServer(sim) as url:          # doctest: +SKIP
...     ...                                     # http://127.0.0.1:<free port>/v1/bookings

A simulator is found by convention, never listed by hand: the class in ``flows/sandbox/<provider id>.py``
whose ``provider`` is that id (with ``.app()``, ``faults=`` and a ``sandbox_env(url)`` class method).
A provider that needs no code needs no simulator either. ``SIMULATORS`` maps each provider of
``mappings/`` that has one to its class (for ``booking-import sandbox`` and the demo).
"""
from __future__ import annotations

import importlib

from ..mapping.catalog import provider_ids
from .bigchange import BigChangeSimulator
from .faults import FAULT_KINDS, FaultInjector, Faults
from .jicoo import DEFAULT_API_KEY, DEFAULT_EVENT_TYPES, EventType, JicooSimulator
from .server import Simulator, SimulatorServer, create_app, fault_middleware, json_response, read_json, serve_forever
from .servicemobility import ServiceMobilitySimulator
from .systemsx_bridge import DEFAULT_BRIDGE_API_KEY, BridgeSimulator

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_BRIDGE_API_KEY",
    "DEFAULT_EVENT_TYPES",
    "FAULT_KINDS",
    "SIMULATORS",
    "BigChangeSimulator",
    "BridgeSimulator",
    "EventType",
    "FaultInjector",
    "Faults",
    "JicooSimulator",
    "ServiceMobilitySimulator",
    "Simulator",
    "SimulatorServer",
    "create_app",
    "fault_middleware",
    "json_response",
    "read_json",
    "serve_forever",
    "simulator_for",
]


def simulator_for(provider: str) -> type | None:
    """The simulator class of ``flows/sandbox/<provider>.py``, or None when the provider has none."""
    if not provider.isidentifier():
        return None
    try:
        module = importlib.import_module(f"{__name__}.{provider}")
    except ModuleNotFoundError:
        return None
    found = [v for v in vars(module).values()
             if isinstance(v, type) and issubclass(v, Simulator) and getattr(v, "provider", None) == provider]
    return found[0] if found else None


#: provider id -> simulator class, for every provider of mappings/ that has one
SIMULATORS: dict[str, type] = {p: cls for p in provider_ids() if (cls := simulator_for(p)) is not None}

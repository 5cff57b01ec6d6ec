"""Provider simulators served on loopback, with fault knobs, for tests, demos and benchmarks.

>>> from flows.sandbox import JicooSimulator, SimulatorServer, Faults
>>> sim = JicooSimulator(faults=Faults(latency_ms=5))
>>> with SimulatorServer(sim) as url:          # doctest: +SKIP
...     ...                                     # http://127.0.0.1:<free port>/v1/bookings

``SIMULATORS`` maps a provider id to its simulator class (for ``booking-import sandbox``).
"""
from __future__ import annotations

from .faults import FAULT_KINDS, FaultInjector, Faults
from .bigchange import BigChangeSimulator
from .jicoo import DEFAULT_API_KEY, DEFAULT_EVENT_TYPES, EventType, JicooSimulator
from .server import SimulatorServer, create_app, fault_middleware, json_response, read_json, serve_forever
from .servicemobility import ServiceMobilitySimulator
from .systemsx_bridge import DEFAULT_BRIDGE_API_KEY, BridgeSimulator

__all__ = [
    "Faults",
    "FaultInjector",
    "FAULT_KINDS",
    "SimulatorServer",
    "serve_forever",
    "create_app",
    "fault_middleware",
    "json_response",
    "read_json",
    "JicooSimulator",
    "EventType",
    "DEFAULT_EVENT_TYPES",
    "DEFAULT_API_KEY",
    "BigChangeSimulator",
    "BridgeSimulator",
    "DEFAULT_BRIDGE_API_KEY",
    "ServiceMobilitySimulator",
    "SIMULATORS",
]

#: provider id -> simulator class (each takes ``faults=`` and has ``.app()``)
SIMULATORS: dict[str, type] = {"jicoo": JicooSimulator, "bigchange": BigChangeSimulator,
                               "systemsx_bridge": BridgeSimulator, "servicemobility": ServiceMobilitySimulator}

"""Fault knobs for the provider simulators, and the per-request dice that apply them.

All knobs default to *off*. They act on a simulator's **write** requests (POST, PUT, PATCH,
DELETE); reads only get the latency. In the order a write request meets them:

=========================  ======================================================================
knob                       what the client sees
=========================  ======================================================================
latency_ms (+ jitter)      every request (reads too) waits ``latency_ms ± latency_jitter_ms``
rate_limit                 above N requests/s (sliding 1 s window, all clients): **429** with
                           ``Retry-After`` (whole seconds, >= 1); nothing stored. A server-side
                           limit the client is not told about (issue 16: an unpublished 50/s)
rate_limit_retry_after     0: the rate limit's 429 carries no ``Retry-After`` (default 1: it does)
rate_limited_rate          **429** at random, *without* ``Retry-After`` (Jicoo's docs only say
                           "we recommend an exponential backoff"); nothing stored
unavailable_rate           **503** before anything is stored (safe to retry)
error_after_store_rate     the booking *is* stored, then **500** (the dangerous case)
timeout_after_store_rate   stored, then the answer waits ``stall_seconds`` (client times out)
drop_after_store_rate      stored, then the TCP connection is aborted with no response
=========================  ======================================================================

One uniform draw per write request picks at most one of the five write ``*_rate`` faults, so
their rates must add up to at most 1. Reads (GET) meet one knob of their own:

=========================  ======================================================================
read_error_rate            a read is answered **500** (a list page lost mid-pagination)
=========================  ======================================================================
 ``seed`` makes the draws reproducible. The after-store faults
fire only when the request really stored something (a 2xx answer); a 4xx stays a 4xx.

>>> Faults.from_dict({"latency_ms": 5, "rate_limit": 50}).active
True
"""
from __future__ import annotations

import collections
import math
import os
import random
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = [
    "DROP_AFTER_STORE",
    "ERROR_AFTER_STORE",
    "FAULT_KINDS",
    "RATE_LIMITED",
    "READ_ERROR",
    "TIMEOUT_AFTER_STORE",
    "UNAVAILABLE",
    "FaultInjector",
    "FaultKnobs",
    "Faults",
]

#: counter keys, one per kind of fault that fired
RATE_LIMITED = "rate_limited"
UNAVAILABLE = "unavailable"
ERROR_AFTER_STORE = "error_after_store"
TIMEOUT_AFTER_STORE = "timeout_after_store"
DROP_AFTER_STORE = "drop_after_store"
READ_ERROR = "read_error"
FAULT_KINDS = (RATE_LIMITED, UNAVAILABLE, ERROR_AFTER_STORE, TIMEOUT_AFTER_STORE, DROP_AFTER_STORE, READ_ERROR)

_RATE_KNOBS = (
    ("rate_limited_rate", RATE_LIMITED),
    ("unavailable_rate", UNAVAILABLE),
    ("error_after_store_rate", ERROR_AFTER_STORE),
    ("timeout_after_store_rate", TIMEOUT_AFTER_STORE),
    ("drop_after_store_rate", DROP_AFTER_STORE),
)


@dataclass(frozen=True)
class Faults:
    """What a simulator does wrong, on purpose. Every knob defaults to off."""

    latency_ms: float = 0
    latency_jitter_ms: float = 0
    unavailable_rate: float = 0
    error_after_store_rate: float = 0
    timeout_after_store_rate: float = 0
    stall_seconds: float = 30
    drop_after_store_rate: float = 0
    rate_limited_rate: float = 0
    #: share of reads (GET) answered 500
    read_error_rate: float = 0
    #: requests per second (writes, all clients together); ``None`` = unlimited
    rate_limit: float | None = None
    #: 1: a 429 from ``rate_limit`` says ``Retry-After``; 0: it does not (the client backs off on its own)
    rate_limit_retry_after: float = 1
    seed: int | None = None

    def __post_init__(self) -> None:
        problems = []
        for name in ("latency_ms", "latency_jitter_ms", "stall_seconds"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0")
        for name in [n for n, _ in _RATE_KNOBS] + ["read_error_rate"]:
            if not 0 <= getattr(self, name) <= 1:
                problems.append(f"{name} must be between 0 and 1")
        if sum(getattr(self, name) for name, _ in _RATE_KNOBS) > 1 + 1e-9:
            problems.append("the write *_rate knobs must add up to at most 1")
        if self.rate_limit_retry_after not in (0, 1):
            problems.append("rate_limit_retry_after must be 0 or 1")
        if self.rate_limit is not None and self.rate_limit <= 0:
            problems.append("rate_limit must be > 0 (or None for no limit)")
        if problems:
            raise ValueError("invalid faults: " + "; ".join(problems))

    @property
    def active(self) -> bool:
        """True when any knob is on."""
        return self != Faults(seed=self.seed, stall_seconds=self.stall_seconds)

    def to_dict(self) -> dict[str, Any]:
        """The knobs as a plain JSON-able dict (the shape :meth:`from_dict` reads)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Faults:
        """Knobs from a mapping; unset knobs keep their defaults, unknown keys are an error.

        Keys may use ``-`` instead of ``_`` (``latency-ms``), as CLI options do.
        """
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for raw_key, raw in data.items():
            key = str(raw_key).replace("-", "_")
            if key not in known:
                raise ValueError(f"unknown fault knob {raw_key!r}; known: {', '.join(known)}")
            values[key] = _coerce(key, raw)
        return cls(**values)

    @classmethod
    def from_env(cls, prefix: str = "SANDBOX_", environ: Mapping[str, str] | None = None) -> Faults:
        """Knobs from environment variables such as ``SANDBOX_LATENCY_MS=20``; empty ones are ignored."""
        env = os.environ if environ is None else environ
        data = {}
        for f in fields(cls):
            raw = env.get(prefix + f.name.upper(), "").strip()
            if raw:
                data[f.name] = raw
        return cls.from_dict(data)


def _coerce(key: str, raw: Any) -> Any:
    if isinstance(raw, str):
        text = raw.strip()
        if key in ("rate_limit", "seed") and text.lower() in ("", "none", "null", "off"):
            return None
        try:
            return int(text) if key == "seed" else float(text)
        except ValueError:
            raise ValueError(f"fault knob {key} must be a number, got {raw!r}") from None
    if raw is None and key in ("rate_limit", "seed"):
        return None
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise ValueError(f"fault knob {key} must be a number, got {raw!r}")
    return int(raw) if key == "seed" else raw


class FaultInjector:
    """The live dice for one simulator: decides, per request, which fault (if any) fires.

    Not thread-safe by design: it is only used from the simulator's event loop. ``counts``
    (fault kind -> how many times it fired) may be read from other threads.
    """

    def __init__(self, faults: Faults | None = None) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self.configure(faults or Faults())

    def configure(self, faults: Faults) -> None:
        """Replace the knobs (and restart the dice and the rate window). Counts are kept."""
        self.faults = faults
        self._rng = random.Random(faults.seed)
        self._jitter_rng = random.Random(None if faults.seed is None else faults.seed + 1)
        self._window: collections.deque[float] = collections.deque()
        limit = faults.rate_limit
        if limit is None:
            self._capacity, self._span = 0, 0.0
        elif limit >= 1:
            self._capacity, self._span = int(limit), 1.0
        else:  # slower than 1/s: one request per 1/limit seconds
            self._capacity, self._span = 1, 1.0 / limit
        edges, total = [], 0.0
        for name, kind in _RATE_KNOBS:
            rate = getattr(faults, name)
            if rate > 0:
                total += rate
                edges.append((total, kind))
        self._edges = tuple(edges)
        self.has_latency = faults.latency_ms > 0 or faults.latency_jitter_ms > 0
        self.has_write_faults = bool(self._edges) or limit is not None
        #: when each write request arrived (time.time()), the last 200,000: what a client's pacing looked
        #: like from the provider's side (tests and bench/ count the busiest 1-second window)
        self.arrivals: collections.deque[float] = collections.deque(maxlen=200_000)
        self._read_rng = random.Random(None if faults.seed is None else faults.seed + 2)

    def read_fails(self) -> bool:
        """One draw per read request: True when ``read_error_rate`` says this one is answered 500."""
        rate = self.faults.read_error_rate
        return rate > 0 and self._read_rng.random() < rate

    def delay(self) -> float:
        """Seconds to wait before handling a request (latency ± jitter, never negative)."""
        f = self.faults
        ms = f.latency_ms
        if f.latency_jitter_ms:
            ms += self._jitter_rng.uniform(-f.latency_jitter_ms, f.latency_jitter_ms)
        return max(ms, 0.0) / 1000.0

    def admit(self, now: float | None = None) -> int | None:
        """Count a write request against the rate limit.

        Returns ``None`` when it may proceed, else the ``Retry-After`` seconds (>= 1) for a 429.
        Only admitted requests fill the window, so a client that backs off gets through again.
        """
        if not self._capacity:
            return None
        now = time.monotonic() if now is None else now
        window, span = self._window, self._span
        while window and window[0] <= now - span:
            window.popleft()
        if len(window) >= self._capacity:
            return max(1, math.ceil(window[0] + span - now))
        window.append(now)
        return None

    def draw(self) -> str | None:
        """One uniform draw: which ``*_rate`` fault this write request gets, or ``None``."""
        if not self._edges:
            return None
        x = self._rng.random()
        for edge, kind in self._edges:
            if x < edge:
                return kind
        return None


class FaultKnobs:
    """Mixin for simulators: ``sim.faults`` reads and replaces the knobs (thread-safe via the injector),
    ``sim.fault_counts`` says how often each kind fired. The simulator sets ``self.injector``."""

    injector: FaultInjector

    @property
    def faults(self) -> Faults:
        return self.injector.faults

    @faults.setter
    def faults(self, value: Faults) -> None:
        self.injector.configure(value)

    @property
    def fault_counts(self) -> collections.Counter[str]:
        """Fault kind (``rate_limited``, ``unavailable``, ...) -> how many times it fired."""
        return self.injector.counts

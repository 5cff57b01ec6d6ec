"""Keep Python's garbage collector off the objects that were alive before sending began.

CPython's collector counts the objects that survive its young collections; when enough have, it
walks every object in the process (a full collection). While a run sends, the requests in flight
are such survivors, and the process holds everything else for the whole run: the sheet's rows and
payloads, pandas, Prefect and its server client, pydantic models. A full collection inside
``booking-import run`` walks ~400,000 objects and took ~0.24 s; at concurrency 64 two of them fell
in a 1.8 s send phase (bench/README.md). :func:`long_lived_frozen` moves what exists when sending
starts to the collector's permanent generation (:func:`gc.freeze`), so collections during the send
walk only what the send creates, and gives it back (:func:`gc.unfreeze`) when the last sender
finishes. Nothing is leaked: garbage among the frozen objects is collected after the send as before.

The command keeps no collector policy of its own: freezing the heap at the command's edge, just
before sending, measured no faster (send phase of 10,000 rows at 0 ms, concurrency 8, with this
module's freeze taken out, 3 interleaved rounds: 45.2 s without, 53.1 s with, medians, load 10-15;
at concurrency 64: 65.9 s without, 63.9 s with, load 16-19, rounds spread 40-79 s; README, "A run
and Prefect"). This module goes when the engine stops using it (issue 13 item 6).
"""
from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["long_lived_frozen", "thaw"]

_lock = threading.Lock()
_senders = 0  # sends in progress (chunks of one run, runs of several threads): the first freezes, the last thaws


@contextmanager
def long_lived_frozen() -> Iterator[None]:
    global _senders
    with _lock:
        _senders += 1
        if _senders == 1:
            gc.freeze()
    try:
        yield
    finally:
        with _lock:
            _senders -= 1
        thaw()


def thaw() -> None:
    """Give back everything frozen by a send, unless a send is still going: the last one to end thaws then."""
    with _lock:
        if _senders == 0:
            gc.unfreeze()

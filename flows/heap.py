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
"""
from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["imports_paused", "long_lived_frozen", "thaw"]

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


@contextmanager
def imports_paused() -> Iterator[None]:
    """Load big libraries without the collector walking them over and over as they grow.

    pandas, Prefect and the modules of its temporary server create ~400,000 objects that live as long
    as the process, and the collector ran six full collections over them while they loaded (~0.7 s of
    ``booking-import run``'s start-up). Here collection waits until they are loaded, and what exists
    then is frozen like the heap during a send (and given back with it, see :func:`long_lived_frozen`),
    so the objects the imports made are not walked at all. The command calls :func:`thaw` when it ends
    (in-process callers such as tests get their heap back as it was)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


def thaw() -> None:
    """Give back everything frozen (by a send or :func:`imports_paused`), unless a send is still going: the
    last one to end thaws then."""
    with _lock:
        if _senders == 0:
            gc.unfreeze()

"""Pacing requests: a published rate reached and never exceeded, an unpublished one found by adapting to
429s, and one rate shared by every process that imports for the same provider.

**A published rate** (the mapping's ``rate:`` or ``--rate``): :class:`RateLimiter` hands out start
times on an *ideal timeline* (GCRA with no burst): slot ``k`` is ``t0 + k * interval``, whatever
time the task that takes it actually wakes up. The old limiter set the next slot from the
wake-up time, so every millisecond of lateness was lost for good (0.94 of ``--rate``, issue 16).
Two margins make "never above the rate in any 1-second window" hold also for starts that wake up
late, and leave room for the jitter between leaving here and arriving at the provider:

* ``interval`` is ``1 / (rate * (1 - HEADROOM))``: the timeline runs 0.5 % under the rate, so
  ``rate + 1`` consecutive slots span 1.005 s (it was 1.5 % before the arrival guard below, which
  now takes care of the jitter on the way to the provider);
* a start that woke late is not lost (a slot up to ``CATCH_UP``, 250 ms, late is still used, so a
  process stalled by a busy machine catches up), but no more than ``ceil(rate)`` starts of one
  process fall in any ``WINDOW`` (1.003 s): one that would crowd the window waits for it.
* on a timeline other processes claim slots on too, a slot taken more than ``TOLERANCE``
  (10 ms) late is given up instead (the next slots may be another process's), so every start
  is within 10 ms of its slot; and while another process claims slots too (assumed for a
  process's first second), the timeline runs ``SHARED_HEADROOM`` (4 %) under the rate, so
  ``rate + 1`` starts of all processes together span 1.03 s: three processes on a busy machine
  jitter more than one.

So a busy run sends 0.995 of the rate and at most ``ceil(rate)`` requests start in any 1-second
window. That is the limiter's side; the provider counts *arrivals*, and on a busy machine the way
from here to the provider (a process not scheduled for tens of milliseconds, a starved server
stamping queued requests at once) moved some by more than the margins: issue 16 measured 11 in one
second at ``rate: 10`` and 52 at ``rate: 50`` while the limiter's own count was 10 and 50. So a last
guard, the *arrival guard*, counts what the provider may see: a request arrives no earlier than it
was let go and no later than its answer came back. A new start waits while ``ceil(rate)`` requests
could still share a 1-second window with it, i.e. while that many are in flight or were answered less
than a second ago. An answer is taken as ``ANSWER_MARGIN`` earlier than it was read: half the
quickest round trip seen, the assumption being that a provider counts a request when it arrives and
that the way back takes at least half of the quickest round trip (a symmetric network; a provider
that spends its latency *before* counting, as the simulator's ``latency_ms`` does, breaks it). A
request in flight longer than ``IN_FLIGHT_FOR`` (5 s) no longer counts. On a quiet machine answers
come back within the timeline's 0.5 % margin and the guard never waits; on a busy one it delays the
starts after a late request, and the ideal timeline (``CATCH_UP``) wins the time back after
(bench/RESULTS.md, "Rates").

**No published rate** (``rate: null`` or ``--rate 0``): :class:`AdaptiveRateLimiter` starts
unpaced, bounded only by the concurrency, and adapts to 429s for the whole run (every row, not
per request). On a 429 (at most one decrease per second, and only for requests sent after the
last decrease) it paces at ``BETA`` (0.97) of the requests the provider *accepted* in the last
second (that count is the provider's window as the provider sees it), but not below 0.9 of the
pace so far (a busy machine's count of one second can fall short). Then it adds a little every
second (additive increase) to find out whether the provider allows more. Each time the provider
answers 429 again near the same ceiling, the probing halves in speed, so a fixed limit is hit
less and less often (each 429 with ``Retry-After`` pauses the whole run, which costs more than
the probe gains). Retry-After keeps pausing every sender; only what cannot book twice is retried
(:mod:`flows.submit`).

**One rate for every worker**: with a ledger database, the timeline lives in the ledger's table
``rate_timeline`` (one row per provider address), and each process claims its slots there in
batches of ~0.1 s of the rate (:class:`SharedTimeline`). Three runs or ``serve`` workers importing
for one provider then share one rate, on one machine (SQLite: the wall clock they share) or
several (PostgreSQL: the slots are on the database server's clock, each process measures its
offset to it at start; the machines' clocks need not agree). Slots claimed but not used (a
process that ends, or waits on a 429) are lost, never reused: the combined rate can fall short,
never exceed. bench/README.md explains why the ledger and not Prefect's global concurrency limits.
"""
from __future__ import annotations

import asyncio
import collections
import math
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # types only: the ledger is imported when a shared timeline opens
    from ..ledger.ledger import Ledger

__all__ = [
    "HEADROOM",
    "SHARED_HEADROOM",
    "TOLERANCE",
    "WINDOW",
    "AdaptiveRateLimiter",
    "LocalTimeline",
    "RateLimiter",
    "SharedTimeline",
    "max_in_window",
    "shared_timeline_for",
]

#: the timeline runs this share under the rate (a margin for late starts and network jitter)
HEADROOM = 0.005
#: a slot of a *shared* timeline is given up when its start would be this much later than its time (seconds)
TOLERANCE = 0.010
#: no more than ceil(rate) starts of one process in any this many seconds
WINDOW = 1.003
#: the headroom while other processes claim slots on the same shared timeline
SHARED_HEADROOM = 0.04
#: alone on a timeline, a slot up to this late (seconds) is still used: a stalled process catches up
CATCH_UP = 0.25
#: a shared timeline is claimed this many seconds of the rate at a time
BATCH_SECONDS = 0.1
#: the arrival guard stops counting a request still unanswered after this many seconds
IN_FLIGHT_FOR = 5.0
#: the arrival guard re-checks this often while only requests in flight hold it back (seconds)
POLL = 0.005


def max_in_window(times: list[float], window: float = 1.0) -> int:
    """The most of ``times`` (seconds) that fall in any half-open window ``[t, t + window)``."""
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


class LocalTimeline:
    """The ideal timeline of one process: the next free slot, in memory."""

    shared = False
    crowded = False

    def __init__(self) -> None:
        self.next_at = -math.inf

    def claim(self, n: int, interval: float, now: float, late_ok: float = TOLERANCE) -> float:
        """``n`` consecutive slots ``interval`` apart: from the timeline's next slot when that is at most
        ``late_ok`` old (a late start keeps the ideal timeline), else from ``now``; their start."""
        start = self.next_at if self.next_at >= now - late_ok else now
        self.next_at = start + n * interval
        return start

    def close(self) -> None:
        pass


class SharedTimeline:
    """The ideal timeline of every process using one ledger database, one row per ``name`` (the provider's
    address). Claims are one statement each, atomic on SQLite (a write lock) and PostgreSQL (a row lock).

    Times are this process's ``time.time()``; on PostgreSQL the row holds the database server's clock and
    ``offset`` (measured once, at open) converts."""

    shared = True

    _DDL = ("CREATE TABLE IF NOT EXISTS rate_timeline (name TEXT PRIMARY KEY, next_at REAL NOT NULL, updated_at REAL, "
            "last_by TEXT, prev_by TEXT, prev_at REAL)")

    def __init__(self, ledger_target: Path | str, name: str) -> None:
        from ..ledger.database import Database

        self.name = name
        self.me = uuid.uuid4().hex
        #: until this time (ours), assume other processes claim slots too: for the first second, and for two after
        #: a claim found another process's claim right before it (alone, a process sees only its own)
        self.crowded_until = time.time() + 1.0
        self._db = Database(ledger_target, what="the ledger (shared rate)")
        self._lock = threading.Lock()
        try:
            self._db.create(self._DDL)
            self._db.execute("INSERT INTO rate_timeline (name, next_at, updated_at) VALUES (?, 0, 0) "
                             "ON CONFLICT(name) DO NOTHING", (name,))
            self.offset = self._measure_offset() if self._db.postgres else 0.0
        except BaseException:
            self._db.close()
            raise

    def _measure_offset(self) -> float:
        """Database clock minus ours, from the quickest of a few round trips (error: half that round trip)."""
        best: tuple[float, float] | None = None
        for _ in range(5):
            t0 = time.time()
            (db_now,) = self._db.execute("SELECT extract(epoch from clock_timestamp())::float8").fetchone()
            t1 = time.time()
            if best is None or t1 - t0 < best[0]:
                best = (t1 - t0, float(db_now) - (t0 + t1) / 2)
        assert best is not None  # the loop runs five times
        return best[1]

    def claim(self, n: int, interval: float, now: float, late_ok: float = TOLERANCE) -> float:
        at = now + self.offset
        span = n * interval
        with self._lock:  # SET reads the row as it was: prev_* say who claimed before us, and when
            next_at, prev_by, prev_at = self._db.execute(
                "UPDATE rate_timeline SET next_at = (CASE WHEN next_at >= ? THEN next_at ELSE ? END) + ?, "
                "updated_at = ?, prev_by = last_by, prev_at = updated_at, last_by = ? WHERE name = ? "
                "RETURNING next_at, prev_by, prev_at",
                (at - late_ok, at, span, at, self.me, self.name)).fetchone()
        if prev_by is not None and prev_by != self.me and prev_at is not None and prev_at > at - 1.0:
            self.crowded_until = now + 2.0
        return float(next_at) - span - self.offset

    @property
    def crowded(self) -> bool:
        """Another process claimed slots in the last two seconds or so."""
        return time.time() < self.crowded_until

    def close(self) -> None:
        with self._lock:
            self._db.close()


def shared_timeline_for(ledger: Ledger, base_url: str) -> SharedTimeline | None:
    """The timeline every process using ``ledger`` shares for the provider at ``base_url``; None for a ledger
    no other process can see (SQLite ``:memory:``)."""
    if str(ledger.path) in (":memory:", ""):
        return None
    return SharedTimeline(ledger.path, base_url.rstrip("/"))


class RateLimiter:
    """Hands out request start times at most ``rate`` a second (see the module's doc), and can pause
    everyone until a moment (after a 429). ``rate`` None: no pacing, only pauses.

    ``wait()`` returns the slot's time (on ``clock``), which :meth:`observe` takes back with the answer."""

    def __init__(self, rate: float | None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[object]] = asyncio.sleep, *,
                 timeline: LocalTimeline | SharedTimeline | None = None, headroom: float = HEADROOM) -> None:
        self._clock = clock
        self._sleep = sleep
        self.headroom = headroom
        self.timeline = timeline or LocalTimeline()
        self._paused_until = 0.0
        self._batch_start = 0.0
        self._batch_left = 0
        self._batch_i = 0
        self._batch_interval = 0.0
        self._claim_lock: asyncio.Lock | None = None
        # the arrival guard's record: requests in flight (start -> how many), their starts in order (to stop
        # counting one IN_FLIGHT_FOR after it started), and when answers came (in order: the clock's)
        self._in_flight: dict[float, int] = {}
        self._in_flight_n = 0
        self._starts: collections.deque[float] = collections.deque()
        self._answers: collections.deque[float] = collections.deque()
        self._quickest = math.inf
        #: slots given up because their start came too late (statistics)
        self.skipped = 0
        #: starts the arrival guard held back, and for how long in all (seconds asked to sleep; statistics)
        self.held = 0
        self.held_for = 0.0
        #: the most requests started in any 1 s, and the answers 429 (statistics: the Summary says them)
        self.peak = 0
        self.refused = 0
        self._last_second: collections.deque[float] = collections.deque()
        self.set_rate(rate)

    def set_rate(self, rate: float | None) -> None:
        self.rate = rate if rate else None
        self.interval = 1.0 / (rate * (1.0 - self.headroom)) if rate else 0.0
        self._cap = math.ceil(rate) if rate and rate >= 1 else 0
        self._ring: collections.deque[float] = collections.deque(getattr(self, "_ring", ()), maxlen=self._cap or 1)
        self._batch_left = 0  # slots of a batch claimed at the old pace are dropped (a shared timeline loses them)

    @property
    def batch(self) -> int:
        """Slots claimed at once: one locally; ~0.1 s of the rate on a shared timeline."""
        if not self.timeline.shared or not self.rate:
            return 1
        return max(1, math.ceil(self.rate * BATCH_SECONDS))

    async def _take_slot(self) -> float:
        """Reserve the next slot not already too late."""
        while True:
            now = self._clock()
            # alone, a slot up to CATCH_UP late is still used (the window guard keeps every second under the
            # rate); between other processes' slots, one more than TOLERANCE late is given up
            late_ok = TOLERANCE if self.timeline.crowded else CATCH_UP
            while self._batch_left:
                slot = self._batch_start + self._batch_i * self._batch_interval
                self._batch_i += 1
                self._batch_left -= 1
                if slot >= now - late_ok:
                    return slot
                self.skipped += 1
            n, interval = self.batch, self.interval
            base = interval
            if self.timeline.crowded:  # other processes' slots between ours: more margin (module doc)
                assert self.rate is not None  # wait() takes a slot only when paced (interval > 0)
                interval = 1.0 / (self.rate * (1.0 - max(self.headroom, SHARED_HEADROOM)))
            if self.timeline.shared:
                if self._claim_lock is None:
                    self._claim_lock = asyncio.Lock()
                async with self._claim_lock:
                    if self._batch_left:  # another waiter claimed meanwhile
                        continue
                    start = await asyncio.to_thread(self.timeline.claim, n, interval, self._clock(), late_ok)
            else:
                start = self.timeline.claim(n, interval, now, late_ok)
            if base != self.interval:  # the rate changed while claiming
                continue
            self._batch_start, self._batch_i, self._batch_left, self._batch_interval = start, 0, n, interval

    async def wait(self) -> float:
        while True:
            now = self._clock()
            if self._paused_until > now:
                await self._sleep(self._paused_until - now)
                continue
            if not self.interval:
                return self._count_start(now)
            slot = await self._take_slot()
            now = self._clock()
            if slot > now:
                await self._sleep(slot - now)
                now = self._clock()
                if self._paused_until > now or (self.timeline.crowded and now > slot + TOLERANCE):
                    # a 429 came meanwhile; or woke too late for a slot between other processes' slots
                    self.skipped += 1
                    continue
            return await self._guards(slot)

    async def _guards(self, slot: float) -> float:
        """The last checks before a start (module doc), as one loop so that nothing else starts between
        the last check and the start: the window guard (never more than ceil(rate) starts of this process
        in any WINDOW seconds: a late start that would crowd the window waits, its slot is not lost) and
        the arrival guard. Returns the start time."""
        cap = self._cap
        if not cap:
            return self._count_start(max(slot, self._clock()))
        ring = self._ring
        held = False
        while True:
            now = self._clock()
            wait = ring[0] + WINDOW - now if len(ring) >= cap else 0.0
            if wait <= 0:
                count, first_free = self._may_share_a_second(now)
                if count < cap:
                    break
                wait = max(first_free - now, 0.0) if first_free is not None else POLL
                self.held += not held
                self.held_for += wait
                held = True
            await self._sleep(wait)
        started = max(slot, now)
        ring.append(now)
        self._in_flight[started] = self._in_flight.get(started, 0) + 1
        self._in_flight_n += 1
        self._starts.append(started)
        return self._count_start(started)

    def _count_start(self, started: float) -> float:
        """Keep :attr:`peak` (the most starts in any 1 s so far); returns ``started``."""
        last = self._last_second
        last.append(started)
        while last[0] <= started - 1.0:
            last.popleft()
        self.peak = max(self.peak, len(last))
        return started

    def describe(self) -> str:
        """What the run's pacing did, for the Summary: the published rate, or what adapting found."""
        return f"{self.rate:g}/s published: peaked at {self.peak}/s" if self.rate else "none"

    @property
    def answer_margin(self) -> float:
        """How much earlier than its answer was read a request is taken to have arrived: half the quickest
        round trip seen (the module's doc says why)."""
        return self._quickest / 2 if self._quickest != math.inf else 0.0

    def _may_share_a_second(self, now: float) -> tuple[int, float | None]:
        """How many requests may arrive within 1 s of one starting ``now`` (in flight, or answered less than
        a second ago), and when the earliest answered one stops counting (None: only requests in flight).
        Amortised O(1): answers come in clock order, so the oldest is first."""
        starts, in_flight = self._starts, self._in_flight
        while starts and starts[0] <= now - IN_FLIGHT_FOR:  # unanswered that long: no longer counted
            self._in_flight_n -= in_flight.pop(starts.popleft(), 0)
        answers, margin = self._answers, self.answer_margin
        # "+ 1.0 - margin > now" is the expression the sleep uses, so it never sleeps 0 s
        while answers and answers[0] - margin + 1.0 <= now:
            answers.popleft()
        first_free = answers[0] - margin + 1.0 if answers else None
        return self._in_flight_n + len(answers), first_free

    def _answered(self, status: int | None, started: float) -> None:
        """Note when the request that started at ``started`` was answered, for the arrival guard."""
        self.refused += status == 429
        left = self._in_flight.get(started)
        if not left:
            return  # not started through wait(), or no longer counted
        if left == 1:
            del self._in_flight[started]
        else:
            self._in_flight[started] = left - 1
        self._in_flight_n -= 1
        now = self._clock()
        self._answers.append(now)
        if status is not None:
            self._quickest = min(self._quickest, now - started)

    def pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    def observe(self, status: int | None, started: float) -> None:
        """An answer (``status``; None: no answer) to a request that started at ``started``: the arrival
        guard's record (a fixed rate does not change with answers)."""
        self._answered(status, started)

    def close(self) -> None:
        self.timeline.close()


class AdaptiveRateLimiter(RateLimiter):
    """No published rate: unpaced until the provider answers 429, then paced at what it accepted
    (multiplicative decrease), probing for more (additive increase). See the module's doc."""

    #: after a 429: this share of the requests accepted in the last second
    BETA = 0.97
    #: probing: the rate grows by this share of the last ceiling per second (halved at each confirmation)
    PROBE = 0.004
    MIN_PROBE = 0.0005
    #: never paced below this (requests per second)
    MIN_RATE = 0.5

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[object]] = asyncio.sleep, *,
                 timeline: LocalTimeline | SharedTimeline | None = None, headroom: float = 0.0) -> None:
        # headroom 0 by default: BETA is the margin here
        super().__init__(None, clock, sleep, timeline=timeline, headroom=headroom)
        self._accepted: collections.deque[float] = collections.deque()  # start times of answers other than 429
        self._last_decrease = -math.inf
        self._last_change = -math.inf
        self.ceiling: float | None = None
        self.probe = self.PROBE
        #: decreases so far, and the rates chosen (statistics, tests)
        self.decreases = 0
        self.history: list[tuple[float, float]] = []

    def observe(self, status: int | None, started: float) -> None:
        self._answered(status, started)
        now = self._clock()
        accepted = self._accepted
        while accepted and accepted[0] <= now - 1.0:
            accepted.popleft()
        if status != 429:
            if status is not None:
                accepted.append(started)
            if self.rate is not None and self.ceiling is not None:
                self._increase(now, self.rate, self.ceiling)
            return
        if started < self._last_decrease or now - self._last_decrease < 1.0:
            return  # sent before the last decrease took effect: the same congestion
        seen = max(len(accepted), 1)
        if self.ceiling is not None and abs(seen - self.ceiling) <= 0.05 * self.ceiling:
            self.probe = max(self.MIN_PROBE, self.probe / 2)  # the same ceiling again: probe more gently
        else:
            self.probe = self.PROBE
        self.ceiling = float(seen)
        self.decreases += 1
        self._last_decrease = self._last_change = now
        # what the provider accepted, as a floor 0.9 of the pace so far: on a busy machine the count of the
        # last second can fall short of what the provider allows, and one 429 should not halve the run
        floor = 0.9 * self.rate if self.rate is not None else 0.0
        self._set(max(self.MIN_RATE, self.BETA * seen, floor), now)

    def describe(self) -> str:
        found = f"; paced at {self.rate:.1f}/s at the end" if self.rate else ""
        return (f"adaptive (no published limit): peaked at {self.peak}/s, {self.refused} "
                f"answer{'' if self.refused == 1 else 's'} 429{found}")

    def _increase(self, now: float, rate: float, ceiling: float) -> None:
        elapsed = now - self._last_change
        if elapsed >= 0.25:
            self._last_change = now
            self._set(rate + self.probe * ceiling * min(elapsed, 1.0), now)

    def _set(self, rate: float, now: float) -> None:
        self.history.append((now, rate))
        # the ideal timeline carries on from where it is: a new pace needs no new start
        self.set_rate(rate)

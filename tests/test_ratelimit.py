"""The rate limiter (flows/http/ratelimit.py), issue 16 targets 3 and 4.

Unit tests run on *virtual time*: ``sleep`` parks the task until the driver moves the clock to its
deadline (plus a lateness the test chooses: a busy machine wakes tasks late), so many concurrent
waiters, seconds of pacing and a provider's sliding window take no real time and can be asserted
exactly. Then the real thing: a run against the Jicoo simulator enforcing an unpublished 50/s, and
three processes sharing one rate through the ledger (SQLite and PostgreSQL), counted at the simulator.
"""
from __future__ import annotations

import asyncio
import contextlib
import datetime
import heapq
import importlib.util
import itertools
import json
import os
import random
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flows.http.ratelimit import (
    HEADROOM,
    TOLERANCE,
    WINDOW,
    AdaptiveRateLimiter,
    RateLimiter,
    SharedTimeline,
    max_in_window,
)
from flows.sandbox.faults import FaultInjector, Faults

from .conftest import ROOT, served
from .pg_support import pg_server, pg_url  # noqa: F401 - fixtures


class VirtualTime:
    """A clock and a ``sleep`` for many tasks at once: the clock jumps to the next sleeper's deadline
    (plus ``late()`` seconds) once every task is parked."""

    def __init__(self, late: Callable[[], float] = lambda: 0.0) -> None:
        self.now = 1_000.0
        self.late = late
        self._sleepers: list[tuple[float, int, asyncio.Future]] = []
        self._seq = itertools.count()

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        fut = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + max(seconds, 0.0) + self.late(), next(self._seq), fut))
        await fut

    async def run(self, *coros: Any) -> list[Any]:
        tasks = [asyncio.ensure_future(c) for c in coros]
        while not all(t.done() for t in tasks):
            for _ in range(20):  # let every runnable task reach its next sleep
                await asyncio.sleep(0)
            if self._sleepers:
                deadline, _, fut = heapq.heappop(self._sleepers)
                self.now = max(self.now, deadline)
                fut.set_result(None)
            elif not all(t.done() for t in tasks):  # pragma: no cover - a task blocked on something else
                await asyncio.sleep(0.001)
        return [t.result() for t in tasks]


def _jitter(seed: int, most: float) -> Callable[[], float]:
    """A lateness drawn uniformly from 0 to ``most`` seconds, the same every run for one ``seed``."""
    rng = random.Random(seed)
    return lambda: rng.uniform(0, most)


def _pace(limiter: RateLimiter, vt: VirtualTime, workers: int, requests: int) -> list[float]:
    """``workers`` tasks taking ``requests`` starts from ``limiter``; the start times."""
    starts: list[float] = []
    left = [requests]

    async def worker() -> None:
        while left[0] > 0:
            left[0] -= 1
            started = await limiter.wait()
            starts.append(vt.now)
            await vt.sleep(0.005)  # the request itself
            limiter.observe(201, started)

    asyncio.run(vt.run(*(worker() for _ in range(workers))))
    return sorted(starts)


# --- a published rate: >= 0.98 of it, never above it in any 1-second window ----------------------------------


@pytest.mark.parametrize("rate", [10, 50, 333])
def test_a_busy_run_reaches_the_rate_and_no_window_holds_more(rate):
    vt = VirtualTime(late=_jitter(rate, 0.004))  # woken up to 4 ms late
    starts = _pace(RateLimiter(rate, clock=vt.clock, sleep=vt.sleep), vt, workers=16, requests=min(rate * 20, 2_000))
    achieved = (len(starts) - 1) / (starts[-1] - starts[0])
    assert achieved >= 0.98 * rate, achieved
    assert achieved == pytest.approx(rate * (1 - HEADROOM), rel=0.002)  # lateness is not lost: the ideal timeline
    assert max_in_window(starts) <= rate


def test_late_wake_ups_never_put_more_than_the_rate_in_a_window():
    """A loaded machine: tasks woken up to 60 ms late, at random. A late start crowding the window waits;
    since the timeline is not pushed back by lateness, the rate is still used."""
    rng = random.Random(7)
    vt = VirtualTime(late=lambda: rng.choice([0.0, 0.0, 0.002, 0.009, 0.03, 0.06]))
    limiter = RateLimiter(20, clock=vt.clock, sleep=vt.sleep)
    starts = _pace(limiter, vt, workers=8, requests=400)
    assert max_in_window(starts) <= 20
    assert max_in_window(starts, WINDOW) <= 20  # the guard's own window, a little longer than a second
    assert (len(starts) - 1) / (starts[-1] - starts[0]) >= 0.95 * 20


def _arrivals(limiter: RateLimiter, vt: VirtualTime, workers: int, requests: int,
              way_there: Callable[[], float]) -> tuple[list[float], list[float]]:
    """Like :func:`_pace`, but each request reaches the provider ``way_there()`` seconds after the limiter
    let it go (a busy machine: the process not scheduled, a starved server), and is answered 1 ms after it
    arrived. Returns (the limiter's starts, the provider's arrival times)."""
    starts: list[float] = []
    arrivals: list[float] = []
    left = [requests]

    async def worker() -> None:
        while left[0] > 0:
            left[0] -= 1
            started = await limiter.wait()
            starts.append(vt.now)
            await vt.sleep(way_there())
            arrivals.append(vt.now)
            await vt.sleep(0.001)
            limiter.observe(201, started)

    asyncio.run(vt.run(*(worker() for _ in range(workers))))
    return sorted(starts), sorted(arrivals)


class _NoArrivalGuard(RateLimiter):
    """The limiter before the arrival guard: it counts only its own starts."""

    def _may_share_a_second(self, now: float) -> tuple[int, float | None]:
        return 0, None


@pytest.mark.parametrize("rate", [10, 50])
def test_the_provider_never_counts_more_than_the_rate_when_the_way_there_is_late(rate):
    """Issue 16 measured 11 arrivals in a second at rate 10, 52 at 50, while the limiter's own starts kept
    the rate: some requests took tens of ms to leave a busy machine. Here 5 % of them take 30 ms and 1 %
    100 ms to reach the provider: the limiter alone lets the provider count more than the rate, the
    arrival guard never, and the rate is still reached (as the provider counts it)."""
    def late_way(seed: int) -> Callable[[], float]:
        rng = random.Random(seed)
        return lambda: rng.choices([0.0005, 0.002, 0.03, 0.1], weights=[70, 24, 5, 1])[0]

    vt = VirtualTime(late=_jitter(1, 0.004))
    starts, arrivals = _arrivals(_NoArrivalGuard(rate, clock=vt.clock, sleep=vt.sleep), vt, 16, rate * 20,
                                 late_way(rate))
    assert max_in_window(starts) <= rate < max_in_window(arrivals)  # what issue 16 saw

    vt = VirtualTime(late=_jitter(1, 0.004))
    limiter = RateLimiter(rate, clock=vt.clock, sleep=vt.sleep)
    starts, arrivals = _arrivals(limiter, vt, 16, rate * 20, late_way(rate))
    assert max_in_window(arrivals) <= rate
    assert limiter.held > 0  # the guard did act
    achieved = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
    assert achieved >= 0.98 * rate, achieved


def test_requests_in_flight_count_until_answered():
    """A slow provider: every request takes 1.5 s to arrive. Requests in flight may still arrive in any
    second, so no more than the rate are in flight at once, and an answer frees its place a second after
    the request is taken to have arrived (half the quickest round trip before the answer)."""
    vt = VirtualTime()
    limiter = RateLimiter(10, clock=vt.clock, sleep=vt.sleep)
    starts, arrivals = _arrivals(limiter, vt, 12, 40, lambda: 1.5)
    assert max_in_window(arrivals) <= 10
    assert limiter.answer_margin == pytest.approx(1.501 / 2)
    assert max_in_window(starts, 1.5 + 0.001 - 1.501 / 2 + 1.0) <= 10


def test_a_stalled_process_catches_up_within_the_window():
    """Every 2 s the machine stalls the process for 200 ms: the slots it missed are used after (the rate is
    kept), and the window guard still keeps every second at the rate."""
    vt = VirtualTime()
    wakes = itertools.count()
    vt.late = lambda: 0.2 if next(wakes) % 100 == 99 else 0.0
    limiter = RateLimiter(50, clock=vt.clock, sleep=vt.sleep)
    starts = _pace(limiter, vt, workers=8, requests=1_000)
    assert max_in_window(starts) <= 50
    assert (len(starts) - 1) / (starts[-1] - starts[0]) >= 0.98 * 50


def test_the_old_wake_up_scheduling_would_lose_the_lateness():
    """What issue 16 measured (0.94 of --rate): with 6 ms of lateness a wake, scheduling from the wake-up
    time reaches 10 / (1 + 0.06) = 0.94; the ideal timeline keeps 0.995."""
    vt = VirtualTime(late=lambda: 0.006)
    starts = _pace(RateLimiter(10, clock=vt.clock, sleep=vt.sleep), vt, workers=1, requests=100)
    assert (len(starts) - 1) / (starts[-1] - starts[0]) >= 0.98 * 10


def test_an_idle_limiter_starts_at_once_and_does_not_save_up_a_burst():
    vt = VirtualTime()
    limiter = RateLimiter(10, clock=vt.clock, sleep=vt.sleep)

    async def go() -> list[float]:
        out = [await limiter.wait()]
        await vt.sleep(5)  # idle: no credit is saved up
        for _ in range(11):
            await limiter.wait()
            out.append(vt.now)
        return out

    (starts,) = asyncio.run(vt.run(go()))
    assert starts[0] == 1_000.0 and starts[1] == 1_005.0
    assert max_in_window(starts[1:]) == 10


def test_pause_holds_every_waiter_and_drops_the_slots_it_covers():
    vt = VirtualTime()
    limiter = RateLimiter(10, clock=vt.clock, sleep=vt.sleep)

    async def go() -> list[float]:
        out = []
        for i in range(6):
            await limiter.wait()
            out.append(vt.now)
            if i == 2:
                limiter.pause(3)
        return out

    (starts,) = asyncio.run(vt.run(go()))
    assert starts[3] >= starts[2] + 3  # nothing started during the pause
    assert max_in_window(starts) <= 10


# --- no published rate: additive increase, multiplicative decrease ---------------------------------------------


def _against_a_provider(limit: float, rows: int, *, retry_after: bool, workers: int = 8,
                        latency: float = 0.02) -> tuple[AdaptiveRateLimiter, list[float], int, float]:
    """An adaptive limiter against the simulator's own sliding-window limiter (FaultInjector.admit) on
    virtual time: ``rows`` bookings, each retried after a 429 as flows.http.sender does (Retry-After pauses
    everyone; without it a jittered backoff does). Returns (limiter, accepted arrival times, 429s, seconds)."""
    vt = VirtualTime()
    rng = random.Random(3)
    injector = FaultInjector(Faults(rate_limit=limit))
    limiter = AdaptiveRateLimiter(clock=vt.clock, sleep=vt.sleep)
    accepted: list[float] = []
    refused = [0]
    left = [rows]

    async def worker() -> None:
        while left[0] > 0:
            left[0] -= 1
            attempt = 0
            while True:
                attempt += 1
                started = await limiter.wait()
                await vt.sleep(latency / 2)
                wait = injector.admit(now=vt.now)  # the provider's side
                arrived = vt.now
                await vt.sleep(latency / 2)
                status = 201 if wait is None else 429
                limiter.observe(status, started)
                if status == 201:
                    accepted.append(arrived)
                    break
                refused[0] += 1
                pause = float(wait) if retry_after else rng.uniform(0, 0.5 * 2 ** (attempt - 1))
                limiter.pause(pause)
                await vt.sleep(pause)

    t0 = vt.now
    asyncio.run(vt.run(*(worker() for _ in range(workers))))
    return limiter, sorted(accepted), refused[0], vt.now - t0


@pytest.mark.parametrize("retry_after", [True, False], ids=["Retry-After", "no Retry-After"])
def test_an_unpublished_50_per_second_is_found_and_used(retry_after):
    limiter, accepted, refused, seconds = _against_a_provider(50, 2_000, retry_after=retry_after)
    assert len(accepted) == 2_000
    assert len(accepted) / seconds >= 0.9 * 50, len(accepted) / seconds
    assert refused / (refused + len(accepted)) <= 0.05, refused
    assert limiter.decreases >= 1 and limiter.rate is not None
    assert 0.85 * 50 <= limiter.rate <= 1.1 * 50


def test_the_summary_says_what_the_pacing_did():
    limiter, _, refused, _ = _against_a_provider(50, 500, retry_after=True)
    assert limiter.refused == refused > 0
    assert limiter.describe() == (f"adaptive (no published limit): peaked at {limiter.peak}/s, {refused} "
                                  f"answer{'' if refused == 1 else 's'} 429; paced at {limiter.rate:.1f}/s at the end")
    assert 50 <= limiter.peak <= 8 / 0.02  # the unpaced start, bounded by 8 workers of 20 ms
    vt = VirtualTime()
    fixed = RateLimiter(10, clock=vt.clock, sleep=vt.sleep)
    _pace(fixed, vt, workers=4, requests=30)
    assert fixed.describe() == "10/s published: peaked at 10/s"
    assert AdaptiveRateLimiter().describe() == "adaptive (no published limit): peaked at 0/s, 0 answers 429"


def test_it_starts_at_the_concurrency_bound_until_a_429():
    limiter, accepted, refused, seconds = _against_a_provider(10_000, 500, retry_after=True, latency=0.02)
    assert refused == 0 and limiter.rate is None and limiter.decreases == 0
    assert len(accepted) / seconds == pytest.approx(8 / 0.02, rel=0.02)  # 8 workers, 20 ms each: unpaced


def test_one_decrease_per_congestion_not_per_429():
    """Eight requests in flight all answered 429 at once: the rate is cut once, not eight times."""
    vt = VirtualTime()
    limiter = AdaptiveRateLimiter(clock=vt.clock, sleep=vt.sleep)
    for _ in range(40):
        limiter.observe(201, vt.now)
    for _ in range(8):
        limiter.observe(429, vt.now)
    assert limiter.decreases == 1 and limiter.rate == pytest.approx(0.97 * 40)


def test_additive_increase_then_gentler_probing_at_the_same_ceiling():
    vt = VirtualTime()
    limiter = AdaptiveRateLimiter(clock=vt.clock, sleep=vt.sleep)
    for _ in range(50):
        limiter.observe(201, vt.now)
    limiter.observe(429, vt.now)
    cut = limiter.rate
    for _ in range(40):  # 10 s of answers, a quarter of a second apart
        vt.now += 0.25
        limiter.observe(201, vt.now)
    # a share of the ceiling a second
    assert limiter.rate == pytest.approx(cut + AdaptiveRateLimiter.PROBE * 50 * 10, rel=0.05)
    first_probe = limiter.probe
    vt.now += 2
    for _ in range(50):
        limiter.observe(201, vt.now - 0.5)
    limiter.observe(429, vt.now)
    assert limiter.decreases == 2 and limiter.probe == first_probe / 2  # the same ceiling again


# --- one rate for every process: the ledger's shared timeline --------------------------------------------------


def _claims_never_overlap(target: Any) -> None:
    a, b = SharedTimeline(target, "https://api.example/v1"), SharedTimeline(target, "https://api.example/v1")
    other = SharedTimeline(target, "https://other.example/v1")
    try:
        now = time.time()
        got = [(a if i % 2 else b).claim(3, 0.1, now) for i in range(6)]
        assert got == [pytest.approx(got[0] + 0.3 * i, abs=0.002) for i in range(6)]  # back to back, no overlap
        assert got[0] == pytest.approx(now, abs=0.05)  # on PostgreSQL too: its clock, converted back to ours
        assert other.claim(1, 0.1, now) == pytest.approx(now, abs=0.05)  # another provider: its own timeline
        # an idle timeline starts again from now, not from the past (no saved-up burst)
        later = now + 100
        assert a.claim(1, 0.1, later) == pytest.approx(later, abs=0.05)
    finally:
        a.close(), b.close(), other.close()


def test_a_process_knows_when_others_claim_on_its_timeline(tmp_path):
    """More headroom while others claim too (flows/http/ratelimit.py): assumed at first, dropped once alone."""
    from flows.ledger.ledger import open_ledger

    ledger = open_ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    a, b = SharedTimeline(ledger.path, "p"), SharedTimeline(ledger.path, "p")
    try:
        assert a.crowded and b.crowded  # at first: assume company
        a.crowded_until = b.crowded_until = 0.0
        now = time.time()
        a.claim(2, 0.01, now), a.claim(2, 0.01, now)
        assert not a.crowded  # only its own claims
        b.claim(2, 0.01, now)
        assert b.crowded  # a claimed just before
        a.claim(2, 0.01, now)
        assert a.crowded
    finally:
        a.close(), b.close(), ledger.close()


def test_shared_timeline_on_sqlite(tmp_path):
    from flows.ledger.ledger import open_ledger

    ledger = open_ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    _claims_never_overlap(ledger.path)
    ledger.close()


def test_shared_timeline_on_postgres(pg_url):
    from flows.ledger.ledger import open_ledger

    ledger = open_ledger(pg_url)
    _claims_never_overlap(ledger.path)
    ledger.close()


class RecordingTimeline(SharedTimeline):
    """The ledger's shared timeline, noting each claim it was granted: (start on the timeline's clock, slots,
    interval), as the ledger's ``rate_timeline`` row handed them out."""

    def __init__(self, ledger_target: Path | str, name: str) -> None:
        super().__init__(ledger_target, name)
        self.claims: list[tuple[float, int, float]] = []

    def claim(self, n: int, interval: float, now: float, late_ok: float = TOLERANCE) -> float:
        start = super().claim(n, interval, now, late_ok)
        self.claims.append((start + self.offset, n, interval))
        return start


def assert_one_timeline(claims: list[tuple[float, int, float]], rate: float) -> None:
    """Claims from every process, on one timeline: back to back, never overlapping, never faster than ``rate``."""
    claims = sorted(claims)
    for (start, n, interval), (after, _, _) in itertools.pairwise(claims):
        assert interval >= 1 / rate and n >= 1
        assert after >= start + n * interval - 1e-4, (start, n, interval, after)  # REAL rounding only


def test_two_limiters_on_one_shared_timeline_keep_one_rate(tmp_path):
    """Two runs in one process, paced by the ledger's timeline (real time, 1.5 s): together never more than the
    rate in any second, and every slot each used was claimed from the one timeline (no throughput floor: how
    much of the rate a busy machine reaches is measured in bench/RESULTS.md)."""
    from flows.ledger.ledger import open_ledger

    ledger = open_ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    rate = 40
    starts: list[list[float]] = [[], []]
    timelines = [RecordingTimeline(ledger.path, "x") for _ in range(2)]

    async def run(limiter: RateLimiter, mine: list[float]) -> None:
        async def worker() -> None:
            while time.time() < stop:
                started = await limiter.wait()
                mine.append(time.time())
                limiter.observe(201, started)  # answered at once, as the sender reports every answer
        await asyncio.gather(*(worker() for _ in range(4)))

    async def go() -> None:
        limiters = [RateLimiter(rate, clock=time.time, timeline=t) for t in timelines]
        await asyncio.gather(*(run(lim, mine) for lim, mine in zip(limiters, starts, strict=True)))
        for lim in limiters:
            lim.close()

    stop = time.time() + 1.5
    asyncio.run(go())
    ledger.close()
    assert max_in_window(starts[0] + starts[1]) <= rate
    assert all(starts) and all(t.claims for t in timelines)  # both ran, each on slots it claimed
    assert_one_timeline(timelines[0].claims + timelines[1].claims, rate)


# --- the real thing: the simulator -------------------------------------------------------------------------------


def _gen_data():
    spec = importlib.util.spec_from_file_location("_bench_gen_data", ROOT / "bench" / "gen_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_sheets(tmp_path: Path, parts: int, rows: int) -> list[Path]:
    """``parts`` CSVs of ``rows`` valid Jicoo rows each, every row on its own slot (no 409 between parts)."""
    gen = _gen_data()
    everything = gen.build_rows(parts * rows)
    columns = list(everything[0])
    out = []
    for p in range(parts):
        path = tmp_path / f"sheet-{p}.csv"
        gen.write_csv(everything[p * rows:(p + 1) * rows], path, columns)
        out.append(path)
    return out


def test_a_run_against_an_unpublished_50_per_second_settles_every_row(tmp_path, jicoo_env):
    """The engine with no rate (Jicoo's mapping publishes none) against the simulator answering 429 above 50/s:
    every row settles, few 429s, the Summary says what adapting did. About 7 s: the point of the test. How fast:
    bench/RESULTS.md, "Rate adherence"."""
    from flows.engine.plan import prepare
    from flows.engine.run import ImportRun, RunOptions, send_pending
    from flows.engine.summary import summarize
    from flows.sandbox import JicooSimulator

    (sheet,) = _write_sheets(tmp_path, 1, 300)
    with served(JicooSimulator(faults=Faults(rate_limit=50))) as sim:
        plan = prepare(sheet, ROOT / "mappings" / "jicoo.yaml")
        run = ImportRun(plan, RunOptions(rate=None, ledger_url=f"sqlite:///{tmp_path / 'l.sqlite'}",
                                         env={**jicoo_env, "JICOO_BASE_URL": sim.url + "/v1"}))
        asyncio.run(send_pending(run))
        refused = sim.fault_counts["rate_limited"]
        booked = len(sim.bookings)
        arrivals = list(sim.injector.arrivals)
    statuses = {o.status.value for o in run.outcomes}
    assert statuses == {"created"} and booked == 300  # every row settled, none twice
    assert refused / len(arrivals) <= 0.05, (refused, len(arrivals))
    # how fast is not asserted (a busy machine decides that): bench/RESULTS.md has the figure
    # the Summary says what adapting did, not "rate limit: none" (issue 16)
    now = datetime.datetime.now(datetime.UTC)
    said = summarize(plan, now, now, run=run)["rate limit (req/s)"]
    found = re.fullmatch(r"adaptive \(no published limit\): peaked at (\d+)/s, (\d+) answers? 429"
                         r"(; paced at [\d.]+/s at the end)?", str(said))
    assert found, said
    assert int(found[1]) >= 1 and int(found[2]) == refused


def provider_first(sim: Any) -> None:
    """Raise the simulator thread's CPU priority where allowed (root): on this shared 2-CPU machine the
    simulator, starved for 100+ ms while three importers and other sessions run, would stamp the requests
    that queued meanwhile as one burst; a provider's front end is not starved by its clients' machines."""
    import threading

    for t in threading.enumerate():  # SimulatorServer's thread
        if t.name == "sandbox-server" and t.native_id:
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, t.native_id, -10)


_WORKER = textwrap.dedent("""
    import asyncio, json, sys, time
    from flows.engine.plan import prepare
    from flows.engine.run import ImportRun, RunOptions, send_pending
    from flows.http import ratelimit
    sheet, mapping, ledger = sys.argv[1], sys.argv[2], sys.argv[3]
    claims = []  # what the ledger's rate_timeline row granted this process: (start on its clock, slots, interval)
    granted = ratelimit.SharedTimeline.claim
    def claim(self, n, interval, now, late_ok=ratelimit.TOLERANCE):
        start = granted(self, n, interval, now, late_ok)
        claims.append((start + self.offset, n, interval))
        return start
    ratelimit.SharedTimeline.claim = claim
    plan = prepare(sheet, mapping)
    run = ImportRun(plan, RunOptions(ledger_url=ledger))
    print("ready", flush=True)
    start_at = float(sys.stdin.readline())  # every process starts at once
    time.sleep(max(0.0, start_at - time.time()))
    asyncio.run(send_pending(run))
    print(json.dumps({"statuses": sorted({o.status.value for o in run.outcomes}), "claims": claims}))
""")


def three_workers(tmp_path: Path, url: str, ledger: str, rate: int, rows: int) -> list[list[list[float]]]:
    """Three processes importing ``rows`` rows each for one provider at the mapping's ``rate``, sharing ``ledger``;
    each process's claims on the ledger's shared timeline, ``[start, slots, interval]``."""
    from .conftest import mapping_variant

    sheets = _write_sheets(tmp_path, 3, rows)
    mapping = mapping_variant(tmp_path, connection__rate=rate)
    env = {**os.environ, "JICOO_BASE_URL": url + "/v1", "JICOO_API_KEY": os.environ["JICOO_API_KEY"]}
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, str(s), str(mapping), ledger], env=env, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for s in sheets]
    for p in procs:  # every process has imported, read its sheet and opened the ledger
        line = p.stdout.readline()
        assert line.strip() == "ready", line + p.stderr.read()[-2000:]
    start_at = time.time() + 0.2
    for p in procs:
        p.stdin.write(f"{start_at}\n")
        p.stdin.flush()
    claims = []
    for p in procs:
        out, err = p.communicate(timeout=90)
        assert p.returncode == 0, err[-2000:]
        said = json.loads(out.strip().splitlines()[-1])
        assert said["statuses"] == ["created"]
        claims.append(said["claims"])
    return claims


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_three_processes_share_the_mappings_rate(tmp_path, jicoo_env, backend, request):
    """Three runs for one provider at `rate: 30`, counted where it matters: at the simulator (never more than
    the rate in a second, every row once), and shared through the ledger: every process took its slots from
    the one ``rate_timeline`` row for the provider, back to back. How much of the rate they reach together
    is not asserted (a busy machine decides that): bench/RESULTS.md has the figure."""
    from flows.ledger.database import Database
    from flows.ledger.ledger import open_ledger
    from flows.sandbox import JicooSimulator

    ledger = f"sqlite:///{tmp_path / 'shared.sqlite'}" if backend == "sqlite" else request.getfixturevalue("pg_url")
    rate, rows = 30, 30
    with served(JicooSimulator()) as sim:
        provider_first(sim)
        t0 = time.time()
        claims = three_workers(tmp_path, sim.url, ledger, rate, rows)
        arrivals = sorted(sim.injector.arrivals)
        booked = len(sim.bookings)
    assert booked == 3 * rows and len(arrivals) == 3 * rows
    assert t0 < arrivals[0]
    assert max_in_window(arrivals) <= rate, max_in_window(arrivals)
    # the sharing, from the ledger's records: every process claimed slots, enough for its rows, all on one
    # timeline without overlap, and that timeline is the provider's one row, whose end is the last claim's
    assert all(sum(n for _, n, _ in mine) >= rows for mine in claims), claims
    everyone = [(start, n, interval) for mine in claims for start, n, interval in mine]
    assert_one_timeline(everyone, rate)
    target = open_ledger(ledger)
    db = Database(target.path)
    try:
        timeline = db.execute("SELECT name, next_at FROM rate_timeline").fetchall()
    finally:
        db.close(), target.close()
    assert [name for name, _ in timeline] == [sim.url + "/v1"]
    assert timeline[0][1] == pytest.approx(max(start + n * interval for start, n, interval in everyone), abs=1e-4)

"""A small wall-clock sampling profiler for the main thread (py-spy is not needed, nor installed).

Every ``interval`` seconds of wall-clock time (SIGALRM) it records the main thread's Python
stack, weighted by the time since the previous sample. Unlike cProfile it costs about the same
whatever the code does (one stack walk per sample, ~1 % here), so a profiled run takes about as
long as a timed one, and it sees *wall* time: waiting for the network shows up as "event loop
idle", not as nothing. Only the main thread is seen (the engine, the flow and prepare() run there).

In a process::

    s = Sampler().start(); ...; s.stop(); s.dump("out.json")

Around a module, as ``python -m`` would run it (used for ``python -m flows run ...``)::

    python bench/sampler.py OUT.json -m flows run SHEET -m MAPPING ...

Each sample is put in one *area*: stacks inside Prefect's parameter walk or inside an import
count there; otherwise the innermost frame that belongs to a known area decides (a frame in
the stdlib's json encoder called by httpx counts as httpx).
"""
from __future__ import annotations

import gc
import json
import re
import resource
import runpy
import signal
import sys
import time
from collections import Counter
from pathlib import Path

#: checked over the whole stack first, in this order
OVERRIDES = [
    ("module imports", re.compile(r"<frozen importlib\._bootstrap")),
    ("Prefect: task parameter introspection (visit_collection)",
     re.compile(r"prefect/utilities/collections\.py:visit_collection")),
    ("Prefect: temporary API server start-up and shutdown",
     re.compile(r"prefect/server/api/server\.py:(start|stop|__enter__|__exit__)")),
]
#: innermost frame first; the first frame that matches one of these decides
AREAS = [
    ("ledger (SQLite)", re.compile(r"flows/ledger/ledger\.py")),
    ("results workbook", re.compile(r"flows/workbooks/results\.py|site-packages/xlsxwriter/")),
    ("prepare: read sheet", re.compile(r"flows/workbooks/sheets\.py|python_calamine")),
    ("prepare: map + validate", re.compile(r"flows/mapping/|flows/providers/types\.py|site-packages/pydantic")),
    ("Sender (flows/http/sender.py)", re.compile(r"flows/http/(sender|ratelimit)\.py")),
    ("engine bookkeeping (flows/engine/run.py)", re.compile(r"flows/engine/")),
    ("flows (other modules)", re.compile(r"/flows/")),
    ("httpx_aiohttp transport", re.compile(r"site-packages/httpx_aiohttp/")),
    ("aiohttp", re.compile(r"site-packages/(aiohttp|yarl|multidict|propcache|aiohappyeyeballs)/")),
    ("httpx", re.compile(r"site-packages/(httpx|httpcore)/")),
    ("Prefect (orchestration, API client)", re.compile(r"site-packages/(prefect|anyio|uvicorn|starlette|sqlalchemy)/")),
    ("pandas", re.compile(r"site-packages/pandas/")),
    ("event loop idle (waiting for I/O)", re.compile(r"selectors\.py:select")),
    ("asyncio event loop", re.compile(r"asyncio/")),
    ("bench harness (incl. freeing the timed result)", re.compile(r"bench/(workers|sampler)\.py")),
]


def _cpu_times() -> tuple[float, float]:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, kids.ru_utime + kids.ru_stime


def _short(key: str) -> str:
    """``/.../site-packages/httpx/_client.py:send`` -> ``httpx/_client.py:send``;
    ``/any/where/flows/x.py:f`` -> ``flows/x.py:f``."""
    for rx in (r".*/site-packages/", r".*/(?=(flows|bench)/)", r".*/lib/python3\.\d+/"):
        if re.match(rx, key):
            return re.sub(rx, "", key, count=1)
    return key


def _key(frame) -> str:
    code = frame.f_code
    return f"{code.co_filename}:{code.co_name}"


class Sampler:
    """Samples the main thread's stack on a wall-clock timer (SIGALRM every ``interval`` seconds).

    Each sample is weighted by the wall time since the previous one. A signal handler runs in the
    main thread between two bytecodes, so a long C call (an SQLite commit, calamine parsing a
    workbook) is charged, when it returns, to the Python function that made it, for its whole
    duration; a thread-based sampler would instead see mostly the moments the GIL is released.
    Start and stop it from the main thread.
    """

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.areas: Counter = Counter()
        self.leaves: Counter = Counter()
        self.inclusive: Counter = Counter()
        self.samples = 0
        self.wall = 0.0
        self._t0 = self._last = 0.0
        self._old_handler = None
        self._busy = False
        self._cpu0 = (0.0, 0.0)
        #: CPU seconds of this process, and of its children reaped meanwhile (e.g. the Prefect server)
        self.cpu_self = self.cpu_children = 0.0

    def start(self) -> Sampler:
        self._cpu0 = _cpu_times()
        self._t0 = self._last = time.perf_counter()
        self._old_handler = signal.signal(signal.SIGALRM, self._sample)
        signal.setitimer(signal.ITIMER_REAL, self.interval, self.interval)
        return self

    def stop(self) -> Sampler:
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
        if self._old_handler is not None:
            signal.signal(signal.SIGALRM, self._old_handler)
        self.wall = time.perf_counter() - self._t0
        end = _cpu_times()
        self.cpu_self, self.cpu_children = end[0] - self._cpu0[0], end[1] - self._cpu0[1]
        return self

    def _sample(self, signum, frame) -> None:
        if self._busy:  # a signal while a sample is being taken: its time goes to the next sample
            return
        self._busy = True
        gc_was_on = gc.isenabled()
        gc.disable()  # a collection started by this handler's allocations belongs to the profiled code
        try:
            now = time.perf_counter()
            weight, self._last = now - self._last, now
            stack = []
            depth = 0
            while frame is not None and depth < 400:
                stack.append(_key(frame))
                frame = frame.f_back
                depth += 1
            if not stack:
                return
            self.samples += 1
            self.leaves[stack[0]] += weight
            for k in set(stack):
                self.inclusive[k] += weight
            self.areas[self._area(stack)] += weight
        finally:
            if gc_was_on:
                gc.enable()
            self._busy = False

    @staticmethod
    def _area(stack: list[str]) -> str:
        for label, rx in OVERRIDES:
            if any(rx.search(k) for k in stack):
                return label
        for k in stack:
            for label, rx in AREAS:
                if rx.search(k):
                    return label
        return "other (stdlib, C calls from unknown code)"

    def result(self, top: int = 15) -> dict:
        short = _short
        n = sum(self.areas.values()) or 1e-9
        return {
            "wall": self.wall,
            "cpu_self": self.cpu_self,
            "cpu_children": self.cpu_children,
            "samples": self.samples,
            "interval": self.interval,
            "areas": [(a, c / n) for a, c in self.areas.most_common()],
            "leaves": [(short(k), c / n) for k, c in self.leaves.most_common(top)],
            "inclusive": {short(k): c / n for k, c in self.inclusive.items() if c / n >= 0.01},
        }

    def dump(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.result()), encoding="utf-8")


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[2] != "-m":
        print("usage: python bench/sampler.py OUT.json -m MODULE [ARGS...]", file=sys.stderr)
        return 2
    out, module = argv[1], argv[3]
    sys.argv = [module, *argv[4:]]
    sampler = Sampler().start()
    code = 0
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sampler.stop().dump(out)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv))

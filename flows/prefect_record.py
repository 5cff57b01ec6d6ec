"""A run recorded as a Prefect flow run of ``import_sheet`` through Prefect's REST API, without importing Prefect.

``booking-import run``/``rerun`` with a Prefect server configured (and no ``--prefect``) import exactly as
without one (flows.engine.run.run_import, one stream) and record the run here: importing Prefect's client
and driving its engine costs about 2 s a run (issue 16), these few requests (aiohttp, loaded by the run
anyway) tens of milliseconds. The records are the ones Prefect's engine makes for an ad-hoc flow run:

- the flow ``import_sheet`` (``POST /flows/``: get-or-create by name);
- a flow run named as the flow names it (flows.run_report.run_name), with the parameters the flow gets
  (the caller passes the ledger through ``parameter_url``: never a password), created Pending, then
  proposed Running through ``POST /flow_runs/{id}/set_state``;
- its log lines (``POST /logs/``, logger ``prefect.flow_runs``), kept in memory and sent in one batch at
  the end, never during the send phase;
- the summary markdown artifact (``POST /artifacts/``), as the flow makes it;
- the final state: Completed, or Failed with the problems as its message (automations fire as for the
  flow); Crashed when a signal stops the run, with the message Prefect's engine writes for that signal
  (``--prefect`` records the same, the engine sees the cancelled run as a crash).

What the orchestration answers is honoured as Prefect's client does (prefect/utilities/engine
``propose_state``): ACCEPT, WAIT (ask again after ``delay_seconds``), REJECT (the server keeps or sets
another state: said on screen) and ABORT (refused: said on screen). A run cancelled from the UI while
it books is not stopped: this process is no Prefect worker and stopping mid-send would leave rows
``unknown`` (Ctrl-C stops it cleanly); Prefect's engine does not stop an ad-hoc run either. Its final
state is then proposed as usual and the server's answer said on screen.

Before the first booking the server must answer (``GET /health``, then the flow and its run are created):
otherwise :class:`~flows.errors.ConfigError` (exit 2, nothing sent). Once sending began, the server
going away never stops the bookings: one warning on stderr, and the run's final state is not recorded.

Assumption, pinned by tests/test_prefect_record.py against the installed server: this speaks Prefect
3.x's REST API (3.8.8 here), sending the API version header its client sends (``X-PREFECT-API-VERSION``,
prefect/client/constants.py) and its credentials: ``PREFECT_API_AUTH_STRING`` as ``Basic``, else
``PREFECT_API_KEY`` as ``Bearer`` (prefect/client/orchestration/__init__.py). Neither is ever printed.
"""
from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import logging
import signal
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from .engine.plan import Plan
from .engine.run import ImportRun
from .errors import ConfigError, ImporterError
from .prefect_env import configured_setting
from .run_report import counts_line, failed_message, final_problems, read_line, run_name, summary_artifact

__all__ = ["API_VERSION", "FLOW_NAME", "FlowRunRecord", "PrefectServer", "crash_message", "ui_url_for"]

#: the X-PREFECT-API-VERSION header Prefect 3.8's client sends (prefect/client/constants.py SERVER_API_VERSION)
API_VERSION = "0.8.4"
FLOW_NAME = "import_sheet"
#: the flow's version as Prefect's engine computes it: the md5 of the file that defines the flow
FLOW_FILE = Path(__file__).with_name("import_sheet.py")
#: per request; before sending a slow answer is a refusal, after it a warning
TIMEOUT_SECONDS = 10.0
#: how long WAIT answers may hold a state back in total, then it is given up as refused
MAX_WAIT_SECONDS = 30.0
_CLOUD_API = "https://api.prefect.cloud/api"
_CLOUD_UI = "https://app.prefect.cloud"


def ui_url_for(api_url: str) -> str:
    """The UI's address for an API address, as Prefect derives PREFECT_UI_URL when it is unset
    (prefect/settings/models/_defaults.py ``default_ui_url``)."""
    ui = api_url.rstrip("/")
    if ui.startswith(_CLOUD_API):
        ui = ui.replace(_CLOUD_API, _CLOUD_UI)
    if ui.endswith("/api"):
        ui = ui[:-4]
    return ui.replace("/api/", "/").replace("/accounts/", "/account/").replace("/workspaces/", "/workspace/")


@dataclass(frozen=True)
class PrefectServer:
    """Where and how to reach the configured Prefect API; ``headers`` hold the credentials (never printed)."""

    api_url: str
    ui_url: str
    headers: Mapping[str, str] = field(repr=False)

    @classmethod
    def configured(cls, environ: Mapping[str, str] | None = None, folder: Path | None = None) -> PrefectServer | None:
        """The server PREFECT_API_URL names (environment, prefect.toml, pyproject, Prefect profile), or None."""
        api = configured_setting("PREFECT_API_URL", environ, folder)
        if not api:
            return None
        headers = {"X-PREFECT-API-VERSION": API_VERSION}
        auth_string = configured_setting("PREFECT_API_AUTH_STRING", environ, folder)
        key = configured_setting("PREFECT_API_KEY", environ, folder)
        if auth_string:  # Prefect's client: the auth string wins over the key
            headers["Authorization"] = "Basic " + base64.b64encode(auth_string.encode("utf-8")).decode("ascii")
        elif key:
            headers["Authorization"] = f"Bearer {key}"
        ui = configured_setting("PREFECT_UI_URL", environ, folder) or ui_url_for(api)
        return cls(api_url=api.rstrip("/"), ui_url=ui.rstrip("/"), headers=headers)


def crash_message(signum: int | None) -> str:
    """The Crashed state's message Prefect's engine writes for a run stopped by this signal (prefect/states.py
    ``exception_to_crashed_state``)."""
    if signum == signal.SIGTERM:
        return "Execution was aborted by a termination signal."
    return "Execution was aborted by an interrupt signal."


class _Unanswered(Exception):
    """The server did not answer, or answered with an error status: ``str()`` says which, without credentials."""


def _state(kind: str, message: str | None = None) -> dict[str, Any]:
    """A StateCreate body (prefect/client/schemas/actions.py): type and the name the UI shows."""
    return {"type": kind, "name": kind.title(), "message": message, "state_details": {}}


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def _flow_version() -> str | None:
    try:
        return hashlib.md5(FLOW_FILE.read_bytes(), usedforsecurity=False).hexdigest()
    except OSError:
        return None


class FlowRunRecord:
    """One run's records on a Prefect server, in an ``async with`` block (one aiohttp session).

    :meth:`check` and :meth:`begin` come before anything is sent and raise ConfigError; :meth:`log` only keeps
    a line; :meth:`finish`, :meth:`failed` and :meth:`crashed` send the lines, the artifact and the final
    state, and never raise: a server gone by then is one warning (``warn``, stderr by default)."""

    def __init__(self, server: PrefectServer, *, warn: Callable[[str], None] | None = None,
                 timeout: float = TIMEOUT_SECONDS) -> None:
        self.server = server
        self.flow_run_id: str | None = None
        self.ui_url: str | None = None
        self.started = False  # the run is Running on the server (begin succeeded)
        self.lost = False  # the server stopped answering after sending began: nothing more is sent to it
        self.recorded: str | None = None  # the final state type the server holds, once recorded
        self._warn = warn or (lambda text: print(text, file=sys.stderr, flush=True))
        self._timeout = timeout
        self._logs: list[dict[str, Any]] = []
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> FlowRunRecord:
        self._session = aiohttp.ClientSession(headers=dict(self.server.headers),
                                              timeout=aiohttp.ClientTimeout(total=self._timeout))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- requests -----------------------------------------------------------------------------------------

    async def _call(self, method: str, path: str, body: object = None) -> Any:
        assert self._session is not None, "use FlowRunRecord in `async with`"
        url = f"{self.server.api_url}{path}"
        try:
            async with self._session.request(method, url, json=body) as response:
                if response.status >= 400:
                    detail = (await response.text())[:200].strip()
                    raise _Unanswered(f"{method} {path} answered {response.status} {response.reason}: {detail}")
                return await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            what = type(exc).__name__ if not str(exc) else f"{type(exc).__name__}: {exc}"
            raise _Unanswered(f"{method} {path}: {what}") from exc

    def _refusal(self, problem: str) -> ConfigError:
        return ConfigError(
            f"the Prefect server at {self.server.api_url} (PREFECT_API_URL) did not answer ({problem}); nothing was "
            f"sent: start it (`prefect server start`), fix PREFECT_API_URL (or PREFECT_API_KEY/"
            f"PREFECT_API_AUTH_STRING), unset it to run without Prefect, or use --prefect for a temporary server")

    async def check(self) -> None:
        """The server answers ``/health``: else ConfigError (exit 2), before anything is sent."""
        try:
            healthy = await self._call("GET", "/health")
        except _Unanswered as exc:
            raise self._refusal(str(exc)) from None
        if healthy is not True:
            raise self._refusal(f"/health answered {str(healthy)[:80]!r}")

    async def begin(self, parameters: Mapping[str, object], plan: Plan) -> str:
        """Create the flow and its run (Pending, then Running), keep the first log line; the run's UI address.
        ConfigError when the server refuses (nothing was sent)."""
        name = run_name(parameters)
        try:
            flow = await self._call("POST", "/flows/", {"name": FLOW_NAME, "tags": []})
            created = await self._call("POST", "/flow_runs/", {
                "flow_id": flow["id"], "flow_version": _flow_version(), "name": name,
                "parameters": dict(parameters), "context": {}, "tags": [],
                "empirical_policy": {"retries": 0, "retry_delay": 0}, "state": _state("PENDING")})
            self.flow_run_id = str(created["id"])
            answer = await self._propose(_state("RUNNING"))
        except _Unanswered as exc:
            raise self._refusal(str(exc)) from None
        if answer["status"] != "ACCEPT" or answer["state"]["type"] != "RUNNING":
            reason = (answer.get("details") or {}).get("reason") or answer["state"]["type"]
            raise ConfigError(f"Prefect did not let the flow run start ({answer['status']}: {reason}); nothing was "
                              f"sent: see the run in the Prefect UI, or unset PREFECT_API_URL to run without Prefect")
        self.ui_url = f"{self.server.ui_url}/runs/flow-run/{self.flow_run_id}"
        self.started = True
        self.log(logging.INFO, f"Beginning flow run {name!r} for flow {FLOW_NAME!r}")
        self.log(logging.INFO, read_line(plan, str(parameters.get("sheet") or plan.sheet.path)))
        return self.ui_url

    async def _propose(self, state: dict[str, Any], force: bool = False) -> dict[str, Any]:
        """``set_state`` as Prefect's client proposes it: WAIT is asked again after its delay (up to
        :data:`MAX_WAIT_SECONDS` in all); the OrchestrationResult (status, state, details)."""
        waited = 0.0
        while True:
            answer: dict[str, Any] = await self._call("POST", f"/flow_runs/{self.flow_run_id}/set_state",
                                                      {"state": state, "force": force})
            if answer.get("status") != "WAIT":
                return answer
            delay = float((answer.get("details") or {}).get("delay_seconds") or 0.5)
            if waited + delay > MAX_WAIT_SECONDS:
                return {**answer, "status": "ABORT",
                        "details": {"reason": f"still told to wait after {waited:g} s"}}
            await asyncio.sleep(delay)
            waited += delay

    # --- during and after the run ------------------------------------------------------------------------

    def log(self, level: int, message: str) -> None:
        """Keep a line for the run's Logs tab (sent with the final state, in one request)."""
        self._logs.append({"name": "prefect.flow_runs", "level": level, "message": message, "timestamp": _now(),
                           "flow_run_id": self.flow_run_id, "task_run_id": None})

    def on_run(self, run: ImportRun) -> None:
        """run_import's ``on_run``: the sending line (one stream: no chunks, no task runs)."""
        valid = sum(1 for r in run.plan.rows if r.is_valid)
        self.log(logging.INFO, f"sending {valid} rows to {run.base_url} in one stream, {run.concurrency} "
                               f"request(s) at once")

    async def finish(self, run: ImportRun, results: Path | str, sheet: str, rerun: bool) -> None:
        """The run ended (the workbook is written): its last lines, its artifact, Completed or Failed."""
        problems = final_problems(run)
        if problems and problems[0].startswith(("credentials refused", "stopped")):
            self.log(logging.ERROR, f"the run stopped sending: {problems[0]}")
        self.log(logging.INFO, counts_line(run, results))
        artifact = summary_artifact(run, sheet, rerun)
        body = {"key": artifact.key, "type": "markdown", "description": artifact.description,
                "data": artifact.markdown, "flow_run_id": self.flow_run_id, "task_run_id": None}
        state = _state("FAILED", failed_message(sheet, problems, results)) if problems else _state("COMPLETED")
        await self._end(state, artifact=body)

    async def failed(self, exc: Exception) -> None:
        """The import raised: a refusal at login or lookups (an ImporterError: nothing was sent), or a bug. Failed,
        as Prefect's engine records a flow that raised. Nothing when Prefect itself refused the run in
        :meth:`begin` (it holds the state it chose)."""
        if not self.started:
            return
        if isinstance(exc, ImporterError):
            self.log(logging.ERROR, f"nothing was sent: {exc}")
        else:
            self.log(logging.ERROR, f"Encountered exception during execution: {exc!r}")
        await self._end(_state("FAILED", f"Flow run encountered an exception: {type(exc).__name__}: {exc}"))

    async def crashed(self, message: str) -> None:
        """A signal stopped the run (the workbook holds what was done): Crashed, forced, as Prefect's engine does."""
        if self.flow_run_id is None:
            return
        self.log(logging.ERROR, f"Crash detected! {message}")
        await self._end(_state("CRASHED", message), force=True)

    async def _end(self, state: dict[str, Any], force: bool = False, artifact: dict[str, Any] | None = None) -> None:
        """Send the kept lines (and the artifact, at the same time), then the final state; say on screen when
        Prefect did not take it."""
        shown = f"{state['name']}({state['message']!r})" if state["message"] else f"{state['name']}()"  # State.__str__
        self.log(logging.INFO if state["type"] == "COMPLETED" else logging.ERROR, f"Finished in state {shown}")
        logs, self._logs = self._logs, []
        sending = [self._send("POST", "/logs/", logs)]
        if artifact is not None:
            sending.append(self._send("POST", "/artifacts/", artifact))
        await asyncio.gather(*sending)
        if self.lost:
            return
        try:
            answer = await self._propose(state, force=force)
        except _Unanswered as exc:
            self._lose(str(exc))
            return
        held = answer.get("state") or {}
        self.recorded = held.get("type")
        if answer.get("status") != "ACCEPT":
            reason = (answer.get("details") or {}).get("reason") or "no reason given"
            self._warn(f"warning: Prefect did not record this flow run as {state['type']} ({answer.get('status')}: "
                       f"{reason}); it holds it as {held.get('type', 'unknown')}: {self.ui_url}")

    async def _send(self, method: str, path: str, body: object) -> None:
        if self.lost or self.flow_run_id is None:
            return
        try:
            await self._call(method, path, body)
        except _Unanswered as exc:
            self._lose(str(exc))

    def _lose(self, problem: str) -> None:
        if not self.lost:
            self.lost = True
            self._warn(f"warning: the Prefect server at {self.server.api_url} stopped answering ({problem}): the "
                       f"bookings went on and the results workbook is written, but this flow run's final state is "
                       f"not recorded in Prefect (it stays Running there): {self.ui_url}")

"""The Prefect flow ``import_inbox`` and ``booking-import serve``: nightly inbox imports.

The work is in flows/inbox/ (plain functions). The flow imports each claimed file as an
``import_sheet`` subflow (so every file has its own run, chunk tasks and summary artifact in the
UI), leaves a table artifact of the files with their counts and results paths, calls the
``notify`` hook, and only then raises when something needs a person (a row failed or unknown, a
file without a mapping or that could not be imported), so Prefect's notifications fire.

Schedules need a real Prefect server: the temporary one a `run` starts cannot fire them.
:func:`serve_inbox` checks ``PREFECT_API_URL`` answers before serving the deployment.
"""
from __future__ import annotations

import asyncio
import os
import tempfile
import zoneinfo
from pathlib import Path
from typing import Any

from .prefect_env import apply_defaults

apply_defaults()

from prefect import flow, get_run_logger
from prefect.artifacts import acreate_table_artifact
from prefect.client.orchestration import get_client
from prefect.runtime import flow_run
from prefect.settings import PREFECT_API_URL
from prefect.states import Failed

from .errors import InboxRunFailed, RowsNeedAttention, UsageError
from .import_sheet import import_sheet
from .inbox import ImportJob, InboxConfig, check_apprise_url, is_apprise_url, run_inbox
from .ledger.database import default_ledger_url, is_postgres_url, parameter_url
from .ledger.ledger import open_ledger

__all__ = ["ARTIFACT_KEY", "DEFAULT_CRON", "DEFAULT_NAME", "check_prefect_server", "import_inbox", "serve_inbox"]

ARTIFACT_KEY = "inbox-import"
DEFAULT_CRON = "0 2 * * *"
DEFAULT_NAME = "nightly-inbox"
#: where serve puts a --notify target given directly, for its flow runs (never in deployment parameters)
NOTIFY_VARIABLE = "BOOKING_IMPORTER_NOTIFY"
START_SERVER = ("start one with `prefect server start` (SQLite by default), then "
                "`prefect config set PREFECT_API_URL=http://127.0.0.1:4200/api`, and run serve again")


async def _import_with_subflow(job: ImportJob) -> dict[str, Any]:
    named = import_sheet.with_options(flow_run_name=f"{Path(job.mapping).stem}: {job.name}"[:100])
    try:
        return await named(sheet=str(job.sheet), mapping=str(job.mapping), out=str(job.out),
                           ledger=parameter_url(job.ledger_url), concurrency=job.concurrency, rate=job.rate,
                           resend_unknown=job.resend_unknown)
    except RowsNeedAttention as exc:  # the file's own run ended Failed (rows failed or unknown): reported below
        return exc.result


def _inbox_run_name() -> str:
    return f"inbox: {Path(str((flow_run.parameters or {}).get('inbox') or '?')).name}"[:100]


@flow(name="import_inbox", persist_result=False, log_prints=False, flow_run_name=_inbox_run_name)
async def import_inbox(
    inbox: str,
    mappings: str = "mappings",
    archive: str | None = None,
    ledger: str | None = None,
    notify: str | None = None,
    settle_seconds: float = 2.0,
    lease_seconds: float = 120.0,
    concurrency: int | None = None,
    rate: float | None = None,
) -> dict:
    """Import every new sheet in ``inbox`` once, archive it with its results, report, notify."""
    logger = get_run_logger()
    config = InboxConfig(inbox=Path(inbox), mappings=Path(mappings), archive=Path(archive) if archive else None,
                         ledger_url=ledger, settle_seconds=settle_seconds, lease_seconds=lease_seconds,
                         concurrency=concurrency, rate=rate)
    owner = f"flow-run-{flow_run.id}" if flow_run.id else None
    report = await run_inbox(config, _import_with_subflow, notify=notify, owner=owner)
    await acreate_table_artifact(key=ARTIFACT_KEY, table=report.table() or [{"file": "(no new files)"}],
                                 description=report.markdown())
    for f in report.files:
        logger.info("%s: %s %s", f.file, f.state, f.message)
    if not report.ok:  # Failed so Prefect's automations fire; a state, not a raise: an expected outcome, no traceback
        message = "the inbox run needs attention: " + "; ".join(report.problems())
        logger.error("%s", message)
        return Failed(message=message, data=InboxRunFailed(message))
    return report.to_dict()


# --- serve --------------------------------------------------------------------------------------------


def check_prefect_server(timeout: float = 5.0) -> str:
    """The API URL of a Prefect server that answers; UsageError (exit 2) saying how to start one otherwise."""
    url = PREFECT_API_URL.value()
    if not url:
        raise UsageError("PREFECT_API_URL is not set: schedules need a running Prefect server (the temporary one "
                         "`run` starts cannot fire them); " + START_SERVER)

    async def health() -> Exception | None:
        async with get_client() as client:
            return await asyncio.wait_for(client.api_healthcheck(), timeout)

    try:
        problem = asyncio.run(health())
    except Exception as exc:  # timeouts and anything the client raises before asking
        problem = exc
    if problem is not None:
        reason = " ".join(str(problem).split())[:160] or type(problem).__name__
        raise UsageError(f"no Prefect server answers at PREFECT_API_URL={url} ({reason}); " + START_SERVER)
    return url


def _check_folder_writable(folder: Path, option: str) -> None:
    """UsageError (exit 2) unless ``folder`` exists and takes a new file, or can be created where a file can."""
    probe_in = folder
    while not probe_in.exists() and probe_in != probe_in.parent:
        probe_in = probe_in.parent
    if not probe_in.is_dir():
        raise UsageError(f"{option} {folder} cannot be created: {probe_in} is a file, not a folder; choose another")
    try:
        fd, name = tempfile.mkstemp(prefix=".booking-import-check-", dir=probe_in)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        raise UsageError(f"{option} {folder} cannot be written: no file can be created in {probe_in} "
                         f"({exc.strerror or exc}); choose another folder") from None


def serve_inbox(*, inbox: Path, cron: str = DEFAULT_CRON, timezone: str | None = None, name: str = DEFAULT_NAME,
                mappings: Path = Path("mappings"), archive: Path | None = None, ledger: str | None = None,
                notify: str | None = None, settle_seconds: float = 2.0, lease_seconds: float = 120.0,
                limit: int | None = None) -> int:
    """Serve the ``import_inbox`` deployment until Ctrl-C (a long-running worker process)."""
    # imported here for start-up speed: each nightly flow run imports this module, and only serve deploys
    from prefect.deployments.runner import EntrypointType
    from prefect.schedules import Cron

    config = InboxConfig(inbox=inbox, mappings=mappings, archive=archive, ledger_url=ledger)
    config.check()
    _check_folder_writable(config.archive, "--archive")  # else the first import, at 02:00, would find out
    if timezone:
        try:
            zoneinfo.ZoneInfo(timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise UsageError(f"--timezone {timezone!r} is not an IANA time zone such as Europe/London") from None
    try:
        schedule = Cron(cron, timezone=timezone)
    except ValueError as exc:
        raise UsageError(f"--cron {cron!r}: {exc}; e.g. \"0 2 * * *\" is 02:00 every night") from None
    raw = ledger or default_ledger_url()
    if not is_postgres_url(raw):  # the flow runs in a subprocess: file paths must not depend on its folder
        ledger = str(Path(raw.removeprefix("sqlite:///")).resolve())
    else:  # the deployment's parameters are stored by the Prefect server: the password must not be among them.
        ledger = parameter_url(raw)  # flow runs (subprocesses of this one) get it back from BOOKING_IMPORTER_LEDGER
        if ledger != raw:
            os.environ["BOOKING_IMPORTER_LEDGER"] = raw
    if notify and not notify.startswith("env:"):
        problem = check_apprise_url(notify) if is_apprise_url(notify) else None
        if problem:
            raise UsageError(f"--notify: {problem}")
    if notify and not notify.startswith("env:"):
        # a webhook URL usually holds its token: the deployment's parameters (stored by the Prefect server, shown
        # in its UI) name a variable instead, which this worker's flow runs (its subprocesses) inherit
        os.environ[NOTIFY_VARIABLE] = notify
        notify = f"env:{NOTIFY_VARIABLE}"
    open_ledger(ledger).close()  # a ledger that cannot be opened is refused now (exit 2), not at the first run
    url = check_prefect_server()
    print(f"serving import_inbox/{name} from {url}: {config.inbox} every {cron!r}"
          f"{f' ({timezone})' if timezone else ''}; archive {config.archive}; ledger {ledger}", flush=True)
    import_inbox.serve(
        name=name,
        schedule=schedule,
        parameters={"inbox": str(config.inbox), "mappings": str(config.mappings), "archive": str(config.archive),
                    "ledger": ledger, "notify": notify, "settle_seconds": settle_seconds,
                    "lease_seconds": lease_seconds},
        description=f"Import every new sheet in {config.inbox}, archive it with its results workbook.",
        tags=["booking-importer", "inbox"],
        pause_on_shutdown=False,  # several workers may serve it: one stopping must not pause the others' schedule
        limit=limit,
        entrypoint_type=EntrypointType.MODULE_PATH,
        print_starting_message=True,
    )
    return 0

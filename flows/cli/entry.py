"""``booking-import``'s entry point, and the commands that run an import (``run``, ``rerun``).

Exit codes: 0 every row created, accepted or skipped; 1 the run finished but some rows were
not (the results workbook says which); 2 usage, config or input error (nothing was sent);
130 interrupted by SIGINT (Ctrl-C), 143 stopped by SIGTERM (the results workbook holds what was done).
"""
from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import dataclasses
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from ..errors import ImporterError
from ..prefect_env import configured_api_url, contain_ephemeral_server, ephemeral_server, quiet_prefect
from .commands import (
    cmd_callbacks,
    cmd_demo,
    cmd_render,
    cmd_sandbox,
    cmd_schema,
    cmd_serve,
    cmd_status,
    cmd_template,
    cmd_transforms,
    cmd_validate,
    cmd_web,
)
from .parser import EXIT_INPUT, EXIT_INTERRUPTED, EXIT_OK, EXIT_ROWS, build_parser
from .signals import GracefulStop

__all__ = ["main"]

#: commands that run a flow: SIGINT and SIGTERM stop them cleanly (flows.cli.signals.GracefulStop)
_FLOW_COMMANDS = ("run", "rerun")
_stop: Any = None  # the GracefulStop of the command running in this process, if any


def _load_dotenv() -> None:
    env = Path(".env")
    if env.is_file():
        from dotenv import load_dotenv  # for start-up speed: only when there is a .env file

        load_dotenv(env, override=False)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return EXIT_INPUT
    _load_dotenv()
    global _stop, _staged
    stopping = contextlib.nullcontext()
    if args.command in _FLOW_COMMANDS:
        stopping = _stop = GracefulStop()
    try:
        with stopping:
            code = _COMMANDS[args.command](args)
    except ImporterError as exc:
        _unstage()
        print(f"error: {exc}", file=sys.stderr)
        code = exc.exit_code
    except KeyboardInterrupt:
        print("\ninterrupted: nothing was sent" if args.command in _FLOW_COMMANDS else "\ninterrupted", file=sys.stderr)
        code = _interrupted_code()
    finally:
        signalled = _stop.signum if _stop is not None else None
        _stop = None
        _staged = 0
    if signalled:  # stopped by a signal, whatever the command got to: 128 + the signal, every time
        code = _interrupted_code_of(signalled)
    if _is_the_command() and args.command in _FLOW_COMMANDS:
        _exit_now(code)  # the workbook and ledger are closed: end without the interpreter's walk of the heap
    return code


def _is_the_command() -> bool:
    """Whether this process is ``booking-import``/``python -m flows`` (not a test or a library calling main)."""
    main_module = sys.modules.get("__main__")
    spec = getattr(main_module, "__spec__", None)
    return (spec is not None and spec.name in ("flows", "flows.__main__")) or Path(sys.argv[0]).name == "booking-import"


def _exit_now(code: int) -> None:
    """End ``run`` or ``rerun`` with ``code``, the workbook written and the ledger closed: output is flushed and
    exit handlers run (Prefect stops its temporary server, logging flushes), then the process ends without the
    interpreter's finalisation. That finalisation walked the whole heap: 1.2 s after a 60,000-row run, 12 s
    after a million rows (issue 16), all of it after the results were on disk. And nothing there (a library's
    thread, a late signal) can turn the exit code into something else: before this, about one early Ctrl-C in
    ten ended as a death by SIGINT (-2) instead of 130."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    atexit._run_exitfuncs()
    os._exit(code)


def _interrupted_code() -> int:
    return _stop.exit_code if _stop is not None and _stop.signum else EXIT_INTERRUPTED


def _interrupted_code_of(signum: int) -> int:
    return 128 + signum


def _checkpoint() -> None:
    """Between the steps of run/rerun: a signal that came meanwhile stops the command here (nothing sent yet)."""
    if _stop is not None:
        _stop.checkpoint()


# --- commands ---------------------------------------------------------------------------------------


_staged = 0  # stage lines shown on this terminal, erased again if the command ends in a one-line error


def _stage(args: argparse.Namespace, text: str) -> None:
    """Say what the command is doing while nothing else shows (loading, reading the sheet, starting Prefect,
    connecting): a line on stderr when it is a terminal (a pipe or a log gets the progress lines and the
    summary only); none with --quiet."""
    global _staged
    if not getattr(args, "quiet", False) and sys.stderr.isatty():
        print(f"\x1b[2m{text}...\x1b[0m", file=sys.stderr, flush=True)
        _staged += 1


def _unstage() -> None:
    """Erase the stage lines (a refused input is one line on the terminal, as on a pipe)."""
    global _staged
    if _staged and sys.stderr.isatty():
        print(f"\x1b[{_staged}F\x1b[0J", end="", file=sys.stderr, flush=True)
    _staged = 0


#: said on screen when a run is not a Prefect flow run
NOT_RECORDED = ("Not recorded in Prefect: no server configured (PREFECT_API_URL). Runs appear in the Prefect UI "
                "when one is, or with --prefect: see the README, \"A run and Prefect\"")


def cmd_run(args: argparse.Namespace) -> int:
    _stage(args, "loading")
    # imported here for start-up speed: `--help` and a refused argument must not load pandas, httpx and the engine
    from ..engine.plan import prepare
    from ..engine.summary import default_results_path
    from ..engine.validate import require_rows
    from ..http.auth import build_auth
    from ..http.callbacks import check_callback_address
    from ..terminal import Progress, print_summary
    from ..workbooks.results import check_writable

    _checkpoint()
    _stage(args, f"reading {args.sheet.name} and checking every row against {args.mapping.name}")
    plan = prepare(args.sheet, args.mapping, sheet_name=args.sheet_name)  # config/input errors exit 2 before sending
    _checkpoint()
    require_rows(plan)
    out = args.out or default_results_path(plan.sheet.path)
    check_writable(out, source=plan.sheet.path)  # not after 55 rows are booked
    build_auth(plan.mapping.connection.auth, plan.mapping.provider)  # so does a missing secret
    # and a callback address the provider can never call
    check_callback_address(plan.mapping, os.environ, in_process="http://127.0.0.1" if args.wait_callbacks else None)
    progress = Progress(enabled=not args.quiet)
    how = {"wait_callbacks": args.wait_callbacks, "callback_port": args.callback_port}
    if args.prefect:
        run = _run_flow(args, progress, _run_parameters(args), plan=plan)
    elif (server := _configured_server()) is not None:
        run = _run_recorded(args, progress, plan, _options(args, ledger_url=args.ledger, out=out),
                            _run_parameters(args), server, **how)
    else:
        run = _run_direct(args, progress, plan, _options(args, ledger_url=args.ledger, out=out), **how)
    if run is None:  # stopped by a signal before the run began (nothing sent)
        return _interrupted_code()
    print_summary(run, sys.stdout)
    if run.interrupted:
        return _interrupted_code()
    return EXIT_OK if all(o is not None and o.ok for o in run.outcomes) else EXIT_ROWS


def _configured_server() -> Any:
    """The Prefect server this run is recorded on (flows.prefect_record.PrefectServer), or None when none is
    configured: decided without importing Prefect (flows.prefect_env)."""
    if not configured_api_url():
        return None
    from ..prefect_record import PrefectServer  # for start-up speed, as in cmd_run (aiohttp: loaded by then)

    return PrefectServer.configured()


def _run_parameters(args: argparse.Namespace) -> dict[str, Any]:
    """The flow ``import_sheet``'s parameters for ``run``, as Prefect stores them (recorded or through the engine)."""
    from ..ledger.database import parameter_url  # for start-up speed, as in cmd_run (loaded by then)
    from ..run_report import flow_parameters

    return flow_parameters(sheet=str(args.sheet), mapping=str(args.mapping), out=str(args.out) if args.out else None,
                concurrency=args.concurrency, rate=args.rate, sheet_name=args.sheet_name,
                ledger=parameter_url(args.ledger),  # flow parameters are stored by Prefect: never a password in them
                chunk_size=args.chunk_size, resend_unknown=args.resend_unknown,
                wait_callbacks=args.wait_callbacks, callback_port=args.callback_port)


def _options(args: argparse.Namespace, **given: Any) -> Any:
    """The run's options from the command line, as the flow ``import_sheet`` sets them from its parameters."""
    from ..engine.run import UNSET, RunOptions  # for start-up speed, as in cmd_run (loaded by then)

    rate = UNSET if args.rate is None else (args.rate or None)  # --rate 0: no rate, adapt to 429s
    return RunOptions(concurrency=args.concurrency, rate=rate, resend_unknown=args.resend_unknown, **given)


def _run_direct(args: argparse.Namespace, progress: Any, plan: Any, options: Any, **how: Any) -> Any:
    """The run without Prefect: flows.engine.run.run_import, the call the flow ``import_sheet`` wraps, here
    sending as one stream (no chunks: they exist to be Prefect tasks). Returns the run, None if it never began."""
    from ..engine.run import run_import  # for start-up speed, as in cmd_run (loaded by then)

    holder: dict[str, Any] = {}
    options = dataclasses.replace(options, progress=progress.update)
    _checkpoint()
    print(NOT_RECORDED, file=sys.stderr, flush=True)
    _drive(args, lambda: run_import(plan, options, on_run=_on_run(args, holder), **how), holder, progress)
    return holder.get("run")


def _run_recorded(args: argparse.Namespace, progress: Any, plan: Any, options: Any, parameters: dict[str, Any],
                  server: Any, **how: Any) -> Any:
    """The run without Prefect's engine, recorded on the configured server as a flow run of ``import_sheet``
    through its REST API (flows/prefect_record.py): the server must answer before anything is sent (exit 2
    otherwise); once sending began, a server gone away is a warning, never a stop. Returns the run, None if it
    never began."""
    # for start-up speed, as in cmd_run (aiohttp, which the recorder uses, is the run's own HTTP client)
    from ..engine.run import run_import
    from ..prefect_record import FlowRunRecord, crash_message

    holder: dict[str, Any] = {}
    options = dataclasses.replace(options, progress=progress.update)
    tell = _on_run(args, holder)
    sheet, rerun = str(parameters["sheet"]), bool(parameters.get("rerun"))
    _checkpoint()
    _stage(args, f"connecting to the Prefect server at {server.api_url}")

    async def recorded() -> None:
        async with FlowRunRecord(server) as record:
            await record.check()  # nothing sent yet: a server that does not answer is exit 2

            def on_run(run: Any) -> None:
                tell(run)
                record.on_run(run)

            try:
                url = await record.begin(parameters, plan)
                print(f"Prefect flow run: {url}", flush=True)
                result = await run_import(plan, options, on_run=on_run, **how)
            except Exception as exc:  # a refusal at login or lookups (nothing sent), by Prefect before it began, a bug
                await record.failed(exc)
                raise
            except BaseException:  # a signal (the workbook of what was done is written): Crashed, as the engine says
                await record.crashed(crash_message(_stop.signum if _stop is not None else None))
                raise
            await record.finish(result.run, result.results, sheet, rerun)

    _drive(args, recorded, holder, progress)
    return holder.get("run")


def _on_run(args: argparse.Namespace, holder: dict[str, Any]) -> Callable[[Any], None]:
    def on_run(run: Any) -> None:
        holder.setdefault("run", run)
        _stage(args, f"{sum(1 for r in run.plan.rows if r.is_valid)} valid rows; connecting to "
                     f"{run.plan.mapping.provider} at {run.base_url}")

    return on_run


def _drive(args: argparse.Namespace, start: Callable[[], Coroutine[Any, Any, Any]], holder: dict[str, Any],
           progress: Any, quiet: contextlib.AbstractContextManager[Any] | None = None) -> None:
    """Run the import ``start()`` makes in an event loop of its own; the first SIGINT or SIGTERM cancels it, and
    the run (in ``holder`` once it began) writes the workbook of what was done."""
    stop = _stop

    async def guarded() -> None:  # returns nothing: asyncio.run formats its task's result (RunResult's repr says why)
        if stop is not None:  # a signal now cancels the run, which then writes the workbook of what was done
            stop.attach(asyncio.get_running_loop(), asyncio.current_task())
        try:
            await start()
        finally:
            if stop is not None:
                stop.detach()

    try:
        with quiet or contextlib.nullcontext(), progress:
            asyncio.run(guarded())
    except (KeyboardInterrupt, asyncio.CancelledError):
        run = holder.get("run")
        if run is None:
            raise KeyboardInterrupt from None  # before the run began: nothing was sent, no workbook
        run.interrupted = True
        how = "stopped by SIGTERM" if stop is not None and stop.signum == signal.SIGTERM else "interrupted"
        print(f"\n{how}: the results workbook holds what was done so far", file=sys.stderr)


def _run_flow(args: argparse.Namespace, progress: Any, kwargs: dict[str, Any], plan: Any = None) -> Any:
    """The run as the Prefect flow ``import_sheet`` through Prefect's engine (--prefect), on the configured server
    or a temporary one."""
    # imported here for start-up speed: only --prefect loads Prefect (about two seconds)
    from ..import_sheet import Hooks, hooks, run_import_sheet

    if ephemeral_server():  # Prefect loads its server's modules here as the flow starts; load them now
        contain_ephemeral_server()  # it ends with this process, and Ctrl-C in a terminal does not stop it

    holder: dict[str, Any] = {}

    def on_flow_run(url: str) -> None:  # a configured Prefect server: where to follow (and find) this run
        print(f"Prefect flow run: {url}", flush=True)

    token = hooks.set(Hooks(progress=progress.update, on_run=_on_run(args, holder), plan=plan, on_flow_run=on_flow_run))

    def flow() -> Coroutine[Any, Any, dict]:
        return run_import_sheet(**kwargs)

    _checkpoint()
    api = configured_api_url()
    _stage(args, f"starting the Prefect flow run (on {api})" if api else
           "starting the Prefect flow run (a temporary local Prefect server: a few seconds)")
    try:
        _drive(args, flow, holder, progress, quiet=quiet_prefect())
    finally:
        hooks.reset(token)
    return holder.get("run")


def cmd_rerun(args: argparse.Namespace) -> int:
    _stage(args, "loading")
    # imported here for start-up speed, as in cmd_run
    from ..engine.rerun import load_rerun, summary_lines
    from ..engine.validate import require_rows
    from ..http.auth import build_auth
    from ..ledger.database import parameter_url
    from ..run_report import flow_parameters
    from ..terminal import Progress, print_summary
    from ..workbooks.results import check_writable

    _checkpoint()
    _stage(args, f"reading {args.results.name} and the ledger of the run that wrote it")
    # a workbook, mapping or ledger that cannot be read: exit 2 before sending
    again = load_rerun(args.results, mapping=args.mapping, ledger_url=args.ledger, out=args.out)
    _checkpoint()
    require_rows(again.plan, f"the results workbook {args.results}")
    check_writable(again.out)
    build_auth(again.plan.mapping.connection.auth, again.plan.mapping.provider)  # so does a missing secret
    progress = Progress(enabled=not args.quiet)
    parameters = flow_parameters(
        sheet=str(args.results), mapping=str(args.mapping) if args.mapping else None, out=str(again.out),
        ledger=parameter_url(again.ledger_url),
        concurrency=args.concurrency, rate=args.rate, chunk_size=args.chunk_size,
        resend_unknown=args.resend_unknown,
        rerun=True)
    options = _options(args, ledger_url=again.ledger_url, out=again.out, settled=again.settled, describe=again.describe)
    if args.prefect:
        run = _run_flow(args, progress, parameters)
    elif (server := _configured_server()) is not None:
        run = _run_recorded(args, progress, again.plan, options, parameters, server)
    else:
        run = _run_direct(args, progress, again.plan, options)
    if run is None:  # stopped by a signal before the run began (nothing sent)
        return _interrupted_code()
    print_summary(run, sys.stdout)
    print("\n".join(summary_lines(again, run)))
    if run.interrupted:
        return _interrupted_code()
    return EXIT_OK if all(o is not None and o.ok for o in run.outcomes) else EXIT_ROWS


_COMMANDS = {
    "run": cmd_run,
    "rerun": cmd_rerun,
    "serve": cmd_serve,
    "validate": cmd_validate,
    "render": cmd_render,
    "status": cmd_status,
    "callbacks": cmd_callbacks,
    "sandbox": cmd_sandbox,
    "demo": cmd_demo,
    "web": cmd_web,
    "transforms": cmd_transforms,
    "schema": cmd_schema,
    "template": cmd_template,
}


"""``booking-import``: the command line. Thin: every command calls the library.

Exit codes: 0 every row created, accepted or skipped; 1 the run finished but some rows were
not (the results workbook says which); 2 usage, config or input error (nothing was sent);
130 interrupted by SIGINT (Ctrl-C), 143 stopped by SIGTERM (the results workbook holds what was done).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .errors import ImporterError, UsageError
from .heap import imports_paused, thaw

CHUNK_HELP = ("rows per Prefect task (default: 500, or a fifth of the rows when that is more, so a run has at most "
              "5 tasks: each task run costs the send phase some CPU)")

__all__ = ["COMMANDS", "build_parser", "main"]

EXIT_OK, EXIT_ROWS, EXIT_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
#: commands that run a flow: SIGINT and SIGTERM stop them cleanly (flows.prefect_env.GracefulStop)
_FLOW_COMMANDS = ("run", "rerun")
_stop: Any = None  # the GracefulStop of the command running in this process, if any

EPILOG = """exit codes:
  0  every row was created, accepted or skipped
  1  the run finished but some rows were not (see the results workbook)
  2  usage, mapping, input or credential problem: nothing was sent
  130 interrupted with Ctrl-C (SIGINT): the results workbook holds what was done
  143 stopped with SIGTERM (e.g. by a service manager): the results workbook holds what was done

Secrets come from the environment (or a .env file in the current folder), never from files
you commit. <PROVIDER>_BASE_URL overrides a provider's URL; <PROVIDER>_CALLBACK_URL is where a
provider that confirms later (Systems X Bridge) reaches `booking-import callbacks`.

{environment}"""

#: where `--help` reads the bundled mappings from, to list the variables each provider needs
MAPPINGS_DIR = Path(__file__).resolve().parent.parent / "mappings"


def environment_help(folder: Path | None = None) -> str:
    """The environment variables each bundled mapping reads, derived from the mapping files (so a new
    mapping, e.g. BigChange's OAuth2 client and Customer-Id header, shows up in `--help` without an edit here)."""
    from .mapping.model import load_mapping

    folder = folder or MAPPINGS_DIR
    found: dict[str, tuple[list[str], list[str], list[str]]] = {}
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        try:
            m = load_mapping(path)
        except Exception:  # a broken mapping is `run`'s to report, with its line; the help lists the others
            continue
        files, required, optional = found.setdefault(m.provider, ([], [], []))
        files.append(path.name)
        auth, prefix = m.connection.auth, m.env_prefix
        names = [getattr(auth, a) for a in ("secret", "client_id", "client_secret", "username", "password")
                 if getattr(auth, a, None)]
        names += list((getattr(auth, "headers", None) or {}).values())
        placeholder = m.connection.base_url.split("/")[2].endswith(".invalid") if "//" in m.connection.base_url else True
        (required if placeholder else optional).append(f"{prefix}_BASE_URL")
        if getattr(auth, "token_url", None):
            optional.append(f"{prefix}_TOKEN_URL")
        if "callback_url" in m.run_value_paths().values():
            optional.append(f"{prefix}_CALLBACK_URL")
        required[:0] = [n for n in names if n not in required]
    if not found:
        return ""
    lines = [f"environment variables, from the mappings in {folder}:"]
    for provider, (files, required, optional) in found.items():
        need = ", ".join(dict.fromkeys(required))
        extra = ", ".join(n for n in dict.fromkeys(optional) if n not in required)
        lines.append(f"  {provider} ({', '.join(files)}): {need or 'none'}" + (f"; optional {extra}" if extra else ""))
    return "\n".join(lines)


class _Wrapping(argparse.HelpFormatter):
    """Descriptions and epilogs wrapped to the terminal's width, paragraph by paragraph (argparse's raw
    formatter printed 600-character lines); indented lines (lists, exit codes) keep their indent."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        import textwrap

        out: list[str] = []
        for paragraph in text.split("\n\n"):
            lines = paragraph.splitlines()
            if any(line.startswith("  ") for line in lines) or (lines and lines[0].endswith(":")):
                for line in lines:  # a list: each item wrapped on its own, continuation lines indented
                    lead = line[:len(line) - len(line.lstrip())]
                    out.append(textwrap.fill(line.strip(), width, initial_indent=indent + lead,
                                             subsequent_indent=indent + lead + "    ") if line.strip() else "")
            else:
                out.append(textwrap.fill(" ".join(paragraph.split()), width, initial_indent=indent,
                                         subsequent_indent=indent))
            out.append("")
        return "\n".join(out).rstrip("\n")


def sandbox_providers_help(folder: Path | None = None) -> str:
    """The providers `sandbox` can simulate, each with the bundled mappings that use it."""
    from .mapping.model import load_mapping
    from .sandbox import SIMULATORS

    folder = folder or MAPPINGS_DIR
    uses: dict[str, list[str]] = {p: [] for p in SIMULATORS}
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        try:
            uses.setdefault(load_mapping(path).provider, []).append(path.name)
        except Exception:
            continue
    lines = ["providers:"]
    for provider, files in uses.items():
        if provider in SIMULATORS:
            lines.append(f"  {provider:<16} {'for ' + ', '.join(files) if files else '(no bundled mapping)'}")
    return "\n".join(lines)


#: placeholders in descriptions and epilogs, filled only when a help is shown (reading the mappings costs time)
_LAZY_HELP: dict[str, Callable[[], str]] = {"{environment}": lambda: environment_help(),
                                            "{providers}": lambda: sandbox_providers_help()}


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Wrapping)
        super().__init__(*args, **kwargs)

    def format_help(self) -> str:
        saved = self.description, self.epilog
        try:
            for marker, fill in _LAZY_HELP.items():
                if marker in (self.description or "") + (self.epilog or ""):
                    text = fill()
                    self.description = self.description and self.description.replace(marker, text)
                    self.epilog = self.epilog and self.epilog.replace(marker, text)
            return super().format_help()
        finally:
            self.description, self.epilog = saved

    def error(self, message: str) -> None:  # argparse's own exit code is 2 too; one line, pointing at --help
        self.exit(EXIT_INPUT, f"error: {self.prog}: {message} (see `{self.prog} --help`)\n")


def _sheet_args(p: argparse.ArgumentParser, *, out: bool = True) -> None:
    p.add_argument("sheet", type=Path, help="the CSV or Excel file (xlsx, xlsm, xlsb, xls, ods) to import")
    p.add_argument("--mapping", "-m", type=Path, required=True, help="the mapping file, e.g. mappings/jicoo.yaml")
    p.add_argument("--sheet", dest="sheet_name", help="worksheet to read (default: the mapping's source.sheet, else the first)")
    if out:
        p.add_argument("--out", "-o", type=Path, help="results workbook to write (default: out/<sheet>.results-<time>.xlsx)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="booking-import", formatter_class=_Wrapping, epilog=EPILOG,
                     description="Book every row of a CSV or Excel sheet into a provider's API, concurrently and "
                                 "safely, and write a results workbook that says row by row what happened.")
    parser.add_argument("--version", action="version", version="booking-importer 0.1.0")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("run", help="import a sheet (a Prefect flow run)", formatter_class=_Wrapping,
                       epilog=EPILOG, description="Check every row, send the valid ones concurrently, record each "
                       "row in the ledger as it goes, and write the results workbook. Rows already created by an "
                       "earlier run (same key, same ledger) are skipped, never booked twice.")
    _sheet_args(p)
    p.add_argument("--concurrency", "-c", type=_positive_int, help="requests in flight at once (default: the mapping's)")
    p.add_argument("--rate", "-r", type=_rate, help="requests per second, never exceeded; 0: none published, adapt to 429s (default: the mapping's)")
    p.add_argument("--ledger", help="ledger database: a path, sqlite:///path, or postgresql://user@host/db to share it between machines (default: $BOOKING_IMPORTER_LEDGER or ./booking-ledger.sqlite)")
    p.add_argument("--resend-unknown", action="store_true",
                   help="resend rows an earlier run left unknown when the provider offers no way to check them")
    p.add_argument("--chunk-size", type=_positive_int, help=CHUNK_HELP)
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.add_argument("--wait-callbacks", type=_seconds, default=0.0, metavar="SECONDS",
                   help="for providers that confirm later (Systems X Bridge): receive their callbacks in this process "
                        "and wait up to SECONDS after sending for accepted rows to become created (default 0: "
                        "callbacks go to `booking-import callbacks` at <PROVIDER>_CALLBACK_URL)")
    p.add_argument("--callback-port", type=_port, default=0, metavar="N",
                   help="port on 127.0.0.1 for the in-process receiver of --wait-callbacks (default 0: a free one)")

    p = sub.add_parser("validate", help="check a sheet against a mapping without sending anything",
                       description="Read the sheet, map and validate every row, and write the results workbook with "
                                   "invalid rows marked. No network, no credentials needed.")
    _sheet_args(p)

    p = sub.add_parser("render", help="print the payloads that would be sent, as JSON, secrets masked",
                       description="Print each valid row's payload as JSON lines (sensitive fields and secrets masked). "
                                   "Invalid rows are listed on stderr.")
    _sheet_args(p, out=False)
    p.add_argument("--limit", "-n", type=_positive_int, default=None, help="at most this many payloads")

    p = sub.add_parser("status", help="refresh a results workbook from the ledger (e.g. accepted rows now created)",
                       description="Read a results workbook written by `run`, look up each row in the ledger and "
                                   "write the workbook again with the rows whose state changed since, e.g. rows "
                                   "Systems X Bridge accepted and has since confirmed by callback (accepted -> "
                                   "created). Other rows, the input columns and the Summary's run details are kept; "
                                   "the Summary says when it was refreshed. Nothing is sent.",
                       epilog="exit codes: 0 every row is created, accepted or skipped; 1 some are not; 2 the "
                              "workbook, mapping or ledger cannot be read")
    p.add_argument("results", type=Path, help="a results workbook written by `booking-import run`")
    p.add_argument("--out", "-o", type=Path, help="write the refreshed workbook here (default: replace RESULTS)")
    p.add_argument("--ledger", help="ledger database (default: the one named in the workbook's Summary)")
    p.add_argument("--mapping", "-m", type=Path, help="the run's mapping file (default: the one named in the Summary)")

    p = sub.add_parser("callbacks", help="receive providers' callbacks (Systems X Bridge return_url) into the ledger",
                       description="Serve the callback receiver until Ctrl-C. A provider that confirms bookings "
                                   "later (Systems X Bridge) POSTs to the return_url each run sends: "
                                   "<PROVIDER>_CALLBACK_URL/<provider>/<unguessable token of that run>. The receiver "
                                   "checks the token against the ledger (404 and nothing stored otherwise), stores "
                                   "the callback without api_key or password, and marks its row created. Callbacks "
                                   "for runs that finished long ago count too; `booking-import status` then "
                                   "refreshes their results workbooks.",
                       epilog="Set SYSTEMSX_BRIDGE_CALLBACK_URL, for the runs, to the public https address that "
                              "forwards to this receiver (a reverse proxy or tunnel); any path prefix before "
                              "/<provider>/<token> is accepted. It listens on 127.0.0.1 unless --host says otherwise.")
    p.add_argument("--port", type=_port, default=8081, help="port to listen on (default 8081; 0 picks a free one)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; use 0.0.0.0 only behind a proxy that adds https)")
    p.add_argument("--ledger", help="ledger database the runs used (default: $BOOKING_IMPORTER_LEDGER or ./booking-ledger.sqlite)")

    p = sub.add_parser("rerun", help="run a results workbook again: fixed rows are sent, booked rows are not",
                       formatter_class=_Wrapping, epilog=EPILOG,
                       description="Read a results workbook (edited in Excel or not: values fixed in red rows, rows "
                                   "deleted, columns moved, notes columns added) and run it again with the mapping "
                                   "and ledger of the run that wrote it. Rows the ledger records as created or accepted "
                                   "are carried over, never sent; invalid, rejected, failed and skipped rows are "
                                   "checked again with their edited values and sent (a skipped row the ledger shows as "
                                   "created stays skipped); unknown rows are checked with the provider first and sent "
                                   "only when confirmed absent. A booked row whose key was edited is refused (invalid, "
                                   "with a message), and a workbook from another ledger is refused with exit 2. The new "
                                   "workbook holds every row, in order, with its latest status; its Summary says what "
                                   "changed.")
    p.add_argument("results", type=Path, help="a results workbook written by `run` or `rerun`")
    p.add_argument("--out", "-o", type=Path, help="the new workbook (default: beside RESULTS, <sheet>.rerun-<time>.xlsx)")
    p.add_argument("--mapping", "-m", type=Path, help="the mapping file, if it moved (default: the one the run used)")
    p.add_argument("--ledger", help="ledger database (default: the one named in the workbook's Summary)")
    p.add_argument("--concurrency", "-c", type=_positive_int, help="requests in flight at once (default: the mapping's)")
    p.add_argument("--rate", "-r", type=_rate, help="requests per second, never exceeded; 0: none published, adapt to 429s (default: the mapping's)")
    p.add_argument("--resend-unknown", action="store_true",
                   help="resend unknown rows the provider offers no way to check (check with the provider first)")
    p.add_argument("--chunk-size", type=_positive_int, help=CHUNK_HELP)
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")

    p = sub.add_parser("serve", help="serve the nightly inbox import (a Prefect deployment on a schedule)",
                       formatter_class=_Wrapping,
                       description="Serve the Prefect deployment import_inbox/NAME until Ctrl-C: on the cron schedule, "
                                   "or when started from the Prefect UI, it imports every new sheet in the inbox once "
                                   "(mapping from the file's folder, inbox/jicoo/... -> MAPPINGS/jicoo.yaml, or from "
                                   "inbox/routes.yaml), moves it to archive/YYYY-MM-DD/ with its results workbook, "
                                   "leaves a table artifact, and fails the flow run when rows failed or are unknown or "
                                   "a file has no mapping. Several workers may serve the same inbox: each file is "
                                   "claimed by one run, in the ledger.",
                       epilog="Schedules need a real Prefect server: start one with `prefect server start`, then "
                              "`prefect config set PREFECT_API_URL=http://127.0.0.1:4200/api`. Without one, serve "
                              "exits 2. --notify gets the run's summary: an Apprise URL (Slack, Teams, e-mail...) a readable "
                              "message, a command the JSON on its stdin, an http(s) URL the JSON by POST; env:NAME "
                              "reads any of them from the worker's environment.")
    p.add_argument("--inbox", type=Path, required=True, help="the folder sheets are dropped into")
    p.add_argument("--cron", default="0 2 * * *", help='when to run (default "0 2 * * *": 02:00 every night)')
    p.add_argument("--timezone", help="IANA time zone of the cron, e.g. Europe/London (default UTC)")
    p.add_argument("--name", default="nightly-inbox", help="deployment name (default nightly-inbox); workers serving "
                                                           "the same inbox use the same name")
    p.add_argument("--mappings", type=Path, default=Path("mappings"), help="folder of mapping files (default ./mappings)")
    p.add_argument("--archive", type=Path, help="where imported files go (default INBOX/archive)")
    p.add_argument("--ledger", help="ledger database (default: $BOOKING_IMPORTER_LEDGER or ./booking-ledger.sqlite)")
    p.add_argument("--notify", help="where each run's summary goes: an Apprise URL (slack://, msteams://, mailto://, json://...), "
                                    "an http(s) webhook URL (the summary JSON by POST) or a command (the JSON on its stdin)")
    p.add_argument("--settle-seconds", type=_seconds, default=2.0,
                   help="a file must keep its size and time this long to be imported (default 2)")
    p.add_argument("--lease-seconds", type=_seconds, default=120.0,
                   help="a claim not renewed for this long is taken over by the next run (default 120)")
    p.add_argument("--limit", type=_positive_int, help="flow runs this worker runs at once (default: no limit)")

    p = sub.add_parser("web", help="serve the web page where staff upload, fix and book a sheet",
                       description="Serve the web page (sign in, choose a mapping, upload, match columns, review and "
                                   "fix, book with live progress, results, history) until Ctrl-C. Accounts: 'name:hash' "
                                   "lines in web-users.txt or the file named by BOOKING_WEB_USERS (hash from "
                                   "--hash-password); --demo serves the bundled simulators with a demo account it prints.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=_port, default=8000, help="port to listen on (default 8000)")
    p.add_argument("--demo", action="store_true", help="serve against the bundled simulators, with a demo account")
    p.add_argument("--mappings", type=Path, default=Path("mappings"), help="folder of mapping files (default ./mappings)")
    p.add_argument("--ledger", help="ledger database (default: $BOOKING_IMPORTER_LEDGER or ./booking-ledger.sqlite)")
    p.add_argument("--users", help="accounts file (default: $BOOKING_WEB_USERS or ./web-users.txt)")
    p.add_argument("--uploads", help="private folder for uploads and results (default out/web-uploads)")
    p.add_argument("--max-mb", type=float, default=20.0, help="largest upload in MB (default 20)")
    p.add_argument("--max-rows", type=_positive_int, default=100_000, help="most rows in an upload (default 100000)")
    p.add_argument("--keep-hours", type=float, default=24.0, help="uploads and their results are deleted this long "
                                                                 "after last use (default 24)")
    p.add_argument("--secure-cookies", action="store_true", help="cookies only over https (behind an https proxy)")
    p.add_argument("--no-prefect", action="store_true", help="book straight through the engine, not as Prefect flow "
                                                             "runs (default: on PREFECT_API_URL's server, else on a "
                                                             "local one the page starts and stops)")
    p.add_argument("--hash-password", action="store_true", help="read a password on stdin, print its hash for the "
                                                                "accounts file, and exit")

    p = sub.add_parser("sandbox", help="serve a provider simulator on loopback for trying things out",
                       description="Serve a faithful provider simulator on 127.0.0.1 until Ctrl-C, with optional faults.",
                       epilog="{providers}")
    p.add_argument("provider", nargs="?", default="jicoo", help="provider id, one of those listed below (default jicoo)")
    p.add_argument("--port", type=_port, default=8080, help="port on 127.0.0.1 (default 8080; 0 picks a free one)")
    p.add_argument("--latency-ms", type=float, default=0, help="added latency per request")
    p.add_argument("--latency-jitter-ms", type=float, default=0,
                   help="each request's latency varies by up to this much either way, as on a real network")
    p.add_argument("--rate-limit", type=float, default=None, help="requests per second above which it answers 429")
    p.add_argument("--unavailable-rate", type=float, default=0, help="share of writes answered 503 (nothing stored)")
    p.add_argument("--error-after-store-rate", type=float, default=0, help="share answered 500 after storing")
    p.add_argument("--timeout-after-store-rate", type=float, default=0, help="share stored then stalled past the client's timeout")
    p.add_argument("--drop-after-store-rate", type=float, default=0, help="share stored then the connection dropped")

    p = sub.add_parser("demo", help="import the bundled sample sheets into local simulators (no credentials, no network)",
                       description="Start the provider simulators on loopback, import the sample sheets from "
                                   "sample_data/, write the results workbooks under out/demo/ and print the summaries.")
    p.add_argument("--out-dir", type=Path, default=Path("out/demo"), help="where workbooks and the demo ledger go (default out/demo)")

    sub.add_parser("transforms", help="list the transforms a mapping file can use, with examples",
                   description="List every named transform a mapping file's `transforms:` can use, with its "
                               "parameter and In/Out examples.")
    p = sub.add_parser("template", help="write an empty input workbook for a mapping, for senders to fill",
                       description="Write an empty input workbook for MAPPING: its column headers (required ones "
                                   "orange), a note per column (required, format, example), drop-down lists for "
                                   "columns with a fixed lookup, and date/time columns formatted as the mapping "
                                   "reads them, so a filled sheet passes `booking-import validate`.")
    p.add_argument("mapping", type=Path, help="the mapping file, e.g. mappings/jicoo.yaml")
    p.add_argument("--out", "-o", type=Path, help="the workbook to write (default: <mapping>.template.xlsx here); "
                                                  "an existing file is never replaced")
    sub.add_parser("schema", help="print the JSON Schema of mapping files",
                   description="Print the JSON Schema of mapping files (mappings/mapping.schema.json is generated "
                               "from it with `make schema`); point your editor's YAML support at it.")
    return parser


COMMANDS = ("run", "rerun", "serve", "validate", "render", "status", "callbacks", "sandbox", "demo", "web", "transforms", "schema",
            "template")


def _number(convert: Callable[[str], Any], what: str, least: float, bound: str) -> Callable[[str], Any]:
    """An argparse type: ``convert`` the text, refuse it when it is not ``what`` or below ``least``."""
    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if isinstance(value, float) and not math.isfinite(value):  # float() reads "inf" and "nan" too
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}: give a finite number ({bound})")
        if value < least:
            raise argparse.ArgumentTypeError(f"must be {bound}")
        return value

    return parse


_seconds = _number(float, "a number of seconds", 0, "0 or more")
_positive_int = _number(int, "a whole number", 1, "1 or more")
_rate = _number(float, "a number", 0, "0 (no limit) or more")
_port_number = _number(int, "a port number", 0, "0 (a free one) to 65535")


def _port(text: str) -> int:
    value = _port_number(text)
    if value > 65535:
        raise argparse.ArgumentTypeError("must be 0 (a free one) to 65535")
    return value


def _load_dotenv() -> None:
    env = Path(".env")
    if env.is_file():
        from dotenv import load_dotenv

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
        from .prefect_env import GracefulStop

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
        thaw()  # what run/rerun froze while loading pandas and Prefect (flows/heap.py)
    if signalled:  # stopped by a signal, whatever the command got to: 128 + the signal, every time
        code = _interrupted_code_of(signalled)
        if _is_the_command():
            _exit_now(code)
    return code


def _is_the_command() -> bool:
    """Whether this process is ``booking-import``/``python -m flows`` (not a test or a library calling main)."""
    main_module = sys.modules.get("__main__")
    spec = getattr(main_module, "__spec__", None)
    return (spec is not None and spec.name in ("flows", "flows.__main__")) or Path(sys.argv[0]).name == "booking-import"


def _exit_now(code: int) -> None:
    """End a signalled command with ``code``, the workbook written: exit handlers run (Prefect stops its
    temporary server), then the process ends without the interpreter's finalisation, so nothing there (a
    library's thread, a late signal) can turn the exit code into something else: before this, about one
    early Ctrl-C in ten ended as a death by SIGINT (-2) instead of 130."""
    import atexit

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


def cmd_run(args: argparse.Namespace) -> int:
    _stage(args, "loading")
    with imports_paused():
        from .engine.plan import prepare
        from .engine.summary import default_results_path
        from .engine.validate import require_rows
        from .http.auth import build_auth
        from .terminal import Progress, print_summary
        from .workbooks.results import check_writable

    _checkpoint()
    _stage(args, f"reading {args.sheet.name} and checking every row against {args.mapping.name}")
    plan = prepare(args.sheet, args.mapping, sheet_name=args.sheet_name)  # config/input errors exit 2 before Prefect starts
    _checkpoint()
    require_rows(plan)
    check_writable(args.out or default_results_path(plan.sheet.path), source=plan.sheet.path)  # not after 55 rows are booked
    build_auth(plan.mapping.connection.auth, plan.mapping.provider)  # so does a missing secret
    from .http.callbacks import check_callback_address  # and a callback address the provider can never call

    check_callback_address(plan.mapping, os.environ, in_process="http://127.0.0.1" if args.wait_callbacks else None)
    progress = Progress(enabled=not args.quiet)
    result, run = _run_flow(args, progress, plan=plan)
    if run is None:  # stopped by a signal before the run began (nothing sent)
        return _interrupted_code()
    print_summary(run, sys.stdout)
    if run.interrupted:
        return _interrupted_code()
    return EXIT_OK if all(o is not None and o.ok for o in run.outcomes) else EXIT_ROWS


def _run_flow(args: argparse.Namespace, progress: Any, kwargs: dict | None = None, plan: Any = None) -> tuple[dict | None, Any]:
    with imports_paused():
        from .import_sheet import Hooks, hooks, run_import_sheet
        from .ledger.database import parameter_url  # flow parameters are stored by Prefect: never a password in them
        from .prefect_env import contain_ephemeral_server, ephemeral_server
        from .prefect_quiet import quiet_prefect

        if ephemeral_server():  # Prefect loads its server's modules here as the flow starts; load them now
            contain_ephemeral_server()  # it ends with this process, and Ctrl-C in a terminal does not stop it

    holder: dict[str, Any] = {}
    def on_run(run: Any) -> None:
        holder.setdefault("run", run)
        _stage(args, f"{sum(1 for r in run.plan.rows if r.payload is not None)} valid rows; connecting to "
                     f"{run.plan.mapping.provider} at {run.base_url}")

    def on_flow_run(url: str) -> None:  # a configured Prefect server: where to follow (and find) this run
        print(f"Prefect flow run: {url}", flush=True)

    token = hooks.set(Hooks(progress=progress.update, on_run=on_run, plan=plan, on_flow_run=on_flow_run))
    result = None
    stop = _stop

    async def flow() -> dict:
        if stop is not None:  # a signal now cancels the flow, which then writes the workbook of what was done
            stop.attach(asyncio.get_running_loop(), asyncio.current_task())
        try:
            return await (run_import_sheet(**kwargs) if kwargs is not None else run_import_sheet(
                sheet=str(args.sheet), mapping=str(args.mapping), out=str(args.out) if args.out else None,
                concurrency=args.concurrency, rate=args.rate, sheet_name=args.sheet_name, ledger=parameter_url(args.ledger),
                chunk_size=args.chunk_size, resend_unknown=args.resend_unknown,
                wait_callbacks=args.wait_callbacks, callback_port=args.callback_port,
            ))
        finally:
            if stop is not None:
                stop.detach()

    _checkpoint()
    from prefect.settings import PREFECT_API_URL

    _stage(args, f"starting the Prefect flow run (on {PREFECT_API_URL.value()})" if PREFECT_API_URL.value() else
           "starting the Prefect flow run (a temporary local Prefect server: a few seconds)")
    try:
        with quiet_prefect(), progress:
            result = asyncio.run(flow())
    except (KeyboardInterrupt, asyncio.CancelledError):
        run = holder.get("run")
        if run is None:
            raise KeyboardInterrupt from None  # before the run began: nothing was sent, no workbook
        run.interrupted = True
        how = "stopped by SIGTERM" if stop is not None and stop.signum == signal.SIGTERM else "interrupted"
        print(f"\n{how}: the results workbook holds what was done so far", file=sys.stderr)
    finally:
        hooks.reset(token)
    return result, holder.get("run")


def cmd_rerun(args: argparse.Namespace) -> int:
    _stage(args, "loading")
    with imports_paused():
        from .engine.rerun import load_rerun, summary_lines
        from .engine.validate import require_rows
        from .http.auth import build_auth
        from .ledger.database import parameter_url
        from .terminal import Progress, print_summary
        from .workbooks.results import check_writable

    _checkpoint()
    _stage(args, f"reading {args.results.name} and the ledger of the run that wrote it")
    again = load_rerun(args.results, mapping=args.mapping, ledger_url=args.ledger, out=args.out)  # exit 2 before Prefect
    _checkpoint()
    require_rows(again.plan, f"the results workbook {args.results}")
    check_writable(again.out)
    build_auth(again.plan.mapping.connection.auth, again.plan.mapping.provider)  # so does a missing secret
    progress = Progress(enabled=not args.quiet)
    result, run = _run_flow(args, progress, dict(
        sheet=str(args.results), mapping=str(args.mapping) if args.mapping else None, out=str(again.out),
        ledger=parameter_url(again.ledger_url),
        concurrency=args.concurrency, rate=args.rate, chunk_size=args.chunk_size, resend_unknown=args.resend_unknown,
        rerun=True))
    if run is None:  # stopped by a signal before the run began (nothing sent)
        return _interrupted_code()
    print_summary(run, sys.stdout)
    print("\n".join(summary_lines(again, run)))
    if run.interrupted:
        return _interrupted_code()
    return EXIT_OK if all(o is not None and o.ok for o in run.outcomes) else EXIT_ROWS


def cmd_serve(args: argparse.Namespace) -> int:
    from .import_inbox import serve_inbox

    return serve_inbox(inbox=args.inbox, cron=args.cron, timezone=args.timezone, name=args.name, mappings=args.mappings,
                       archive=args.archive, ledger=args.ledger, notify=args.notify,
                       settle_seconds=args.settle_seconds, lease_seconds=args.lease_seconds, limit=args.limit)


def cmd_validate(args: argparse.Namespace) -> int:
    from .engine.validate import validate_sheet

    return validate_sheet(args.sheet, args.mapping, sheet_name=args.sheet_name, out=args.out)


def cmd_render(args: argparse.Namespace) -> int:
    from .engine.plan import prepare
    from .engine.validate import require_rows

    plan = prepare(args.sheet, args.mapping, sheet_name=args.sheet_name)
    require_rows(plan)
    shown = 0
    for row in plan.rows:
        if row.payload is None:
            print(f"row {row.line} ({row.key_text or 'no key'}): invalid: " + "; ".join(map(str, row.problems)), file=sys.stderr)
            continue
        if args.limit is not None and shown >= args.limit:
            continue
        masked = plan.masked_payload(row.payload, _secret_values(plan.mapping))
        print(json.dumps({"row": row.line, "key": row.key_text, "payload": masked}, ensure_ascii=False))
        shown += 1
    return EXIT_OK


def _secret_values(mapping: Any) -> list[str]:
    names = [getattr(mapping.connection.auth, "secret", None)]
    return [os.environ[n] for n in names if n and os.environ.get(n)]


def cmd_status(args: argparse.Namespace) -> int:
    from .workbooks.refresh import refresh_results

    report = refresh_results(args.results, out=args.out, ledger_url=args.ledger, mapping=args.mapping)
    changes = ", ".join(f"{old} -> {new}: {n}" for (old, new), n in sorted(report.changed.items())) or "none"
    print(f"{report.rows} rows; changed since the run: {changes}")
    counts: dict[str, int] = {}
    for o in report.outcomes:
        counts[o.status.value] = counts.get(o.status.value, 0) + 1
    for status, n in counts.items():
        print(f"  {status:<8}  {n}")
    print(f"results: {report.path}")
    return EXIT_OK if report.ok else EXIT_ROWS


def cmd_callbacks(args: argparse.Namespace) -> int:
    from .http.callbacks import CallbackReceiver
    from .sandbox.server import serve_forever

    def event(line: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {line}", flush=True)

    receiver = CallbackReceiver(args.ledger, on_event=event)

    def ready(url: str) -> None:
        print(f"callback receiver listening on {url}, recording into {receiver.ledger.path} (Ctrl-C to stop).\n"
              f"Runs send <PROVIDER>_CALLBACK_URL/<provider>/<token>: set e.g. SYSTEMSX_BRIDGE_CALLBACK_URL to the "
              f"public https address that forwards to {url}.", flush=True)

    try:
        serve_forever(receiver, host=args.host, port=args.port, on_ready=ready)
    finally:
        receiver.close()
    counts = receiver.counts
    print(f"stopped: {counts['recorded']} callbacks recorded ({counts['matched']} matched to rows), "
          f"{counts['refused']} refused, {counts['unreadable']} unreadable")
    return EXIT_OK


def cmd_sandbox(args: argparse.Namespace) -> int:
    from .sandbox import SIMULATORS, Faults, serve_forever

    sim_cls = SIMULATORS.get(args.provider)
    if sim_cls is None:
        raise UsageError(f"no simulator for {args.provider!r}; known: {', '.join(SIMULATORS)}")
    try:
        faults = Faults(latency_ms=args.latency_ms, latency_jitter_ms=args.latency_jitter_ms, rate_limit=args.rate_limit,
                        unavailable_rate=args.unavailable_rate, error_after_store_rate=args.error_after_store_rate,
                        timeout_after_store_rate=args.timeout_after_store_rate, drop_after_store_rate=args.drop_after_store_rate)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    sim = sim_cls(faults=faults)
    from .sandbox.demo import sandbox_env

    def ready(url: str) -> None:
        print(f"{args.provider} simulator listening on {url} (Ctrl-C to stop). In another shell:")
        for name, value in sandbox_env(args.provider, url).items():
            print(f"  export {name}={value}")
        sys.stdout.flush()

    serve_forever(sim, port=args.port, on_ready=ready)
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo
    from .prefect_env import contain_ephemeral_server, ephemeral_server

    if ephemeral_server():
        contain_ephemeral_server()  # as for run: the temporary server ends with this process

    return run_demo(args.out_dir)


def cmd_web(args: argparse.Namespace) -> int:
    from .web.serve import run_web

    return run_web(args)


def cmd_transforms(args: argparse.Namespace) -> int:
    from .mapping.transforms import REGISTRY

    for name, doc in REGISTRY.items():
        usage = f"{{{name}: <{doc.param}>}}" if doc.param else name
        print(f"{usage}\n    {doc.summary}")
        for given, got in doc.examples:
            print(f"    In: {given:<40} Out: {got}")
    return EXIT_OK


def cmd_template(args: argparse.Namespace) -> int:
    from .mapping.model import load_mapping
    from .workbooks.template import describe_columns, write_template

    path = write_template(args.mapping, args.out)
    helps = describe_columns(load_mapping(args.mapping))
    required = [h.name for h in helps if h.required]
    print(f"template: {path} ({len(helps)} columns; required: {', '.join(required) or 'none'})")
    print(f"fill it from row 2, then check it: booking-import validate {path} --mapping {args.mapping}")
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    from .mapping.model import MappingFile

    print(json.dumps(MappingFile.json_schema(), indent=2, ensure_ascii=False))
    return EXIT_OK


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

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

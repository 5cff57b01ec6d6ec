"""The ``booking-import`` parser: commands, options, their help, and the argument types."""
from __future__ import annotations

import argparse
import math
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

CHUNK_HELP = ("with --prefect, rows per Prefect task (default: 500, or a fifth of the rows when that is "
              "more, so a run has at most 5 tasks: each task run costs the send phase some CPU); otherwise "
              "the rows go as one stream")
PREFECT_HELP = ("run the import as the Prefect flow import_sheet through Prefect's engine (its chunks are task "
                "runs): on the configured Prefect server, or on a temporary local one started for it when none is "
                "configured (a few seconds more). Without it, a run with a server configured (PREFECT_API_URL in "
                "the environment, .env, prefect.toml or the Prefect profile) is recorded there as a flow run of "
                "import_sheet through Prefect's REST API, about 2 s faster")


__all__ = ["CHUNK_HELP", "COMMANDS", "EPILOG", "EXIT_INPUT", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_ROWS", "PREFECT_HELP",
           "build_parser", "environment_help", "sandbox_providers_help"]

EXIT_OK, EXIT_ROWS, EXIT_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130

EPILOG = """exit codes:
  0  every row was created, accepted or skipped
  1  the run finished but some rows were not (see the results workbook)
  2  usage, mapping, input or credential problem: nothing was sent
  130 interrupted with Ctrl-C (SIGINT): the results workbook holds what was done
  143 stopped with SIGTERM (e.g. by a service manager): the results workbook holds what was done

Prefect: with a Prefect server configured (PREFECT_API_URL in the environment, .env, prefect.toml or
the active Prefect profile), `run` and `rerun` are recorded on it as flow runs of import_sheet (through
its REST API, without loading Prefect) and print their address; the server must answer before anything
is sent (exit 2 otherwise). Without one they run the same import and say so. --prefect: the flow
through Prefect's engine instead, on the configured server or a temporary local one.

Secrets come from the environment (or a .env file in the current folder), never from files
you commit. <PROVIDER>_BASE_URL overrides a provider's URL; <PROVIDER>_CALLBACK_URL is where a
provider that confirms later (Systems X Bridge) reaches `booking-import callbacks`.

{environment}"""

#: where `--help` reads the bundled mappings from, to list the variables each provider needs
MAPPINGS_DIR = Path(__file__).resolve().parent.parent.parent / "mappings"


def environment_help(folder: Path | None = None) -> str:
    """The environment variables each bundled mapping reads, derived from the mapping files (so a new
    mapping, e.g. BigChange's OAuth2 client and Customer-Id header, shows up in `--help` without an edit here)."""
    from ..mapping.model import load_mapping  # for start-up speed: only when a help is shown

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
        url = m.connection.base_url
        placeholder = url.split("/")[2].endswith(".invalid") if "//" in url else True
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
    from ..mapping.model import load_mapping  # for start-up speed: only when a help is shown
    from ..sandbox import SIMULATORS

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


def _pace_args(p: argparse.ArgumentParser) -> None:
    """How fast ``run`` and ``rerun`` send."""
    p.add_argument("--concurrency", "-c", type=_positive_int,
                   help="requests in flight at once (default: the mapping's)")
    p.add_argument("--rate", "-r", type=_rate, help="requests per second, never exceeded; 0: none published, adapt "
                                                    "to 429s (default: the mapping's)")


def _flow_args(p: argparse.ArgumentParser) -> None:
    """How ``run`` and ``rerun`` run: chunks, Prefect's engine, the progress bar."""
    p.add_argument("--chunk-size", type=_positive_int, help=CHUNK_HELP)
    p.add_argument("--prefect", action="store_true", help=PREFECT_HELP)
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def _sheet_args(p: argparse.ArgumentParser, *, out: bool = True) -> None:
    p.add_argument("sheet", type=Path, help="the CSV or Excel file (xlsx, xlsm, xlsb, xls, ods) to import")
    p.add_argument("--mapping", "-m", type=Path, required=True, help="the mapping file, e.g. mappings/jicoo.yaml")
    p.add_argument("--sheet", dest="sheet_name", help="worksheet to read (default: the mapping's source.sheet, else "
                                                      "the first)")
    if out:
        p.add_argument("--out", "-o", type=Path, help="results workbook to write (default: "
                                                      "out/<sheet>.results-<time>.xlsx)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="booking-import", formatter_class=_Wrapping, epilog=EPILOG,
                     description="Book every row of a CSV or Excel sheet into a provider's API, concurrently and "
                                 "safely, and write a results workbook that says row by row what happened.")
    parser.add_argument("--version", action="version", version="booking-importer 0.1.0")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("run", help="import a sheet (a Prefect flow run when a server is configured)",
                       formatter_class=_Wrapping, epilog=EPILOG,
                       description="Check every row, send the valid ones concurrently, record each row in the ledger "
                                   "as it goes, and write the results workbook. Rows already created by an earlier "
                                   "run (same key, same ledger) are skipped, never booked twice.")
    _sheet_args(p)
    _pace_args(p)
    p.add_argument("--ledger", help="ledger database: a path, sqlite:///path, or postgresql://user@host/db to share "
                                    "it between machines (default: $BOOKING_IMPORTER_LEDGER or "
                                    "./booking-ledger.sqlite)")
    p.add_argument("--resend-unknown", action="store_true",
                   help="resend rows an earlier run left unknown when the provider offers no way to check them")
    _flow_args(p)
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
                       description="Print each valid row's payload as JSON lines (sensitive fields and secrets "
                                   "masked). Invalid rows are listed on stderr.")
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
    p.add_argument("--ledger", help="ledger database the runs used (default: $BOOKING_IMPORTER_LEDGER or "
                                    "./booking-ledger.sqlite)")

    p = sub.add_parser("rerun", help="run a results workbook again: fixed rows are sent, booked rows are not",
                       formatter_class=_Wrapping, epilog=EPILOG,
                       description="Read a results workbook (edited in Excel or not: values fixed in red rows, rows "
                                   "deleted, columns moved, notes columns added) and run it again with the mapping "
                                   "and ledger of the run that wrote it. Rows the ledger records as created or "
                                   "accepted are carried over, never sent; invalid, rejected, failed and skipped "
                                   "rows are checked again with their edited values and sent (a skipped row the "
                                   "ledger shows as created stays skipped); unknown rows are checked with the "
                                   "provider first and sent only when confirmed absent. A booked row whose key was "
                                   "edited is refused (invalid, with a message), and a workbook from another ledger "
                                   "is refused with exit 2. The new workbook holds every row, in order, with its "
                                   "latest status; its Summary says what changed.")
    p.add_argument("results", type=Path, help="a results workbook written by `run` or `rerun`")
    p.add_argument("--out", "-o", type=Path, help="the new workbook (default: beside RESULTS, "
                                                  "<sheet>.rerun-<time>.xlsx)")
    p.add_argument("--mapping", "-m", type=Path, help="the mapping file, if it moved (default: the one the run used)")
    p.add_argument("--ledger", help="ledger database (default: the one named in the workbook's Summary)")
    _pace_args(p)
    p.add_argument("--resend-unknown", action="store_true",
                   help="resend unknown rows the provider offers no way to check (check with the provider first)")
    _flow_args(p)

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
                              "exits 2. --notify gets the run's summary: an Apprise URL (Slack, Teams, e-mail...) a "
                              "readable "
                              "message, a command the JSON on its stdin, an http(s) URL the JSON by POST; env:NAME "
                              "reads any of them from the worker's environment.")
    p.add_argument("--inbox", type=Path, required=True, help="the folder sheets are dropped into")
    p.add_argument("--cron", default="0 2 * * *", help='when to run (default "0 2 * * *": 02:00 every night)')
    p.add_argument("--timezone", help="IANA time zone of the cron, e.g. Europe/London (default UTC)")
    p.add_argument("--name", default="nightly-inbox", help="deployment name (default nightly-inbox); workers serving "
                                                           "the same inbox use the same name")
    p.add_argument("--mappings", type=Path, default=Path("mappings"),
                   help="folder of mapping files (default ./mappings)")
    p.add_argument("--archive", type=Path, help="where imported files go (default INBOX/archive)")
    p.add_argument("--ledger", help="ledger database (default: $BOOKING_IMPORTER_LEDGER or ./booking-ledger.sqlite)")
    p.add_argument("--notify", help="where each run's summary goes: an Apprise URL (slack://, msteams://, mailto://, "
                                    "json://...), "
                                    "an http(s) webhook URL (the summary JSON by POST) or a command (the JSON on its "
                                    "stdin)")
    p.add_argument("--settle-seconds", type=_seconds, default=2.0,
                   help="a file must keep its size and time this long to be imported (default 2)")
    p.add_argument("--lease-seconds", type=_seconds, default=120.0,
                   help="a claim not renewed for this long is taken over by the next run (default 120)")
    p.add_argument("--limit", type=_positive_int, help="flow runs this worker runs at once (default: no limit)")

    p = sub.add_parser("web", help="serve the web page where staff upload, fix and book a sheet",
                       description="Serve the web page (sign in, choose a mapping, upload, match columns, review and "
                                   "fix, book with live progress, results, history) until Ctrl-C. Accounts: "
                                   "'name:hash' "
                                   "lines in web-users.txt or the file named by BOOKING_WEB_USERS (hash from "
                                   "--hash-password); --demo serves the bundled simulators with a demo account it "
                                   "prints.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=_port, default=8000, help="port to listen on (default 8000)")
    p.add_argument("--demo", action="store_true", help="serve against the bundled simulators, with a demo account")
    p.add_argument("--mappings", type=Path, default=Path("mappings"),
                   help="folder of mapping files (default ./mappings)")
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
                       description="Serve a faithful provider simulator on 127.0.0.1 until Ctrl-C, with optional "
                                   "faults.",
                       epilog="{providers}")
    p.add_argument("provider", nargs="?", default="jicoo",
                   help="provider id, one of those listed below (default jicoo)")
    p.add_argument("--port", type=_port, default=8080, help="port on 127.0.0.1 (default 8080; 0 picks a free one)")
    p.add_argument("--latency-ms", type=float, default=0, help="added latency per request")
    p.add_argument("--latency-jitter-ms", type=float, default=0,
                   help="each request's latency varies by up to this much either way, as on a real network")
    p.add_argument("--rate-limit", type=float, default=None, help="requests per second above which it answers 429")
    p.add_argument("--unavailable-rate", type=float, default=0, help="share of writes answered 503 (nothing stored)")
    p.add_argument("--error-after-store-rate", type=float, default=0, help="share answered 500 after storing")
    p.add_argument("--timeout-after-store-rate", type=float, default=0,
                   help="share stored then stalled past the client's timeout")
    p.add_argument("--drop-after-store-rate", type=float, default=0, help="share stored then the connection dropped")

    p = sub.add_parser("demo", help="import the bundled sample sheets into local simulators (no credentials, no "
                                    "network)",
                       description="Start the provider simulators on loopback, import the sample sheets from "
                                   "sample_data/, write the results workbooks under out/demo/ and print the summaries.")
    p.add_argument("--out-dir", type=Path, default=Path("out/demo"),
                   help="where workbooks and the demo ledger go (default out/demo)")

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


COMMANDS = ("run", "rerun", "serve", "validate", "render", "status", "callbacks", "sandbox", "demo", "web",
            "transforms", "schema", "template")


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



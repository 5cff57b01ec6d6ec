"""The commands that do not import a sheet: serve, validate, render, status, callbacks, sandbox, demo,
web, transforms, template, schema. Each is thin: it calls the library.

Each command imports the library it calls inside itself, for start-up speed: `--help`, a refused
argument and the cheap commands must not load pandas, httpx, aiohttp or Prefect.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from ..errors import UsageError
from .parser import EXIT_OK, EXIT_ROWS

__all__ = ["cmd_callbacks", "cmd_demo", "cmd_render", "cmd_sandbox", "cmd_schema", "cmd_serve", "cmd_status",
           "cmd_template", "cmd_transforms", "cmd_validate", "cmd_web"]


def cmd_serve(args: argparse.Namespace) -> int:
    from ..import_inbox import serve_inbox

    return serve_inbox(inbox=args.inbox, cron=args.cron, timezone=args.timezone, name=args.name, mappings=args.mappings,
                       archive=args.archive, ledger=args.ledger, notify=args.notify,
                       settle_seconds=args.settle_seconds, lease_seconds=args.lease_seconds, limit=args.limit)


def cmd_validate(args: argparse.Namespace) -> int:
    from ..engine.validate import validate_sheet

    return validate_sheet(args.sheet, args.mapping, sheet_name=args.sheet_name, out=args.out)


def cmd_render(args: argparse.Namespace) -> int:
    from ..engine.plan import prepare
    from ..engine.validate import require_rows

    plan = prepare(args.sheet, args.mapping, sheet_name=args.sheet_name)
    require_rows(plan)
    shown = 0
    for row in plan.rows:
        if not row.is_valid:
            problems = "; ".join(map(str, row.problems))
            print(f"row {row.line} ({row.key_text or 'no key'}): invalid: {problems}", file=sys.stderr)
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
    from ..workbooks.refresh import refresh_results

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
    from ..http.callbacks import CallbackReceiver
    from ..sandbox.server import serve_forever

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
    from ..sandbox import SIMULATORS, Faults, serve_forever

    sim_cls = SIMULATORS.get(args.provider)
    if sim_cls is None:
        raise UsageError(f"no simulator for {args.provider!r}; known: {', '.join(SIMULATORS)}")
    try:
        faults = Faults(latency_ms=args.latency_ms, latency_jitter_ms=args.latency_jitter_ms,
                        rate_limit=args.rate_limit,
                        unavailable_rate=args.unavailable_rate, error_after_store_rate=args.error_after_store_rate,
                        timeout_after_store_rate=args.timeout_after_store_rate,
                        drop_after_store_rate=args.drop_after_store_rate)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    sim = sim_cls(faults=faults)
    from ..sandbox.demo import sandbox_env

    def ready(url: str) -> None:
        print(f"{args.provider} simulator listening on {url} (Ctrl-C to stop). In another shell:")
        for name, value in sandbox_env(args.provider, url).items():
            print(f"  export {name}={value}")
        sys.stdout.flush()

    serve_forever(sim, port=args.port, on_ready=ready)
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from ..demo import run_demo
    from ..prefect_env import contain_ephemeral_server, ephemeral_server

    if ephemeral_server():
        contain_ephemeral_server()  # as for run: the temporary server ends with this process

    return run_demo(args.out_dir)


def cmd_web(args: argparse.Namespace) -> int:
    from ..web.serve import run_web

    return run_web(args)


def cmd_transforms(args: argparse.Namespace) -> int:
    from ..mapping.transforms import REGISTRY

    for name, doc in REGISTRY.items():
        usage = f"{{{name}: <{doc.param}>}}" if doc.param else name
        print(f"{usage}\n    {doc.summary}")
        for given, got in doc.examples:
            print(f"    In: {given:<40} Out: {got}")
    return EXIT_OK


def cmd_template(args: argparse.Namespace) -> int:
    from ..mapping.model import load_mapping
    from ..workbooks.template import describe_columns, write_template

    path = write_template(args.mapping, args.out)
    helps = describe_columns(load_mapping(args.mapping))
    required = [h.name for h in helps if h.required]
    print(f"template: {path} ({len(helps)} columns; required: {', '.join(required) or 'none'})")
    print(f"fill it from row 2, then check it: booking-import validate {path} --mapping {args.mapping}")
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    from ..mapping.model import MappingFile

    print(json.dumps(MappingFile.json_schema(), indent=2, ensure_ascii=False))
    return EXIT_OK

"""``booking-import web``: serve the page with uvicorn; ``--demo`` against the bundled simulators."""
from __future__ import annotations

import contextlib
import getpass
import os
import secrets
import sys
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..prefect_env import apply_defaults
from ..prefect_server import LocalPrefectServer, use_api
from .auth import Accounts, hash_password

__all__ = ["demo_environment", "run_web"]


@contextlib.contextmanager
def demo_environment(stream=sys.stdout):
    """Every provider's simulator on 127.0.0.1, the environment pointing runs at them; yields the simulators."""
    # imported here for start-up speed: only --demo serves the simulators
    from ..sandbox import SIMULATORS, SimulatorServer
    from ..sandbox.demo import DEMOS, sandbox_env

    sims: dict[str, Any] = {}
    saved = dict(os.environ)
    with contextlib.ExitStack() as stack:
        for provider in dict.fromkeys(d.provider for d in DEMOS):
            sim = SIMULATORS[provider]()
            url = stack.enter_context(SimulatorServer(sim))
            os.environ.update(sandbox_env(provider, url))
            sims[provider] = sim
            print(f"  {provider} simulator at {url}", file=stream)
        try:
            yield sims
        finally:
            os.environ.clear()
            os.environ.update(saved)


def run_web(args: Any) -> int:
    if args.hash_password:
        password = sys.stdin.readline().rstrip("\n") if not sys.stdin.isatty() else getpass.getpass("password: ")
        print(hash_password(password))
        return 0
    # imported here for start-up speed: `--hash-password` needs neither the server nor the page
    import uvicorn

    from ..sandbox.demo import project_root
    from .app import WebConfig, create_app

    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"note: listening on {args.host}: put it behind a proxy that adds https, and pass --secure-cookies",
              file=sys.stderr)
    stack = contextlib.ExitStack()
    extra: dict[str, str] = {}
    if args.demo:
        root = project_root()
        out = Path(args.uploads or "out/web-demo")
        mappings = root / "mappings"
        ledger = args.ledger or f"sqlite:///{out / 'demo-ledger.sqlite'}"
        password = secrets.token_urlsafe(9)
        extra = {"demo": hash_password(password)}
        print("Demo: every provider is a simulator on this machine; nothing leaves it.")
        stack.enter_context(demo_environment())
        accounts = Accounts(None, None, extra)
    else:
        out = Path(args.uploads or "out/web-uploads")
        mappings = Path(args.mappings)
        if not mappings.is_dir():
            raise UsageError(f"--mappings {mappings} is not a folder of mapping files")
        ledger = args.ledger or os.environ.get("BOOKING_IMPORTER_LEDGER", "sqlite:///booking-ledger.sqlite")
        accounts = Accounts.from_env(args.users)
    config = WebConfig(mappings_dir=mappings, ledger_url=ledger, uploads_dir=out / "uploads", accounts=accounts,
                       max_bytes=int(args.max_mb * 2**20), max_rows=args.max_rows, keep_seconds=args.keep_hours * 3600,
                       secure_cookies=args.secure_cookies, prefect=not getattr(args, "no_prefect", False))
    shown = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    with stack:
        if config.prefect:
            stack.enter_context(prefect_server(out / "prefect"))
        else:
            print("Bookings go straight through the engine (--no-prefect): no Prefect flow runs.")
        app = create_app(config)
        print(f"Open http://{shown}:{args.port}/ in a browser" + (f" and sign in as demo / {password}" if args.demo
                                                                   else "") + " (Ctrl-C to stop).", flush=True)
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


@contextlib.contextmanager
def prefect_server(home: Path, stream=sys.stdout):
    """Bookings as Prefect flow runs: on the server PREFECT_API_URL names, else on a local one started now (in
    the main thread, see flows/prefect_server.py) under ``home`` and stopped when the page stops."""
    apply_defaults()
    from prefect.settings import PREFECT_API_URL  # here for start-up speed: `--hash-password` needs no Prefect

    configured = PREFECT_API_URL.value()
    if configured:
        print(f"Bookings are Prefect flow runs on {configured} (PREFECT_API_URL).", file=stream)
        yield configured
        return
    print(f"Starting a local Prefect server for the bookings' flow runs (its data in {home}) ...", file=stream,
          flush=True)
    with LocalPrefectServer(home) as server, use_api(server.api_url):
        print(f"Prefect UI at {server.ui_url}: each booking is a flow run there.", file=stream, flush=True)
        yield server.api_url

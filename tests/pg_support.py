"""A throwaway PostgreSQL server for the ledger's PostgreSQL tests.

``pg_server`` (session): a cluster made with ``initdb`` in a temporary folder, listening on
127.0.0.1 on a free port, stopped and removed at the end (``throwaway_postgres``, a plain context
manager that raises ``PostgresUnavailable`` instead of skipping, so bench/ can start one the same
way). ``pg_url`` (per test): a fresh, empty database on it, as a ``postgresql://`` URL. PostgreSQL
refuses to run as root, so as root the server runs as the ``postgres`` user the Debian package
creates (``runuser``).

The tests SKIP, with the reason, when no PostgreSQL binaries are found (Debian:
``apt-get install postgresql``; or set ``PG_BIN`` to the folder holding ``initdb``) or when the server
does not start (psycopg is a declared dependency). ``BOOKING_IMPORTER_TEST_PG_URL`` (a server URL whose
user may CREATE DATABASE) uses an existing server instead.
"""
from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from flows.ledger.claims import FileClaims


def find_pg_bin() -> Path | None:
    candidates = [os.environ.get("PG_BIN", "")]
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                         key=lambda p: int(p.split("/")[-2]) if p.split("/")[-2].isdigit() else 0, reverse=True)
    if shutil.which("initdb"):
        candidates.append(str(Path(shutil.which("initdb")).parent))
    for c in candidates:
        if c and (Path(c) / "initdb").is_file() and (Path(c) / "pg_ctl").is_file():
            return Path(c)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_user(user: str | None, argv: list[str]) -> list[str]:
    return ["runuser", "-u", user, "--", *argv] if user else argv


def _with_db(url: str, db: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + db))


def _create_database(server_url: str, name: str) -> str:
    with psycopg.connect(server_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return _with_db(server_url, name)


class PostgresUnavailable(Exception):
    """Why no throwaway PostgreSQL server could be started: the tests skip with it, bench/rates.py goes on
    without PostgreSQL."""


@contextlib.contextmanager
def throwaway_postgres(prefix: str = "ledger-pg-") -> Iterator[str]:
    """A PostgreSQL cluster made with ``initdb`` in a temporary folder, listening on 127.0.0.1 on a free
    port: the URL of its ``postgres`` database (superuser, trust authentication); stopped and removed at
    the end. Raises PostgresUnavailable, with the reason, when it cannot be started."""
    bindir = find_pg_bin()
    if bindir is None:
        raise PostgresUnavailable("no PostgreSQL binaries (initdb, pg_ctl) found: install them "
                                  "(Debian: apt-get install postgresql) or set PG_BIN")
    user = None
    if os.geteuid() == 0:  # postgres will not run as root
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise PostgresUnavailable("running as root and there is no 'postgres' user to run a PostgreSQL "
                                      "server as") from None
        user = "postgres"
    base = Path(tempfile.mkdtemp(prefix=prefix))
    data, log = base / "data", base / "server.log"
    base.chmod(0o755)
    if user:
        entry = pwd.getpwnam(user)
        os.chown(base, entry.pw_uid, entry.pw_gid)
    port = _free_port()
    run = lambda argv: subprocess.run(_as_user(user, argv), capture_output=True, text=True, timeout=120)  # noqa: E731
    started = False
    try:
        init = run([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                    "--no-sync", "--locale=C"])
        if init.returncode != 0:
            raise PostgresUnavailable(f"initdb failed: {(init.stderr or init.stdout).strip()[-500:]}")
        options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        start = run([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start"])
        if start.returncode != 0:
            tail = log.read_text(errors="replace")[-800:] if log.exists() else start.stderr
            raise PostgresUnavailable(f"the PostgreSQL server did not start: {tail.strip()}")
        started = True
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        if started:
            run([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"])
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """URL of a PostgreSQL server's ``postgres`` database (superuser, trust authentication)."""
    given = os.environ.get("BOOKING_IMPORTER_TEST_PG_URL")
    if given:
        yield given
        return
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(throwaway_postgres())
        except PostgresUnavailable as exc:
            pytest.skip(f"PostgreSQL ledger tests skipped: {exc}")
        yield url


@pytest.fixture
def pg_url(pg_server) -> str:
    """A fresh, empty database for one test."""
    return _create_database(pg_server, f"ledger_{uuid.uuid4().hex[:12]}")


def race_for_claim(url: str, owner: str, content_hash: str, start_at: float, results) -> None:
    """In a spawned process: wait for the common start, then try to claim; report (owner, won)."""
    with FileClaims(url, owner=owner) as claims:
        time.sleep(max(0.0, start_at - time.time()))
        results.put((owner, claims.claim(content_hash, "f.csv")[0]))

"""Accounts, passwords and sessions for the web page.

Accounts come from a file the operator controls (``BOOKING_WEB_USERS``, default ``./web-users.txt``),
one ``name:hash`` a line, or from the environment variable ``BOOKING_WEB_USERS_INLINE`` holding the same
lines separated by ``;``. Hashes are scrypt (stdlib), made by ``booking-import web --hash-password``;
a plain password is never accepted in the file.

Sessions are signed cookies (HMAC-SHA256 over the JSON of user, CSRF token and expiry) marked HttpOnly and
SameSite=Strict. The signing key comes from ``BOOKING_WEB_SECRET`` or is random per process (then a
restart signs everybody out, which is the safe default).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError

__all__ = ["Accounts", "Session", "SessionSigner", "SignInThrottle", "hash_password", "verify_password"]

_N, _R, _P = 2 ** 14, 8, 1  # scrypt cost: ~50 ms per check, so guessing from a stolen file is slow


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    if not password:
        raise UsageError("a password may not be empty")
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(base64.b64decode(digest)))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, base64.b64decode(digest))


#: checked when the name is unknown, so a wrong name takes as long as a wrong password
_DUMMY = hash_password("not a password", salt=b"\0" * 16)


class Accounts:
    """name -> scrypt hash, read from the operator's file or environment (read again when the file changes)."""

    def __init__(self, path: Path | None = None, inline: str | None = None,
                 extra: dict[str, str] | None = None) -> None:
        self.path = path
        self.inline = inline
        self.extra = dict(extra or {})
        self._mtime: float | None = None
        self._users: dict[str, str] = {}
        self._load()

    @classmethod
    def from_env(cls, users_file: str | None = None, extra: dict[str, str] | None = None) -> Accounts:
        given = users_file or os.environ.get("BOOKING_WEB_USERS")
        path = Path(given) if given else Path("web-users.txt")
        inline = os.environ.get("BOOKING_WEB_USERS_INLINE")
        if given and not path.is_file():
            raise UsageError(f"the accounts file {path} does not exist: create it with lines "
                             f"'name:hash' (hash from `booking-import web --hash-password`)")
        accounts = cls(path if path.is_file() else None, inline, extra)
        if not accounts.names():
            raise UsageError("no accounts: put 'name:hash' lines (hash from `booking-import web --hash-password`) in "
                             "web-users.txt or the file named by BOOKING_WEB_USERS, or use --demo")
        return accounts

    @staticmethod
    def _parse(text: str, where: str) -> dict[str, str]:
        users: dict[str, str] = {}
        for n, line in enumerate(text.replace(";", "\n").splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, sep, stored = line.partition(":")
            if not sep or not stored.startswith("scrypt$"):
                raise UsageError(f"{where} line {n}: expected 'name:scrypt$...' (hash from "
                                 f"`booking-import web --hash-password`), never a plain password")
            users[name.strip()] = stored.strip()
        return users

    def _load(self) -> None:
        users: dict[str, str] = {}
        if self.inline:
            users.update(self._parse(self.inline, "BOOKING_WEB_USERS_INLINE"))
        if self.path is not None:
            self._mtime = self.path.stat().st_mtime
            users.update(self._parse(self.path.read_text(encoding="utf-8"), str(self.path)))
        users.update(self.extra)
        self._users = users

    def names(self) -> list[str]:
        return sorted(self._users)

    def check(self, name: str, password: str) -> bool:
        if self.path is not None and self.path.is_file() and self.path.stat().st_mtime != self._mtime:
            self._load()  # an account added or removed by the operator counts at once
        stored = self._users.get(name)
        ok = verify_password(password, stored or _DUMMY)
        return ok and stored is not None


@dataclass
class Session:
    user: str
    csrf: str
    expires: float


class SessionSigner:
    """Signs and reads the session cookie. Tampered, expired or foreign cookies read as no session."""

    def __init__(self, key: bytes | None = None, max_age: float = 12 * 3600) -> None:
        env = os.environ.get("BOOKING_WEB_SECRET")
        self.key = key or (env.encode() if env else secrets.token_bytes(32))
        self.max_age = max_age
        #: sessions signed out before they expired (by their CSRF token, unique per session): a copied cookie
        #: is worthless after its owner signs out, until this process restarts (which changes a random key anyway)
        self.revoked: set[str] = set()

    def revoke(self, s: Session) -> None:
        self.revoked.add(s.csrf)

    def new(self, user: str) -> Session:
        return Session(user, secrets.token_urlsafe(24), time.time() + self.max_age)

    def dump(self, s: Session) -> str:
        body = base64.urlsafe_b64encode(json.dumps({"u": s.user, "c": s.csrf, "e": s.expires}).encode()).decode()
        sig = hmac.new(self.key, body.encode(), hashlib.sha256).hexdigest()
        return f"{body}.{sig}"

    def load(self, cookie: str | None) -> Session | None:
        if not cookie or "." not in cookie:
            return None
        body, _, sig = cookie.rpartition(".")
        want = hmac.new(self.key, body.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(sig, want):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(body.encode()))
            s = Session(str(data["u"]), str(data["c"]), float(data["e"]))
        except (ValueError, KeyError, TypeError):
            return None
        return s if s.expires > time.time() and s.csrf not in self.revoked else None


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0


@dataclass
class SignInThrottle:
    """Slows down password guessing: after ``limit`` failed sign-ins in a row for one name (``ip_limit`` from one
    address, higher because an office shares one), further attempts are refused, without checking the password,
    for ``wait`` seconds after the last failure, doubling with each failure after that (at most ``max_wait``).
    A successful sign-in clears the name's and the address's count. Kept in memory: a restart forgets it."""

    limit: int = 5
    ip_limit: int = 20
    wait: float = 30.0
    max_wait: float = 15 * 60.0
    clock: Callable[[], float] = time.monotonic
    _failures: dict[tuple[str, str], _Failures] = field(default_factory=dict)

    def _keys(self, name: str, ip: str) -> list[tuple[tuple[str, str], int]]:
        return [(("name", name.casefold()), self.limit), (("ip", ip), self.ip_limit)]

    def wait_left(self, name: str, ip: str) -> float:
        """Seconds until this name may try again from this address (0: now)."""
        now, left = self.clock(), 0.0
        for key, limit in self._keys(name, ip):
            f = self._failures.get(key)
            if f is not None and f.count >= limit:
                pause = min(self.max_wait, self.wait * 2 ** (f.count - limit))
                left = max(left, f.last + pause - now)
        return max(0.0, left)

    def failed(self, name: str, ip: str) -> None:
        now = self.clock()
        for key, _ in self._keys(name, ip):
            f = self._failures.setdefault(key, _Failures())
            f.count, f.last = f.count + 1, now

    def succeeded(self, name: str, ip: str) -> None:
        for key, _ in self._keys(name, ip):
            self._failures.pop(key, None)

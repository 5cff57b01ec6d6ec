"""The closed set of ways a provider authenticates, built from a mapping's ``connection.auth``.

Secrets are read from the environment only, when a run starts; a missing one is a
:class:`MissingSecretError` naming the variable. Every secret value an ``Auth`` holds is listed
by :meth:`Auth.secrets` so :func:`flows.redact.redact` can mask it wherever text is shown.

==========================  ===========================================  ================
kind                        what it does                                 providers
==========================  ===========================================  ================
api_key_header              a header carries the key                     Jicoo
api_key_body                a body field carries the key                 Systems X Bridge
oauth2_client_credentials   token from a token URL asking for the        BigChange
                            mapping's ``scope``, Bearer header, extra
                            headers from the environment
jwt_login                   login call returns a JWT, sent in a header   ServiceMobility
none                        nothing (sandboxes, public endpoints)
==========================  ===========================================  ================

Token kinds log in before the first request (a refusal then is a :class:`CredentialsError`:
nothing is sent), renew the token shortly before it expires, and once more after a 401; the
sender stops the run when a renewed token is refused too.
"""
from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp

from ..errors import CredentialsError, MissingSecretError
from ..mapping.model import ApiKeyBody, ApiKeyHeader, JwtLogin, NoAuth, OAuth2ClientCredentials
from ..redact import redact_text
from .client import Client, Reply

__all__ = ["Auth", "build_auth", "read_secret"]


def read_secret(name: str, purpose: str, env: Mapping[str, str] | None = None) -> str:
    value = (env if env is not None else os.environ).get(name, "")
    if not value.strip():
        raise MissingSecretError(name, purpose)
    return value.strip()


class Auth:
    """Base: no credentials."""

    #: why the last :meth:`refresh` could not log in again (shown when the run stops), or None
    refusal: str | None = None

    def headers(self) -> dict[str, str]:
        return {}

    def body_fields(self) -> dict[str, Any]:
        return {}

    def secrets(self) -> list[str]:
        return []

    async def login(self, client: Client) -> None:
        """Obtain a token before the first request (token kinds)."""

    async def ensure_fresh(self, client: Client) -> None:
        """Called before every request: renew a token that is about to expire (token kinds)."""

    #: counts logins; a request remembers it so that many 401s for one stale token cause one new login
    generation = 0

    async def refresh(self, client: Client, generation: int | None = None) -> bool:
        """Called after a 401 for a request sent with credentials of ``generation``; True when newer
        credentials exist (obtained now, or meanwhile by another request) and it may be tried once more."""
        return False


class HeaderKey(Auth):
    def __init__(self, header: str, key: str) -> None:
        self._header, self._key = header, key

    def headers(self) -> dict[str, str]:
        return {self._header: self._key}

    def secrets(self) -> list[str]:
        return [self._key]


class BodyKey(Auth):
    def __init__(self, field: str, key: str) -> None:
        self._field, self._key = field, key

    def body_fields(self) -> dict[str, Any]:
        return {self._field: self._key}

    def secrets(self) -> list[str]:
        return [self._key]


class TokenAuth(Auth):
    """Shared machinery of the token kinds: one login at a time, expiry, one renewal after a 401."""

    provider = "the provider"
    header = "Authorization"

    def __init__(self, margin: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._token: str | None = None
        self._expires_at: float | None = None
        self._margin = margin
        self._renew_margin = margin
        self._clock = clock
        self._lock = asyncio.Lock()
        self.logins = 0

    def token_header_value(self, token: str) -> str:
        return token

    def headers(self) -> dict[str, str]:
        return {self.header: self.token_header_value(self._token)} if self._token else {}

    def secret_values(self) -> list[str]:
        return []

    def secrets(self) -> list[str]:
        return [*self.secret_values(), *([self._token] if self._token else [])]

    async def fetch_token(self, client: Client) -> tuple[str, float | None]:
        """(token, seconds until it expires or None)."""
        raise NotImplementedError

    async def _login(self, client: Client) -> None:
        token, lifetime = await self.fetch_token(client)
        self._token = token
        self._expires_at = self._clock() + lifetime if lifetime else None
        # renew `margin` early, but not before half the lifetime: a token that lives shorter than the
        # margin (a 60 s token, the default 60 s margin) would otherwise mean a login before every request
        self._renew_margin = min(self._margin, lifetime / 2) if lifetime else self._margin
        self.logins += 1
        self.generation += 1

    async def login(self, client: Client) -> None:
        async with self._lock:
            await self._login(client)

    async def ensure_fresh(self, client: Client) -> None:
        if self._expires_at is None or self._clock() < self._expires_at - self._renew_margin:
            return
        async with self._lock:
            if self._expires_at is not None and self._clock() >= self._expires_at - self._renew_margin:
                await self._login(client)

    async def refresh(self, client: Client, generation: int | None = None) -> bool:
        seen = self.generation if generation is None else generation
        async with self._lock:
            if self.generation != seen:  # another request renewed it after this one was sent
                return True
            try:
                await self._login(client)
            except CredentialsError as exc:
                self.refusal = str(exc)
                return False
        return True

    def _refused(self, response: Reply, names: str) -> CredentialsError:
        detail = " ".join(response.text.split())[:200]
        detail = self.mask(detail)
        said = f"{response.status_code}: {detail}" if detail else str(response.status_code)
        return CredentialsError(f"{self.provider} refused the login ({said}); "
                                f"check {names}")

    def mask(self, text: str) -> str:
        return redact_text(text, self.secrets())

    async def _post(self, client: Client, url: str, **kwargs: Any) -> Reply:
        """A login request on the run's own client (its pool, its timeouts)."""
        try:
            return await client.request("POST", url, **kwargs)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise CredentialsError(f"could not reach {self.provider}'s login at {url} ({type(exc).__name__}); "
                                   f"check the URL and the network") from None


class OAuth2(TokenAuth):
    def __init__(self, spec: OAuth2ClientCredentials, provider: str, env: Mapping[str, str]) -> None:
        super().__init__(spec.refresh_margin_seconds)
        purpose = f"{provider}'s OAuth2 client credentials (connection.auth)"
        self.provider = provider
        self.token_url = env.get(f"{provider.upper()}_TOKEN_URL") or spec.token_url
        self._names = f"{spec.client_id} and {spec.client_secret}"
        self._client_id = read_secret(spec.client_id, purpose, env)
        self._client_secret = read_secret(spec.client_secret, purpose, env)
        # the model joins a list of scopes into one string (RFC 6749 3.3: space-separated)
        self._scope = " ".join(spec.scope) if isinstance(spec.scope, list) else spec.scope
        self._extra = {h: read_secret(var, f"the {h} header {provider} needs on every call", env)
                       for h, var in spec.headers.items()}

    def token_header_value(self, token: str) -> str:
        return f"Bearer {token}"

    def headers(self) -> dict[str, str]:
        return {**self._extra, **super().headers()}

    def secret_values(self) -> list[str]:
        return [self._client_secret]

    async def fetch_token(self, client: Client) -> tuple[str, float | None]:
        form = {"grant_type": "client_credentials", "client_id": self._client_id, "client_secret": self._client_secret}
        if self._scope:
            form["scope"] = self._scope
        response = await self._post(client, self.token_url, form=form)
        if response.status_code >= 400:
            if _oauth_error(response) == "invalid_scope":  # RFC 6749 5.2: a scope this client may not have
                raise CredentialsError(f"{self.provider} refused the scopes asked for ({self._scope or 'none'}; "
                                       f"{response.status_code} invalid_scope): fix connection.auth.scope in the "
                                       f"mapping, or have the client granted them")
            raise self._refused(response, self._names)
        try:
            body = response.json()
            token = str(body["access_token"])
        except (ValueError, KeyError, TypeError):
            raise CredentialsError(f"{self.provider}'s token response has no access_token; check the token URL "
                                   f"({self.token_url})") from None
        lifetime = body.get("expires_in")
        readable = isinstance(lifetime, (int, float, str)) and str(lifetime).replace(".", "", 1).isdigit()
        return token, float(lifetime) if readable else None


def _oauth_error(response: Reply) -> str | None:
    """The ``error`` code of an OAuth2 error answer (RFC 6749 5.2), if it is one."""
    try:
        body = response.json()
    except ValueError:
        return None
    return str(body.get("error")) if isinstance(body, dict) and body.get("error") else None


def jwt_lifetime(token: str, now: float | None = None) -> float | None:
    """Seconds until a JWT's ``exp`` (read without verifying: we only need to know when to renew)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        exp = float(claims["exp"])
    except (IndexError, ValueError, KeyError, TypeError):
        return None
    return exp - (now if now is not None else time.time())


class JwtAuth(TokenAuth):
    def __init__(self, spec: JwtLogin, provider: str, env: Mapping[str, str]) -> None:
        super().__init__(spec.refresh_margin_seconds)
        purpose = f"{provider}'s login (connection.auth)"
        self.provider = provider
        self.header = spec.header
        self._path = spec.path
        self._field = spec.token_field
        self._names = f"{spec.username} and {spec.password}"
        self._username = read_secret(spec.username, purpose, env)
        self._password = read_secret(spec.password, purpose, env)

    def secret_values(self) -> list[str]:
        return [self._password]

    async def fetch_token(self, client: Client) -> tuple[str, float | None]:
        response = await self._post(client, self._path, json={"username": self._username, "password": self._password})
        if response.status_code >= 400:
            raise self._refused(response, self._names)
        try:
            token = str(response.json()[self._field])
        except (ValueError, KeyError, TypeError):
            raise CredentialsError(f"{self.provider}'s login response has no {self._field!r}; "
                                   f"check the login path") from None
        return token, jwt_lifetime(token)


def build_auth(spec: Any, provider: str, env: Mapping[str, str] | None = None) -> Auth:
    purpose = f"the {provider} credentials named in the mapping's connection.auth.secret"
    if isinstance(spec, ApiKeyHeader):
        return HeaderKey(spec.header, read_secret(spec.secret, purpose, env))
    if isinstance(spec, ApiKeyBody):
        return BodyKey(spec.field, read_secret(spec.secret, purpose, env))
    if isinstance(spec, NoAuth):
        return Auth()
    if isinstance(spec, OAuth2ClientCredentials):
        return OAuth2(spec, provider, env if env is not None else os.environ)
    if isinstance(spec, JwtLogin):
        return JwtAuth(spec, provider, env if env is not None else os.environ)
    raise TypeError(f"unsupported auth spec {spec!r}")  # the mapping model makes this unreachable

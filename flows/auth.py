"""The closed set of ways a provider authenticates, built from a mapping's ``connection.auth``.

Secrets are read from the environment only, when a run starts; a missing one is a
:class:`MissingSecretError` naming the variable. Every secret value an ``Auth`` holds is listed
by :meth:`Auth.secrets` so :func:`flows.redact.redact` can mask it wherever text is shown.

=================  ==================================================  ==========
kind               what it does                                        providers
=================  ==================================================  ==========
api_key_header     a header carries the key                            Jicoo
api_key_body       a body field carries the key                        Systems X Bridge
none               nothing (sandboxes, public endpoints)
=================  ==================================================  ==========

Token kinds (OAuth2 client credentials, JWT login) implement :meth:`Auth.login` and
:meth:`Auth.refresh`; the sender calls ``refresh`` once after a 401 before stopping the run.
"""
from __future__ import annotations

import os
from typing import Any, Mapping

import httpx

from .errors import MissingSecretError
from .mapping import ApiKeyBody, ApiKeyHeader, NoAuth

__all__ = ["Auth", "build_auth", "read_secret"]


def read_secret(name: str, purpose: str, env: Mapping[str, str] | None = None) -> str:
    value = (env if env is not None else os.environ).get(name, "")
    if not value.strip():
        raise MissingSecretError(name, purpose)
    return value.strip()


class Auth:
    """Base: no credentials."""

    def headers(self) -> dict[str, str]:
        return {}

    def body_fields(self) -> dict[str, Any]:
        return {}

    def secrets(self) -> list[str]:
        return []

    async def login(self, client: httpx.AsyncClient) -> None:
        """Obtain a token before the first request (token kinds)."""

    async def refresh(self, client: httpx.AsyncClient) -> bool:
        """Called after a 401; True when new credentials were obtained and the request may be tried once more."""
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


def build_auth(spec: Any, provider: str, env: Mapping[str, str] | None = None) -> Auth:
    purpose = f"the {provider} credentials named in the mapping's connection.auth.secret"
    if isinstance(spec, ApiKeyHeader):
        return HeaderKey(spec.header, read_secret(spec.secret, purpose, env))
    if isinstance(spec, ApiKeyBody):
        return BodyKey(spec.field, read_secret(spec.secret, purpose, env))
    if isinstance(spec, NoAuth):
        return Auth()
    raise TypeError(f"unsupported auth spec {spec!r}")  # the mapping model makes this unreachable

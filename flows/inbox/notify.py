"""Telling a person how an inbox run went: a JSON webhook, an Apprise URL (slack://, mailto://...) or a
shell command reading the summary on its stdin."""
from __future__ import annotations

import json
import logging
import os
import re
import subprocess
from typing import Any

import httpx

from ..errors import ConfigError

__all__ = ["check_apprise_url", "is_apprise_url", "send_notification"]


# --- notify ------------------------------------------------------------------------------------------


def _resolve_target(target: str) -> str:
    if target.startswith("env:"):
        name = target[4:]
        value = os.environ.get(name, "").strip()
        if not value:
            raise ConfigError(f"--notify {target}: the environment variable {name} is not set in the worker")
        return value
    return target


_APPRISE_URL = re.compile(r"^([a-z][a-z0-9+.-]*)://", re.IGNORECASE)


def is_apprise_url(target: str) -> bool:
    """An Apprise URL (slack://, msteams://, mailto://, json://, form://, ...): any scheme but http(s),
    which stays the plain JSON webhook. A shell command never starts with ``scheme://``."""
    m = _APPRISE_URL.match(target.strip())
    return bool(m) and m.group(1).lower() not in ("http", "https")


def check_apprise_url(target: str) -> str | None:
    """None when Apprise knows the URL, else a one-line reason (so serve refuses it at start, exit 2)."""
    import apprise  # here for start-up speed: ~0.9 s to import, needed only for an Apprise URL

    apprise_log = logging.getLogger("apprise")
    saved, apprise_log.disabled = apprise_log.disabled, True  # its own "Unparseable URL" line: ours says more
    try:
        if apprise.Apprise().add(target.strip()):
            return None
    finally:
        apprise_log.disabled = saved
    scheme = target.split("://", 1)[0]
    return (f"Apprise does not understand the {scheme}:// URL (unknown service or missing parts); see "
            f"https://github.com/caronc/apprise/wiki for the URL of each service, e.g. slack://, msteams://, mailto://")


def _describe_target(target: str) -> str:
    """A webhook's scheme and host only: the path often holds a token."""
    if target.startswith(("http://", "https://")):
        url = httpx.URL(target)
        return f"webhook {url.scheme}://{url.host}"
    if is_apprise_url(target):
        rest = target.split("://", 1)[1]
        host = rest.split("/", 1)[0].rsplit("@", 1)[-1]  # never the user:password@ part, nor a path holding a token
        return f"Apprise {target.split('://', 1)[0]}://{host}"
    return f"command {target.split()[0] if target.split() else target!r}"


def _send_apprise(target: str, summary: dict[str, Any], message: str | None, what: str) -> str | None:
    """Notify through Apprise: a title and the human summary (markdown). Assumption (Apprise's docs leave
    it to each service): a service that takes structured data (json://, form://) gets the same text."""
    import apprise  # here for start-up speed: ~0.9 s to import, needed only for an Apprise URL

    problem = check_apprise_url(target)
    if problem:
        return f"the notify {what}: {problem}"
    sender = apprise.Apprise()
    sender.add(target.strip())
    title = f"booking-importer: inbox {summary.get('inbox', '')}: " + ("all good" if summary.get("ok") else
                                                                       "needs attention")
    body = message or json.dumps(summary, ensure_ascii=False, default=str)
    try:
        ok = sender.notify(title=title, body=body, body_format=apprise.NotifyFormat.MARKDOWN)
    except Exception as exc:  # a plugin's own failure: reported like an unreachable webhook
        return f"the notify {what} failed ({type(exc).__name__})"
    return None if ok else f"the notify {what} could not deliver the summary (see the worker's log)"


def send_notification(target: str, summary: dict[str, Any], timeout: float = 30.0,
                      message: str | None = None) -> str | None:
    """Send the summary JSON: POSTed to an http(s) URL, through Apprise for any other URL (slack://,
    msteams://, mailto://..., with ``message`` as its text), else on the stdin of a shell command.

    ``env:NAME`` reads the URL or command from the worker's environment (keeps webhook tokens out
    of deployment parameters). Returns None on success, else a one-line reason."""
    try:
        target = _resolve_target(target)
    except ConfigError as exc:
        return str(exc)
    body = json.dumps(summary, ensure_ascii=False, default=str)
    what = _describe_target(target)
    if is_apprise_url(target):
        return _send_apprise(target, summary, message, what)
    if target.startswith(("http://", "https://")):
        try:
            response = httpx.post(target, content=body.encode(), timeout=timeout,
                                  headers={"Content-Type": "application/json"})
        except httpx.HTTPError as exc:
            return f"the notify {what} could not be reached ({type(exc).__name__})"
        if response.status_code >= 400:
            return f"the notify {what} answered {response.status_code}"
        return None
    try:
        done = subprocess.run(target, shell=True, input=body, text=True, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"the notify {what} did not finish within {timeout:g} s"
    except OSError as exc:
        return f"the notify {what} could not be started ({exc})"
    if done.returncode != 0:
        tail = " ".join((done.stderr or "").split())[-200:]
        return f"the notify {what} exited with {done.returncode}" + (f": {tail}" if tail else "")
    return None

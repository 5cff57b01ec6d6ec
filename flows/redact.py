"""Masking: one place that hides secrets and sensitive fields wherever text or payloads are shown."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .mapping.paths import dig

__all__ = ["MASK", "mask_payload", "masked_fields", "redact_text"]

MASK = "••••••"


def redact_text(text: str, secrets: Iterable[str]) -> str:
    for s in secrets:
        if s and len(s) >= 4:
            text = text.replace(s, MASK)
    return text


def mask_payload(payload: Any, sensitive_keys: set[str], secrets: Iterable[str] = (), _path: str = "") -> Any:
    """A copy of ``payload`` with sensitive paths (``a.b``; list indexes ignored) and secret values masked."""
    secrets = list(secrets)
    if isinstance(payload, dict):
        out = {}
        for k, v in payload.items():
            p = f"{_path}.{k}" if _path else str(k)
            out[k] = (MASK if (p in sensitive_keys and v not in (None, ""))
                      else mask_payload(v, sensitive_keys, secrets, p))
        return out
    if isinstance(payload, list):
        return [mask_payload(v, sensitive_keys, secrets, _path) for v in payload]
    if isinstance(payload, str) and secrets:
        return redact_text(payload, secrets)
    return payload


def masked_fields(payload: Any, paths: dict[str, str]) -> list[str]:
    """The sensitive fields of ``payload`` whose value holds :data:`MASK` (``paths``: field name -> the path
    as ``mapping.paths.dig`` reads it, ``a.0.b``). Such a payload came from a results workbook, where sensitive
    values are shown masked: it must never be sent, since a provider may well accept the mask as a value."""
    hits = []
    for name, path in paths.items():
        value = dig(payload, path)
        if isinstance(value, str) and MASK in value:
            hits.append(name)
    return hits

"""Masking: one place that hides secrets and sensitive fields wherever text or payloads are shown."""
from __future__ import annotations

from typing import Any, Iterable

__all__ = ["MASK", "redact_text", "mask_payload"]

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
            out[k] = MASK if (p in sensitive_keys and v not in (None, "")) else mask_payload(v, sensitive_keys, secrets, p)
        return out
    if isinstance(payload, list):
        return [mask_payload(v, sensitive_keys, secrets, _path) for v in payload]
    if isinstance(payload, str) and secrets:
        return redact_text(payload, secrets)
    return payload

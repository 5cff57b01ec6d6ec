"""What the web page is configured with, the mappings it offers, and what it tells a person about each status."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ImporterError
from . import engine_calls
from .auth import Accounts, SessionSigner, SignInThrottle

__all__ = ["ADVICE", "MappingChoice", "WebConfig", "list_mappings"]

#: what a person does about each status (results page)
ADVICE = {
    "created": "Booked. Nothing to do.",
    "accepted": "The provider took it and confirms later; refresh this page or check the provider.",
    "skipped": "Not sent: already booked by an earlier run (never twice), or held by another import running now.",
    "invalid": "Not sent: fix the highlighted cell below and send the fixed rows again.",
    "rejected": "The provider refused it (the message says why): fix the row and send it again.",
    "failed": "Not booked: the provider or network failed after retries. Send it again later.",
    "unknown": "Sent, but no answer came: the next send checks with the provider before resending.",
}


@dataclass
class WebConfig:
    mappings_dir: Path
    ledger_url: str
    uploads_dir: Path
    accounts: Accounts
    max_bytes: int = 20 * 1024 * 1024
    max_rows: int = 100_000
    keep_seconds: float = 24 * 3600
    page_size: int = 50
    secure_cookies: bool = False  # set behind https: cookies then travel only over https
    signer: SessionSigner = field(default_factory=SessionSigner)
    #: failed sign-ins per name and address before the page makes the next one wait
    throttle: SignInThrottle = field(default_factory=SignInThrottle)
    transport: Any = None  # tests may have the engine send through an aiohttp connector
    #: providers that confirm later (Systems X Bridge): wait this long for their callbacks after sending
    wait_callbacks: float = 10.0
    #: book as a Prefect flow run (True), directly through the engine (False, `web --no-prefect`), or as a flow
    #: run when a Prefect server is configured (None: PREFECT_API_URL, as `web` sets it for its local server)
    prefect: bool | None = None


@dataclass
class MappingChoice:
    name: str
    path: Path
    description: str
    provider: str
    error: str | None = None


def list_mappings(folder: Path) -> dict[str, MappingChoice]:
    out: dict[str, MappingChoice] = {}
    for p in sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml")):
        try:
            m = engine_calls.load(p)
            out[p.stem] = MappingChoice(p.stem, p, m.description, m.provider)
        except ImporterError as exc:
            out[p.stem] = MappingChoice(p.stem, p, "", "", error=str(exc))
    return out

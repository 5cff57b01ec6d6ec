"""Best guesses for which sheet column fills each column a mapping needs.

Order of preference for each needed column: what this user matched last time for this mapping (when that
column is in the sheet), the exact name, the same name ignoring case, spacing and punctuation, then a close
name ("E-mail" for "Email", "Guest" for "Guest Name"). A sheet column is guessed for one needed column at most.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

__all__ = ["Guess", "folded", "guess_columns"]


@dataclass(frozen=True)
class Guess:
    needed: str
    column: str | None  # the sheet column guessed, None: no good guess
    reason: str  # "remembered", "exact", "same name", "close name", "none"


def folded(name: str) -> str:
    """Case, spacing and punctuation left out: "E-mail " -> "email", "Guest_Name" -> "guestname"."""
    return re.sub(r"[\W_]+", "", name.casefold())


def _close(needed: str, candidates: list[str]) -> str | None:
    want = folded(needed)
    if not want:
        return None
    best, score = None, 0.0
    for c in candidates:
        f = folded(c)
        if not f:
            continue
        ratio = difflib.SequenceMatcher(None, want, f).ratio()
        if f in want or want in f:  # "Guest" inside "Guest Name", "Ref" inside "Booking Ref"
            ratio = max(ratio, 0.8 if min(len(f), len(want)) >= 3 else ratio)
        if ratio > score:
            best, score = c, ratio
    return best if score >= 0.6 else None


def guess_columns(needed: list[str], columns: list[str], remembered: dict[str, str] | None = None) -> list[Guess]:
    remembered = remembered or {}
    taken: set[str] = set()
    guesses: dict[str, Guess] = {}
    passes = (
        ("remembered", lambda n, free: remembered.get(n) if remembered.get(n) in free else None),
        ("exact", lambda n, free: n if n in free else None),
        ("same name", lambda n, free: next((c for c in free if folded(c) == folded(n)), None)),
        ("close name", lambda n, free: _close(n, free)),
    )
    for reason, find in passes:  # each pass over every needed column before a weaker pass guesses
        for n in needed:
            if n in guesses:
                continue
            free = [c for c in columns if c not in taken]
            got = find(n, free)
            if got is not None:
                guesses[n] = Guess(n, got, reason)
                taken.add(got)
    return [guesses.get(n, Guess(n, None, "none")) for n in needed]

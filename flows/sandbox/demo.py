"""What the demo needs from the sandbox: the demos derived from mappings/, the project root, and the
environment that points a run at a provider's simulator. The demo itself (which runs imports) is
flows/demo.py: the sandbox imports nothing above it.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import UsageError
from ..mapping.catalog import ROOT, Demo, demos
from . import SIMULATORS, simulator_for

__all__ = ["DEMOS", "Demo", "project_root", "sandbox_env"]


#: one demo per mapping with a sample sheet (flows.mapping.catalog.demos: derived from mappings/ and sample_data/)
DEMOS = demos()


def project_root() -> Path:
    here = ROOT
    if (here / "mappings").is_dir() and (here / "sample_data").is_dir():
        return here
    cwd = Path.cwd()
    if (cwd / "mappings").is_dir() and (cwd / "sample_data").is_dir():
        return cwd
    raise UsageError("the demo needs the project's mappings/ and sample_data/ folders: "
                     "run it from a checkout of booking-importer")


def sandbox_env(provider: str, url: str) -> dict[str, str]:
    """The environment that points a run at the provider's simulator serving at ``url``."""
    sim = simulator_for(provider)
    if sim is None:
        raise UsageError(f"no simulator for {provider!r} in flows/sandbox/ (known: {', '.join(SIMULATORS)})")
    return sim.sandbox_env(url)

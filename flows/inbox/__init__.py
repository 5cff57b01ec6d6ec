"""The inbox: import every new sheet dropped into a folder, once, and archive it with its results.

process.py runs one pass (look, hash, route, claim, import, archive); routes.py chooses a file's
mapping; notify.py tells a person how the pass went. The Prefect flow ``import_inbox``
(flows/import_inbox.py) is the thin shell around them.
"""
from __future__ import annotations

from .notify import check_apprise_url, is_apprise_url, send_notification
from .process import (
    FILE_STATES,
    FileReport,
    Importer,
    ImportJob,
    InboxConfig,
    InboxReport,
    import_file,
    process_inbox,
    run_inbox,
)
from .routes import ROUTES_FILE, load_routes, mapping_for

__all__ = [
    "FILE_STATES",
    "ROUTES_FILE",
    "FileReport",
    "ImportJob",
    "Importer",
    "InboxConfig",
    "InboxReport",
    "check_apprise_url",
    "import_file",
    "is_apprise_url",
    "load_routes",
    "mapping_for",
    "process_inbox",
    "run_inbox",
    "send_notification",
]

"""``booking-import web``: the page back-office staff use to upload a sheet, fix it and book it.

Everything here calls the same mapping, engine and ledger code as the CLI, through
:mod:`flows.web.engine_calls` (one place to change when the import entry point moves).
"""

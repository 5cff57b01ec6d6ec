"""booking-importer: book every row of a CSV or Excel sheet into a provider's API.

Library first: ``flows.engine`` holds the import as plain functions (prepare, send, write
results); ``flows.import_sheet`` wraps it as the Prefect flow ``import_sheet``; ``flows.cli``
is the ``booking-import`` command.
"""
__version__ = "0.1.0"

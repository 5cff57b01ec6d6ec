"""``booking-import``: the command line. Thin: every command calls the library.

parser.py holds the commands, options and help; entry.py the entry point and the import commands
(run, rerun); commands.py the others; signals.py how SIGINT and SIGTERM stop a run.
"""
from __future__ import annotations

from .entry import main
from .parser import COMMANDS, build_parser, environment_help

__all__ = ["COMMANDS", "build_parser", "environment_help", "main"]

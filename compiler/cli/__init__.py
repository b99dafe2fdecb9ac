"""The ``nexort`` command-line tool: one module per command group, shared options in ``common``."""

from compiler.cli.app import main

__all__ = ["main"]

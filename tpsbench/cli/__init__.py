"""The command line (typer app in :mod:`.app`) and its terminal rendering (:mod:`.console`)."""

from tpsbench.cli.app import app, main

__all__ = ["app", "main"]

"""The `automl` command line: `main` (the console script's entry point) and one module per command group."""

from .commands import main

__all__ = ["main"]

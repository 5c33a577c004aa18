"""The stderr console every layer reports progress on: bars, logs and warnings go to stderr so that
stdout stays clean for results (and for ``--json``). Library code imports this, never ``cli/``."""

from __future__ import annotations

from rich.console import Console

err_console = Console(stderr=True)


def info(message: str) -> None:
    """A progress/status line on stderr."""
    err_console.print(message, highlight=False)

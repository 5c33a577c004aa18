"""What every CLI command shares: a stderr console for progress and logs, and result output that is
either a human table (stdout) or exactly one JSON document (stdout) with ``--json``."""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import typer
from rich.console import Console

from convsight.console import err_console, info  # noqa: F401  (re-exported for the commands)

out_console = Console()

JsonOption = typer.Option(False, "--json", help="Print exactly one JSON document on stdout.")


def _jsonable(obj: Any) -> Any:
    """Make tensors, numpy values, paths and non-finite floats JSON-safe."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "tolist"):  # torch / numpy
        return _jsonable(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(_jsonable(obj), indent=2) + "\n")
    sys.stdout.flush()

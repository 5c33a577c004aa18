"""``convsight detect``: train, evaluate, predict and score object detectors."""

from __future__ import annotations

import typer

app = typer.Typer(help="Object detection: the lineage from localization to YOLO and SSD.", no_args_is_help=True)

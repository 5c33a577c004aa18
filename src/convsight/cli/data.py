"""``convsight data``: synthetic scenes and dataset conversion."""

from __future__ import annotations

import typer

app = typer.Typer(help="Datasets: generate synthetic scenes, convert between COCO / VOC / YOLO.", no_args_is_help=True)

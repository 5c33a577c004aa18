"""``convsight faces ...``: detect, align, embed, verify, recognise against a gallery.

Thin over :mod:`convsight.faces`; commands are added by the faces modules' authors. Training and
pairs-evaluation commands live in :mod:`convsight.cli.faces_train` and register themselves here.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Faces: detect with landmarks, align, embed, verify, recognize against a gallery.",
    no_args_is_help=True,
    add_completion=False,
)

"""``convsight style ...``: Gatys style transfer (and a feed-forward stylizer behind the same API)."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Style transfer (Gatys et al.): VGG19 features, Gram matrices, J = (1-a)Jstyle + a Jcontent.",
    no_args_is_help=True,
    add_completion=False,
)

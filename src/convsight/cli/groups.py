"""Command groups that later capabilities fill. Each exists now so ``convsight --help`` shows the whole
product map; a group without commands says what it will hold and exits 0."""

from __future__ import annotations

import typer

_PLANNED_HELP = {
    "serve": "Web page: upload an image, pick detect / faces / style, see the result.",
    "export": "Export models (ONNX) with decoding and NMS.",
}


def _planned(name: str, help_text: str) -> typer.Typer:
    sub = typer.Typer(help=help_text, invoke_without_command=True, add_completion=False)

    @sub.callback()
    def _callback(ctx: typer.Context) -> None:
        if ctx.invoked_subcommand is None:
            typer.echo(f"{help_text}\n\n'convsight {name}' has no commands in this version yet.")

    return sub


PLANNED: dict[str, typer.Typer] = {name: _planned(name, text) for name, text in _PLANNED_HELP.items()}

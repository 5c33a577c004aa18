"""The ``convsight`` command: a typer app with one sub-app per capability.

Heavy imports (torch, OpenCV) happen inside commands so ``convsight --help`` stays fast. Any
:class:`~convsight.errors.ConvsightError`, and any option-parser error (unknown option, missing
argument, bad value), becomes one line ``convsight: error: ...`` on stderr and exit code 2.
"""

from __future__ import annotations

import sys
import warnings

import typer

from convsight.cli import data, detect, export, faces, serve, style
from convsight.cli.common import JsonOption, print_json

app = typer.Typer(
    name="convsight",
    help="Object detection, faces and style transfer with ConvNets: offline, measured.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(data.app, name="data")
app.add_typer(detect.app, name="detect")
app.add_typer(export.app, name="export")
app.add_typer(faces.app, name="faces")
app.add_typer(style.app, name="style")
app.command(name="serve")(serve.serve)


@app.command()
def version(as_json: bool = JsonOption) -> None:
    """Print the versions of convsight, torch and torchvision, and this machine's speed choices
    (CPU capability, native bf16, what ``--precision auto`` picks, default threads)."""
    import platform

    import torch
    import torchvision

    from convsight import __version__
    from convsight.precision import machine_summary

    info = {
        "convsight": __version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "python": platform.python_version(),
        "cuda_available": torch.cuda.is_available(),
        **machine_summary(),
    }
    if as_json:
        print_json(info)
    else:
        for k, v in info.items():
            print(f"{k}: {v}")


@app.command()
def demo(
    out: str = typer.Option("runs/demo", "--out", "-o", help="Output folder for the report."),
    seed: int = typer.Option(0, help="Random seed."),
) -> None:
    """Run the offline demo on bundled inputs and write a report."""
    from convsight.demo import run_demo

    run_demo(out, seed=seed)


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point: user errors become one line on stderr and exit code 2."""
    from convsight.errors import ConvsightError, ConvsightWarning

    def _show_warning(message, category, filename, lineno, file=None, line=None):  # type: ignore[no-untyped-def]
        prefix = "warning" if issubclass(category, ConvsightWarning) else category.__name__
        print(f"convsight: {prefix}: {message}", file=sys.stderr)

    warnings.showwarning = _show_warning
    # click's exception classes, wherever this typer keeps them (typer >= 0.22 vendors click as
    # typer._click, so `import click` would name other classes than the ones raised).
    clicks = sys.modules[typer.BadParameter.__module__]
    no_args_help = getattr(clicks, "NoArgsIsHelpError", ())  # click >= 8.2
    try:
        # standalone_mode=False: the parser's errors come here instead of becoming typer's boxed
        # multi-line panel, and a typer.Exit / --help returns its code instead of exiting.
        code = app(args=argv, prog_name="convsight", standalone_mode=False)
    except ConvsightError as e:
        print(f"convsight: error: {e}", file=sys.stderr)
        return 2
    except no_args_help as e:  # a bare group: its help (already printed by typer's rich help) is the answer
        if e.format_message().strip():
            e.show()
        return int(e.exit_code)
    except clicks.ClickException as e:  # unknown option, missing argument, bad value: one line
        print(f"convsight: error: {_one_line(e)}", file=sys.stderr)
        return int(e.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        print("convsight: interrupted", file=sys.stderr)
        return 130
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return code if type(code) is int else 0  # a typer.Exit's code; commands themselves return None


def _one_line(e: Exception) -> str:
    """``data synth: No such option: --bogus (see convsight data synth --help)``: click's message on
    one line, with the command it concerns (the usage block it would print is left to ``--help``)."""
    message = " ".join(e.format_message().split())  # type: ignore[attr-defined]
    ctx = getattr(e, "ctx", None)
    if ctx is None:
        return message
    sub = ctx.command_path.partition(" ")[2]
    return f"{sub + ': ' if sub else ''}{message} (see {ctx.command_path} --help)"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

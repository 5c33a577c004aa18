"""``convsight style ...``: Gatys style transfer (and a feed-forward stylizer behind the same API).

Commands: ``run CONTENT STYLE... -o OUT.png`` (one image), ``sweep CONTENT STYLE --alphas ... -o
GRID.png`` (the "varying alpha" figure). A typer group cannot also take positional arguments
itself (``convsight style CONTENT STYLE`` would read CONTENT as a command name), hence ``run``.

CONTENT / STYLE are image paths or, when no such file exists, built-in names that work offline:
astronaut, chelsea, coffee, rocket, hubble, china, flower, swirl, mosaic
(see :mod:`convsight.style.offline`).
"""

from __future__ import annotations

from pathlib import Path

import typer

from convsight.cli.common import JsonOption, err_console, info, print_json

app = typer.Typer(
    help="Style transfer (Gatys et al.): VGG19 features, Gram matrices, J = (1-a)Jstyle + a Jcontent.",
    no_args_is_help=True,
    add_completion=False,
)

_IMAGES = "an image path, or a built-in name (astronaut, chelsea, coffee, rocket, hubble, china, flower, swirl, mosaic)"


# Options shared by `run` and `sweep` (typer reads defaults from these objects).
ALPHA = typer.Option(0.1, "--alpha", "-a", help="J = (1-alpha) Jstyle + alpha Jcontent, alpha in [0, 1].")
SIZE = typer.Option(256, "--size", "-s", help="Long side of the output in pixels.")
STEPS = typer.Option(300, "--steps", help="Loss evaluations (per level with --levels).")
OPTIMIZER = typer.Option("lbfgs", "--optimizer", help="lbfgs (paper) or adam.")
INIT = typer.Option("content", "--init", help="Start from: content, noise (seeded) or style.")
SEED = typer.Option(0, "--seed", help="Random seed: the same seed gives the same image.")
TV = typer.Option(0.0, "--tv", help="Total variation weight (smoothness), >= 0.")
COLOUR = typer.Option("none", "--colour", "--color", help="Colour preservation: none, luminance, histogram.")
ENCODER = typer.Option("", "--encoder", help="mobilenet_v2 (offline default) or vgg19.")
WEIGHTS = typer.Option("imagenet", "--weights", help="imagenet, random, or a .safetensors/.pth file.")
POOLING = typer.Option("avg", "--pooling", help="VGG19 pooling: avg (paper) or max.")
INPUT_NORM = typer.Option("auto", "--input-norm", help="auto, torchvision or caffe (for caffe-converted VGG files).")
PRECISION = typer.Option("auto", "--precision",
                         help="auto (bf16 where the CPU runs it natively, else fp32), fp32, or bf16 autocast for the encoder.")
PROGRESS = typer.Option(True, "--progress/--no-progress", help="Show a progress bar with the loss terms.")


def _config(**kw: object):  # noqa: ANN202 (heavy import inside)
    from convsight.style.encoder import DEFAULT_ENCODER
    from convsight.style.gatys import GatysConfig

    if not kw.get("encoder"):
        kw["encoder"] = DEFAULT_ENCODER
    return GatysConfig(**kw)  # type: ignore[arg-type]


def _progress(enabled: bool):  # noqa: ANN202
    """A rich progress bar on stderr and the callback that advances it (None when disabled)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    if not enabled:
        return None, None
    bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                   TimeRemainingColumn(), console=err_console, transient=True)
    task = bar.add_task("optimising", total=1)

    def callback(step: int, total: int, terms: dict[str, float]) -> None:
        desc = f"J {terms['total']:.4f}  style {terms['style']:.4f}  content {terms['content']:.4f}"
        if terms["tv"]:
            desc += f"  tv {terms['tv']:.4f}"
        bar.update(task, completed=step, total=total, description=desc)

    return bar, callback


def _save_frames(frames: list, folder: Path, prefix: str = "frame") -> None:
    from convsight.io.images import save_image

    folder.mkdir(parents=True, exist_ok=True)
    for step, img in frames:
        save_image(img, folder / f"{prefix}_{step:05d}.png")


@app.command("run")
def run_cmd(
    content: str = typer.Argument(..., help=f"Content image: {_IMAGES}."),
    style: list[str] = typer.Argument(..., help="Style image(s); several are blended (see --blend)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output image (.png, .jpg)."),
    alpha: float = ALPHA, size: int = SIZE, steps: int = STEPS, optimizer: str = OPTIMIZER, init: str = INIT,
    seed: int = SEED, tv: float = TV, colour: str = COLOUR,
    blend: str = typer.Option("", "--blend", help="Weights of several style images, e.g. 0.7,0.3."),
    levels: int = typer.Option(1, "--levels", help="Coarse-to-fine levels (each runs --steps)."),
    max_size: int = typer.Option(0, "--max-size", help="Largest side allowed (0 = from available memory)."),
    frames_every: int = typer.Option(0, "--frames-every", help="Save a frame every N evaluations."),
    frames_dir: Path | None = typer.Option(None, "--frames", help="Folder for frames (default: OUT_frames)."),
    encoder: str = ENCODER, weights: str = WEIGHTS, pooling: str = POOLING, input_norm: str = INPUT_NORM,
    precision: str = PRECISION, progress: bool = PROGRESS,
    fast: bool = typer.Option(False, "--fast", help="Reach a low loss in fewer evaluations: the loss sees clipped pixels, "
                              "a well-scaled first L-BFGS step, 15 evaluations at half size first (README: style benchmark)."),
    as_json: bool = JsonOption,
) -> None:
    """Stylise CONTENT with STYLE (Gatys et al.) and write OUT (``convsight.stylize`` from Python)."""
    from convsight.api.style import stylize
    from convsight.errors import ConfigError
    from convsight.io.images import save_image
    from convsight.precision import resolve_precision
    from convsight.style.offline import load_style_input

    try:
        weights_blend = tuple(float(b) for b in blend.split(",")) if blend else None
    except ValueError as e:
        raise ConfigError(f"--blend {blend!r}: expected comma-separated numbers") from e
    options = dict(optimizer=optimizer, init=init, tv_weight=tv, colour=colour, style_blend=weights_blend,
                   levels=levels, max_size=max_size, frames_every=frames_every, weights=weights, pooling=pooling,
                   input_norm=input_norm, precision=precision)
    if fast:
        from convsight.style.gatys import FAST_OPTIONS

        options.update(FAST_OPTIONS, levels=max(levels, int(FAST_OPTIONS["levels"])))  # type: ignore[call-overload]
    _config(alpha=alpha, size=size, steps=steps, seed=seed, encoder=encoder, **options)  # bad options fail before loading
    if encoder:
        options["encoder"] = encoder
    c = load_style_input(content)
    styles = [load_style_input(s) for s in style]
    bar, callback = _progress(progress and not as_json)

    def run():  # noqa: ANN202
        return stylize(c, styles, alpha=alpha, size=size, steps=steps, seed=seed, callback=callback, **options)

    if bar is not None:
        with bar:
            result = run()
    else:
        result = run()
    save_image(result.image, out)
    if result.frames:
        _save_frames(result.frames, frames_dir or out.with_name(out.stem + "_frames"))
    r = result.info
    last = {k: r[k] for k in ("total", "style", "content", "tv") if k in r}
    summary = {"output": str(out), "encoder": r["encoder"], "alpha": alpha, "size": r["size"],
               "precision": resolve_precision(precision, "cpu"),
               "evaluations": r["evaluations"], "time_s": round(r["time_s"], 2), **last}
    if as_json:
        print_json(summary)
    else:
        info(f"wrote {out} ({r['size'][1]}x{r['size'][0]}) in {r['time_s']:.1f} s; "
             f"J {last['total']:.4f} (style {last['style']:.4f}, content {last['content']:.4f}); {r['encoder']}")


@app.command("sweep")
def sweep_cmd(
    content: str = typer.Argument(..., help=f"Content image: {_IMAGES}."),
    style: str = typer.Argument(..., help="Style image (path or built-in name)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output grid image (.png, .jpg)."),
    alphas: str = typer.Option("0.001,0.01,0.1,0.5", "--alphas", help="Comma-separated alphas in [0, 1]."),
    cell: int = typer.Option(256, "--cell", help="Side of each grid cell in pixels."),
    size: int = SIZE, steps: int = STEPS, optimizer: str = OPTIMIZER, init: str = INIT, seed: int = SEED,
    tv: float = TV, colour: str = COLOUR, encoder: str = ENCODER, weights: str = WEIGHTS, pooling: str = POOLING,
    input_norm: str = INPUT_NORM, precision: str = PRECISION, progress: bool = PROGRESS, as_json: bool = JsonOption,
) -> None:
    """The "varying alpha" figure: content, style and one result per alpha in one labelled image."""
    from convsight.io.images import save_image
    from convsight.style.gatys import GatysStylizer
    from convsight.style.offline import load_style_input
    from convsight.style.sweep import alpha_sweep, parse_alphas

    values = parse_alphas(alphas)
    cfg = _config(alpha=values[0], size=size, steps=steps, optimizer=optimizer, init=init, seed=seed, tv_weight=tv,
                  colour=colour, encoder=encoder, weights=weights, pooling=pooling, input_norm=input_norm,
                  precision=precision)
    c, s = load_style_input(content), load_style_input(style)
    bar, callback = _progress(progress and not as_json)
    stylizer = GatysStylizer(s, cfg, callback=callback)
    if bar is not None:
        with bar:
            grid, results = alpha_sweep(stylizer, c, s, values, cell=cell)
    else:
        grid, results = alpha_sweep(stylizer, c, s, values, cell=cell)
    save_image(grid, out)
    rows = [{"alpha": a, "time_s": round(r.time_s, 2), **r.history[-1]} for a, r in zip(values, results)]
    if as_json:
        print_json({"output": str(out), "encoder": results[0].encoder, "results": rows})
    else:
        for row in rows:
            info(f"alpha {row['alpha']:g}: J {row['total']:.4f} (style {row['style']:.4f}, "
                 f"content {row['content']:.4f}) in {row['time_s']:.1f} s")
        info(f"wrote {out}; {results[0].encoder}")


# The feed-forward stylizer's commands (train-fast, fast) live in their own module.
from convsight.cli import style_fast  # noqa: E402

style_fast.register(app)

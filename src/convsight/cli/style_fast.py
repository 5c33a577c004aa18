"""``convsight style train-fast`` / ``convsight style fast``: the feed-forward stylizer (Johnson et al.).

Registered on the ``style`` sub-app by :func:`register`; heavy imports stay inside the commands.
"""

from __future__ import annotations

from pathlib import Path

import typer

from convsight.cli.common import JsonOption, info, print_json


def train_fast_cmd(
    style: str = typer.Argument(..., help="The style image (one per model), or a built-in: hubble, swirl, mosaic..."),
    content_dir: Path = typer.Option(..., "--content-dir", help="Folder of content images to train on."),
    out: Path = typer.Option(..., "--out", "-o", help="Model file (.safetensors) to write; rewritten at checkpoints."),
    steps: int = typer.Option(400, help="Optimisation steps (Adam)."),
    size: int = typer.Option(128, help="Side of the square training crops, pixels (multiple of 4)."),
    alpha: float = typer.Option(0.5, help="Content weight: J = (1-alpha) Jstyle + alpha Jcontent."),
    batch_size: int = typer.Option(4, "--batch-size", help="Crops per step."),
    seed: int = typer.Option(0, help="Random seed (initialisation and crops)."),
    lr: float = typer.Option(1e-3, help="Adam learning rate."),
    tv_weight: float = typer.Option(0.0, "--tv-weight", help="Total-variation smoothing weight."),
    style_size: int = typer.Option(256, "--style-size", help="Longer side of the style image for its Gram matrices."),
    channels: int = typer.Option(16, help="Network width (the paper: 32: a 4x larger file, ~2.5x slower steps)."),
    n_residual: int = typer.Option(5, "--residual-blocks", help="Residual blocks (the paper: 5)."),
    checkpoint_every: int = typer.Option(100, "--checkpoint-every", help="Rewrite --out every N steps (0: at end)."),
    encoder: str = typer.Option("mobilenet_v2", help="Loss network: mobilenet_v2 (ImageNet weights ship) or vgg19."),
    weights: str = typer.Option("imagenet", help="Encoder weights: imagenet, random, or a weights file."),
    as_json: bool = JsonOption,
) -> None:
    """Train a feed-forward network for one STYLE on the images in --content-dir (perceptual loss)."""
    from convsight.style.fast_train import FastTrainConfig, train_fast

    cfg = FastTrainConfig(
        steps=steps, batch_size=batch_size, size=size, style_size=style_size, alpha=alpha, tv_weight=tv_weight,
        lr=lr, seed=seed, checkpoint_every=checkpoint_every, channels=channels, n_residual=n_residual,
        encoder=encoder, weights=weights,
    )
    result = train_fast(style, content_dir, cfg, out=out, progress=not as_json)
    last = result.history[-1]
    summary = {"model": str(out), "steps": cfg.steps, "time_s": round(result.time_s, 2),
               "encoder": result.stylizer.info.encoder, **{k: v for k, v in last.items() if k != "step"}}
    if as_json:
        print_json(summary)
    else:
        info(f"trained {cfg.steps} steps in {result.time_s:.1f} s with {summary['encoder']}; "
             f"last loss {last['total']:.4g} (style {last['style']:.4g}, content {last['content']:.4g})")
        print(out)


def fast_cmd(
    model: str = typer.Argument(..., help="A model file from train-fast, or a shipped model's name (e.g. mosaic)."),
    content: Path = typer.Argument(..., help="The image to stylise."),
    out: Path = typer.Option(..., "--out", "-o", help="Output image (.png, .jpg ...)."),
    max_size: int = typer.Option(0, "--max-size", help="Shrink the content to this longer side first (0: keep)."),
) -> None:
    """Stylise CONTENT with a trained feed-forward MODEL: one forward pass."""
    import torch

    from convsight.errors import ConfigError
    from convsight.io.images import load_image_tensor, resize_long, save_image
    from convsight.style.fast import FastStylizer, resolve_model

    if max_size < 0:
        raise ConfigError(f"--max-size {max_size}: expected >= 0")
    stylizer = FastStylizer.load(resolve_model(model))
    image = load_image_tensor(content)
    if max_size and max(image.shape[-2:]) > max_size:
        image = resize_long(image, max_size)
    with torch.inference_mode():
        result = stylizer.stylize(image)
    save_image(result, out)
    print(out)


def register(app: typer.Typer) -> None:
    """Add ``train-fast`` and ``fast`` to the ``convsight style`` sub-app."""
    app.command("train-fast")(train_fast_cmd)
    app.command("fast")(fast_cmd)

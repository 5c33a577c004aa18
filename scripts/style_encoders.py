"""The encoder comparison picture for the README: Gatys transfer with each encoder available offline.

    .venv/bin/python scripts/style_encoders.py [-o docs/images/style_encoders.jpg] [--size 192] [--steps 150]

Rows: content/style pairs from the dependencies (chelsea + swirl, astronaut + mosaic). Columns:
content, style, VGG19 random init (seed 0, average pooling), MobileNetV2 ImageNet (shipped offline),
and VGG19 ImageNet only when its torchvision file is in the local torch hub cache (else that column is
left out and a line says so). Same alpha, seed, init (the content image) and L-BFGS budget for all.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path


from convsight.io.images import save_image
from convsight.style.encoder import build_encoder
from convsight.style.gatys import GatysConfig, GatysStylizer
from convsight.style.offline import load_style_input
from convsight.style.sweep import labelled_grid

PAIRS = (("chelsea", "swirl"), ("astronaut", "mosaic"))


def encoders() -> list[tuple[str, str, str]]:
    """(label, encoder name, weights) for every encoder this machine has."""
    import torchvision

    from convsight.weights import hub_cache_file

    found = [("VGG19 random init", "vgg19", "random"), ("MobileNetV2 ImageNet", "mobilenet_v2", "imagenet")]
    if hub_cache_file(torchvision.models.VGG19_Weights.IMAGENET1K_V1).is_file():
        found.append(("VGG19 ImageNet", "vgg19", "imagenet"))
    else:
        print("VGG19 ImageNet weights are not in the local torch hub cache: that column is left out")
    return found


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-o", "--out", type=Path, default=Path("docs/images/style_encoders.jpg"))
    ap.add_argument("--size", type=int, default=192)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--alpha", type=float, default=0.1)
    ap.add_argument("--cell", type=int, default=192)
    args = ap.parse_args(argv)
    encs = encoders()
    images, labels = [], []
    for content_name, style_name in PAIRS:
        content, style = load_style_input(content_name), load_style_input(style_name)
        images += [content, style]
        labels += [f"content: {content_name}", f"style: {style_name}"]
        for label, name, weights in encs:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                enc = build_encoder(name, weights)
                cfg = GatysConfig(alpha=args.alpha, size=args.size, steps=args.steps, encoder=name, weights=weights)
                t0 = time.perf_counter()
                out = GatysStylizer(style, cfg, encoder=enc).stylize(content)
            print(f"{content_name} + {style_name}, {label}: {time.perf_counter() - t0:.1f} s")
            images.append(out)
            labels.append(label)  # alpha, size and steps: in the README caption
    grid = labelled_grid(images, labels, columns=2 + len(encs), cell=args.cell)
    save_image(grid, args.out, quality=85)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

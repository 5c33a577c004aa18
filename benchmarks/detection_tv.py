"""torchvision's COCO detectors (``--arch tv:NAME``) beside convsight's own, timed on real photos in one run.

    .venv/bin/python benchmarks/detection_tv.py [--archs tv:A,tv:B] [--all] [--repeats 5] [--threads 2]

For each detector: where its weights came from (the torch cache's COCO file, else ``random``: the
same graph with random weights, so the timing holds and the detections mean nothing), its input
side, parameters, the forward pass per image on the seven photos that ship (median over photos of
the median of ``--repeats`` runs, BatchNorm folded as ``detect predict`` runs it), and the ratio to
the fastest row. Accuracy needs COCO's images with their weights: ``convsight detect eval
instances_val2017.json --arch tv:NAME`` on a machine that has both. Default rows: the two 320 px
mobile models and convsight's shipped SSD and the ImageNet detectors; ``--all`` adds the five
ResNet / VGG models (seconds per image here).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
from _machine import machine_line  # benchmarks/ is on sys.path when a script in it runs

from convsight.demo.photos import shipped_photos
from convsight.detection.engine import input_size
from convsight.detection.inference import load_for_inference, optimize_for_inference
from convsight.detection.tv import load_pretrained
from convsight.detection.tv_build import MODELS, PREFIX
from convsight.io.images import resize_image, to_tensor
from convsight.weights import WeightsUnavailable

LIGHT = ("tv:fasterrcnn_mobilenet_v3_large_320_fpn", "tv:ssdlite320_mobilenet_v3_large")
OURS = ("ssd", "imagenet_sliding", "imagenet_localize")


def _load(arch: str) -> tuple[torch.nn.Module, str]:
    """The detector and where its weights came from."""
    if not arch.startswith(PREFIX):
        model, _, path = load_for_inference(arch, "cpu")
        return model, path.name
    try:
        model, _, path = load_pretrained(arch)
        source = f"COCO ({path.name})"
    except WeightsUnavailable:
        model, _, _ = load_pretrained(arch, "random")
        source = "random (no COCO file in the torch cache)"
    return optimize_for_inference(model.eval()), source


def _ms(model: torch.nn.Module, image: torch.Tensor, repeats: int) -> float:
    times = []
    for _ in range(repeats + 1):  # the first call creates oneDNN's kernels: not timed
        t0 = time.perf_counter()
        model(image[None])
        times.append(1000 * (time.perf_counter() - t0))
    return statistics.median(times[1:])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--archs", default=None, help="comma-separated tv:NAME / convsight names (default: see the doc)")
    ap.add_argument("--all", action="store_true", help="all seven tv: detectors")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.archs:
        archs = args.archs.split(",")
    else:
        archs = [*(PREFIX + n for n in MODELS)] if args.all else list(LIGHT)
        archs += list(OURS)
    photos = [to_tensor(p) for p in shipped_photos().values()]
    rows = []
    with torch.no_grad():
        for arch in archs:
            model, source = _load(arch)
            params = sum(p.numel() for p in model.parameters())
            sides = getattr(model.config, "input_sides", None)  # as engine.predict sizes each photo
            side = f"{sides[0]}-{sides[1]}" if sides else "x".join(map(str, model.image_size))
            ms = [_ms(model, resize_image(im, input_size(model, im.shape[-2:])), args.repeats) for im in photos]
            rows.append((arch, source, side, params / 1e6, statistics.median(ms)))
            print(f"  {arch}: {rows[-1][-1]:.0f} ms/image", file=sys.stderr, flush=True)
    fastest = min(r[-1] for r in rows)
    print(machine_line("fp32"))  # inference runs in float32
    sides = sorted({f"{im.shape[-1]}x{im.shape[-2]}" for im in photos})
    print(f"the seven shipped photos ({', '.join(sides)}), forward pass only, median of {args.repeats} runs each, "
          f"{args.threads} threads\n")
    print(f"{'detector':45} | {'weights':45} | {'input':9} | {'params':>7} | {'ms/image':>8} | x fastest")
    print("-" * 45 + "-|-" + "-" * 45 + "-|-" + "-" * 9 + "-|-" + "-" * 7 + "-|-" + "-" * 8 + "-|-" + "-" * 9)
    for arch, source, side, params, ms in rows:
        print(f"{arch:45} | {source:45} | {side:9} | {params:6.1f}M | {ms:8.0f} | {ms / fastest:8.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The detection lineage side by side, measured in one run on one validation set and one image size.

    make bench                       # all benchmarks; or:
    .venv/bin/python benchmarks/detection.py [--weights-dir DIR] [--n-val 100] [--size 256] [--quick]

Table 1, per method: where its weights came from (shipped with convsight, a file in --weights-dir, or
untrained), mAP@0.5 and mAP@[.5:.95] on a freshly generated synthetic validation set (seed 777, never
used for training), median milliseconds per image (batch 1, postprocessing included) as
``convsight detect predict`` runs the model (``detection.inference.optimize_for_inference``: BatchNorm
folded, channels-last) and as loaded ("eager ms"), parameters. All methods are timed in turns, image
by image, so the machine's slow spells fall on all of them alike.
R-CNN and Fast R-CNN are timed with their selective-search proposals already cached (the papers'
convention); selective search's own cost per image is printed separately. R-CNN is timed twice with
the same weights: at its default 64 px warp (what convsight trains on a CPU) and at the paper's
227 px (224 here), where the ConvNet's work per proposal, the cost Fast R-CNN removes, is the paper's.

Table 2, ratios measured in the same run: Fast R-CNN vs R-CNN, convolutional vs naive sliding window,
YOLO vs Faster R-CNN, and our YOLO / SSD / Faster R-CNN against torchvision's ssdlite320_mobilenet_v3_large
and fasterrcnn_mobilenet_v3_large_320_fpn (random init, given the same optimisation) at 320 x 320,
ours in the configs of table 1. One more row bounds what YOLO can gain over Faster R-CNN on a shared
backbone: Faster R-CNN's time over YOLO's backbone alone (a YOLO whose head and decoding cost nothing).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from convsight.backbones.base import num_parameters
from convsight.detection import engine
from convsight.detection.build import build_detector
from convsight.detection.files import shipped_detector
from convsight.detection.inference import optimize_for_inference
from convsight.detection.proposals import ProposalCache, ProposalConfig
from convsight.detection.serialize import load_detector
from convsight.io.formats import read_dataset
from convsight.io.images import load_image_tensor, resize_image
from convsight.io.synth_writer import write_synthetic
from convsight.io.synthetic import SynthConfig

PAPER_WARP = 224  # R-CNN warps every proposal to 227 x 227 (Girshick et al. 2014)
ARCHS = ("localization", "sliding_window", "rcnn", "fast_rcnn", "faster_rcnn", "yolo", "ssd")
# arch -> (ms key, row label, config changes): the same weights timed again in another form.
VARIANTS = {
    # R-CNN's net on the paper's 227 px warps (224 here, a multiple of the stride); global pooling: the
    # weights fit any warp size.
    "rcnn": ("rcnn_paper", f"rcnn (warp {PAPER_WARP})", {"warp_size": PAPER_WARP}),
    # The naive form: crop, resize, classify each window.
    "sliding_window": ("sliding_window_naive", "sliding_window (naive)", {"mode": "naive"}),
}


def time_interleaved(fns: dict[str, Callable[[torch.Tensor], object]], images: list[torch.Tensor]) -> dict[str, float]:
    """Median ms of ``fn(image[None])`` per name, over ``images``, after one warm-up call each.

    The methods take turns image by image (not one method after the other), so a slow spell of this
    shared machine falls on all of them alike and the ratios between them stay comparable.
    """
    for fn in fns.values():
        fn(images[0][None])
    times: dict[str, list[float]] = {k: [] for k in fns}
    for im in images:
        for key, fn in fns.items():
            t0 = time.perf_counter()
            fn(im[None])
            times[key].append(time.perf_counter() - t0)
    return {k: 1000 * statistics.median(v) for k, v in times.items()}


def load_or_build(arch: str, num_classes: int, size: int, weights_dir: Path | None) -> tuple[torch.nn.Module, str]:
    """A trained detector when one exists (shipped, or ``weights_dir/ARCH.safetensors``), else untrained."""
    for path, origin in ((weights_dir / f"{arch}.safetensors" if weights_dir else None, "file"),
                         (shipped_detector(arch), "shipped")):
        if path is not None and path.is_file():
            model, _ = load_detector(path)
            return model, f"{origin}: {path.name}"
    return build_detector(arch, num_classes, image_size=(size, size)).eval(), "untrained"


def _runner(model: torch.nn.Module) -> Callable[[torch.Tensor], object]:
    return lambda x: model(resize_image(x[0], model.image_size)[None])


def _same_weights(model: torch.nn.Module, **changes: object) -> torch.nn.Module:
    """A new detector with ``model``'s weights and proposer, its config updated with ``changes``
    (the original is left as it is)."""
    copy = build_detector(model.arch, model.num_classes, dataclasses.replace(model.config, **changes)).eval()
    copy.load_state_dict(model.state_dict())
    if hasattr(model, "proposer"):
        copy.proposer = model.proposer
    return copy


@torch.no_grad()
def lineage_table(val_dir: Path, size: int, n_time: int, weights_dir: Path | None,
                  proposals: int) -> tuple[list[dict], dict[str, float], dict[str, object]]:
    """Rows of table 1, ms/image per method (``KEY`` optimised for inference, ``KEY_eager`` as
    loaded), and each method's config (for the 320 x 320 timings)."""
    ds = read_dataset(val_dir)
    images = [resize_image(load_image_tensor(a.path), (size, size)) for a in ds.images[:n_time]]
    rows, fns, configs = [], {}, {}
    cache = ProposalCache(ProposalConfig(max_proposals=proposals))
    t0 = time.perf_counter()
    for im in images:
        cache(im)
    ss_ms = 1000 * (time.perf_counter() - t0) / len(images)
    for arch in ARCHS:
        model, origin = load_or_build(arch, len(ds.class_names), size, weights_dir)
        configs[arch] = model.config
        if hasattr(model, "proposer"):
            # Same cached proposals, same count for R-CNN and Fast R-CNN: only the ConvNet work is timed.
            model.proposer = cache
            model.config = dataclasses.replace(model.config, max_proposals=proposals)
        fast = optimize_for_inference(_same_weights(model))  # as `detect predict` runs it
        trained = origin != "untrained"
        ev = engine.evaluate(fast, ds) if trained else None
        fns[arch], fns[f"{arch}_eager"] = _runner(fast), _runner(model)
        rows.append({"method": arch, "key": arch, "weights": origin, "input": "x".join(map(str, model.image_size)),
                     "mAP@0.5": f"{ev.metrics.map50:.3f}" if ev else "-", "mAP@[.5:.95]": f"{ev.metrics.map:.3f}" if ev else "-",
                     "params": f"{num_parameters(model) / 1e6:.2f}M"})
        if arch in VARIANTS:  # the same weights in another config, timed on the same images
            key, label, changes = VARIANTS[arch]
            variant = _same_weights(model, **changes)
            fns[key], fns[f"{key}_eager"] = _runner(optimize_for_inference(_same_weights(variant))), _runner(variant)
            rows.append({**rows[-1], "method": label, "key": key, "mAP@0.5": "-", "mAP@[.5:.95]": "-"})
        if arch == "yolo":  # YOLO's backbone alone: the most any head design could save on it
            fns["yolo_backbone"] = lambda x, m=fast: m.backbone(resize_image(x[0], m.image_size)[None])
    ms = time_interleaved(fns, images)
    for r in rows:
        key = r.pop("key")
        r["ms/image"], r["eager ms"] = f"{ms[key]:.1f}", f"{ms[f'{key}_eager']:.1f}"
    ms["selective_search"] = ss_ms
    return rows, ms, configs


@torch.no_grad()
def torchvision_table(num_classes: int, n_time: int, configs: dict[str, object]) -> dict[str, float]:
    """Latency at 320 x 320 of torchvision's mobile detectors and ours, all random init, all given the
    same inference optimisation (Conv+BN folded, channels-last).

    Ours keep the configs of table 1 (the shipped ones: YOLO's grids and anchors, SSD's default boxes,
    Faster R-CNN's feature stride), only the input size changes.
    """
    from torchvision.models.detection import (
        fasterrcnn_mobilenet_v3_large_320_fpn,
        ssdlite320_mobilenet_v3_large,
    )

    g = torch.Generator().manual_seed(0)
    images = [torch.rand(3, 320, 320, generator=g) for _ in range(n_time)]
    fns: dict[str, Callable[[torch.Tensor], object]] = {}
    for name, fn in (("tv_ssdlite320", ssdlite320_mobilenet_v3_large), ("tv_fasterrcnn_mbv3_320", fasterrcnn_mobilenet_v3_large_320_fpn)):
        m = optimize_for_inference(fn(weights=None, weights_backbone=None, num_classes=num_classes + 1))
        fns[name] = lambda x, m=m: m(list(x))
    # SSD's default 2 extra layers need sides divisible by 128; at 320 it keeps one (maps 40..5).
    for arch, extra in (("yolo", {}), ("ssd", {"extra_layers": 1}), ("faster_rcnn", {})):
        cfg = dataclasses.replace(configs[arch], image_size=(320, 320), **extra)
        m = optimize_for_inference(build_detector(arch, num_classes, cfg))
        fns[f"{arch}_320"] = lambda x, m=m: m(x)
    return time_interleaved(fns, images)


def print_table(rows: list[dict]) -> None:
    cols = list(rows[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols))
    for r in rows:
        print("  ".join(str(r[c]).ljust(widths[c]) for c in cols))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights-dir", type=Path, default=None, help="folder of ARCH.safetensors files to compare")
    ap.add_argument("--n-val", type=int, default=100, help="validation images (mAP)")
    ap.add_argument("--n-time", type=int, default=20, help="images timed per method")
    ap.add_argument("--size", type=int, default=256, help="input side for the lineage table")
    ap.add_argument("--proposals", type=int, default=2000, help="selective-search proposals per image for R-CNN and Fast R-CNN")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 20 val images, 4 timed")
    args = ap.parse_args(argv)
    if args.quick:
        args.n_val, args.n_time = 20, 4
    torch.set_num_threads(2)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        val = Path(tmp) / "val"
        write_synthetic(val, args.n_val, SynthConfig(image_size=(args.size, args.size)), seed=777, fmt="coco")
        num_classes = len(read_dataset(val).class_names)
        t0 = time.perf_counter()
        rows, ms, configs = lineage_table(val, args.size, args.n_time, args.weights_dir, args.proposals)
        ms.update(torchvision_table(num_classes, args.n_time, configs))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.n_val} synthetic validation images "
          f"(seed 777), {args.size}x{args.size}; median of {args.n_time} images at batch 1\n")
    print_table(rows)
    print(f"\nselective search (OpenCV, fast mode, <= {args.proposals} boxes): {ms['selective_search']:.0f} ms/image, "
          "computed once and shared by R-CNN and Fast R-CNN (not in their ms/image)\n")
    ratios = [
        (f"Fast R-CNN speed-up over R-CNN (R-CNN warping to {PAPER_WARP} px, as in the paper)",
         ms["rcnn_paper"] / ms["fast_rcnn"], ">= 25"),
        ("Fast R-CNN speed-up over R-CNN (R-CNN at its default 64 px warp)", ms["rcnn"] / ms["fast_rcnn"], "-"),
        ("conv sliding window speed-up over naive", ms["sliding_window_naive"] / ms["sliding_window"], ">= 10"),
        ("YOLO speed-up over Faster R-CNN", ms["faster_rcnn"] / ms["yolo"], ">= 4"),
        ("YOLO speed-up over Faster R-CNN, both eager (not optimised)", ms["faster_rcnn_eager"] / ms["yolo_eager"], "-"),
        ("Faster R-CNN time / YOLO's backbone alone (the ceiling for any YOLO head)", ms["faster_rcnn"] / ms["yolo_backbone"], "-"),
        ("torchvision ssdlite320 time / our YOLO time (320x320)", ms["tv_ssdlite320"] / ms["yolo_320"], ">= 1"),
        ("torchvision ssdlite320 time / our SSD time (320x320)", ms["tv_ssdlite320"] / ms["ssd_320"], "-"),
        ("torchvision fasterrcnn_mbv3_320 time / our Faster R-CNN (320x320)", ms["tv_fasterrcnn_mbv3_320"] / ms["faster_rcnn_320"], "-"),
    ]
    print_table([{"ratio": n, "measured": f"{v:.1f}x", "target": t} for n, v, t in ratios])
    print("\n320x320 ms/image: " + ", ".join(f"{k} {v:.1f}" for k, v in ms.items() if k.endswith("320")))
    print(f"(whole benchmark: {time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

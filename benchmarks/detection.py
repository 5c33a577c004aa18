"""The detection lineage side by side, measured in one run on one validation set and one image size.

    make bench                       # all benchmarks; or:
    .venv/bin/python benchmarks/detection.py [--train] [--work runs/lineage] [--weights-dir DIR]
                                             [--n-val 100] [--size 256] [--quick]

Table 1, per method: where its weights came from (shipped with convsight, a file in --weights-dir, or
trained by this run's --train), mAP@0.5 and mAP@[.5:.95] on a freshly generated synthetic validation
set (seed 777, never used for training; localization, which answers one box per image, on the same
number of fresh single-object scenes, seed 777 too), median milliseconds per image (batch 1,
postprocessing included) as ``convsight detect predict`` runs the model
(``detection.inference.optimize_for_inference``: BatchNorm folded, channels-last) and as loaded
("eager ms"), parameters, and training minutes (this run's, or those the shipped file records).
All methods are timed in turns, image by image, so the machine's slow spells fall on all of them alike.
R-CNN and Fast R-CNN are timed with their selective-search proposals already cached (the papers'
convention); selective search's own cost per image is printed separately. R-CNN is scored and timed
twice with the same weights: at the warp it was trained at (64 px, what a CPU trains) and at the
paper's 227 px (224 here), where the ConvNet's work per proposal, the cost Fast R-CNN removes, is the
paper's (its score there is that of weights trained at 64 px). The naive sliding window is timed
only: it gives the convolutional form's detections (checked here on the first images). Under the
methods, the trivial baseline: each class's mean box, scored by the class's share of the boxes,
fitted on 500 scenes of the training generator (seed 11).

--train first runs the four recipes of ``benchmarks/_lineage.py`` (localization, sliding window,
R-CNN, Fast R-CNN: data, pretraining, selective search, ``detect train``; two at a time, one core
each) under --work and scores what they wrote; without it the table uses the shipped files, which
are a --train run's (selective search boxes of the validation scenes are kept in --work/proposals
between runs). "train min" is each method's wall time on its one core (the shipped files record it).

Table 2, ratios measured in the same run: accuracy (mAP@0.5) from one step of the lineage to the
next; speed: Fast R-CNN vs R-CNN, convolutional vs naive sliding window, YOLO vs Faster R-CNN, and
our YOLO / SSD / Faster R-CNN against torchvision's ssdlite320_mobilenet_v3_large and
fasterrcnn_mobilenet_v3_large_320_fpn (random init, given the same optimisation) at 320 x 320, ours
in the configs of table 1. One more row bounds what YOLO can gain over Faster R-CNN on a shared
backbone: Faster R-CNN's time over YOLO's backbone alone (a YOLO whose head and decoding cost nothing).
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import _lineage  # benchmarks/_lineage.py: the four recipes and --train
import torch
from _machine import machine_line  # benchmarks/_machine.py, beside this script

from convsight.backbones.base import num_parameters
from convsight.detection import engine
from convsight.detection.build import build_detector
from convsight.detection.files import shipped_detector
from convsight.detection.inference import optimize_for_inference
from convsight.detection.localization import localization_metrics
from convsight.detection.metrics import evaluate_detections
from convsight.detection.prior import ClassPrior
from convsight.detection.proposals import ProposalCache, ProposalConfig
from convsight.detection.serialize import load_detector, read_detector_metadata
from convsight.io.annotations import AnnotationSet, ImageAnnotation
from convsight.io.images import load_image_tensor, resize_image
from convsight.io.synth_writer import write_synthetic
from convsight.io.synthetic import SynthConfig, render_scene
from convsight.structures import Target

PAPER_WARP = 224  # R-CNN warps every proposal to 227 x 227 (Girshick et al. 2014)
ARCHS = ("localization", "sliding_window", "rcnn", "fast_rcnn", "faster_rcnn", "yolo", "ssd")
# arch -> (ms key, row label, config changes, scored?): the same weights timed again in another form.
VARIANTS = {
    # R-CNN's net on the paper's 227 px warps (224 here, a multiple of the stride); global pooling lets
    # the weights run at any warp size, and it is scored there too, though weights trained on 64 px warps
    # see objects 3.5x larger than they learnt them (the README run: mAP@0.5 0.000).
    "rcnn": ("rcnn_paper", f"rcnn (warp {PAPER_WARP})", {"warp_size": PAPER_WARP}, True),
    # The naive form: crop, resize, classify each window; the same detections as the convolutional one.
    "sliding_window": ("sliding_window_naive", "sliding_window (naive)", {"mode": "naive"}, False),
}
TRAIN_MINUTES = re.compile(r"training (\d+(?:\.\d+)?) min")  # in a shipped file's "result" line


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


def find_weights(arch: str, weights_dir: Path | None) -> tuple[Path | None, str]:
    """``weights_dir/ARCH.safetensors`` when there is one, else the shipped file, else None."""
    for path, origin in ((weights_dir / f"{arch}.safetensors" if weights_dir else None, "file"),
                         (shipped_detector(arch), "shipped")):
        if path is not None and path.is_file():
            return path, f"{origin}: {path.name}"
    return None, "untrained"


def recorded_minutes(path: Path | None) -> float | None:
    """The training minutes a shipped file's metadata records ("... training 10.9 min ..."), if any."""
    if path is None:
        return None
    found = TRAIN_MINUTES.search(read_detector_metadata(path).get("result", ""))
    return float(found.group(1)) if found else None


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


def _scores(model: torch.nn.Module, ds: AnnotationSet, localization: bool) -> dict[str, str]:
    ev = engine.evaluate(model, ds, loss=False)
    out = {"mAP@0.5": f"{ev.metrics.map50:.3f}", "mAP@[.5:.95]": f"{ev.metrics.map:.3f}"}
    if localization:
        m = localization_metrics(ev.detections, [Target(a.boxes, a.labels) for a in ds.images])
        out["note"] = f"mean IoU {m.mean_iou:.3f}, class accuracy {m.accuracy:.3f}"
    return out


@torch.no_grad()
def lineage_table(val: AnnotationSet, single: AnnotationSet, size: int, n_time: int,
                  weights: dict[str, tuple[Path | None, str]], minutes: dict[str, float], proposals: int,
                  cache_dir: Path | None) -> tuple[list[dict], dict[str, float], dict[str, object]]:
    """Rows of table 1, ms/image per method (``KEY`` optimised for inference, ``KEY_eager`` as
    loaded), and each method's config (for the 320 x 320 timings)."""
    images = [resize_image(load_image_tensor(a.path), (size, size)) for a in val.images[:n_time]]
    rows, fns, configs = [], {}, {}
    t0 = time.perf_counter()
    for im in images:  # selective search's own cost, on a cache of this run only
        ProposalCache(ProposalConfig(max_proposals=proposals))(im)
    ss_ms = 1000 * (time.perf_counter() - t0) / len(images)
    cache = ProposalCache(ProposalConfig(max_proposals=proposals), folder=cache_dir)
    for arch in ARCHS:
        path, origin = weights[arch]
        model = load_detector(path)[0] if path else build_detector(arch, len(val.class_names), image_size=(size, size)).eval()
        configs[arch] = model.config
        if hasattr(model, "proposer"):
            # Same cached proposals, same count for R-CNN and Fast R-CNN: only the ConvNet work is timed.
            model.proposer = cache
            model.config = dataclasses.replace(model.config, max_proposals=proposals)
        fast = optimize_for_inference(_same_weights(model))  # as `detect predict` runs it
        fns[arch], fns[f"{arch}_eager"] = _runner(fast), _runner(model)
        row = {"method": arch, "key": arch, "scenes": "single-object" if arch == "localization" else "multi-object",
               "weights": origin, "mAP@0.5": "-", "mAP@[.5:.95]": "-",
               "params": f"{num_parameters(model) / 1e6:.2f}M",
               "train min": f"{minutes[arch]:.1f}" if arch in minutes else "-"}
        if path:
            row.update(_scores(fast, single if arch == "localization" else val, arch == "localization"))
        rows.append(row)
        if arch in VARIANTS:  # the same weights in another config, timed on the same images
            key, label, changes, scored = VARIANTS[arch]
            variant = _same_weights(model, **changes)
            fast_variant = optimize_for_inference(_same_weights(variant))
            fns[key], fns[f"{key}_eager"] = _runner(fast_variant), _runner(variant)
            rows.append({**row, "method": label, "key": key, "mAP@0.5": "-", "mAP@[.5:.95]": "-", "train min": "-"})
            rows[-1].pop("note", None)
            if path and scored:
                rows[-1].update(_scores(fast_variant, val, False))
            elif path:  # the naive form must find what the convolutional one finds
                same = all(torch.allclose(a.boxes, b.boxes, atol=1e-3) and torch.equal(a.labels, b.labels)
                           for a, b in zip(*(engine.predict(m, images[:2]) for m in (fast, fast_variant)), strict=True))
                rows[-1]["note"] = f"same detections as convolutional on 2 images: {same}"
        if arch == "yolo":  # YOLO's backbone alone: the most any head design could save on it
            fns["yolo_backbone"] = lambda x, m=fast: m.backbone(resize_image(x[0], m.image_size)[None])
    ms = time_interleaved(fns, images)
    for r in rows:
        key = r.pop("key")
        r["ms/image"], r["eager ms"] = f"{ms[key]:.1f}", f"{ms[f'{key}_eager']:.1f}"
    ms["selective_search"] = ss_ms
    return rows, ms, configs


def prior_rows(val: AnnotationSet, single: AnnotationSet, size: int, n: int = 500) -> list[dict]:
    """The trivial baseline, fitted on ``n`` scenes of the training generator (seed 11; only their boxes)."""
    rows = []
    for what, ds, single_object in (("multi-object", val, False), ("single-object", single, True)):
        cfg = SynthConfig(image_size=(size, size), single_object=single_object)
        train = AnnotationSet(tuple(ImageAnnotation(Path(f"{i}.jpg"), size, size, torch.from_numpy(s.boxes), torch.from_numpy(s.labels))
                                    for i, s in ((i, render_scene(cfg, 11, i)) for i in range(n))), cfg.classes)
        m = evaluate_detections(ClassPrior.fit(train).predict(ds), ds.images, len(ds.class_names), ds.class_names)
        rows.append({"method": "box-per-class prior (baseline)", "scenes": what, "weights": f"{n} training scenes",
                     "mAP@0.5": f"{m.map50:.3f}", "mAP@[.5:.95]": f"{m.map:.3f}", "params": "0", "train min": "-",
                     "ms/image": "0", "eager ms": "0"})
    return rows


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
    cols = list(dict.fromkeys(c for r in rows for c in r))
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols))
    for r in rows:
        print("  ".join(str(r.get(c, "")).ljust(widths[c]) for c in cols))


def accuracy_ratios(rows: list[dict]) -> list[tuple[str, str, str]]:
    """mAP@0.5 (and mAP@[.5:.95]) of one step of the lineage over the step before it."""
    got = {r["method"]: r for r in rows}

    def ratio(a: str, b: str) -> str:
        if "-" in (got[a]["mAP@0.5"], got[b]["mAP@0.5"]):
            return "-"
        return (f"{float(got[a]['mAP@0.5']) / float(got[b]['mAP@0.5']):.2f}x "
                f"(mAP@[.5:.95] {float(got[a]['mAP@[.5:.95]']) / float(got[b]['mAP@[.5:.95]']):.2f}x)")

    return [(f"{a} mAP / {b} mAP", ratio(a, b), "-") for a, b in
            (("fast_rcnn", "rcnn"), ("faster_rcnn", "fast_rcnn"), ("yolo", "faster_rcnn"), ("ssd", "faster_rcnn"))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", action="store_true", help="first train localization, sliding window, R-CNN and Fast R-CNN "
                    "with the recipes of benchmarks/_lineage.py (two tasks at a time; the README run: 35.6 min "
                    "with the table, 2 idle cores)")
    ap.add_argument("--work", type=Path, default=Path("runs/lineage"), help="--train's data and runs, and the proposal cache")
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
    print(machine_line("fp32"), flush=True)  # inference runs in float32
    torch.manual_seed(0)
    t_start = time.perf_counter()
    weights = {a: find_weights(a, args.weights_dir) for a in ARCHS}
    minutes = {a: m for a in ARCHS if (m := recorded_minutes(weights[a][0])) is not None}
    prep: dict[str, float] = {}
    if args.train:
        log = lambda m: print(f"[{(time.perf_counter() - t_start) / 60:.1f} min] {m}", file=sys.stderr, flush=True)
        trained, train_minutes, prep = _lineage.train_lineage(args.work, log)
        weights.update({a: (p, f"trained: {args.work / 'train' / a}") for a, p in trained.items()})
        minutes.update(train_minutes)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = SynthConfig(image_size=(args.size, args.size))
        val = write_synthetic(Path(tmp) / "val", args.n_val, cfg, seed=777, fmt="coco")
        single = write_synthetic(Path(tmp) / "single", args.n_val, dataclasses.replace(cfg, single_object=True),
                                 seed=777, fmt="coco")
        cache_dir = args.work / "proposals"
        ss_fill = _lineage.fill_proposals(Path(tmp) / "val", cache_dir, args.size)  # two processes; cached between runs
        t0 = time.perf_counter()
        rows, ms, configs = lineage_table(val, single, args.size, args.n_time, weights, minutes, args.proposals, cache_dir)
        rows += prior_rows(val, single, args.size)
        ms.update(torchvision_table(len(val.class_names), args.n_time, configs))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.n_val} synthetic validation images "
          f"(seed 777), {args.size}x{args.size}; median of {args.n_time} images at batch 1\n")
    print_table(rows)
    print(f"\nselective search (OpenCV, fast mode, <= {args.proposals} boxes): {ms['selective_search']:.0f} ms/image, "
          "computed once and shared by R-CNN and Fast R-CNN (not in their ms/image); for the validation scenes, "
          f"two processes: {ss_fill:.0f} s")
    if prep:
        print("--train's shared preparation (minutes): " + ", ".join(f"{k} {v:.1f}" for k, v in prep.items())
              + "; R-CNN and Fast R-CNN train on the cached proposals")
    print()
    ratios = [
        *accuracy_ratios(rows),
        (f"Fast R-CNN speed-up over R-CNN (R-CNN warping to {PAPER_WARP} px, as in the paper)",
         f"{ms['rcnn_paper'] / ms['fast_rcnn']:.1f}x", ">= 25"),
        ("Fast R-CNN speed-up over R-CNN (R-CNN at its trained 64 px warp)", f"{ms['rcnn'] / ms['fast_rcnn']:.1f}x", "-"),
        ("conv sliding window speed-up over naive", f"{ms['sliding_window_naive'] / ms['sliding_window']:.1f}x", ">= 10"),
        ("YOLO speed-up over Faster R-CNN", f"{ms['faster_rcnn'] / ms['yolo']:.1f}x", ">= 4"),
        ("YOLO speed-up over Faster R-CNN, both eager (not optimised)", f"{ms['faster_rcnn_eager'] / ms['yolo_eager']:.1f}x", "-"),
        ("Faster R-CNN time / YOLO's backbone alone (the ceiling for any YOLO head)", f"{ms['faster_rcnn'] / ms['yolo_backbone']:.1f}x", "-"),
        ("torchvision ssdlite320 time / our YOLO time (320x320)", f"{ms['tv_ssdlite320'] / ms['yolo_320']:.1f}x", ">= 1"),
        ("torchvision ssdlite320 time / our SSD time (320x320)", f"{ms['tv_ssdlite320'] / ms['ssd_320']:.1f}x", "-"),
        ("torchvision fasterrcnn_mbv3_320 time / our Faster R-CNN (320x320)", f"{ms['tv_fasterrcnn_mbv3_320'] / ms['faster_rcnn_320']:.1f}x", "-"),
    ]
    print_table([{"ratio": n, "measured": v, "target": t} for n, v, t in ratios])
    print("\n320x320 ms/image: " + ", ".join(f"{k} {v:.1f}" for k, v in ms.items() if k.endswith("320")))
    print(f"(table: {time.perf_counter() - t0:.0f} s; whole benchmark{' with --train' if args.train else ''}: "
          f"{(time.perf_counter() - t_start) / 60:.1f} min)")
    if args.train:
        print("\nrecipes:\n" + "\n".join(_lineage.commands(args.work)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

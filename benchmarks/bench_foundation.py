"""Foundation speed, measured side by side in one run: each convsight path against the library users
would otherwise reach for. Prints a table of times and ratios (convsight / reference; < 1 is faster).

    make bench            # or: .venv/bin/python benchmarks/bench_foundation.py [--quick]

Rows: COCO evaluation vs pycocotools' COCOeval (evaluate+accumulate+summarize, on the same files);
class-wise NMS with thresholds/top-k vs bare torchvision.ops.batched_nms; safe image loading (EXIF,
bomb and truncation checks) vs a bare PIL open+convert; IoU vs torchvision.ops.box_iou.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torchvision.ops as tv_ops
from PIL import Image

from convsight.detection.metrics import evaluate_detections
from convsight.io.annotations import AnnotationSet, ImageAnnotation
from convsight.io.coco import detections_to_coco_results, to_coco_dict
from convsight.io.images import load_image
from convsight.ops.boxes import box_iou
from convsight.ops.nms import batched_nms_topk
from convsight.structures import Detections
from _machine import machine_line  # benchmarks/_machine.py, beside this script


def timeit(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``repeats`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def problem(n_images: int, n_classes: int, seed: int = 0, size: int = 640) -> tuple[AnnotationSet, list[Detections]]:
    """Ground truth plus jittered/missed/false detections, like a mediocre detector's output."""
    rng = np.random.default_rng(seed)
    gts, preds = [], []
    for i in range(n_images):
        k = int(rng.integers(0, 15))
        side = np.exp(rng.uniform(np.log(8), np.log(300), k))
        ar = np.exp(rng.uniform(-0.5, 0.5, k))
        w, h = side * ar, side / ar
        x1, y1 = rng.uniform(0, size - w), rng.uniform(0, size - h)
        boxes = np.stack([x1, y1, x1 + w, y1 + h], 1)
        labels = rng.integers(0, n_classes, k)
        gts.append(ImageAnnotation(f"im{i}.jpg", size, size, torch.tensor(boxes, dtype=torch.float32), torch.tensor(labels)))
        nf = int(rng.integers(0, 30))
        fx, fy = rng.uniform(0, size - 100, nf), rng.uniform(0, size - 100, nf)
        fb = np.stack([fx, fy, fx + rng.uniform(5, 100, nf), fy + rng.uniform(5, 100, nf)], 1)
        jb = boxes + rng.normal(0, 0.1, boxes.shape) * np.repeat(np.stack([w, h], 1), 2, 1)
        b = np.concatenate([jb, fb]).clip(0, size)
        lab = np.concatenate([labels, rng.integers(0, n_classes, nf)])
        ok = (b[:, 2] > b[:, 0] + 1) & (b[:, 3] > b[:, 1] + 1)
        preds.append(Detections(torch.tensor(b[ok], dtype=torch.float32), torch.tensor(rng.random(ok.sum()), dtype=torch.float32),
                                torch.tensor(lab[ok])))
    return AnnotationSet(tuple(gts), tuple(f"c{k}" for k in range(n_classes))), preds


def bench_evaluator(n_images: int, repeats: int) -> tuple[str, float, float, str]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    ds, preds = problem(n_images, 20)
    gt_dict = to_coco_dict(ds, ".")
    results = detections_to_coco_results(preds, [i + 1 for i in range(len(ds))], [k + 1 for k in range(ds.num_classes)])
    out: dict[str, float] = {}

    def reference() -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            gt = COCO()
            gt.dataset = gt_dict
            gt.createIndex()
            e = COCOeval(gt, gt.loadRes(results), "bbox")
            e.evaluate()
            e.accumulate()
            e.summarize()
        out["ref"] = e.stats[0]

    def ours() -> None:
        out["ours"] = evaluate_detections(preds, ds.images, ds.num_classes, ds.class_names).map

    t_ours, t_ref = timeit(ours, repeats), timeit(reference, repeats)
    n_det = sum(len(p) for p in preds)
    return (f"COCO mAP, {n_images} images, 20 classes, {n_det} detections", t_ours, t_ref,
            f"pycocotools COCOeval (mAP {out['ref']:.4f} vs ours {out['ours']:.4f})")


def bench_nms(repeats: int) -> tuple[str, float, float, str]:
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(20000, 2, generator=g) * 600
    boxes = torch.cat([xy, xy + 10 + torch.rand(20000, 2, generator=g) * 90], 1)
    scores, labels = torch.rand(20000, generator=g), torch.randint(0, 20, (20000,), generator=g)
    ours = timeit(lambda: batched_nms_topk(boxes, scores, labels, 0.5, score_threshold=0.05, topk=300, pre_nms_topk=5000), repeats)
    keep = scores > 0.05
    top = scores[keep].topk(5000).indices
    b, s, lab = boxes[keep][top], scores[keep][top], labels[keep][top]
    ref = timeit(lambda: tv_ops.batched_nms(b, s, lab, 0.5)[:300], repeats)
    return ("class-wise NMS, 20000 boxes, 20 classes", ours, ref, "torchvision batched_nms on pre-filtered input")


def bench_load(repeats: int) -> tuple[str, float, float, str]:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "photo.jpg"
        rng = np.random.default_rng(0)
        Image.fromarray(rng.integers(0, 255, (1080, 1920, 3), dtype=np.uint8)).save(path, quality=90)

        def reference() -> np.ndarray:
            with Image.open(path) as im:
                return np.asarray(im.convert("RGB"))

        ours = timeit(lambda: load_image(path), repeats)
        ref = timeit(reference, repeats)
    return ("load a 1920x1080 JPEG (EXIF, size and truncation checks)", ours, ref, "PIL open + convert('RGB')")


def bench_iou(repeats: int) -> tuple[str, float, float, str]:
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(3000, 2, generator=g) * 600
    a = torch.cat([xy, xy + 1 + torch.rand(3000, 2, generator=g) * 90], 1)
    b = a[torch.randperm(3000, generator=g)[:2000]] + 3
    return ("IoU matrix 3000 x 2000", timeit(lambda: box_iou(a, b), repeats), timeit(lambda: tv_ops.box_iou(a, b), repeats),
            "torchvision.ops.box_iou")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller problems, fewer repeats (a smoke run)")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    print(machine_line("fp32"))
    reps = 2 if args.quick else 5
    rows = [bench_evaluator(100 if args.quick else 1000, 1 if args.quick else 3), bench_nms(reps), bench_load(3 * reps), bench_iou(reps)]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of repeats after a warm-up\n")
    w = max(len(r[0]) for r in rows)
    print(f"{'task':<{w}}  {'convsight':>10}  {'reference':>10}  {'ratio':>6}  reference")
    for name, ours, ref, what in rows:
        print(f"{name:<{w}}  {ours * 1e3:>8.1f}ms  {ref * 1e3:>8.1f}ms  {ours / ref:>6.2f}  {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The score each shipped detector draws at by default: its best F1 on fresh scenes.

    .venv/bin/python scripts/display_thresholds.py [--n 300] [--seed 4242] [--size 256] [FILE ...]

``detect predict`` and the web page show detections above ``DISPLAY_THRESHOLD[arch]``
(``detection/defaults.py``). For each file (default: the shipped ones) this prints, for every score
threshold on a grid of 0.05, the precision, recall and F1 of the detections above it on ``--n`` fresh
scenes (a detection is right when it has the class of a ground-truth box it overlaps at IoU >= 0.5,
each box matched once, best scores first), and the threshold of best F1: the value to put there.
Localization, which answers one box per image, is scored on single-object scenes of the same seed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import torch
from torchvision.ops import box_iou

from convsight.detection import engine
from convsight.detection.files import shipped_detector, shipped_detectors
from convsight.detection.serialize import load_detector
from convsight.io.images import load_image
from convsight.io.synth_writer import write_synthetic
from convsight.io.synthetic import SynthConfig

GRID = [round(0.05 * k, 2) for k in range(1, 20)]


def matches(dets, image) -> tuple[torch.Tensor, int]:  # type: ignore[no-untyped-def]
    """Per detection (best first) whether it is right, and the number of ground-truth boxes."""
    order = dets.scores.argsort(descending=True)
    boxes, labels = dets.boxes[order], dets.labels[order]
    taken = torch.zeros(len(image.boxes), dtype=torch.bool)
    right = torch.zeros(len(boxes), dtype=torch.bool)
    if len(boxes) and len(image.boxes):
        iou = box_iou(boxes, image.boxes)
        for i in range(len(boxes)):
            ok = (iou[i] >= 0.5) & (image.labels == labels[i]) & ~taken
            if ok.any():
                j = int(torch.where(ok, iou[i], torch.tensor(-1.0)).argmax())
                taken[j] = right[i] = True
    return right, len(image.boxes)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="*", type=Path)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--seed", type=int, default=4242)
    ap.add_argument("--size", type=int, default=256)
    args = ap.parse_args()
    files = args.files or [p for a in shipped_detectors() if (p := shipped_detector(a)) is not None]
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        cfg = SynthConfig(image_size=(args.size, args.size))
        scenes = {single: write_synthetic(Path(tmp) / str(single), args.n, replace(cfg, single_object=single), seed=args.seed)
                  for single in (False, True)}
        for path in files:
            model, _ = load_detector(path)
            data = scenes[model.arch == "localization"]
            dets = engine.predict(model, [load_image(im.path) for im in data.images], score_threshold=0.05)
            scores, right, total = [], [], 0
            for d, im in zip(dets, data.images, strict=True):
                ok, n = matches(d, im)
                scores.append(d.scores.sort(descending=True).values)
                right.append(ok)
                total += n
            s, r = torch.cat(scores), torch.cat(right)
            best = (0.0, 0.0)
            what = "single-object scenes" if model.arch == "localization" else "scenes"
            print(f"{path} ({model.arch}), {args.n} {what} at {args.size} px, seed {args.seed}: threshold precision recall F1")
            for t in GRID:
                keep = s >= t
                tp = int(r[keep].sum())
                p, rec = tp / max(int(keep.sum()), 1), tp / max(total, 1)
                f1 = 2 * p * rec / max(p + rec, 1e-9)
                best = max(best, (f1, t))
                print(f"  {t:.2f}  {p:.3f}  {rec:.3f}  {f1:.3f}")
            print(f"  best F1 {best[0]:.3f} at {best[1]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

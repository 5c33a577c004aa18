"""Transfer learning for detection: mAP after the same training time, frozen pretrained vs from scratch.

    make bench                       # all benchmarks; or:
    .venv/bin/python benchmarks/detection_transfer.py [--seconds 75] [--n-train 1500] [--precision auto] [--quick]

The lecture's YOLO/SSD recipe: take a backbone pretrained as a classifier, freeze it, train only the
detection heads (`convsight detect train --freeze-backbone --backbone-weights ...`). Every row trains
the same SSD head (the shipped SSD's default boxes), loss, data (synthetic scenes, seed 11) and
optimiser (AdamW, lr 2e-3, batch 16, --precision: `auto` = bf16 autocast where the CPU runs it natively) for the same wall-clock
seconds, then scores mAP on the detection benchmark's validation set (100 fresh scenes, seed 777).
Frozen rows do no backward pass through the backbone, so they also fit more steps into the time;
that is part of what freezing buys.

Rows: the tiny CPU backbone from scratch; the tiny backbone pretrained on synthetic crops
(`convsight detect pretrain`, its own time printed), frozen, then fine-tuned with everything (the
shipped detectors' recipe); MobileNetV2 from scratch; MobileNetV2 with ImageNet weights (the offline
copy of torchvision's), frozen.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from convsight.backbones.base import num_parameters
from convsight.backbones.pretrain import PretrainConfig, pretrain_backbone
from convsight.detection import engine
from convsight.detection.build import build_detector
from convsight.io.synth_writer import write_crops, write_synthetic
from convsight.io.synthetic import SynthConfig
from convsight.io.torch_data import DetectionDataset, collate_detection
from convsight.precision import resolve_precision
from _machine import machine_line  # benchmarks/_machine.py, beside this script
from detection import print_table  # benchmarks/detection.py, beside this script

SIZE = 256
S_MIN, S_MAX = 0.06, 0.6  # the shipped SSD's default-box scales: the paper's 0.1-0.9 miss small objects


def train_for(model: torch.nn.Module, data: DetectionDataset, seconds: float, lr: float = 2e-3, batch: int = 16,
              precision: str = "auto") -> int:
    """AdamW steps on ``data`` until ``seconds`` of wall time have passed; returns the number of steps."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr)
    loader = DataLoader(data, batch_size=batch, shuffle=True, collate_fn=collate_detection,
                        generator=torch.Generator().manual_seed(0))
    bf16 = resolve_precision(precision, "cpu") == "bf16"  # auto: only where the CPU runs bf16 natively
    model.train()
    steps, t0 = 0, time.perf_counter()
    while True:
        for images, targets in loader:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = torch.stack([v.float() for v in model(images, targets).losses.values()]).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps += 1
            if time.perf_counter() - t0 >= seconds:
                return steps


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=75.0, help="training wall time per row")
    ap.add_argument("--n-train", type=int, default=1500, help="training scenes")
    ap.add_argument("--n-val", type=int, default=100, help="validation scenes (seed 777)")
    ap.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    ap.add_argument("--quick", action="store_true", help="a smoke run: 5 s per row, 64 scenes")
    args = ap.parse_args(argv)
    if args.quick:
        args.seconds, args.n_train, args.n_val = 5.0, 64, 16
    torch.set_num_threads(2)
    print(machine_line(args.precision), flush=True)
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = SynthConfig(image_size=(SIZE, SIZE))
        train = write_synthetic(Path(tmp) / "train", args.n_train, cfg, seed=11, fmt="coco")
        val = write_synthetic(Path(tmp) / "val", args.n_val, cfg, seed=777, fmt="coco")
        t0 = time.perf_counter()
        crop_scenes, crop_epochs = (60, 1) if args.quick else (600, 8)  # `convsight detect pretrain`'s recipe
        write_crops(Path(tmp) / "crops", crop_scenes, cfg, seed=21, crop_size=48)
        pre = pretrain_backbone(Path(tmp) / "crops", Path(tmp) / "pretrain",
                                PretrainConfig(image_size=48, epochs=crop_epochs, batch_size=32, progress=False))
        pretrain_s = time.perf_counter() - t0
        rows_spec = [
            ("tiny", "random", False),
            ("tiny", str(pre.weights), True),
            ("tiny", str(pre.weights), False),
            ("mobilenet_v2", "random", False),
            ("mobilenet_v2", "imagenet", True),
        ]
        rows = []
        data = DetectionDataset(train, size=(SIZE, SIZE), hflip=0.5, seed=0)
        for backbone, weights, frozen in rows_spec:
            torch.manual_seed(0)
            model = build_detector("ssd", len(train.class_names), image_size=(SIZE, SIZE), backbone=backbone,
                                   backbone_weights=None if weights == "random" else weights, freeze_backbone=frozen,
                                   s_min=S_MIN, s_max=S_MAX)
            steps = train_for(model, data, args.seconds, precision=args.precision)
            with torch.no_grad():
                ev = engine.evaluate(model, val, batch_size=16)
            init = {"random": "from scratch", "imagenet": "ImageNet"}.get(weights, "synthetic crops")
            rows.append({"backbone": backbone, "init": init,
                         "trained": "heads only (frozen)" if frozen else "everything",
                         "trainable": f"{sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6:.2f}M",
                         "params": f"{num_parameters(model) / 1e6:.2f}M", "steps": steps,
                         "mAP@0.5": f"{ev.metrics.map50:.3f}", "mAP@[.5:.95]": f"{ev.metrics.map:.3f}"})
            print(f"  {backbone} / {init}: {steps} steps, mAP@0.5 {ev.metrics.map50:.3f}", file=sys.stderr, flush=True)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; SSD at {SIZE}x{SIZE}, {args.seconds:.0f} s of "
          f"training per row on {args.n_train} synthetic scenes (seed 11), batch 16; mAP on {args.n_val} fresh scenes (seed 777)\n")
    print_table(rows)
    print(f"\ncrop pretraining of the tiny backbone ({crop_scenes} scenes' crops, {crop_epochs} epochs): {pretrain_s:.0f} s, "
          f"crop accuracy {pre.val_accuracy:.3f}; not counted in its row's seconds")
    print(f"(whole benchmark: {time.perf_counter() - t_all:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

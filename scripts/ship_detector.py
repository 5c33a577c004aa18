"""Copy a trained detector file into the package as a shipped default, in float16.

    python scripts/ship_detector.py runs/train/yolo/detector.safetensors --command "convsight detect train ..."

float16 halves the file (the model is evaluated in float32 after loading: ``load_state_dict`` casts);
the reproduce command and the source file's training record go into the metadata, so
``convsight detect info`` style tooling and the README can show where each shipped file came from.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from convsight.detection.files import SHIPPED_DIR
from convsight.detection.serialize import read_detector_metadata
from convsight.weights import read_weights, save_state_dict

ASSETS = Path(__file__).resolve().parents[1] / "src" / "convsight" / SHIPPED_DIR


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", type=Path, help="a detector file written by `convsight detect train`")
    ap.add_argument("--command", action="append", required=True,
                    help="the command(s) that reproduce the file, in order (repeat the flag)")
    ap.add_argument("--result", default="", help="what it measured, e.g. 'val mAP@0.5 0.865 (200 scenes, seed 2)'")
    args = ap.parse_args()
    meta = read_detector_metadata(args.source)
    state, _ = read_weights(args.source)
    half = {k: (v.half() if v.is_floating_point() else v) for k, v in state.items()}
    # The shipped file must not point at local files: its weights are all in it (no backbone file), and
    # R-CNN / Fast R-CNN keep selective-search boxes in memory unless a user names a cache folder.
    cfg = json.loads(meta["config"])
    cfg["backbone_weights"] = None
    if "proposal_cache" in cfg:
        cfg["proposal_cache"] = None
    meta = {**meta, "config": json.dumps(cfg), "reproduce": json.dumps(args.command),
            "result": args.result, "dtype": "float16"}
    dest = ASSETS / f"{meta['arch']}.safetensors"
    save_state_dict(half, dest, meta)
    print(f"{dest} ({dest.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()

"""What ``convsight detect predict`` leaves in its output folder, and where shipped detectors live.

Output folder: one annotated copy of each image (``<name>.jpg`` with boxes drawn), ``results.json``
(COCO results format: image ids 1..N in input order, category ids 1..C) and ``images.json``
(``{"images": [{"id", "file", "width", "height"}], "categories": [{"id", "name"}]}``), which together
with the images make a COCO ground-truth-like index, so ``convsight detect score`` can read them.
"""

from __future__ import annotations

import importlib.resources
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from convsight.detection.defaults import DEFAULT_ARCH
from convsight.io.atomic import atomic_dir, write_json
from convsight.io.coco import detections_to_coco_results
from convsight.io.images import save_image
from convsight.structures import Detections
from convsight.viz import draw_boxes

SHIPPED_DIR = "assets/detectors"  # inside the convsight package


def shipped_detector(arch: str) -> Path | None:
    """The detector weights file that ships with convsight for ``arch``, or None."""
    res = importlib.resources.files("convsight").joinpath(f"{SHIPPED_DIR}/{arch}.safetensors")
    return Path(str(res)) if res.is_file() else None


def shipped_detectors() -> list[str]:
    folder = importlib.resources.files("convsight").joinpath(SHIPPED_DIR)
    if not folder.is_dir():
        return []
    return sorted(p.name.removesuffix(".safetensors") for p in folder.iterdir() if p.name.endswith(".safetensors"))


def detector_file(weights: Path | None, arch: str | None) -> Path:
    """``weights`` when given, else the shipped file for ``arch`` (default :data:`DEFAULT_ARCH`);
    a :class:`ConfigError` naming what does ship when there is none."""
    from convsight.errors import ConfigError

    if weights is not None:
        return weights
    name = arch or DEFAULT_ARCH
    path = shipped_detector(name)
    if path is None:
        have = ", ".join(shipped_detectors()) or "none yet"
        raise ConfigError(f"no shipped weights for {name!r} (shipped: {have}); pass --weights FILE from `convsight detect train`")
    return path


def detections_doc(paths: Sequence[Path], detections: Sequence[Detections], class_names: Sequence[str]) -> dict[str, Any]:
    """Per-image detections as one JSON-ready document (``--json`` output)."""
    return {"images": [
        {"file": str(p), "detections": [
            {"box_xyxy": [round(v, 2) for v in box], "score": round(s, 4), "label": int(lab), "class": class_names[lab]}
            for box, s, lab in zip(d.boxes.tolist(), d.scores.tolist(), d.labels.tolist(), strict=True)]}
        for p, d in zip(paths, detections, strict=True)]}


def write_predictions(out_dir: str | os.PathLike[str], paths: Sequence[Path], images: Sequence[np.ndarray],
                      detections: Sequence[Detections], class_names: Sequence[str], overwrite: bool = False) -> Path:
    """Write annotated images, ``results.json`` and ``images.json`` into ``out_dir`` (all or nothing)."""
    out = Path(out_dir)
    names = _unique_names(paths)
    with atomic_dir(out, overwrite=overwrite) as tmp:
        entries = []
        for i, (p, name, im, d) in enumerate(zip(paths, names, images, detections, strict=True)):
            save_image(draw_boxes(im, d.boxes, d.labels, class_names, scores=d.scores), tmp / f"{name}.jpg")
            entries.append({"id": i + 1, "file": str(p), "width": int(im.shape[1]), "height": int(im.shape[0])})
        write_json(tmp / "results.json", detections_to_coco_results(detections, [e["id"] for e in entries],
                                                                    list(range(1, len(class_names) + 1))))
        write_json(tmp / "images.json", {"images": entries,
                                         "categories": [{"id": k + 1, "name": n} for k, n in enumerate(class_names)]})
    return out


def _unique_names(paths: Sequence[Path]) -> list[str]:
    """File stems, made unique (``a``, ``a_2``) when two inputs share one."""
    seen: dict[str, int] = {}
    out = []
    for p in paths:
        stem = p.stem
        seen[stem] = seen.get(stem, 0) + 1
        out.append(stem if seen[stem] == 1 else f"{stem}_{seen[stem]}")
    return out

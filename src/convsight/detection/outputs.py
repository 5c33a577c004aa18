"""What ``convsight detect predict`` leaves in its output folder.

Output folder: one annotated copy of each image (``<name>.jpg`` with boxes drawn), ``results.json``
(COCO results format: image ids 1..N in input order and category ids 1..C, or with ``predict --data``
the dataset's own ids) and ``images.json``
(``{"images": [{"id", "file", "width", "height"}], "categories": [{"id", "name"}]}``), which together
with the images make a COCO ground-truth-like index, so ``convsight detect score`` can read them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from convsight.io.atomic import atomic_dir, write_json
from convsight.io.coco import detections_to_coco_results
from convsight.io.images import save_image
from convsight.structures import Detections
from convsight.viz import draw_boxes


def detection_records(d: Detections, class_names: Sequence[str]) -> list[dict[str, Any]]:
    """One image's detections as JSON-ready records ``{"box_xyxy", "score", "label", "class"}``."""
    return [{"box_xyxy": [round(v, 2) for v in box], "score": round(s, 4), "label": int(lab), "class": class_names[lab]}
            for box, s, lab in zip(d.boxes.tolist(), d.scores.tolist(), d.labels.tolist(), strict=True)]


def detections_doc(paths: Sequence[Path], detections: Sequence[Detections], class_names: Sequence[str]) -> dict[str, Any]:
    """Per-image detections as one JSON-ready document (``--json`` output)."""
    return {"images": [{"file": str(p), "detections": detection_records(d, class_names)}
                       for p, d in zip(paths, detections, strict=True)]}


def write_predictions(out_dir: str | os.PathLike[str], paths: Sequence[Path], images: Sequence[np.ndarray],
                      detections: Sequence[Detections], class_names: Sequence[str], overwrite: bool = False,
                      image_ids: Sequence[int] | None = None, category_ids: Sequence[int] | None = None) -> Path:
    """Write annotated images, ``results.json`` and ``images.json`` into ``out_dir`` (all or nothing).

    image_ids / category_ids: the ids ``results.json`` uses for image ``i`` and label ``k`` (a
    dataset's own, for ``predict --data``); default ``1..N`` and ``1..C``.
    """
    out = Path(out_dir)
    names = _unique_names(paths)
    image_ids = list(image_ids) if image_ids is not None else list(range(1, len(paths) + 1))
    category_ids = list(category_ids) if category_ids is not None else list(range(1, len(class_names) + 1))
    with atomic_dir(out, overwrite=overwrite) as tmp:
        entries = []
        for iid, p, name, im, d in zip(image_ids, paths, names, images, detections, strict=True):
            save_image(draw_boxes(im, d.boxes, d.labels, class_names, scores=d.scores), tmp / f"{name}.jpg")
            entries.append({"id": int(iid), "file": str(p), "width": int(im.shape[1]), "height": int(im.shape[0])})
        write_json(tmp / "results.json", detections_to_coco_results(detections, image_ids, category_ids))
        write_json(tmp / "images.json", {"images": entries,
                                         "categories": [{"id": int(c), "name": n} for c, n in zip(category_ids, class_names, strict=True)]})
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

"""Write synthetic data sets to disk: scene folders in COCO / VOC / YOLO, or class-folder crops.

A folder appears only once it is complete (built in a temporary sibling and renamed).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import torch

from convsight.io.annotations import AnnotationSet, ImageAnnotation
from convsight.io.atomic import atomic_dir
from convsight.io.class_names import write_class_names
from convsight.io.formats import write_dataset
from convsight.io.images import save_image
from convsight.io.synthetic import SynthConfig, background_windows, render_scene

BACKGROUND = "background"
Progress = Callable[[], None]


def write_synthetic(
    root: str | os.PathLike[str],
    n: int,
    cfg: SynthConfig = SynthConfig(),
    seed: int = 0,
    fmt: str = "coco",
    ext: str = "jpg",
    overwrite: bool = False,
    progress: Progress | None = None,
) -> AnnotationSet:
    """Render ``n`` scenes into ``root/images/`` and write their annotations in ``fmt``.

    Returns the annotations with paths under ``root``.
    """
    root = Path(root)
    names = []
    with atomic_dir(root, overwrite=overwrite) as tmp:
        images = []
        for i in range(n):
            scene = render_scene(cfg, seed, i)
            name = f"{i:06d}.{ext}"
            save_image(scene.image, tmp / "images" / name)
            h, w = scene.image.shape[:2]
            images.append(ImageAnnotation(tmp / "images" / name, w, h, torch.from_numpy(scene.boxes), torch.from_numpy(scene.labels)))
            names.append(name)
            if progress:
                progress()
        ds = AnnotationSet(images=tuple(images), class_names=cfg.classes)
        write_dataset(ds, tmp, fmt)
    return replace(ds, images=tuple(replace(im, path=root / "images" / nm) for im, nm in zip(ds.images, names, strict=True)))


def _square_crop(image: np.ndarray, box: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    """A square window around ``box`` with a little random margin and shift, resized to ``size``."""
    h, w = image.shape[:2]
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    side = max(box[2] - box[0], box[3] - box[1]) * rng.uniform(1.0, 1.25)
    cx += rng.uniform(-0.08, 0.08) * side
    cy += rng.uniform(-0.08, 0.08) * side
    x0, y0 = int(round(max(0, cx - side / 2))), int(round(max(0, cy - side / 2)))
    x1, y1 = int(round(min(w, cx + side / 2))), int(round(min(h, cy + side / 2)))
    return cv2.resize(image[y0:y1, x0:x1], (size, size), interpolation=cv2.INTER_AREA)


def write_crops(
    root: str | os.PathLike[str],
    n: int,
    cfg: SynthConfig = SynthConfig(),
    seed: int = 0,
    crop_size: int = 64,
    negatives_per_image: int = 2,
    ext: str = "png",
    overwrite: bool = False,
    progress: Progress | None = None,
) -> dict[str, int]:
    """Render ``n`` scenes and cut them into ``root/<class>/*.png`` crops plus ``root/background/``
    windows that overlap no object (IoU <= 0.1). ``root/classes.txt`` lists the classes, background last.

    Returns the number of crops per class.
    """
    root = Path(root)
    classes = (*cfg.classes, BACKGROUND)
    counts = dict.fromkeys(classes, 0)
    with atomic_dir(root, overwrite=overwrite) as tmp:
        for i in range(n):
            scene = render_scene(cfg, seed, i)
            rng = np.random.default_rng([seed, i, 1])
            h, w = scene.image.shape[:2]
            for k, (box, label) in enumerate(zip(scene.boxes, scene.labels, strict=True)):
                crop = _square_crop(scene.image, box, rng, crop_size)
                save_image(crop, tmp / classes[label] / f"{i:06d}_{k}.{ext}")
                counts[classes[label]] += 1
            for k, win in enumerate(background_windows(rng, scene.boxes, h, w, negatives_per_image, cfg.min_size)):
                x0, y0, x1, y1 = (int(v) for v in win)
                crop = cv2.resize(scene.image[y0:y1, x0:x1], (crop_size, crop_size), interpolation=cv2.INTER_AREA)
                save_image(crop, tmp / BACKGROUND / f"{i:06d}_bg{k}.{ext}")
                counts[BACKGROUND] += 1
            if progress:
                progress()
        for c in classes:
            (tmp / c).mkdir(exist_ok=True)  # every class has its folder, even if empty
        write_class_names(tmp, classes)
    return counts

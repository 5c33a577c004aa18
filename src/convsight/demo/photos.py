"""Demo stage: real objects in the seven real photos that ship inside convsight's dependencies, found by
the lecture's first two methods with the ImageNet classifier that ships (MobileNetV2): classification
with localization (class activation maps) and the convolutional sliding window. Offline, a few seconds."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from convsight.io.atomic import write_json
from convsight.report import Report, Section

# name -> where it comes from (all inside installed packages: scikit-image, scikit-learn, matplotlib)
PHOTOS = {"chelsea": "skimage", "coffee": "skimage", "astronaut": "skimage", "rocket": "skimage",
          "china": "sklearn", "flower": "sklearn", "grace_hopper": "matplotlib"}
ARCHS = (("imagenet_localize", "classification + localization (CAM)"),
         ("imagenet_sliding", "convolutional sliding window"))


def shipped_photos() -> dict[str, np.ndarray]:
    """name -> ``(H, W, 3)`` uint8 RGB, the seven photos of :data:`PHOTOS` (no download)."""
    import matplotlib

    from convsight.io.images import load_image
    from convsight.style.offline import builtin_image

    hopper = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    return {name: load_image(hopper) if name == "grace_hopper" else builtin_image(name) for name in PHOTOS}


def cached_tv_archs() -> list[str]:
    """torchvision's COCO detectors whose weights are in the local torch cache (never a download)."""
    from convsight.detection.tv_build import MODELS, PREFIX, coco_enum
    from convsight.weights import hub_cache_file

    return [PREFIX + name for name, spec in MODELS.items() if hub_cache_file(coco_enum(spec)).is_file()]


def photos_stage(report: Report, out: Path, seed: int) -> None:
    """Both ImageNet detectors, then every torchvision COCO detector whose weights are in the torch
    cache, on the seven photos: ``photos.png`` (a row per method) and ``photos.json``."""
    from convsight.detection import engine
    from convsight.detection.defaults import display_threshold
    from convsight.detection.inference import load_for_inference
    from convsight.io.images import save_image
    from convsight.viz import contact_sheet, draw_boxes

    del seed  # nothing random here: fixed photos, pretrained weights
    photos = shipped_photos()
    tiles, rows = [], []
    tv = cached_tv_archs()
    methods = [*ARCHS, *((arch, "torchvision, COCO weights from the torch cache") for arch in tv)]
    for arch, title in methods:
        model, names, _ = load_for_inference(arch, "cpu")
        threshold = display_threshold(arch)
        dets = engine.predict(model, list(photos.values()), batch_size=1, score_threshold=threshold)
        for (photo, image), d in zip(photos.items(), dets, strict=True):
            tiles.append(draw_boxes(image, d.boxes, d.labels, names, d.scores))
            found = [f"{names[int(k)]} {s:.2f}" for k, s in zip(d.labels.tolist(), d.scores.tolist(), strict=True)]
            rows.append({"photo": photo, "method": arch if arch.startswith("tv:") else arch.replace("_", "-"), "score shown from": threshold,
                         "found (best first)": ", ".join(found[:4]) + (" ..." if len(found) > 4 else "") or "nothing"})
    save_image(contact_sheet(tiles, columns=len(photos), cell=320), out / "photos.png")
    write_json(out / "photos.json", rows)
    report.add(Section(
        "Real objects in real photos",
        "The lecture's first two detectors, run with a real ImageNet classifier (MobileNetV2, torchvision's "
        "weights, shipped offline) on the seven photos inside scikit-image, scikit-learn and matplotlib. "
        "Classification with localization classifies the whole photo and boxes each top class with its "
        "class activation map (Zhou et al. 2016); the sliding window runs the classifier as a convolution over "
        "every 224-px window of an image pyramid and merges the windows of a class. ImageNet has 1000 classes "
        "and no person: on the astronaut the helmet and the shuttle model are what it can name. "
        "`convsight detect predict PHOTO --arch imagenet-localize` (or imagenet-sliding) does the same; the "
        "README measures both against hand-drawn boxes. " + (
            f"Then torchvision's COCO detectors found in the torch cache: {', '.join(tv)}." if tv else
            "torchvision's COCO detectors (`--arch tv:NAME`) join here when their weights are in the torch cache; "
            "none is on this machine."),
        images=[(report.rel(out / "photos.png"), "Rows, top to bottom: " + "; ".join(f"{a} ({t})" for a, t in methods))],
        table=rows,
    ))

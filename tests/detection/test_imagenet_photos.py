"""imagenet_localize / imagenet_sliding on the seven real photos, with the ImageNet classifier that ships.

The boxes are hand-drawn (tests/fixtures/photos/boxes.json, drawn by eye on a grid over each photo,
before any detector output was looked at for them); each photo lists the ImageNet classes that name
its object and the detectors the README says find it. ``convsight detect predict`` runs here as a user
runs it (the CLI, at the score it shows by default), and every claim is checked: a detection of a
right class overlapping the hand-drawn box at IoU >= 0.5.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from convsight.detection import engine
from convsight.detection.imagenet import load_pretrained
from convsight.detection.imagenet_groups import SUPER_CLASSES, imagenet_class_names
from convsight.ops.boxes import box_iou

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "photos" / "boxes.json"
GT: dict[str, dict[str, Any]] = json.loads(FIXTURE.read_text())["photos"]
ARCHS = ("imagenet_localize", "imagenet_sliding")
CLAIMS = [(arch, photo) for photo, f in GT.items() for arch in f["found_by"]]


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    from convsight.demo.photos import shipped_photos

    return shipped_photos()


@pytest.fixture(scope="module")
def predicted(photos, tmp_path_factory) -> dict[str, dict[str, list[dict[str, Any]]]]:  # type: ignore[no-untyped-def]
    """arch -> photo -> ``[{"class", "score", "box_xyxy"}]``, read from what ``convsight detect predict
    FOLDER --arch imagenet-...`` wrote (results.json + images.json), best first."""
    from PIL import Image

    from convsight.cli.app import main

    folder = tmp_path_factory.mktemp("photos")
    for name, image in photos.items():
        Image.fromarray(image).save(folder / f"{name}.png")
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for arch in ARCHS:
        dest = folder.parent / f"out_{arch}"
        assert main(["detect", "predict", str(folder), "--arch", arch.replace("_", "-"), "--out", str(dest)]) == 0
        meta = json.loads((dest / "images.json").read_text())
        files = {e["id"]: Path(e["file"]).stem for e in meta["images"]}
        names = {c["id"]: c["name"] for c in meta["categories"]}
        out[arch] = {name: [] for name in photos}
        for r in sorted(json.loads((dest / "results.json").read_text()), key=lambda r: -r["score"]):
            x, y, w, h = r["bbox"]  # COCO xywh
            out[arch][files[r["image_id"]]].append({"class": names[r["category_id"]], "score": r["score"],
                                                    "box_xyxy": [x, y, x + w, y + h]})
    return out


def _iou(a: list[float], b: list[float]) -> float:
    return float(box_iou(torch.tensor([a], dtype=torch.float64), torch.tensor([b], dtype=torch.float64))[0, 0])


def _found(dets: list[dict[str, Any]], photo: str) -> list[dict[str, Any]]:
    """The detections that find the photo's main object: a right class, IoU >= 0.5 with the hand-drawn box."""
    f = GT[photo]
    return [d for d in dets if d["class"] in f["imagenet_classes"] and _iou(d["box_xyxy"], f["box_xyxy"]) >= 0.5]


def test_the_hand_drawn_boxes_fit_their_photos_and_name_imagenet_classes(photos) -> None:  # type: ignore[no-untyped-def]
    names = imagenet_class_names()
    assert set(GT) == set(photos)
    for photo, f in GT.items():
        h, w = photos[photo].shape[:2]
        assert [h, w] == f["size_hw"], photo  # the photo the box was drawn on
        x1, y1, x2, y2 = f["box_xyxy"]
        assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h, photo
        members = {names[i] for i in SUPER_CLASSES[f["super_class"]]}
        assert set(f["imagenet_classes"]) <= members, photo


def test_the_engine_hands_these_detectors_each_photo_at_its_own_aspect() -> None:
    """What the numbers below rely on: squashed into a square, the photos lose the china pagoda (README)."""
    model, _, _ = load_pretrained("imagenet_sliding")
    assert hasattr(engine, "input_size"), "engine.predict must honour config.input_sides"
    for hw in ((427, 640), (600, 512), (300, 451)):
        h, w = engine.input_size(model, hw)
        assert abs((h / w) / (hw[0] / hw[1]) - 1) < 0.05, hw


def test_the_shipped_weights_are_torchvisions_classifier(photos) -> None:  # type: ignore[no-untyped-def]
    """Our backbone + linear layer give torchvision's MobileNetV2 logits: the weight mapping is right."""
    import torchvision

    from convsight.io.images import resize_image, to_tensor
    from convsight.weights import read_weights

    model, names, path = load_pretrained("imagenet_localize")
    reference = torchvision.models.mobilenet_v2()
    reference.load_state_dict(read_weights(path)[0])
    x = resize_image(to_tensor(photos["chelsea"]), (224, 224))[None]
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        ours = model.classifier(model.features(x).mean(dim=(2, 3)))
        theirs = reference.eval()((x - mean) / std)
    assert torch.allclose(ours, theirs, atol=1e-3)
    assert names[int(theirs.argmax())] in GT["chelsea"]["imagenet_classes"]  # the issue's "Egyptian cat"


@pytest.mark.parametrize("arch, photo", CLAIMS, ids=[f"{a}-{p}" for a, p in CLAIMS])
def test_predict_finds_what_the_readme_says(predicted, arch: str, photo: str) -> None:  # type: ignore[no-untyped-def]
    dets = predicted[arch][photo]
    assert _found(dets, photo), f"{arch} on {photo}: {[(d['class'], round(d['score'], 2)) for d in dets]}"


def test_the_issue_target_five_of_seven_photos(predicted) -> None:  # type: ignore[no-untyped-def]
    found = {arch: sorted(p for p in GT if _found(predicted[arch][p], p)) for arch in ARCHS}
    assert len(found["imagenet_sliding"]) >= 5, found
    for arch, photos_found in found.items():  # the fixture's claims are exactly what is found, no more
        assert photos_found == sorted(p for p, f in GT.items() if arch in f["found_by"]), (arch, photos_found)


def test_the_cam_box_follows_the_cat_across_the_canvas(photos) -> None:  # type: ignore[no-untyped-def]
    """The same cat pasted left, then right, on a grey canvas: the box moves with it."""
    import cv2

    model, names, _ = load_pretrained("imagenet_localize")
    cat = cv2.resize(photos["chelsea"], (330, 220), interpolation=cv2.INTER_AREA)
    boxes = []
    for x0 in (10, 260):
        canvas = np.full((260, 600, 3), 128, np.uint8)
        canvas[20:240, x0 : x0 + 330] = cat
        det = engine.predict(model, [canvas], score_threshold=0.2)[0]
        assert len(det) and names[int(det.labels[0])] in GT["chelsea"]["imagenet_classes"]
        box = det.boxes[0].tolist()
        assert _iou(box, [x0, 20, x0 + 330, 240]) >= 0.5, box
        boxes.append(box)
    shift = (boxes[1][0] + boxes[1][2] - boxes[0][0] - boxes[0][2]) / 2
    assert shift == pytest.approx(250, abs=25)


def test_super_classes_on_the_photos(photos) -> None:  # type: ignore[no-untyped-def]
    model, names, _ = load_pretrained("imagenet_localize", group=True)
    dets = engine.predict(model, [photos["chelsea"], photos["coffee"]], score_threshold=0.2)
    assert [names[int(d.labels[0])] for d in dets] == [GT["chelsea"]["super_class"], GT["coffee"]["super_class"]]
    for d, photo in zip(dets, ("chelsea", "coffee"), strict=True):
        assert _iou(d.boxes[0].tolist(), GT[photo]["box_xyxy"]) >= 0.5
        assert float(d.scores[0]) > 0.9  # the breeds' probabilities add up (Egyptian cat alone is ~0.7)

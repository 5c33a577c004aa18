"""The API's image inputs (convsight.api.images) and ``convsight.evaluate``'s three kinds of predictions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import convsight
from convsight.api.images import as_list, is_batch, to_array, to_float
from convsight.errors import DatasetError, ImageError
from convsight.io.annotations import AnnotationSet, ImageAnnotation
from convsight.structures import Detections

RGB = np.random.default_rng(0).integers(0, 256, (9, 7, 3), dtype=np.uint8)


# ------------------------------------------------------------------------------- images


def test_every_kind_becomes_the_same_rgb_array(tmp_path: Path) -> None:
    Image.fromarray(RGB).save(tmp_path / "a.png")
    kinds = [RGB, str(tmp_path / "a.png"), tmp_path / "a.png", Image.fromarray(RGB),
             torch.from_numpy(RGB).permute(2, 0, 1).float() / 255, torch.from_numpy(RGB).permute(2, 0, 1)]
    for kind in kinds:
        a = to_array(kind)
        assert a.dtype == np.uint8 and np.array_equal(a, RGB), type(kind)
        assert torch.allclose(to_float(kind), torch.from_numpy(RGB).permute(2, 0, 1).float() / 255, atol=1e-6)


def test_other_modes_and_layouts() -> None:
    grey = RGB[..., 0].copy()
    assert np.array_equal(to_array(grey), np.repeat(grey[..., None], 3, -1))
    rgba = Image.fromarray(np.dstack([RGB, np.zeros((9, 7), np.uint8)]), "RGBA")  # fully transparent
    assert (to_array(rgba) == 255).all()  # composited onto white, as load_image does
    assert np.array_equal(to_array(RGB[:, ::-1]), RGB[:, ::-1])  # negative strides
    assert to_array("chelsea").shape == (300, 451, 3)  # a built-in name when no such file exists


@pytest.mark.parametrize("bad, message", [
    (RGB.astype(np.float32), "must be uint8"),
    (np.zeros((4, 4, 2), np.uint8), r"shape \(H, W, 3\)"),
    (torch.zeros(4, 4, 3), r"shape \(3, H, W\)"),
    (torch.zeros(3, 4, 4, dtype=torch.int32), "float in"),
    (42, "expected an image path"),
    ("no_such_file.png", "file not found"),
])
def test_bad_inputs_say_what_was_expected(bad: object, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        to_array(bad)  # type: ignore[arg-type]


def test_batches() -> None:
    t = torch.zeros(2, 3, 4, 4)
    assert is_batch(t) and len(as_list(t)) == 2 and is_batch([RGB]) and not is_batch(RGB)
    assert as_list(RGB)[0] is RGB and not is_batch(t[0])


# ------------------------------------------------------------------------------- evaluate


def _dataset(tmp_path: Path) -> AnnotationSet:
    """Two images with known boxes, on disk as COCO (what `detect score` reads)."""
    from convsight.io.formats import read_dataset, write_dataset

    images = []
    for i, boxes in enumerate([[[10, 10, 50, 40], [60, 20, 90, 70]], [[5, 5, 30, 30]]]):
        Image.fromarray(np.zeros((100, 100, 3), np.uint8)).save(tmp_path / f"im{i}.png")
        images.append(ImageAnnotation(tmp_path / f"im{i}.png", 100, 100, torch.tensor(boxes, dtype=torch.float32),
                                      torch.tensor([0, 1][: len(boxes)])))
    write_dataset(AnnotationSet(tuple(images), ("cat", "dog")), tmp_path / "ds", "coco")
    return read_dataset(tmp_path / "ds")


def _records(ds: AnnotationSet, shift: float = 0.0) -> list[dict]:
    """The ground truth as COCO result records, in the shape of the COCO results format
    (https://cocodataset.org/#format-results: image_id, category_id, bbox [x, y, width, height], score)."""
    from convsight.io.coco import CocoIds

    ids = CocoIds.of(ds)
    return [{"image_id": ids.image_ids[i], "category_id": ids.category_ids[int(k)],
             "bbox": [x1 + shift, y1, x2 - x1, y2 - y1], "score": 0.9}
            for i, im in enumerate(ds.images) for (x1, y1, x2, y2), k in zip(im.boxes.tolist(), im.labels.tolist())]


def test_perfect_predictions_score_one_in_every_form(tmp_path: Path) -> None:
    ds = _dataset(tmp_path)
    records = _records(ds)
    (tmp_path / "results.json").write_text(json.dumps(records))
    per_image = [Detections(im.boxes, torch.full((len(im),), 0.9), im.labels) for im in ds.images]
    for preds in (tmp_path / "results.json", str(tmp_path / "results.json"), records, per_image):
        for gt in (ds, tmp_path / "ds"):
            m = convsight.evaluate(gt, preds)
            assert m.map == pytest.approx(1.0) and m.map50 == pytest.approx(1.0) and m.num_images == 2


def test_worse_predictions_score_lower_and_forms_agree(tmp_path: Path) -> None:
    ds = _dataset(tmp_path)
    shifted = _records(ds, shift=8.0)  # every box's IoU falls to 0.52-0.67: counted at 0.5, not at 0.75
    (tmp_path / "shifted.json").write_text(json.dumps(shifted))
    from_file = convsight.evaluate(ds, tmp_path / "shifted.json")
    from_list = convsight.evaluate(ds, shifted)
    assert from_file.map50 == pytest.approx(1.0) and from_file.map75 == pytest.approx(0.0)
    assert from_list.to_dict() == from_file.to_dict()


def test_results_are_matched_by_source_path(tmp_path: Path) -> None:
    from convsight.io.synth_writer import write_synthetic
    from convsight.io.synthetic import SynthConfig

    ds = write_synthetic(tmp_path / "val", 3, SynthConfig(image_size=(160, 160), min_objects=2, max_objects=3), seed=5)
    det = convsight.load_detector("yolo")
    paths = [im.path for im in ds.images]
    in_order = convsight.evaluate(tmp_path / "val", det.predict(paths, conf=0.01))
    assert in_order.map50 > 0.5  # the shipped detector on its own kind of scenes
    reversed_ = det.predict(paths[::-1], conf=0.01)
    assert convsight.evaluate(tmp_path / "val", reversed_).to_dict() == in_order.to_dict()
    by_position = convsight.evaluate(ds, [r.to_detections() for r in reversed_])  # no sources: the order counts
    assert by_position.map50 < in_order.map50
    with pytest.raises(DatasetError, match="1 prediction results for 3 ground-truth images"):
        convsight.evaluate(ds, [det.predict(np.zeros((100, 100, 3), np.uint8))])


def test_bad_records_are_dataset_errors(tmp_path: Path) -> None:
    ds = _dataset(tmp_path)
    good = _records(ds)[0]
    with pytest.raises(DatasetError, match=r"predictions\[1\]: missing key or unknown id"):
        convsight.evaluate(ds, [good, {**good, "image_id": 999}])
    with pytest.raises(DatasetError, match=r"predictions\[0\]: not a COCO result record"):
        convsight.evaluate(ds, [{**good, "bbox": [1, 2]}])
    with pytest.raises(DatasetError, match=r"predictions\[0\]: NaN"):
        convsight.evaluate(ds, [{**good, "score": float("nan")}])

"""The trivial baseline of the lineage table: a box per class, scored by the class's share."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from convsight.detection.metrics import evaluate_detections
from convsight.detection.prior import ClassPrior
from convsight.errors import DatasetError
from convsight.io.annotations import AnnotationSet, ImageAnnotation


def _image(name: str, w: int, h: int, boxes: list[list[float]], labels: list[int], crowd: list[bool] | None = None):  # type: ignore[no-untyped-def]
    return ImageAnnotation(Path(name), w, h, torch.tensor(boxes).reshape(-1, 4), torch.tensor(labels), crowd=crowd)


def test_mean_box_in_image_fractions_and_class_share() -> None:
    ds = AnnotationSet((
        _image("a.jpg", 20, 20, [[0, 0, 10, 10], [4, 4, 8, 8]], [0, 1]),
        _image("b.jpg", 40, 20, [[20, 10, 40, 20], [0, 0, 40, 20]], [0, 0], crowd=[False, True]),  # crowd: not an object
    ), ("circle", "square", "never"))
    prior = ClassPrior.fit(ds)
    # class 0: (0, 0, .5, .5) and (.5, .5, 1, 1) -> their mean; class 1: (.2, .2, .4, .4); class 2: no box
    torch.testing.assert_close(prior.boxes[:2], torch.tensor([[0.25, 0.25, 0.75, 0.75], [0.2, 0.2, 0.4, 0.4]]))
    torch.testing.assert_close(prior.frequency, torch.tensor([2 / 3, 1 / 3, 0.0]))
    det = prior.detect(height=100, width=200)  # any image size: the fractions scale to it
    assert det.labels.tolist() == [0, 1]  # a class never seen gets no detection
    torch.testing.assert_close(det.boxes, torch.tensor([[50.0, 25.0, 150.0, 75.0], [40.0, 20.0, 80.0, 40.0]]))
    torch.testing.assert_close(det.scores, torch.tensor([2 / 3, 1 / 3]))
    assert len(prior.predict(ds)) == 2


def test_it_scores_what_sits_at_the_mean_box_and_nothing_else() -> None:
    objects = AnnotationSet(tuple(_image(f"{i}.jpg", 100, 100, [[40, 40, 60, 60]], [0]) for i in range(3)), ("x",))
    prior = ClassPrior.fit(objects)
    hit = evaluate_detections(prior.predict(objects), objects.images, 1, ("x",))
    assert hit.map50 == pytest.approx(1.0)
    elsewhere = AnnotationSet(tuple(_image(f"{i}.jpg", 100, 100, [[0, 0, 20, 20]], [0]) for i in range(3)), ("x",))
    assert evaluate_detections(prior.predict(elsewhere), elsewhere.images, 1, ("x",)).map50 == 0.0


def test_no_boxes_is_an_error() -> None:
    with pytest.raises(DatasetError, match="at least one box"):
        ClassPrior.fit(AnnotationSet((_image("a.jpg", 10, 10, [], []),), ("x",)))

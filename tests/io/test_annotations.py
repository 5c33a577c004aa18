from __future__ import annotations

import pytest
import torch

from convsight.errors import DatasetError
from convsight.io.annotations import AnnotationSet, ImageAnnotation


def _im(boxes, labels, w=100, h=80, path="x.png"):
    return ImageAnnotation(path, w, h, torch.tensor(boxes, dtype=torch.float32), torch.tensor(labels))


def test_empty_image_is_kept_with_shape_0x4():
    im = _im([], [])
    assert im.boxes.shape == (0, 4) and len(im) == 0
    AnnotationSet((im,), ("a",)).validate()


@pytest.mark.parametrize(
    "boxes, labels, message",
    [
        ([[10, 10, 5, 20]], [0], "negative"),
        ([[10, 10, 20, 10]], [0], "negative"),
        ([[10, 10, 150, 20]], [0], "outside"),
        ([[-5, 10, 20, 20]], [0], "outside"),
        ([[10, 10, 20, 20]], [3], "label out of range"),
        ([[float("nan"), 10, 20, 20]], [0], "finite"),
    ],
)
def test_validate_rejects_broken_boxes(boxes, labels, message):
    with pytest.raises(DatasetError, match=message):
        AnnotationSet((_im(boxes, labels),), ("a", "b")).validate()


def test_one_pixel_outside_is_tolerated():
    AnnotationSet((_im([[-0.5, 0, 100.5, 80]], [0]),), ("a",)).validate()


def test_mismatched_boxes_and_labels():
    with pytest.raises(DatasetError, match="2 boxes but 1 labels"):
        _im([[0, 0, 1, 1], [0, 0, 2, 2]], [0])


def test_same_as_ignores_order_but_not_content():
    a, b = _im([[1, 2, 3, 4]], [0], path="a.png"), _im([], [], path="b.png")
    s1, s2 = AnnotationSet((a, b), ("x",)), AnnotationSet((b, a), ("x",))
    assert s1.same_as(s2)
    c = _im([[1, 2, 3, 4.5]], [0], path="a.png")
    s3 = AnnotationSet((c, b), ("x",))
    assert not s1.same_as(s3)
    assert s1.differences(s3) == [f"{a.path.absolute()}: annotations differ"]
    assert not s1.same_as(AnnotationSet((a, b), ("y",)))

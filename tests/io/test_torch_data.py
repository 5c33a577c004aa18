from __future__ import annotations

import pytest
import torch

from convsight.errors import DatasetError
from convsight.io.synth_writer import write_synthetic
from convsight.io.synthetic import SynthConfig
from convsight.io.torch_data import DetectionDataset, collate_detection


@pytest.fixture
def scenes(tmp_path):
    return write_synthetic(tmp_path / "d", 4, SynthConfig(image_size=(64, 96), min_size=8, min_objects=1), fmt="coco", ext="png")


def test_resize_scales_boxes(scenes):
    data = DetectionDataset(scenes, size=(32, 32))
    image, target = data[0]
    assert image.shape == (3, 32, 32)
    expected = scenes[0].boxes * torch.tensor([32 / 96, 32 / 64, 32 / 96, 32 / 64])
    assert torch.allclose(target.boxes, expected) and torch.equal(target.labels, scenes[0].labels)
    images, targets = collate_detection([data[0], data[1]])
    assert images.shape == (2, 3, 32, 32) and [t.image_id for t in targets] == [0, 1]


def test_flip_mirrors_boxes_and_is_seeded(scenes):
    plain = DetectionDataset(scenes)
    flipped = DetectionDataset(scenes, hflip=1.0)
    (a, ta), (b, tb) = plain[0], flipped[0]
    assert torch.equal(a.flip(-1), b)
    assert torch.allclose(tb.boxes[:, [0, 2]], 96 - ta.boxes[:, [2, 0]])
    half = DetectionDataset(scenes, hflip=0.5, seed=1)
    assert all(torch.equal(half[i][0], half[i][0]) for i in range(4))


def test_size_mismatch_is_reported(scenes):
    from dataclasses import replace

    wrong = replace(scenes, images=(replace(scenes[0], width=10),))
    with pytest.raises(DatasetError, match="annotations say 10x64"):
        DetectionDataset(wrong)[0]


def test_crowd_and_ignore_regions_are_not_targets(scenes):
    # torchvision's COCO reference (references/detection/coco_utils.py, ConvertCocoPolysToMask) keeps
    # only annotations with iscrowd == 0 as targets; Detectron2 filters iscrowd the same way.
    from dataclasses import replace

    im = scenes[0]
    n = len(im)
    crowd = torch.zeros(n, dtype=torch.bool)
    crowd[0] = True
    ignore = torch.zeros(n, dtype=torch.bool)
    if n > 1:
        ignore[-1] = True
    marked = replace(scenes, images=(replace(im, crowd=crowd, ignore=ignore),))
    _, target = DetectionDataset(marked)[0]
    keep = ~(crowd | ignore)
    assert len(target) == int(keep.sum()) < n
    assert torch.equal(target.boxes, im.boxes[keep]) and torch.equal(target.labels, im.labels[keep])

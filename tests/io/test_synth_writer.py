from __future__ import annotations

import numpy as np

from convsight.io.formats import read_dataset
from convsight.io.images import load_image
from convsight.io.synth_writer import BACKGROUND, write_crops, write_synthetic
from convsight.io.synthetic import SynthConfig, render_scene
from convsight.io.torch_data import CropsDataset

CFG = SynthConfig(image_size=(64, 64), min_size=8)


def test_scenes_written_and_read_back_in_each_format(tmp_path):
    for fmt in ("coco", "voc", "yolo"):
        ds = write_synthetic(tmp_path / fmt, 5, CFG, seed=2, fmt=fmt, ext="png")
        back = read_dataset(tmp_path / fmt)
        assert back.same_as(ds), back.differences(ds)
        # png is lossless: the pixels on disk are the rendered scene
        assert np.array_equal(load_image(ds[1].path), render_scene(CFG, 2, 1).image)


def test_crops_have_class_folders_and_background(tmp_path):
    counts = write_crops(tmp_path / "crops", 6, CFG, seed=0, crop_size=24)
    assert counts[BACKGROUND] > 0 and sum(counts.values()) > counts[BACKGROUND]
    data = CropsDataset(tmp_path / "crops", size=24)
    assert data.class_names[-1] == BACKGROUND and len(data) == sum(counts.values())
    image, label = data[0]
    assert image.shape == (3, 24, 24) and 0 <= label < len(data.class_names)

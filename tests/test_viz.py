from __future__ import annotations

import numpy as np
import pytest
import torch

from convsight.viz import class_colour, contact_sheet, draw_boxes


def test_class_colours_are_stable_and_distinct():
    cols = [class_colour(k) for k in range(8)]
    assert cols == [class_colour(k) for k in range(8)] and len(set(cols)) == 8


def test_draw_boxes_copies_and_draws_inside_box():
    img = np.zeros((100, 120, 3), np.uint8)
    out = draw_boxes(img, torch.tensor([[10.0, 20.0, 60.0, 80.0]]), torch.tensor([1]), ["a", "b"], scores=torch.tensor([0.9]))
    assert img.sum() == 0 and out.shape == img.shape and out.dtype == np.uint8
    assert out[50, 10].any() and not out[95, 110].any()  # left edge drawn, far corner untouched


def test_draw_boxes_unknown_label_and_empty():
    img = np.zeros((40, 40, 3), np.uint8)
    assert draw_boxes(img, np.zeros((0, 4)), np.zeros(0), ["a"]).sum() == 0
    assert draw_boxes(img, [[1, 1, 30, 30]], [7], ["a"]).any()  # label outside names: shows the index


def test_contact_sheet_layout():
    ims = [np.full((50, 100, 3), 255 - 40 * k, np.uint8) for k in range(5)]
    sheet = contact_sheet(ims, columns=2, cell=64, pad=4)
    assert sheet.shape == (3 * 68 + 4, 2 * 68 + 4, 3)
    assert (sheet[4, 4] == ims[0][0, 0]).all() and (sheet[4 + 2 * 68, 4] == ims[4][0, 0]).all()
    with pytest.raises(ValueError):
        contact_sheet([])

from __future__ import annotations

import numpy as np
from PIL import Image

from convsight.detection.metrics import evaluate_detections
from convsight.detection.plots import plot_pr_curves

from .test_metrics import random_problem


def test_pr_plot_is_a_png(tmp_path):
    ds, preds = random_problem(1)
    m = evaluate_detections(preds, ds.images, num_classes=ds.num_classes, class_names=ds.class_names)
    p = plot_pr_curves(m, tmp_path / "sub" / "pr.png")
    with Image.open(p) as im:
        assert im.format == "PNG" and im.width > 300
        assert np.asarray(im.convert("L")).std() > 5  # not a blank canvas
    assert [f.name for f in (tmp_path / "sub").iterdir()] == ["pr.png"]

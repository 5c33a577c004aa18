from __future__ import annotations

import csv
import json
import math

from PIL import Image

from convsight.training.records import columns, plot_loss_curve, smooth, write_metrics

HISTORY = [{"epoch": 1, "train_loss": 1.0}, {"epoch": 2, "train_loss": 0.5, "val_loss": math.nan}]


def test_columns_keep_first_seen_order():
    assert columns(HISTORY) == ["epoch", "train_loss", "val_loss"]


def test_metrics_csv_and_json(tmp_path):
    c, j = write_metrics(tmp_path, HISTORY, "val_loss", "min", math.inf, None)
    rows = list(csv.DictReader(c.open()))
    assert rows[0]["val_loss"] == "" and rows[1]["train_loss"] == "0.5"
    doc = json.loads(j.read_text())  # strict JSON: NaN/inf became null
    assert doc["best"] is None and doc["history"][1]["val_loss"] is None


def test_smooth_is_bias_corrected():
    assert smooth([2.0, 2.0, 2.0]) == [2.0, 2.0, 2.0]
    s = smooth([0.0, 10.0])
    assert 0.0 < s[1] < 10.0


def test_loss_curve_png(tmp_path):
    p = plot_loss_curve(tmp_path / "loss.png", HISTORY, [1.2, 1.0, 0.8, 0.6], steps_per_epoch=2)
    with Image.open(p) as im:
        assert im.format == "PNG"

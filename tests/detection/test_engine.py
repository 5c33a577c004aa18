from __future__ import annotations

import json

import pytest
import torch

from convsight.detection import engine
from convsight.detection.build import build_detector
from convsight.detection.serialize import load_detector
from convsight.errors import ConfigError, DatasetError
from convsight.io.formats import read_dataset
from convsight.training import TrainConfig


def test_load_splits_is_seeded_and_disjoint(scenes):
    tr, va = engine.load_splits(scenes, seed=1)
    assert len(tr) + len(va) == 12 and len(va) == 2
    assert not {str(a.path) for a in tr} & {str(a.path) for a in va}
    assert [str(a.path) for a in engine.load_splits(scenes, seed=1)[1]] == [str(a.path) for a in va]
    with pytest.raises(ConfigError):
        engine.load_splits(scenes, val_fraction=1.0)


def test_predict_returns_boxes_in_each_images_pixels():
    model = build_detector("toy", 2, image_size=(32, 32)).eval()
    with torch.no_grad():
        model.box.copy_(torch.tensor([[0.0, 0.0, -1.0, -1.0], [0.0, 0.0, -1.0, -1.0]]))  # centred boxes
    small, big = engine.predict(model, [torch.rand(3, 32, 32), torch.rand(3, 64, 128)])
    assert torch.allclose(big.boxes[0], small.boxes[0] * torch.tensor([4.0, 2.0, 4.0, 2.0]))


def test_predict_takes_thresholds_and_uint8_arrays_and_reports_batches():
    import numpy as np

    model = build_detector("toy", 3, image_size=(32, 32)).eval()
    with torch.no_grad():
        model.logit.copy_(torch.tensor([-3.0, 0.0, 3.0]))  # scores 0.05, 0.5, 0.95
    arrays = [np.full((40, 50, 3), 128, dtype=np.uint8) for _ in range(5)]
    seen: list[int] = []
    dets = engine.predict(model, arrays, batch_size=2, score_threshold=0.4, on_batch=seen.append)
    assert seen == [2, 2, 1] and len(dets) == 5
    assert all(sorted(d.labels.tolist()) == [1, 2] for d in dets)
    assert engine.predict(model, arrays[:1], score_threshold=0.9)[0].labels.tolist() == [2]
    assert len(engine.predict(model, arrays[:1])[0]) == 3  # the model's own threshold (0.0) again
    assert model.postprocess.score_threshold == 0.0


def test_model_time_is_the_median_without_the_warm_up_batch():
    assert engine.model_ms_per_image([50.0, 2.0, 3.0, 40.0, 2.5]) == 2.75  # first left out, spike ignored
    assert engine.model_ms_per_image([7.0, 3.0]) == 5.0  # too few batches to leave one out


def test_evaluate_scores_in_original_coordinates(scenes):
    ds = read_dataset(scenes)
    model = build_detector("toy", len(ds.class_names), image_size=(32, 32))
    ev = engine.evaluate(model, ds, batch_size=5)
    assert len(ev.detections) == 12 and ev.val_loss > 0 and ev.ms_per_image > 0
    assert all(float(d.boxes.max()) > 32 for d in ev.detections if len(d))  # back in 64-px pixels
    quick = engine.evaluate(model, ds, batch_size=5, loss=False)
    assert quick.val_loss is None and quick.metrics.map50 == ev.metrics.map50


def test_train_keeps_best_and_writes_detector(tmp_path, scenes):
    tr, va = engine.load_splits(scenes)
    cfg = TrainConfig(epochs=3, batch_size=4, optimizer="adamw", lr=0.05, progress=False)
    r = engine.train("toy", tr, va, tmp_path / "run", cfg, {"image_size": [32, 32]})
    hist = r.result.history
    assert len(hist) == 3 and all("map50" in h and "val_loss" in h for h in hist)
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    loaded, names = load_detector(r.weights)
    assert names == tr.class_names and loaded.image_size == (32, 32)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["monitor"] == "map50"
    assert r.evaluation.metrics.map50 == pytest.approx(max(h["map50"] for h in hist), abs=1e-9)


def test_train_refuses_mismatched_classes(tmp_path, scenes):
    tr, va = engine.load_splits(scenes)
    from convsight.io.annotations import AnnotationSet

    other = AnnotationSet(va.images, tuple(reversed(va.class_names)))
    with pytest.raises(DatasetError, match="different classes"):
        engine.train("toy", tr, other, tmp_path / "run", TrainConfig(epochs=1, progress=False))


def test_evaluate_uses_a_low_score_threshold_and_leaves_the_models(scenes):
    ds = read_dataset(scenes)
    from convsight.detection.base import PostprocessConfig

    model = build_detector("toy", len(ds.class_names), image_size=(32, 32), postprocess=PostprocessConfig(score_threshold=0.9))
    with torch.no_grad():
        model.logit.fill_(0.0)  # every score 0.5: below the model's threshold, above evaluation's
    assert sum(len(d) for d in engine.evaluate(model, ds, score_threshold=None).detections) == 0
    assert all(len(d) == len(ds.class_names) for d in engine.evaluate(model, ds).detections)
    assert model.postprocess.score_threshold == 0.9

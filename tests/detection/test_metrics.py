"""The evaluator against pycocotools' COCOeval (independent reference) and hand-worked VOC cases."""

from __future__ import annotations

import contextlib
import io
import math

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from convsight.detection.metrics import evaluate_detections, voc07_ap, voc_ap
from convsight.detection.plots import plot_pr_curves
from convsight.io.annotations import AnnotationSet, ImageAnnotation
from convsight.io.coco import detections_to_coco_results, to_coco_dict
from convsight.structures import Detections, Target


def random_problem(seed: int, n_images=30, n_classes=5, size=400):
    """Ground truth of small/medium/large boxes; predictions = jittered gt + misses + false positives.

    Class n_classes-1 never has ground truth; class n_classes-2 is never predicted; some images have
    no ground truth at all.
    """
    rng = np.random.default_rng(seed)
    gts, preds = [], []
    for i in range(n_images):
        k = 0 if i % 7 == 0 else int(rng.integers(1, 8))
        side = np.exp(rng.uniform(np.log(8), np.log(200), k))
        ar = np.exp(rng.uniform(-0.5, 0.5, k))
        w, h = side * ar, side / ar
        x1, y1 = rng.uniform(0, size - w), rng.uniform(0, size - h)
        boxes = np.stack([x1, y1, x1 + w, y1 + h], 1)
        labels = rng.integers(0, n_classes - 1, k)
        gts.append(ImageAnnotation(f"im{i}.jpg", size, size, torch.tensor(boxes, dtype=torch.float32), torch.tensor(labels)))
        keep = rng.random(k) > 0.15
        pb = boxes[keep] + rng.normal(0, 0.08, (keep.sum(), 4)) * np.repeat(np.stack([w, h], 1)[keep], 2, 1)
        pl = labels[keep]
        nf = int(rng.integers(0, 4))
        fx, fy = rng.uniform(0, size - 60, nf), rng.uniform(0, size - 60, nf)
        fb = np.stack([fx, fy, fx + rng.uniform(5, 60, nf), fy + rng.uniform(5, 60, nf)], 1)
        fl = rng.integers(0, n_classes, nf)
        b = np.concatenate([pb, fb]).clip(0, size)
        lab = np.concatenate([pl, fl])
        ok = (lab != n_classes - 2) & (b[:, 2] > b[:, 0] + 1) & (b[:, 3] > b[:, 1] + 1)
        preds.append(Detections(torch.tensor(b[ok], dtype=torch.float32), torch.tensor(rng.random(ok.sum()), dtype=torch.float32),
                                torch.tensor(lab[ok])))
    names = tuple(f"c{k}" for k in range(n_classes))
    return AnnotationSet(tuple(gts), names), preds


def cocoeval(ds: AnnotationSet, preds):
    gt = COCO()
    gt.dataset = to_coco_dict(ds, ".")
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        results = detections_to_coco_results(preds, [i + 1 for i in range(len(ds))], [k + 1 for k in range(ds.num_classes)])
        dt = gt.loadRes(results)
        e = COCOeval(gt, dt, "bbox")
        e.evaluate()
        e.accumulate()
        e.summarize()
    return e


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_equals_pycocotools(seed):
    ds, preds = random_problem(seed)
    ref = cocoeval(ds, preds)
    ours = evaluate_detections(preds, ds.images, ds.num_classes, ds.class_names)
    for value, stat in zip((ours.map, ours.map50, ours.map75, ours.map_small, ours.map_medium, ours.map_large), ref.stats[:6], strict=True):
        if stat == -1:
            assert math.isnan(value)
        else:
            assert value == pytest.approx(stat, abs=1e-6)
    prec = ref.eval["precision"][:, :, :, 0, 2]  # all areas, maxDets=100
    for k, name in enumerate(ds.class_names):
        p = prec[:, :, k]
        ap = ours.per_class[name].ap
        if (p > -1).any():
            assert ap == pytest.approx(p.mean(), abs=1e-6)
            assert ours.per_class[name].ap50 == pytest.approx(p[0].mean(), abs=1e-6)
        else:
            assert math.isnan(ap)
    assert math.isnan(ours.per_class["c4"].ap)  # no ground truth
    assert ours.per_class["c3"].ap == 0.0 and ours.per_class["c3"].num_det == 0  # never predicted


def test_max_dets_cut_matches_pycocotools():
    ds, preds = random_problem(7)
    ref = cocoeval(ds, preds)
    # COCOeval's precision for maxDets index 0 (maxDets=1) and 1 (maxDets=10).
    ours10 = evaluate_detections(preds, ds.images, ds.num_classes, max_dets=10)
    p = ref.eval["precision"][:, :, :, 0, 1]
    assert ours10.map == pytest.approx(p[p > -1].mean(), abs=1e-6)
    ours1 = evaluate_detections(preds, ds.images, ds.num_classes, max_dets=1)
    p = ref.eval["precision"][:, :, :, 0, 0]
    assert ours1.map == pytest.approx(p[p > -1].mean(), abs=1e-6)


def reference_voc(dets, gts, thresh=0.5, difficult=None):
    """The VOC devkit's VOCevaldet.m (as copied by py-faster-rcnn's voc_eval, use_07_metric=False)
    for one class, written out plainly: a detection on a difficult object is neither TP nor FP, and
    difficult objects are not positives. ``ovmax >= minoverlap`` as in the devkit."""
    difficult = difficult or {i: [False] * len(g) for i, g in gts.items()}
    order = sorted(range(len(dets)), key=lambda j: -dets[j][1])
    used = {i: [False] * len(g) for i, g in gts.items()}
    tp, fp = [], []
    for j in order:
        img, score, b = dets[j]
        best, arg = -1.0, -1
        for gi, g in enumerate(gts.get(img, [])):
            iw = max(0.0, min(b[2], g[2]) - max(b[0], g[0]))
            ih = max(0.0, min(b[3], g[3]) - max(b[1], g[1]))
            inter = iw * ih
            ov = inter / ((b[2] - b[0]) * (b[3] - b[1]) + (g[2] - g[0]) * (g[3] - g[1]) - inter)
            if ov > best:
                best, arg = ov, gi
        if best >= thresh and difficult[img][arg]:
            continue  # "don't care"
        if best >= thresh and not used[img][arg]:
            used[img][arg] = True
            tp.append(1), fp.append(0)
        else:
            tp.append(0), fp.append(1)
    npos = sum(not d for ds in difficult.values() for d in ds)
    tp, fp = np.cumsum(tp), np.cumsum(fp)
    rec, prec = tp / npos, tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    mrec, mpre = np.concatenate(([0.0], rec, [1.0])), np.concatenate(([0.0], prec, [0.0]))
    for i in range(mpre.size - 1, 0, -1):
        mpre[i - 1] = max(mpre[i - 1], mpre[i])
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


@pytest.mark.parametrize("seed, use_difficult", [(0, False), (5, False), (3, True)])
def test_voc_map_equals_reference_implementation(seed, use_difficult):
    from dataclasses import replace

    ds, preds = random_problem(seed)
    g = torch.Generator().manual_seed(seed)  # mark ~20% of the objects difficult
    ds = replace(ds, images=tuple(replace(im, difficult=torch.rand(len(im), generator=g) < 0.2) for im in ds.images))
    ours = evaluate_detections(preds, ds.images, ds.num_classes, ds.class_names, use_difficult=use_difficult)
    aps = []
    for k, name in enumerate(ds.class_names):
        gts = {i: im.boxes[im.labels == k].double().tolist() for i, im in enumerate(ds.images)}
        diff = {i: (im.difficult[im.labels == k] & (not use_difficult)).tolist() for i, im in enumerate(ds.images)}
        dets = [(i, float(s), b) for i, p in enumerate(preds) for b, s, lab in
                zip(p.boxes.double().tolist(), p.scores.tolist(), p.labels.tolist(), strict=True) if lab == k]
        if sum(not d for ds_ in diff.values() for d in ds_) == 0:
            assert math.isnan(ours.per_class[name].voc_ap50)
            continue
        ref = reference_voc(dets, gts, difficult=diff)
        aps.append(ref)
        assert ours.per_class[name].voc_ap50 == pytest.approx(ref, abs=1e-9)
    assert ours.voc_map50 == pytest.approx(np.mean(aps), abs=1e-9)


def test_voc_ap_hand_worked():
    # 3 gt; detections by score: TP, FP, TP -> recall 1/3, 1/3, 2/3; precision 1, 1/2, 2/3.
    # Envelope: 1 up to recall 1/3, 2/3 up to recall 2/3, 0 after. AP = 1/3*1 + 1/3*2/3 = 5/9.
    assert voc_ap(np.array([1 / 3, 1 / 3, 2 / 3]), np.array([1.0, 0.5, 2 / 3])) == pytest.approx(5 / 9)


def test_perfect_empty_and_no_predictions(tmp_path):
    gt = [Target(torch.tensor([[0.0, 0, 10, 10], [20, 20, 50, 60]]), torch.tensor([0, 1])), Target(torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64))]
    perfect = [Detections(t.boxes, torch.ones(len(t)), t.labels) for t in gt]
    m = evaluate_detections(perfect, gt, 2)
    assert m.map == pytest.approx(1.0) and m.voc_map50 == pytest.approx(1.0) and m.map50 == pytest.approx(1.0)
    m = evaluate_detections([Detections.empty(), Detections.empty()], gt, 2)
    assert m.map == 0.0 and m.voc_map50 == 0.0
    m = evaluate_detections([], [], 3)
    assert math.isnan(m.map) and m.num_images == 0
    # a detection on an image without ground truth is a false positive
    fp = [perfect[0], Detections(torch.tensor([[0.0, 0, 5, 5]]), torch.tensor([2.0]), torch.tensor([0]))]
    m = evaluate_detections(fp, gt, 2)
    # class 0: the false positive scores higher -> precision 0 then 1/2 at recall 1 -> AP 0.5
    assert m.per_class["0"].voc_ap50 == pytest.approx(0.5, abs=1e-9)
    with pytest.raises(ValueError):
        evaluate_detections([Detections.empty()], gt, 2)


def test_pr_plot_is_a_png(tmp_path):
    ds, preds = random_problem(0)
    m = evaluate_detections(preds, ds.images, ds.num_classes, ds.class_names)
    out = plot_pr_curves(m, tmp_path / "pr.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000
    d = m.to_dict()
    assert d["per_class"]["c4"]["ap"] is None and 0 < d["map"] < 1


def test_speed_is_reasonable():
    import time

    ds, preds = random_problem(0, n_images=300, n_classes=6)
    t = time.perf_counter()
    evaluate_detections(preds, ds.images, ds.num_classes)
    assert time.perf_counter() - t < 30  # generous: a guard against accidental quadratic blow-ups only


def _devkit_case(crowd_region: bool = False):
    """Worked by hand from the devkit's rule (VOCevaldet.m, VOC2012 devkit): one class, two images.

    Image A: gt1 [0,0,10,10], gt2 [20,0,30,10] difficult. Image B: gt3 [0,0,10,10] (and, with
    ``crowd_region``, a crowd region [48,48,62,62]). Detections by score: d1 .9 = gt1 (A),
    d2 .8 = gt2 (A), d3 .7 [50,50,60,60] (B; IoU with the crowd region 100/196 >= 0.5),
    d4 .6 = gt1 again (A), d5 .5 = gt3 (B).
    """
    a = ImageAnnotation("a.jpg", 100, 100, torch.tensor([[0.0, 0, 10, 10], [20, 0, 30, 10]]), torch.tensor([0, 0]),
                        difficult=torch.tensor([False, True]))
    b_boxes, b_crowd = [[0.0, 0, 10, 10]], [False]
    if crowd_region:
        b_boxes, b_crowd = b_boxes + [[48.0, 48, 62, 62]], b_crowd + [True]
    b = ImageAnnotation("b.jpg", 100, 100, torch.tensor(b_boxes), torch.zeros(len(b_boxes), dtype=torch.int64),
                        crowd=torch.tensor(b_crowd))
    det_a = Detections(torch.tensor([[0.0, 0, 10, 10], [20, 0, 30, 10], [0, 0, 10, 10]]), torch.tensor([0.9, 0.8, 0.6]),
                       torch.zeros(3, dtype=torch.int64))
    det_b = Detections(torch.tensor([[50.0, 50, 60, 60], [0, 0, 10, 10]]), torch.tensor([0.7, 0.5]), torch.zeros(2, dtype=torch.int64))
    return [det_a, det_b], [a, b]


def test_voc_difficult_ignored_by_default_counted_on_request():
    preds, gts = _devkit_case()
    # Difficult ignored (devkit default): npos = 2; d2 is "don't care". d1 TP, d3 FP, d4 FP (gt1
    # already claimed), d5 TP -> recall .5 .5 .5 1, precision 1 1/2 1/3 1/2.
    # All-point: envelope 1 up to recall .5, then 1/2 -> AP = .5 * 1 + .5 * .5 = 0.75.
    # 11-point: t = 0 .. .5 (6 points) best precision 1; t = .6 .. 1 (5 points) 1/2 -> 8.5 / 11.
    m = evaluate_detections(preds, gts, 1)
    assert m.voc_map50 == pytest.approx(0.75) and m.voc07_map50 == pytest.approx(8.5 / 11)
    rec, prec = m.pr_curves["0"]
    assert rec.tolist() == [0.5, 0.5, 0.5, 1.0] and prec == pytest.approx([1, 1 / 2, 1 / 3, 1 / 2])
    # Counted: npos = 3; d1 TP, d2 TP, d3 FP, d4 FP, d5 TP -> recall 1/3 2/3 2/3 2/3 1, precision
    # 1 1 2/3 1/2 3/5. All-point: 2/3 * 1 + 1/3 * 3/5 = 13/15. 11-point: t <= .6 (7 points) 1,
    # t = .7 .. 1 (4 points) 3/5 -> 9.4 / 11.
    m = evaluate_detections(preds, gts, 1, use_difficult=True)
    assert m.voc_map50 == pytest.approx(13 / 15) and m.voc07_map50 == pytest.approx(9.4 / 11)
    assert m.use_difficult and m.to_dict()["use_difficult"] is True
    # COCO's numbers do not know the flag: the same either way.
    assert m.map == evaluate_detections(preds, gts, 1).map


def test_voc_crowd_region_is_dont_care():
    # As above plus a crowd region in image B that d3 overlaps with IoU 100/196 >= 0.5: d3 is no
    # longer a false positive. d1 TP, d4 FP, d5 TP -> recall .5 .5 1, precision 1 1/2 2/3:
    # AP = .5 * 1 + .5 * 2/3 = 5/6. The region is no positive (npos stays 2).
    preds, gts = _devkit_case(crowd_region=True)
    m = evaluate_detections(preds, gts, 1)
    assert m.voc_map50 == pytest.approx(5 / 6)
    assert m.per_class["0"].num_gt == 3  # difficult objects are objects; the crowd region is not


def test_voc07_eleven_point_hand_worked():
    # recall .2 .4 .4 .8, precision 1 1 2/3 .8: t = 0 .. .4 -> 1 (5 points); t = .5 .. .8 -> .8
    # (4 points); t = .9, 1 -> 0. AP = (5 + 3.2) / 11.
    assert voc07_ap(np.array([0.2, 0.4, 0.4, 0.8]), np.array([1.0, 1.0, 2 / 3, 0.8])) == pytest.approx(8.2 / 11)

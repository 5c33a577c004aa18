"""Verification: ROC, calibrated thresholds, pairs files, the learned pair verifier, the ROC plot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from convsight.errors import ConfigError, DatasetError, InputFileError
from convsight.faces.verification import (
    PairVerifier,
    Threshold,
    calibrate,
    default_threshold,
    evaluate,
    plot_roc,
    read_pairs,
    roc_curve,
)

SAME = np.array([0.1, 0.2, 0.3, 0.45])
DIFF = np.array([0.4, 0.6, 0.7, 0.8, 0.9, 1.0])


def pairs() -> tuple[np.ndarray, np.ndarray]:
    return np.r_[SAME, DIFF], np.r_[np.ones(len(SAME), bool), np.zeros(len(DIFF), bool)]


def test_roc_curve_by_hand() -> None:
    curve = roc_curve(*pairs())
    assert curve.far[0] == 0 and curve.tar[0] == 0 and curve.far[-1] == 1 and curve.tar[-1] == 1
    # accepting d <= 0.3 takes 3 of 4 same pairs and no different pair
    assert curve.point(0.3) == (0.0, 0.75)
    assert curve.point(0.4) == (pytest.approx(1 / 6), 0.75)
    assert curve.auc == pytest.approx(1 - 1 / 24)  # one of the 24 (same, diff) orderings is wrong
    assert curve.tar_at_far(0.0) == 0.75


def test_calibrate_best_accuracy_and_target_far() -> None:
    d, s = pairs()
    best = calibrate(d, s)  # 0.3|0.4: 9/10 right; 0.45|0.6: also 9/10, first wins
    assert best.method == "accuracy"
    assert best.value == pytest.approx(0.35)
    assert evaluate(d, s, best)["accuracy"] == pytest.approx(0.9)
    strict = calibrate(d, s, target_far=0.0)
    assert strict.value == pytest.approx(0.35) and strict.far == 0.0
    loose = calibrate(d, s, target_far=0.2)  # one different pair (0.4) may pass: 0.45 joins
    assert loose.value == pytest.approx(0.525) and loose.method == "far"
    with pytest.raises(ConfigError, match="both"):
        calibrate(SAME, np.ones(4, bool))


def test_threshold_round_trip_and_validation() -> None:
    t = Threshold(0.5, method="far", far=1e-3, source="unit test")
    assert Threshold.from_dict(t.to_dict()) == t
    assert t.accepts(np.array([0.4, 0.6])).tolist() == [True, False]
    with pytest.raises(ConfigError):
        Threshold(-1.0)
    with pytest.raises(ConfigError):
        Threshold(0.5, metric="cosine")


def test_default_threshold() -> None:
    class Dlib:
        embedder_id = "dlib_resnet_v1"

    class Trained:
        embedder_id = "convsight_small:abc"
        threshold = Threshold(0.8, method="accuracy", source="val")

    assert default_threshold(Dlib()).value == 0.6 and "dlib" in default_threshold(Dlib()).source
    assert default_threshold(Trained()).value == 0.8
    with pytest.raises(ConfigError, match="calibrate"):
        default_threshold(object())


def test_evaluate_reports() -> None:
    r = evaluate(*pairs(), threshold=0.35)
    assert r["accuracy"] == pytest.approx(0.9) and r["far"] == 0 and r["tar"] == 0.75
    assert r["tar_at_far_1e-2"] == 0.75 and r["n_same"] == 4 and r["n_different"] == 6


def test_read_pairs(tmp_path: Path) -> None:
    f = tmp_path / "pairs.txt"
    f.write_text("1\t2\nAlice\t1\t2\nBob\t3\t4\nAlice\t1\tBob\t12\nCarol_X\t2\tAlice\t3\n")
    p = read_pairs(f, root=tmp_path / "lfw")
    assert len(p) == 4 and [x.same for x in p] == [True, True, False, False]
    assert p[0].a == tmp_path / "lfw" / "Alice" / "Alice_0001.jpg"
    assert p[2].b == tmp_path / "lfw" / "Bob" / "Bob_0012.jpg"
    f.write_text("1\t3\nAlice\t1\t2\n")
    with pytest.raises(DatasetError, match="promises 6"):
        read_pairs(f)
    f.write_text("Alice\t1\nBob\n")
    with pytest.raises(DatasetError, match=":1:"):
        read_pairs(f)
    with pytest.raises(InputFileError):
        read_pairs(tmp_path / "missing.txt")


def test_pair_verifier_learns_and_round_trips(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n, d = 200, 8
    f1 = rng.normal(size=(n, d))
    same = rng.random(n) < 0.5
    f2 = np.where(same[:, None], f1 + 0.1 * rng.normal(size=(n, d)), rng.normal(size=(n, d)))
    v = PairVerifier().fit(f1, f2, same)
    p = v.predict_proba(f1, f2)
    assert ((p > 0.5) == same).mean() > 0.95
    v.save(tmp_path / "v.json")
    w = PairVerifier.load(tmp_path / "v.json")
    np.testing.assert_allclose(w.predict_proba(f1, f2), p)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(InputFileError):
        PairVerifier.load(tmp_path / "bad.json")


def test_plot_roc_written(tmp_path: Path) -> None:
    d, s = pairs()
    out = plot_roc(roc_curve(d, s), calibrate(d, s), tmp_path / "roc.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in tmp_path.iterdir() if p.name != "roc.png"]  # no temp file left


def test_write_pairs_reads_back(tmp_path: Path) -> None:
    from convsight.faces.verification import write_pairs

    for name, n in (("A", 3), ("B", 1), ("C", 2)):
        (tmp_path / name).mkdir()
        for i in range(1, n + 1):
            (tmp_path / name / f"{name}_{i:04d}.png").write_bytes(b"x")
    write_pairs(tmp_path, tmp_path / "pairs.txt", per_fold=5, folds=2, seed=1)
    p = read_pairs(tmp_path / "pairs.txt", root=tmp_path, ext=".png")
    assert len(p) == 20 and sum(x.same for x in p) == 10
    assert all(x.a.is_file() and x.b.is_file() for x in p)
    assert all(x.a.parent.name != x.b.parent.name for x in p if not x.same)

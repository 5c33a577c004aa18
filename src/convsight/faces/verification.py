"""Face verification: is this pair the same person? Distances, a calibrated threshold, ROC, pairs files.

Two embeddings are accepted as the same person when their Euclidean distance is ``<= threshold``.
The threshold is calibrated on labelled pairs (:func:`calibrate`): at a target false-accept rate
(FAR: share of different-person pairs accepted) or at the best accuracy, and travels with the model
(:class:`Threshold` serialises to a dict). :class:`PairVerifier` is the learned alternative: a
logistic regression on ``[|f1 - f2|, f1 * f2]`` (per-dimension evidence instead of one distance).
:func:`read_pairs` reads LFW's ``pairs.txt`` layout, :func:`evaluate` and :func:`plot_roc` report.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from convsight.errors import ConfigError, DatasetError, InputFileError

METHODS = ("fixed", "far", "accuracy")
DLIB_THRESHOLD = 0.6


@dataclass(frozen=True)
class Threshold:
    """Accept a pair as the same person when ``distance <= value``.

    metric: only ``"euclidean"`` (on L2-normalised embeddings). method: ``"far"`` (the largest value
    whose FAR on the calibration pairs is <= ``far``), ``"accuracy"`` (best accuracy there) or
    ``"fixed"`` (a documented constant). far: the target FAR for method ``"far"``. source: where the
    value comes from, in words (data set, number of pairs, or the documentation quoted).
    """

    value: float
    metric: str = "euclidean"
    method: str = "fixed"
    far: float | None = None
    source: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.value, (int, float)) or not math.isfinite(self.value) or self.value < 0:
            raise ConfigError(f"threshold value must be a finite number >= 0, got {self.value!r}")
        if self.metric != "euclidean":
            raise ConfigError(f"threshold metric must be 'euclidean', got {self.metric!r}")
        if self.method not in METHODS:
            raise ConfigError(f"threshold method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.far is not None and not 0 <= self.far <= 1:
            raise ConfigError(f"threshold far must be in [0, 1], got {self.far!r}")

    def accepts(self, distances: np.ndarray) -> np.ndarray:
        """(N,) bool: which distances count as the same person."""
        return np.asarray(distances) <= self.value

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Threshold:
        try:
            return Threshold(
                value=float(d["value"]), metric=str(d.get("metric", "euclidean")), method=str(d.get("method", "fixed")),
                far=None if d.get("far") is None else float(d["far"]), source=str(d.get("source", "")),
            )  # fmt: skip
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"not a threshold record: {d!r} ({e})") from e


UNKNOWN = "unknown"


def closest_identity(matches: list[tuple[str, float]], threshold: float) -> str:
    """Recognition's decision for one face: the closest enrolled name (``matches`` as a gallery search
    returns them, nearest first) when its distance is within ``threshold``, else ``"unknown"``."""
    return matches[0][0] if matches and matches[0][1] <= threshold else UNKNOWN


def default_threshold(embedder: Any) -> Threshold:
    """The threshold an embedder is used with: its own calibrated one (attribute ``threshold``), or
    dlib's documented 0.6 for the dlib port; otherwise a :class:`ConfigError` saying how to get one."""
    own = getattr(embedder, "threshold", None)
    if isinstance(own, Threshold):
        return own
    embedder_id = str(getattr(embedder, "embedder_id", ""))
    if embedder_id.startswith("dlib"):
        return Threshold(
            DLIB_THRESHOLD, method="fixed",
            source="dlib's documented same-person distance 0.6 for dlib_face_recognition_resnet_model_v1 (dlib.net)",
        )  # fmt: skip
    raise ConfigError(
        f"embedder {embedder_id!r} has no calibrated threshold; calibrate one on labelled pairs "
        "(convsight faces eval PAIRS ...) or train with convsight faces train, which stores one"
    )


# ------------------------------------------------------------------------------------- ROC


@dataclass(frozen=True)
class RocCurve:
    """far, tar, thresholds: (T,) ascending in threshold (accept ``d <= thresholds[i]``), starting
    at (0, 0) with threshold -inf; auc: area under TAR(FAR)."""

    far: np.ndarray
    tar: np.ndarray
    thresholds: np.ndarray
    auc: float

    def tar_at_far(self, far: float) -> float:
        """The best TAR with FAR <= ``far``."""
        ok = self.far <= far + 1e-12
        return float(self.tar[ok].max()) if ok.any() else 0.0

    def point(self, threshold: float) -> tuple[float, float]:
        """(FAR, TAR) when accepting ``d <= threshold``."""
        i = int(np.searchsorted(self.thresholds, threshold, side="right")) - 1
        return float(self.far[max(i, 0)]), float(self.tar[max(i, 0)])


def _check_pairs(distances: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = np.asarray(distances, dtype=np.float64).reshape(-1)
    s = np.asarray(same, dtype=bool).reshape(-1)
    if len(d) != len(s):
        raise ConfigError(f"{len(d)} distances but {len(s)} labels")
    if not np.isfinite(d).all():
        raise ConfigError("distances hold NaN or Inf")
    if not s.any() or s.all():
        raise ConfigError("need both same-person and different-person pairs")
    return d, s


def roc_curve(distances: np.ndarray, same: np.ndarray) -> RocCurve:
    """ROC of the rule ``d <= t`` over every distinct distance t. distances (N,), same (N,) bool."""
    d, s = _check_pairs(distances, same)
    order = np.argsort(d, kind="stable")
    d, s = d[order], s[order]
    last = np.r_[d[1:] != d[:-1], True]  # ties move together: one point per distinct distance
    tp = np.cumsum(s)[last]
    fp = np.cumsum(~s)[last]
    far = np.r_[0.0, fp / (~s).sum()]
    tar = np.r_[0.0, tp / s.sum()]
    thresholds = np.r_[-np.inf, d[last]]
    auc = float(np.sum(np.diff(far) * (tar[1:] + tar[:-1]) / 2))
    return RocCurve(far, tar, thresholds, auc)


def _between(curve: RocCurve, i: int) -> float:
    """A threshold halfway between distinct distance i and the next (a margin for unseen pairs)."""
    t = curve.thresholds
    if i == 0:
        return max(0.0, float(t[1]) - 1e-6)  # accept nothing
    if i + 1 < len(t):
        return float((t[i] + t[i + 1]) / 2)
    return float(t[i])


def calibrate(distances: np.ndarray, same: np.ndarray, target_far: float | None = None, source: str = "") -> Threshold:
    """The threshold at ``target_far`` (the largest with FAR <= target on these pairs), or the one
    with the best accuracy when ``target_far`` is None."""
    d, s = _check_pairs(distances, same)
    curve = roc_curve(d, s)
    n_same, n_diff = int(s.sum()), int((~s).sum())
    what = source or f"{n_same} same / {n_diff} different pairs"
    if target_far is not None:
        if not 0 <= target_far <= 1:
            raise ConfigError(f"target FAR must be in [0, 1], got {target_far!r}")
        i = int(np.nonzero(curve.far <= target_far + 1e-12)[0].max())
        return Threshold(_between(curve, i), method="far", far=float(target_far), source=what)
    correct = curve.tar * n_same + (1 - curve.far) * n_diff
    i = int(np.argmax(correct))
    return Threshold(_between(curve, i), method="accuracy", source=what)


def evaluate(distances: np.ndarray, same: np.ndarray, threshold: Threshold | float) -> dict[str, float]:
    """accuracy, TAR and FAR at ``threshold``; TAR@FAR 1e-2 and 1e-3; AUC; pair counts."""
    d, s = _check_pairs(distances, same)
    value = threshold.value if isinstance(threshold, Threshold) else float(threshold)
    accept = d <= value
    curve = roc_curve(d, s)
    return {
        "accuracy": float((accept == s).mean()),
        "threshold": value,
        "tar": float(accept[s].mean()),
        "far": float(accept[~s].mean()),
        "tar_at_far_1e-2": curve.tar_at_far(1e-2),
        "tar_at_far_1e-3": curve.tar_at_far(1e-3),
        "auc": curve.auc,
        "n_same": int(s.sum()),
        "n_different": int((~s).sum()),
    }


def plot_roc(curve: RocCurve, threshold: Threshold | float | None, path: str | os.PathLike[str]) -> Path:
    """ROC (TAR against FAR on a log axis) with the threshold's operating point marked; atomic write."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from convsight.io.atomic import atomic_path

    floor = max(float(curve.far[curve.far > 0].min()) / 2, 1e-6) if (curve.far > 0).any() else 1e-6
    fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
    try:
        ax.plot(np.maximum(curve.far, floor), curve.tar, lw=1.5, label=f"ROC (AUC {curve.auc:.4f})")
        if threshold is not None:
            value = threshold.value if isinstance(threshold, Threshold) else float(threshold)
            far, tar = curve.point(value)
            ax.plot([max(far, floor)], [tar], "o", color="C3", label=f"threshold {value:.3f}: TAR {tar:.3f} @ FAR {far:.4f}")
        ax.set_xscale("log")
        ax.set_xlim(floor, 1)
        ax.set_ylim(0, 1.01)
        ax.set_xlabel("false accept rate (FAR)")
        ax.set_ylabel("true accept rate (TAR)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        path = Path(path)
        with atomic_path(path) as tmp:
            fig.savefig(tmp)
    finally:
        plt.close(fig)
    return path


# ------------------------------------------------------------------------------ pair files


@dataclass(frozen=True)
class Pair:
    a: Path
    b: Path
    same: bool


def read_pairs(path: str | os.PathLike[str], root: str | os.PathLike[str] = ".", ext: str = ".jpg") -> list[Pair]:
    """Pairs from LFW's ``pairs.txt`` layout: a header (``folds per_fold`` or ``count``), then lines
    ``name i j`` (same person) or ``name1 i name2 j`` (different); image ``root/name/name_000i.jpg``."""
    path, root = Path(path), Path(root)
    try:
        lines = [ln.split() for ln in path.read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as e:
        raise InputFileError(f"{path}: cannot read the pairs file ({e})") from e
    lines = [ln for ln in lines if ln]
    expected = None
    if lines and all(t.isdigit() for t in lines[0]) and len(lines[0]) in (1, 2):
        head = [int(t) for t in lines.pop(0)]
        expected = 2 * head[0] * head[1] if len(head) == 2 else 2 * head[0]  # same + different per fold

    def image(name: str, i: str, n: int) -> Path:
        if not i.isdigit():
            raise DatasetError(f"{path}:{n}: image number {i!r} is not an integer")
        return root / name / f"{name}_{int(i):04d}{ext}"

    pairs = []
    for n, t in enumerate(lines, start=2 if expected is not None else 1):
        if len(t) == 3:
            pairs.append(Pair(image(t[0], t[1], n), image(t[0], t[2], n), True))
        elif len(t) == 4:
            pairs.append(Pair(image(t[0], t[1], n), image(t[2], t[3], n), False))
        else:
            raise DatasetError(f"{path}:{n}: expected 'name i j' or 'name1 i name2 j', got {' '.join(t)!r}")
    if expected is not None and expected != len(pairs):
        raise DatasetError(f"{path}: the header promises {expected} pairs, the file has {len(pairs)}")
    if not pairs:
        raise DatasetError(f"{path}: no pairs in the file")
    return pairs


# ----------------------------------------------------------------------------- learned verifier


def pair_features(f1: np.ndarray, f2: np.ndarray) -> np.ndarray:
    """(N, D), (N, D) -> (N, 2D): ``[|f1 - f2|, f1 * f2]`` (symmetric in the pair)."""
    f1, f2 = np.asarray(f1, dtype=np.float64), np.asarray(f2, dtype=np.float64)
    if f1.shape != f2.shape or f1.ndim != 2:
        raise ConfigError(f"pair embeddings must both be (N, D), got {f1.shape} and {f2.shape}")
    return np.concatenate([np.abs(f1 - f2), f1 * f2], axis=1)


class PairVerifier:
    """Logistic regression on :func:`pair_features`: P(same person | f1, f2)."""

    def __init__(self, c: float = 1.0, coef: np.ndarray | None = None, intercept: float = 0.0) -> None:
        self.c = c
        self.coef = coef
        self.intercept = intercept

    def fit(self, f1: np.ndarray, f2: np.ndarray, same: np.ndarray, seed: int = 0) -> PairVerifier:
        from sklearn.linear_model import LogisticRegression

        x, y = pair_features(f1, f2), np.asarray(same, dtype=bool)
        if len(np.unique(y)) < 2:
            raise ConfigError("need both same-person and different-person pairs to fit the verifier")
        model = LogisticRegression(C=self.c, max_iter=2000, random_state=seed).fit(x, y)
        self.coef, self.intercept = model.coef_[0].astype(np.float64), float(model.intercept_[0])
        return self

    def predict_proba(self, f1: np.ndarray, f2: np.ndarray) -> np.ndarray:
        """(N,) probability that each pair is the same person."""
        if self.coef is None:
            raise ConfigError("PairVerifier is not fitted: call fit or load")
        x = pair_features(f1, f2)
        if x.shape[1] != len(self.coef):
            raise ConfigError(f"verifier was fitted on {len(self.coef) // 2}-d embeddings, got {x.shape[1] // 2}-d")
        return 1 / (1 + np.exp(-(x @ self.coef + self.intercept)))

    def save(self, path: str | os.PathLike[str]) -> Path:
        from convsight.io.atomic import write_json

        if self.coef is None:
            raise ConfigError("PairVerifier is not fitted: nothing to save")
        record = {"kind": "pair_verifier", "c": self.c, "coef": self.coef.tolist(), "intercept": self.intercept}
        return write_json(path, record)

    @staticmethod
    def load(path: str | os.PathLike[str]) -> PairVerifier:
        path = Path(path)
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
            if d.get("kind") != "pair_verifier":
                raise ValueError("not a pair verifier file")
            return PairVerifier(float(d["c"]), np.asarray(d["coef"], dtype=np.float64), float(d["intercept"]))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise InputFileError(f"{path}: not a readable pair verifier ({e})") from e


def write_pairs(
    root: str | os.PathLike[str], path: str | os.PathLike[str], per_fold: int, folds: int = 1, seed: int = 0
) -> Path:
    """Write an LFW-layout pairs file for ``root``'s identity folders (files named ``name_000i.*``):
    ``folds`` blocks of ``per_fold`` same-person then ``per_fold`` different-person lines."""
    import re

    from convsight.io.atomic import write_text

    root = Path(root)
    numbered: dict[str, list[int]] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        pat = re.compile(rf"^{re.escape(folder.name)}_(\d+)$")
        nums = sorted(int(m.group(1)) for f in folder.iterdir() if (m := pat.match(f.stem)))
        if nums:
            numbered[folder.name] = nums
    multi = [n for n, v in numbered.items() if len(v) >= 2]
    if not multi or len(numbered) < 2:
        raise DatasetError(f"{root}: need >= 2 people named name/name_000i.* and one with >= 2 images")
    rng = np.random.default_rng(seed)
    names = list(numbered)
    lines = [f"{folds}\t{per_fold}"]
    for _ in range(folds):
        for _ in range(per_fold):
            n = multi[rng.integers(len(multi))]
            i, j = sorted(rng.choice(numbered[n], 2, replace=False).tolist())
            lines.append(f"{n}\t{i}\t{j}")
        for _ in range(per_fold):
            a, b = rng.choice(len(names), 2, replace=False)
            lines.append(f"{names[a]}\t{rng.choice(numbered[names[a]])}\t{names[b]}\t{rng.choice(numbered[names[b]])}")
    return write_text(path, "\n".join(lines) + "\n")
